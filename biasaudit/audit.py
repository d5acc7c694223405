"""The audit use case (``biasaudit score``): resolve the bias measures a model supports, score every document,
write ``scores.jsonl``, ``summary.json`` and ``config.json`` (staged, then moved into place) and return the summary
(what the CLI prints and the HTML report reads). Also the WEAT statistics of several models (``weat``).

Every family difference is asked of the model's family (``biasaudit.models.base.family_of``).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError, CorpusError
from .influence import score_model
from .influence.estimators import EstimatorConfig
from .influence.result import ScoreResult, test_word_ids, top_documents, word_shares
from .io import claim_folder, write_json
from .measures.targets import query_target
from .measures.weat import seed_spread
from .models.base import family_of, resolve_device, versions
from .vocab import TOKEN
from .wordsets import BiasTest, resolve_tests, restrict_tests

SCORE_FILES = ("scores.jsonl", "summary.json", "config.json", "report.html")


@dataclass(frozen=True)
class RunResult:
    """What a run wrote: its folder and the summary it saved there (``summary.json`` or ``experiment.json``),
    read-only; ``result["tests"]`` reads a field of the summary."""
    folder: Path
    summary: Mapping[str, Any]

    def __getitem__(self, key: str):
        return self.summary[key]

    def to_dict(self) -> dict:
        return dict(self.summary)


# ------------------------------------------------------------------ measures
def bias_measures(model, tests, strict: bool = False, templates=None) -> tuple[list, list, dict, dict]:
    """(differentiable measures, the tests as kept, {test: dropped words}, {skipped test: reason}) of a model:
    WEAT effect sizes on word vectors, template association on language models. Missing words follow
    ``biasaudit.wordsets.restrict_tests``."""
    fam = family_of(model)
    words = {w for t in tests for w in t.words}
    kept, dropped, skipped = restrict_tests(list(tests), fam.known_words(model, words), strict,
                                            "the tokenizer's vocabulary" if fam.unit == "tokens" else "the vocabulary")
    kept_tests = [k for _, k in kept]
    return fam.bias_measures(model, kept_tests, templates), kept_tests, dropped, skipped


def weat_across_models(models: list, tests: list[BiasTest], strict: bool = False, templates=None,
                       **kwargs) -> tuple[list[dict], dict]:
    """WEAT results for every (test, model), each as a dict with the test's spread over the models (seeds), and
    the tests skipped because a set kept fewer than 2 words ({name: reason}).

    Missing words follow ``biasaudit.wordsets.restrict_tests`` (dropped and listed; ``strict``: one error naming
    them all). The list has one object per (test, model) in test order; ``seed_spread`` summarises the test's effect
    size over all models (``n_seeds`` = 1 for a single model). Language models give the template-association
    effect size (``templates``: None for the bundled set), in the same shape and sign."""
    fam = family_of(models[0])
    words = {w for t in tests for w in t.words}
    kept, dropped, skipped = restrict_tests(list(tests), fam.known_words(models[0], words), strict,
                                            "the tokenizer's vocabulary" if fam.unit == "tokens" else "the vocabulary")
    out = []
    for original, test in kept:
        rows = []
        for m in models:
            r = fam.weat(m, test, templates, **kwargs).to_dict()
            r["seed"] = getattr(getattr(m, "config", None), "seed", None)
            rows.append(r)
        spread = seed_spread([r["effect_size"] for r in rows])
        for r in rows:
            r["dropped_words"] = dropped.get(original.name, {})
            r["seed_spread"] = spread
        out.extend(rows)
    return out, skipped


# ------------------------------------------------------------------ outputs
def snippet(text: str, words: set[str], n_chars: int) -> str:
    """Up to ``n_chars`` of ``text``, starting a little before the first test word (marked with an ellipsis)."""
    if len(text) <= n_chars:
        return text
    first = next((m.start() for m in TOKEN.finditer(text) if m.group().lower() in words), 0)
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


def write_scores(result: ScoreResult, path, words, targets) -> None:
    """Write ``scores.jsonl`` atomically: one object per (document, measure) for documents with a non-zero score,
    fields doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted, test_words (the words of that test
    the document holds)."""
    import json

    from .io import atomic_open

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




def score_folder(corpus, kind: str, run_config: dict, out_dir=None, reports_dir: str | Path = "reports") -> Path:
    """``out_dir``, or the default ``reports/<corpus>-<model family>-<hash of the run config>``."""
    key = hashlib.sha256(json.dumps(run_config, sort_keys=True).encode()).hexdigest()[:8]
    return Path(out_dir) if out_dir else Path(reports_dir) / f"{corpus.name}-{kind}-{key}"


def run_score(model, corpus, tests, estimator: EstimatorConfig, out_dir=None, overwrite=False, strict_oov=False,
              query=None, top: int = 10, progress=None, reports_dir: str | Path = "reports", client=None,
              device: str = "cpu", templates=None, pairs=None) -> RunResult:
    """Score every document of ``corpus`` against the bias tests (or a word query; or, for LMs, paired
    sentences ``pairs`` = (name, [(more, less), ...])) and write the outputs (staged, then moved into place).

    Test words missing from the model are dropped and listed (``strict_oov``: an error); a test left with a set
    of fewer than 2 words is skipped with a note, and only a run with no test left fails."""
    fam = family_of(model)
    notes: list[str] = []
    targets, weats, roles = [], {}, {}
    if query is not None:
        if not fam.word_vectors:
            raise ConfigError(f"--query reads word vectors; --model {fam.name} takes --test or --pairs")
        word, toward, away = query
        targets.append(query_target(word.lower(), toward, away, model.vocab))
        roles[targets[-1].name] = {"target": [word.lower()], "attribute": list(toward) + list(away)}
    else:
        resolved = resolve_tests(tests) if (tests or pairs is None) else []
        measures, kept_tests, dropped, skipped = (bias_measures(model, resolved, strict_oov, templates) if resolved
                                                  else ([], [], {}, {}))
        for name, reason in skipped.items():
            notes.append(f"{name}: skipped, {reason}")
        missing = "words the tokenizer does not know" if fam.unit == "tokens" else "out-of-vocabulary words"
        for kept, m in zip(kept_tests, measures):
            gone = dropped.get(kept.name)
            if gone:
                notes.append(f"{kept.name}: dropped {missing} "
                             + "; ".join(f"{k}: {', '.join(v)}" for k, v in gone.items()))
            targets.append(m)
            roles[kept.name] = {"target": list(kept.target_x.words + kept.target_y.words),
                                "attribute": list(kept.attribute_a.words + kept.attribute_b.words),
                                "sets": {k: v for k, v in kept.to_dict().items() if k.startswith(("target", "attr"))}}
            weats[kept.name] = fam.weat(model, kept, templates, n_permutations=20_000, n_bootstrap=500).to_dict()
            weats[kept.name]["dropped_words"] = gone or {}
        if pairs is not None:
            if not hasattr(fam, "pair_measure"):
                raise ConfigError(f"--pairs measures a language model; --model {fam.name} does not take it")
            m = fam.pair_measure(model, pairs[0], pairs[1])
            targets.append(m)
            weats[m.name] = m.stats(model.net).to_dict()
            roles[m.name] = {"target": [], "attribute": []}
    stats = corpus.scan()
    run_config = {"model": fam.name, "model_config": model.config.to_dict() if model.config else model.meta,
                  "corpus": {"name": corpus.name, **stats.to_dict()}, "estimator": estimator.to_dict(),
                  "tests": [t.name for t in targets], "test_words": {t.name: list(t.words) for t in targets}}
    if any(t.kind in ("template", "pairs") for t in targets):
        run_config["templates"] = sorted({tpl for t in targets if t.kind == "template" for tpl in t.templates})
        run_config["pairs_sha256"] = {t.name: hashlib.sha256(json.dumps(t.pairs).encode()).hexdigest()
                                      for t in targets if t.kind == "pairs"}
    folder = score_folder(corpus, fam.name, run_config, out_dir, reports_dir)
    out = claim_folder(folder, "score", run_config, overwrite, known=SCORE_FILES)
    if not model.corpus.get("hash"):
        notes.append("the model was not trained by biasaudit: its training corpus cannot be checked, so the "
                     "scores assume it was trained on this corpus")
    elif stats.hash != model.corpus["hash"]:
        raise CorpusError(f"corpus {corpus.name!r} is not the one the model was trained on (hash differs)")

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
        shares, warning = word_shares(result, t.name, model.vocab) if result.word_contributions[t.name] else ([], None)
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
               "vocabulary": fam.vocabulary_summary(model), "tests": tests_out, "notes": notes,
               "timings": {k: round(v, 3) for k, v in result.timings.items()},
               "seeds": [model.config.seed] if model.config else [],
               "versions": versions("gensim", "numpy", "torch"),
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "out_dir": str(folder)}
    with out.stage() as tmp:
        write_scores(result, tmp / "scores.jsonl", i2k, targets)
        write_json(tmp / "summary.json", summary)
        write_json(tmp / "config.json", run_config)
    return RunResult(folder, MappingProxyType(summary))
