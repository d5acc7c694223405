"""The ``score`` run: resolve the measures, score the documents, write scores.jsonl, summary.json and config.json
into the output folder, and return the summary (what the CLI prints and the HTML report reads).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, CorpusError
from ..io import write_json
from ..metrics import weat
from ..wordsets import resolve_tests
from .estimators import EstimatorConfig
from .scorer import test_word_ids, top_documents, word_shares, write_scores
from .targets import query_target


def _versions() -> dict:
    from ..models.skipgram import _versions as v
    return v()


def snippet(text: str, words: set[str], n_chars: int) -> str:
    """Up to ``n_chars`` of ``text``, starting a little before the first test word (marked with an ellipsis)."""
    import re
    if len(text) <= n_chars:
        return text
    first = next((m.start() for m in re.finditer(r"[^\W_]+", text) if m.group().lower() in words), 0)
    start = max(0, min(first - n_chars // 4, len(text) - n_chars))
    return ("…" if start else "") + text[start:start + n_chars] + ("…" if start + n_chars < len(text) else "")


TABLE_N = 100   # documents in the report's sortable table per test (half from each end)


def _histogram(s: np.ndarray, bins: int = 41) -> dict:
    """Counts of the non-zero scores in symmetric bins (the report draws them on a log scale: heavy tails)."""
    nz = s[s != 0]
    lim = float(np.abs(nz).max()) if len(nz) else 1.0
    counts, edges = np.histogram(nz, bins=bins, range=(-lim, lim))
    return {"edges": edges.tolist(), "counts": counts.tolist(), "n_zero": int(len(s) - len(nz)),
            "quantiles": {q: float(np.quantile(nz, float(q))) for q in ("0.001", "0.01", "0.5", "0.99", "0.999")}
            if len(nz) else {}}


SCORE_FILES = ("scores.jsonl", "summary.json", "config.json", "report.html")


def score_folder(corpus, kind: str, run_config: dict, out_dir=None, reports_dir: str | Path = "reports") -> Path:
    """``out_dir``, or the default ``reports/<corpus>-<model family>-<hash of the run config>``."""
    key = hashlib.sha256(json.dumps(run_config, sort_keys=True).encode()).hexdigest()[:8]
    return Path(out_dir) if out_dir else Path(reports_dir) / f"{corpus.name}-{kind}-{key}"


def run_score(model, corpus, tests, estimator: EstimatorConfig, out_dir=None, overwrite=False, strict_oov=False,
              query=None, top: int = 10, progress=None, reports_dir: str | Path = "reports", client=None,
              device: str = "cpu", templates=None, pairs=None) -> dict:
    """Score every document of ``corpus`` against the bias tests (or a word query; or, for LMs, paired
    sentences ``pairs`` = (name, [(more, less), ...])) and write the outputs (staged, then moved into place).

    Test words missing from the model are dropped and listed (``strict_oov``: an error); a test left with a set
    of fewer than 2 words is skipped with a note, and only a run with no test left fails."""
    from ..io import claim_folder
    from ..models.lm import LMModel
    from ..models.registry import bias_measures, model_name

    is_lm = isinstance(model, LMModel)
    notes: list[str] = []
    targets, weats, roles = [], {}, {}
    if query is not None:
        if is_lm:
            raise ConfigError("--query reads word vectors; language models take --test or --pairs")
        word, toward, away = query
        targets.append(query_target(word.lower(), toward, away, model.vocab))
        roles[targets[-1].name] = {"target": [word.lower()], "attribute": list(toward) + list(away)}
    else:
        resolved = resolve_tests(tests) if (tests or pairs is None) else []
        measures, kept_tests, dropped, skipped = (bias_measures(model, resolved, strict_oov, templates) if resolved
                                                  else ([], [], {}, {}))
        for name, reason in skipped.items():
            notes.append(f"{name}: skipped, {reason}")
        for kept, m in zip(kept_tests, measures):
            gone = dropped.get(kept.name)
            if gone:
                notes.append(f"{kept.name}: dropped {'words the tokenizer does not know' if is_lm else 'out-of-vocabulary words'} "
                             + "; ".join(f"{k}: {', '.join(v)}" for k, v in gone.items()))
            targets.append(m)
            roles[kept.name] = {"target": list(kept.target_x.words + kept.target_y.words),
                                "attribute": list(kept.attribute_a.words + kept.attribute_b.words),
                                "sets": {k: v for k, v in kept.to_dict().items() if k.startswith(("target", "attr"))}}
            weats[kept.name] = (m.stats(model.net) if is_lm else
                                weat(model, kept, n_permutations=20_000, n_bootstrap=500).to_dict())
            weats[kept.name]["dropped_words"] = gone or {}
        if pairs is not None:
            if not is_lm:
                raise ConfigError("--pairs measures a language model; use it with --model lm")
            from ..lm_metrics import pair_measure
            m = pair_measure(pairs[0], pairs[1], model)
            targets.append(m)
            weats[m.name] = m.stats(model.net)
            roles[m.name] = {"target": [], "attribute": []}
    kind = model_name(model.config)
    stats = corpus.scan()
    run_config = {"model": kind, "model_config": model.config.to_dict() if model.config else model.meta,
                  "corpus": {"name": corpus.name, **stats.to_dict()}, "estimator": estimator.to_dict(),
                  "tests": [t.name for t in targets],
                  "test_words": {t.name: list(t.words) if is_lm else [model.vocab.index_to_key[i] for i in t.rows]
                                 for t in targets}}
    if is_lm:
        run_config["templates"] = sorted({tpl for t in targets if t.kind == "template" for tpl in t.templates})
        run_config["pairs_sha256"] = {t.name: hashlib.sha256(json.dumps(t.pairs).encode()).hexdigest()
                                      for t in targets if t.kind == "pairs"}
    folder = score_folder(corpus, kind, run_config, out_dir, reports_dir)
    out = claim_folder(folder, "score", run_config, overwrite, known=SCORE_FILES)
    if is_lm and not model.trained_here:
        notes.append("the checkpoint was not trained by biasaudit: its training corpus cannot be checked, so the "
                     "scores assume it was trained on this corpus")
    elif stats.hash != model.corpus.get("hash"):
        raise CorpusError(f"corpus {corpus.name!r} is not the one the model was trained on (hash differs)")

    from ..models.registry import score_model
    from ..models.torch_skipgram import resolve_device
    result = score_model(model, corpus, targets, estimator, progress=progress, client=client,
                         device=str(resolve_device(device)))
    # texts for the documents shown: one read pass, no tokenization
    shown, table = {}, {}
    for t in targets:
        shown[t.name] = top_documents(result, t.name, top)
        table[t.name] = top_documents(result, t.name, max(top, TABLE_N // 2))
    i2k = result.words if result.words is not None else model.vocab.index_to_key
    need = {result.doc_ids[i] for d in table.values() for idx in d.values() for i in idx}
    texts = {doc.id: doc.text for doc in corpus if doc.id in need} if need else {}

    tests_out = []
    for t in targets:
        s = result.delta_bias_if_removed[t.name]
        up = result.delta_bias_if_upweighted(t.name)
        own = test_word_ids(result, t)
        shares, warning = ([], None) if is_lm else word_shares(result, t.name, model.vocab)
        if not np.any(s):
            raise CorpusError(f"{t.name}: no document contains a test word in a training pair; nothing to score")

        def doc(i, n_chars):
            words = sorted(i2k[w] for w in result.doc_words.get(i, ()) if w in own)
            return {"doc_id": result.doc_ids[i], "delta_bias_if_removed": float(s[i]),
                    "delta_bias_if_upweighted": float(up[i]), "test_words": words,
                    "snippet": snippet(texts.get(result.doc_ids[i], ""), set(words), n_chars)}
        tops = {direction: [doc(i, 300) for i in idx] for direction, idx in shown[t.name].items()}
        rows = sorted({i for idx in table[t.name].values() for i in idx}, key=lambda i: s[i])
        tests_out.append({"name": t.name, "kind": t.kind, "description": t.description,
                          "bias_value": result.bias_value[t.name], "weat": weats.get(t.name),
                          "sum_delta_if_removed": float(s.sum()), "n_documents_scored": int(np.count_nonzero(s)),
                          "word_shares": shares, "warning": warning, "solver": result.solver_info[t.name],
                          "roles": roles.get(t.name, {}), "top": tops, "table": [doc(i, 600) for i in rows],
                          "histogram": _histogram(s)})
    summary = {"sign_convention": "delta_bias_if_removed = grad B^T H^-1 grad L_d: predicted change of B if the "
                                  "document is removed and the model retrained; negative = the document drives the "
                                  "bias up. delta_bias_if_upweighted: predicted change with one more copy of the document "
                                  "(-delta_bias_if_removed for skip-gram and LMs, whose losses are linear in documents; "
                                  "computed exactly from the changed counts for GloVe).",
               "config": run_config, "n_documents": len(result.doc_ids),
               "vocabulary": ({"size": len(model.encoder), "tokens_in_vocabulary": model.meta.get("n_tokens")} if is_lm else
                              {"size": len(model.vocab), "tokens_in_vocabulary": int(model.vocab.counts.sum())}),
               "tests": tests_out, "notes": notes,
               "timings": {k: round(v, 3) for k, v in result.timings.items()},
               "seeds": [model.config.seed] if model.config else [], "versions": _versions(),
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "out_dir": str(folder)}
    with out.stage() as tmp:
        write_scores(result, tmp / "scores.jsonl", i2k, targets)
        write_json(tmp / "summary.json", summary)
        write_json(tmp / "config.json", run_config)
    return summary
