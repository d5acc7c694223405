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
from .pairs import PairSums, batch_pairs, encode_batches, merge_pairs
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
    upweighted: dict[str, np.ndarray] | None = None   # computed separately where the loss is not linear in
                                                      # the document (GloVe); else the negative of removal
    words: tuple[str, ...] | None = None              # what doc_words indexes when not the model's vocabulary (LM)

    def delta_bias_if_upweighted(self, name: str) -> np.ndarray:
        if self.upweighted is not None:
            return self.upweighted[name]
        return -self.delta_bias_if_removed[name]


@dataclass
class _Setup:
    """What each pass over documents needs (picklable: shipped to Dask workers without the vectors)."""
    vocab: object
    window: int
    weights_r: np.ndarray
    keep: np.ndarray
    rows: np.ndarray       # sorted test-word rows
    full: bool             # cg / lissa: all pairs of all documents; else only pairs with a test input word
    batch_size: int

    @property
    def test_mask(self) -> np.ndarray:
        m = np.zeros(len(self.vocab), dtype=bool)
        m[self.rows] = True
        return m


def _pass_1(corpus: Corpus, st: _Setup, keep_instances: bool, progress=None) -> dict:
    """One pass over ``corpus``: document ids, the test words each holds, the summed pair weights (dense over
    test rows x V for block / gradient-dot; unique (input, output) keys for cg / lissa) and, when asked, every
    test-word pair instance (key, weight, document) for scoring without a second pass."""
    V, R = len(st.vocab), len(st.rows)
    mask = st.test_mask
    row_pos = np.full(V, -1, dtype=np.int64)
    row_pos[st.rows] = np.arange(R)
    n_dense = None if st.full else np.zeros(R * V)
    sums = PairSums() if st.full else None
    doc_ids: list[str] = []
    inst_k, inst_x, inst_d, holds = [], [], [], []
    for batch in encode_batches(corpus, st.vocab, st.batch_size):
        off = len(doc_ids)
        doc_ids.extend(batch.ids)
        has = mask[batch.tokens]
        holds.append(np.unique((batch.doc[has] + off) * V + batch.tokens[has]))
        for part in batch.parts():
            if st.full:
                w, c, x, _ = batch_pairs(part, st.window, st.weights_r, st.keep)
                sums.add(w * V + c, x)
            else:
                w, c, x, d = batch_pairs(part, st.window, st.weights_r, st.keep, mask)
                k = row_pos[w] * V + c
                n_dense += np.bincount(k, weights=x, minlength=R * V)
                if keep_instances:
                    inst_k.append(k); inst_x.append(x); inst_d.append(d + off)
        if progress:
            progress("reading documents", len(doc_ids), None)
    held = np.concatenate(holds) if holds else np.zeros(0, np.int64)
    out = {"doc_ids": doc_ids, "held": held}
    if st.full:
        out["pairs"] = sums.result()
    else:
        out["n_dense"] = n_dense
        if keep_instances:
            out["instances"] = tuple(np.concatenate(a) if a else np.zeros(0, t) for a, t in
                                     ((inst_k, np.int64), (inst_x, np.float64), (inst_d, np.int64)))
    return out


def _score_instances(K, X, D, n_docs: int, st: _Setup, values: dict) -> tuple[dict, dict]:
    """Per-document sums of weight * (h + g) over test-word pair instances (dense keys row_pos * V + c)."""
    V = len(st.vocab)
    W = st.rows[K // V]
    scores, word_tot = {}, {}
    for name, (h_dense, g) in values.items():
        val = X * (h_dense[K] + g[W])
        scores[name] = np.bincount(D, weights=val, minlength=n_docs)
        word_tot[name] = np.bincount(W, weights=val, minlength=V)
    return scores, word_tot


def _pass_2(corpus: Corpus, st: _Setup, values: dict, keys: np.ndarray | None, progress=None,
            n_total: int | None = None) -> tuple[dict, dict]:
    """Second pass: score every document of ``corpus`` with the solved directions (``values``: per measure
    (h, g); h dense over test rows x V, or aligned with the sorted ``keys`` for cg / lissa)."""
    V = len(st.vocab)
    if not st.full:
        r = _pass_1(corpus, st, keep_instances=True)
        return _score_instances(*r["instances"], len(r["doc_ids"]), st, values)
    parts = {name: [] for name in values}
    word_tot = {name: np.zeros(V) for name in values}
    off = 0
    for batch in encode_batches(corpus, st.vocab, st.batch_size):
        per_doc = {name: np.zeros(len(batch.ids)) for name in values}
        for part in batch.parts():
            w, c, x, d = batch_pairs(part, st.window, st.weights_r, st.keep)
            q = w * V + c
            order = np.argsort(q, kind="stable")   # sorted queries: a cache-friendly search, ~10x faster
            pos = np.empty(len(q), dtype=np.int64)
            pos[order] = np.searchsorted(keys, q[order])
            for name, (h, g) in values.items():
                val = x * (h[pos] + g[w])
                per_doc[name] += np.bincount(d, weights=val, minlength=len(batch.ids))
                word_tot[name] += np.bincount(w, weights=val, minlength=V)
        for name in values:
            parts[name].append(per_doc[name])
        off += len(batch.ids)
        if progress:
            progress("scoring documents", off, n_total)
    return {n: np.concatenate(p) if p else np.zeros(0) for n, p in parts.items()}, word_tot


def score_documents(model: SkipGramModel, corpus: Corpus, targets: list[BiasTarget],
                    config: EstimatorConfig = EstimatorConfig(), progress=None, dtype=torch.float64,
                    device: str = "cpu", batch_size: int = 2000, client=None) -> ScoreResult:
    """Score every document of ``corpus`` (the one ``model`` was trained on) for every target.

    ``client``: a ``dask.distributed.Client``; each of the corpus's shards (its files) is then read and scored
    by a worker (two passes: statistics, then scores), and the solve runs here. Without it everything runs in
    this process (``block`` and ``gradient-dot`` in a single pass)."""
    from .pairs import keep_probabilities, window_weights

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    V = len(model.vocab)
    rows = np.unique(np.concatenate([t.rows for t in targets]))
    cfg = model.config
    st = _Setup(model.vocab, cfg.window, window_weights(cfg.window, cfg.shrink_windows),
                keep_probabilities(model.vocab.counts, cfg.sample), rows, config.name in ("cg", "lissa"),
                batch_size)
    shards = corpus.shards() if client is not None else [corpus]
    if client is not None:
        st_f = client.scatter(st, broadcast=True)
        firsts = client.gather(client.map(_pass_1, shards, st=st_f, keep_instances=False, pure=False))
    else:
        firsts = [_pass_1(corpus, st, keep_instances=not st.full, progress=progress)]
    doc_ids = [i for f in firsts for i in f["doc_ids"]]
    n_docs = len(doc_ids)
    offsets = np.cumsum([0] + [len(f["doc_ids"]) for f in firsts])
    lists: dict[int, list[int]] = {}
    for f, off in zip(firsts, offsets):
        for d, w in zip((f["held"] // V + off).tolist(), (f["held"] % V).tolist()):
            lists.setdefault(d, []).append(w)
    doc_words = {d: tuple(ws) for d, ws in lists.items()}
    timings["pass_1"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if st.full:
        keys, n = merge_pairs(np.concatenate([f["pairs"][0] for f in firsts]),
                         np.concatenate([f["pairs"][1] for f in firsts]))
        pairs = (keys // V, keys % V, n)
        objective = SkipGramObjective(model, dtype=dtype, device=device, noise_top=config.noise_top,
                                      noise_tail=config.noise_tail, seed=config.seed, pairs=pairs)
    else:
        n_dense = sum(f["n_dense"] for f in firsts)
        nz = np.flatnonzero(n_dense)
        objective = SkipGramObjective(model, dtype=dtype, device=device, pairs=(rows[nz // V], nz % V, n_dense[nz]))
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
        kw = {"progress": progress} if st.full else {}
        vU, vC, info = solver(objective, g, rows, config, blocks, mu, **kw)
        infos[tgt.name] = info
        biases[tgt.name] = tgt.value(objective.U)
        h, gw = objective.pair_values(vU, vC)
        if not st.full:
            h_dense = np.zeros(len(rows) * V)
            h_dense[nz] = h
            h = h_dense
        values[tgt.name] = (h, gw)
    timings["solve"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    if client is not None:
        vals_f = client.scatter(values, broadcast=True)
        keys_f = client.scatter(objective.keys if st.full else None, broadcast=True)
        seconds = client.gather(client.map(_pass_2, shards, st=st_f, values=vals_f, keys=keys_f, pure=False))
    elif st.full:
        seconds = [_pass_2(corpus, st, values, objective.keys, progress, n_docs)]
    else:
        seconds = [_score_instances(*firsts[0]["instances"], n_docs, st, values)]
    scores = {t.name: np.concatenate([sc[t.name] for sc, _ in seconds]) for t in targets}
    word_tot = {t.name: sum(wt[t.name] for _, wt in seconds) for t in targets}
    if any(len(v) != n_docs for v in scores.values()):
        raise CorpusError(f"corpus {corpus.name!r} changed between the two passes over it")
    timings["scoring"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    for t in targets:
        wt = word_tot[t.name]
        own = set(t.rows.tolist())
        contributions[t.name] = {model.vocab.index_to_key[i]: float(wt[i]) for i in rows if i in own}
        if st.full:
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


def test_word_ids(result: ScoreResult, target) -> set[int]:
    """The indices (into the vocabulary, or ``result.words`` for LMs) of the words ``target`` reads."""
    if result.words is not None:
        pos = {w: i for i, w in enumerate(result.words)}
        return {pos[w] for w in target.words if w in pos}
    return set(int(i) for i in target.rows)


def write_scores(result: ScoreResult, path, words, targets) -> None:
    """Write ``scores.jsonl`` atomically: one object per (document, measure) for documents with a non-zero score,
    fields doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted, test_words (the words of that test
    the document holds)."""
    import json

    from ..io import atomic_open

    with atomic_open(path) as f:
        for t in targets:
            s = result.delta_bias_if_removed[t.name]
            up = result.delta_bias_if_upweighted(t.name)
            own = test_word_ids(result, t)
            for i in np.flatnonzero(s):
                held = sorted(words[w] for w in result.doc_words.get(int(i), ()) if w in own)
                f.write(json.dumps({"doc_id": result.doc_ids[i], "test": t.name,
                                    "delta_bias_if_removed": float(s[i]), "delta_bias_if_upweighted": float(up[i]),
                                    "test_words": held}, ensure_ascii=False) + "\n")


def top_documents(result: ScoreResult, name: str, n: int) -> dict[str, list[int]]:
    """Indices of the n documents that most increase the measure (most negative delta_bias_if_removed) and the
    n that most decrease it."""
    s = result.delta_bias_if_removed[name]
    order = np.argsort(s, kind="stable")
    up = [int(i) for i in order[:n] if s[i] < 0]
    down = [int(i) for i in order[::-1][:n] if s[i] > 0]
    return {"increase_bias": up, "decrease_bias": down}
