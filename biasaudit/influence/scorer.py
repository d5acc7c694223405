"""One scorer for every estimator: the predicted change of each bias measure if each document is removed.

For every document d and bias measure B: ``delta_bias_if_removed(d) = grad B^T H^-1 grad L_d`` (negative: d drives
B up) and ``delta_bias_if_upweighted(d) = -delta_bias_if_removed(d)`` (one more copy of d).

grad L_d . v is a sum over d's training pairs of weight * (h[w, c] + g[w]) (see SkipGramObjective.pair_values),
so all documents are scored in vectorised passes. ``block`` and ``gradient-dot`` read only pairs whose input word
is a test word: one pass over the corpus collects them and documents with no test word score exactly 0.
``cg`` and ``lissa`` carry effects through all output vectors: one pass builds the co-occurrence statistics,
a second scores every pair of every document.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..corpus import Corpus
from ..errors import CorpusError
from ..models.skipgram import SkipGramModel
from ..models.skipgram_objective import SkipGramObjective
from .block import mean_curvature, solve_block, solve_gradient_dot
from .cg import solve_cg
from .estimators import EstimatorConfig
from .lissa import solve_lissa
from .pairs import batch_pairs, encode_batches
from .targets import BiasTarget

SOLVERS = {"block": solve_block, "gradient-dot": solve_gradient_dot, "cg": solve_cg, "lissa": solve_lissa}


@dataclass
class ScoreResult:
    """Scores of all documents for each bias measure (arrays aligned with ``doc_ids``)."""
    doc_ids: list[str]
    delta_bias_if_removed: dict[str, np.ndarray]
    bias_value: dict[str, float]
    word_contributions: dict[str, dict[str, float]]   # predicted total change carried by each test word
    doc_words: dict[int, tuple[int, ...]]              # doc index -> vocabulary indices of test words it holds
    estimator: EstimatorConfig
    solver_info: dict[str, dict]
    timings: dict[str, float] = field(default_factory=dict)

    def delta_bias_if_upweighted(self, name: str) -> np.ndarray:
        return -self.delta_bias_if_removed[name]


def score_documents(model: SkipGramModel, corpus: Corpus, targets: list[BiasTarget],
                    config: EstimatorConfig = EstimatorConfig(), progress=None, dtype=torch.float64,
                    device: str = "cpu", batch_size: int = 2000) -> ScoreResult:
    """Score every document of ``corpus`` (the one ``model`` was trained on) for every target."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    V = len(model.vocab)
    rows = np.unique(np.concatenate([t.rows for t in targets]))
    test_mask = np.zeros(V, dtype=bool)
    test_mask[rows] = True
    full = config.name in ("cg", "lissa")
    cfg = model.config
    from .pairs import keep_probabilities, window_weights
    keep = keep_probabilities(model.vocab.counts, cfg.sample)
    wr = window_weights(cfg.window, cfg.shrink_windows)

    # pass 1: test-word pair instances (all that block / gradient-dot need), documents' test words. Pairs are
    # keyed densely as (row position of the input word) * V + output word and summed by bincount (no sort).
    R = len(rows)
    row_pos = np.full(V, -1, dtype=np.int64)
    row_pos[rows] = np.arange(R)
    n_dense = np.zeros(R * V) if not full else None
    doc_ids: list[str] = []
    inst_k, inst_x, inst_d, holds = [], [], [], []
    for batch in encode_batches(corpus, model.vocab, batch_size):
        off = len(doc_ids)
        doc_ids.extend(batch.ids)
        has = test_mask[batch.tokens]
        holds.append(np.unique((batch.doc[has] + off) * V + batch.tokens[has]))
        if not full:
            w, c, x, d = batch_pairs(batch, cfg.window, wr, keep, test_mask)
            k = row_pos[w] * V + c
            n_dense += np.bincount(k, weights=x, minlength=R * V)
            inst_k.append(k); inst_x.append(x); inst_d.append(d + off)
        if progress:
            progress("reading documents", len(doc_ids), None)
    n_docs = len(doc_ids)
    held = np.concatenate(holds) if holds else np.zeros(0, np.int64)
    lists: dict[int, list[int]] = {}
    for d, w in zip((held // V).tolist(), (held % V).tolist()):
        lists.setdefault(d, []).append(w)
    doc_words = {d: tuple(ws) for d, ws in lists.items()}
    timings["pass_1"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if full:
        objective = SkipGramObjective(model, corpus, dtype=dtype, device=device, noise_top=config.noise_top,
                                      noise_tail=config.noise_tail, seed=config.seed, progress=progress)
    else:
        K, X, D = (np.concatenate(a) if a else np.zeros(0, t) for a, t in
                   ((inst_k, np.int64), (inst_x, np.float64), (inst_d, np.int64)))
        W = rows[K // V]
        nz = np.flatnonzero(n_dense)
        objective = SkipGramObjective(model, dtype=dtype, device=device,
                                      pairs=(rows[nz // V], nz % V, n_dense[nz]))
    if not doc_words:
        raise CorpusError(f"corpus {corpus.name!r}: no document contains a test word; nothing to score")
    mu, blocks = mean_curvature(objective, rows)
    if not mu > 0:
        raise CorpusError(f"corpus {corpus.name!r}: the test words occur in no training pair; nothing to score")
    timings["statistics"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    solver = SOLVERS[config.name]
    values, infos, biases, contributions = {}, {}, {}, {}
    for tgt in targets:
        g = tgt.gradient(objective.U)
        kw = {"progress": progress} if config.name in ("cg", "lissa") else {}
        vU, vC, info = solver(objective, g, rows, config, blocks, mu, **kw)
        infos[tgt.name] = info
        biases[tgt.name] = tgt.value(objective.U)
        values[tgt.name] = objective.pair_values(vU, vC)
    timings["solve"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    scores = {t.name: np.zeros(n_docs) for t in targets}
    word_tot = {t.name: np.zeros(V) for t in targets}
    if not full:
        for name, (h, g) in values.items():
            h_dense = np.zeros(R * V)
            h_dense[nz] = h
            val = X * (h_dense[K] + g[W])
            scores[name] = np.bincount(D, weights=val, minlength=n_docs)
            word_tot[name] = np.bincount(W, weights=val, minlength=V)
    else:
        off = 0
        for batch in encode_batches(corpus, model.vocab, batch_size):
            w, c, x, d = batch_pairs(batch, cfg.window, wr, keep)
            pos = np.searchsorted(objective.keys, w * V + c)
            for name, (h, g) in values.items():
                val = x * (h[pos] + g[w])
                scores[name][off:off + len(batch.ids)] = np.bincount(d, weights=val, minlength=len(batch.ids))
                word_tot[name] += np.bincount(w, weights=val, minlength=V)
            off += len(batch.ids)
            if progress:
                progress("scoring documents", off, n_docs)
    timings["scoring"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    for t in targets:
        wt = word_tot[t.name]
        contributions[t.name] = {model.vocab.index_to_key[i]: float(wt[i]) for i in rows if i in set(t.rows.tolist())}
        if full:
            contributions[t.name]["(other words, through output vectors)"] = float(wt.sum() - wt[t.rows].sum())
    return ScoreResult(doc_ids, scores, biases, contributions, doc_words, config, infos, timings)


RARE_COUNT = 100


def word_shares(result: ScoreResult, name: str, vocab) -> tuple[list[dict], str | None]:
    """Share of the predicted total change carried by each test word, with corpus frequency, and a warning when
    words seen fewer than RARE_COUNT times carry most of it."""
    contrib = result.word_contributions[name]
    total_abs = sum(abs(v) for v in contrib.values()) or 1.0
    rows = [{"word": w, "contribution": v, "share_abs": abs(v) / total_abs,
             "corpus_count": vocab.count(w) if w in vocab else None} for w, v in contrib.items()]
    rows.sort(key=lambda r: -r["share_abs"])
    rare = sum(r["share_abs"] for r in rows if r["corpus_count"] is not None and r["corpus_count"] < RARE_COUNT)
    warning = None
    if rare > 0.5:
        words = ", ".join(f"{r['word']} ({r['corpus_count']})" for r in rows
                          if r["corpus_count"] is not None and r["corpus_count"] < RARE_COUNT)
        warning = (f"{rare:.0%} of the predicted change goes through words seen fewer than {RARE_COUNT} times "
                   f"({words}): removals may move these vectors without changing the association in general")
    return rows, warning


def write_scores(result: ScoreResult, folder, vocab, doc_texts: dict[str, str] | None = None) -> None:
    """Write ``scores.jsonl`` atomically: one object per (document, measure) for documents with a non-zero score,
    fields doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted, test_words."""
    import json
    import os
    import tempfile
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".scores.", suffix=".tmp", dir=folder)
    i2k = vocab.index_to_key
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for name, s in result.delta_bias_if_removed.items():
                for i in np.flatnonzero(s):
                    words = sorted(i2k[w] for w in result.doc_words.get(int(i), ()))
                    f.write(json.dumps({"doc_id": result.doc_ids[i], "test": name,
                                        "delta_bias_if_removed": float(s[i]),
                                        "delta_bias_if_upweighted": float(-s[i]), "test_words": words},
                                       ensure_ascii=False) + "\n")
        os.replace(tmp, folder / "scores.jsonl")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def top_documents(result: ScoreResult, name: str, n: int) -> dict[str, list[int]]:
    """Indices of the n documents that most increase the measure (most negative delta_bias_if_removed) and the
    n that most decrease it."""
    s = result.delta_bias_if_removed[name]
    order = np.argsort(s, kind="stable")
    up = [int(i) for i in order[:n] if s[i] < 0]
    down = [int(i) for i in order[::-1][:n] if s[i] > 0]
    return {"increase_bias": up, "decrease_bias": down}
