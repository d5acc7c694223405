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
from typing import Any, Container, Mapping

import numpy as np

from .errors import ConfigError, CorpusError
from .influence import rank, score_model
from .influence.estimators import EstimatorConfig
from .influence.result import RARE_COUNT, ScoreResult, test_word_ids, top_documents, word_shares
from .influence.stability import N_RESAMPLES, stability
from .io import claim_folder, write_json
from .measures.registry import is_default
from .measures.targets import query_target
from .measures.weat import N_BOOTSTRAP, N_PERMUTATIONS, seed_spread
from .models.base import family_of, resolve_device, versions
from .vocab import TOKEN
from .wordsets import DEFAULT_MEASURE
from .wordsets import BiasTest, restrict_tests

SCORE_FILES = ("scores.jsonl", "summary.json", "config.json", "report.html")


@dataclass(frozen=True)
class RunResult:
    """What a run wrote: its folder and the summary it saved there (``summary.json`` or ``experiment.json``),
    read-only; ``result["tests"]`` reads a field of the summary."""
    folder: Path
    summary: Mapping[str, Any]

    def __getitem__(self, key: str):
        return self.summary[key]

    def get(self, key: str, default=None):
        return self.summary.get(key, default)

    def to_dict(self) -> dict:
        return dict(self.summary)


# ------------------------------------------------------------------ measures
def measurable_words(model, words, min_word_count: int = 1, corpus=None) -> tuple[set[str], dict[str, int]]:
    """The words the model can measure (in its vocabulary, or known to its tokenizer) and, with
    ``min_word_count`` > 1, seen at least that often in training; and the counts of the words left out for
    rarity."""
    fam = family_of(model)
    known = fam.known_words(model, words)
    rare: dict[str, int] = {}
    if min_word_count > 1:
        vocab = getattr(model, "vocab", None)
        if vocab is not None:
            counts = {w: vocab.count(w) for w in known}
        elif corpus is not None:
            from .vocab import word_counts
            counts = word_counts(corpus, known)
        else:
            raise ConfigError("min_word_count needs the training corpus's counts, which this model does not hold"
                              ).with_cli("--min-word-count needs the training corpus's counts, which this model "
                                         "does not hold")
        rare = {w: c for w, c in counts.items() if c < min_word_count}
        known = known - set(rare)
    return known, rare


def check_target_measure(fam, measure: str) -> None:
    """A ConfigError, before any training, when ``measure`` cannot rank documents for this model family (not a
    name, unknown, not differentiable, or a word-vector measure asked of a language model)."""
    if not isinstance(measure, str):
        from .measures.registry import MEASURES
        rankable = ", ".join(n for n, m in MEASURES.items() if m.differentiable)
        raise ConfigError(f"measure must be a measure's name ({rankable}), got {measure!r}")
    read_tests_with(fam, [], measure)


def check_carried_measures(tests) -> None:
    """The measure a test file carries ("measure": "ripa") is a known one, whatever reads the test (``weat`` and
    ``measure`` read every test with their own measures; ``score``, ``experiment`` and ``debias`` rank by the
    carried one): a misspelt name is one error everywhere, not ignored by some commands."""
    from .measures.registry import get_measure

    for t in tests:
        try:
            get_measure(t.measure)
        except ConfigError as e:
            raise ConfigError(f"test {t.name!r}: {e}") from e


def read_tests_with(fam, tests: list, measure: str = "weat") -> list:
    """``tests`` read with ``measure`` (``measures.embedding.read_with``) to rank documents by: the measure given,
    or one a test carries, must be known and differentiable (ECT and RNSB are refused before any training); a
    measure other than WEAT reads word vectors, so other families are refused in one line."""
    from .measures.embedding import read_with
    from .measures.registry import check_request, is_default

    if is_default(measure):
        # a test file may carry its own measure ("measure": "ripa"): checked and read here as --measure would be
        # (its name known, its pairing the measure's, a language model refused), not taken on trust
        check_carried_measures(tests)
        for t in tests:
            check_request(t.measure, fam, target=True, what=f"test {t.name!r} carries measure {t.measure}")
        return [read_with(t, t.measure) for t in tests]
    check_request(measure, fam, target=True, what=f"--measure {measure}")
    return [read_with(t, measure) for t in tests]


def check_run_tests(fam, specs, pair_sets=None, measure: str = "weat") -> list[BiasTest]:
    """The tests a score run reads (``specs``: names, files, BiasTests; None: the default tests, unless only
    ``pair_sets`` are given), read with ``measure`` and checked before any training (``read_tests_with``); every
    test and pair set under its own name (one line naming both sources: two measures of one name would share
    their rows in scores.jsonl, one value replacing the other)."""
    from .wordsets import resolve_tests_from, unique_names

    check_target_measure(fam, measure)
    named = resolve_tests_from(specs) if (specs or pair_sets is None) else []
    unique_names([(t.name, source) for t, source in named]
                 + [(ps.name, f"pairs {ps.source}" + (f" ({ps.name})" if ps.name != ps.source else ""))
                    for ps in pair_sets or []])
    return read_tests_with(fam, [t for t, _ in named], measure)


def bias_measures(model, tests, strict: bool = False, templates=None, min_word_count: int = 1,
                  corpus=None) -> tuple[list, list, dict, dict]:
    """(differentiable measures, the tests as kept, {test: dropped words}, {skipped test: reason}) of a model:
    WEAT effect sizes on word vectors, template association on language models. Missing words (and, with
    ``min_word_count``, rare ones) follow ``biasaudit.wordsets.restrict_tests``."""
    fam = family_of(model)
    words = {w for t in tests for w in t.words}
    known, _ = measurable_words(model, words, min_word_count, corpus)
    kept, dropped, skipped = restrict_tests(list(tests), known, strict,
                                            "the tokenizer's vocabulary" if fam.unit == "tokens" else "the vocabulary")
    kept_tests = [k for _, k in kept]
    return fam.bias_measures(model, kept_tests, templates), kept_tests, dropped, skipped


def weat_across_models(models: list, tests: list[BiasTest], strict: bool = False, templates=None,
                       min_word_count: int = 1, **kwargs) -> tuple[list[dict], dict]:
    """WEAT results for every (test, model), each as a dict with the test's spread over the models (seeds), and
    the tests skipped because a set kept fewer than 2 words ({name: reason}).

    Missing words follow ``biasaudit.wordsets.restrict_tests`` (dropped and listed; ``strict``: one error naming
    them all). The list has one object per (test, model) in test order; ``seed_spread`` summarises the test's effect
    size over all models (``n_seeds`` = 1 for a single model). Language models give the template-association
    effect size (``templates``: None for the bundled set), in the same shape and sign."""
    fam = family_of(models[0])
    words = {w for t in tests for w in t.words}
    known, _ = measurable_words(models[0], words, min_word_count)
    check_carried_measures(tests)                         # read as WEAT here, but a misspelt name is refused
    tests = [t.with_measure("weat") for t in tests]      # WEAT, whatever measure a test file carries
    kept, dropped, skipped = restrict_tests(tests, known, strict,
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


def measures_across_models(models: list, tests: list[BiasTest], measures=None, strict: bool = False,
                           min_word_count: int = 1, **kwargs) -> tuple[list[dict], dict, list[dict]]:
    """Every word-vector bias measure (WEAT, RIPA, Direct Bias, RND, MAC, ECT, RNSB; ``measures``: a subset) of
    every test on each model (several: training seeds), side by side with their uncertainty and verdicts
    (``biasaudit.measures.suite.measure_models``). Missing and rare words follow ``weat_across_models``'s rule.
    Returns (rows, {skipped test: reason}, [{test, measure, reason}] for a measure a test cannot feed)."""
    from .measures.suite import measure_models

    fam = family_of(models[0])
    if not fam.word_vectors:
        raise ConfigError(f"the word-vector measures need word vectors; {fam.label} models have none (their "
                          "measures: `biasaudit weat` for template association)")
    check_carried_measures(tests)
    words = {w for t in tests for w in t.words}
    known, _ = measurable_words(models[0], words, min_word_count)
    seeds = [getattr(getattr(m, "config", None), "seed", None) for m in models]
    return measure_models(models, list(tests), measures, strict, known=known, model_seeds=seeds, **kwargs)


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


def write_scores(result: ScoreResult, path, words, targets, stab: dict | None = None,
                 agreement: dict | None = None) -> None:
    """Write ``scores.jsonl`` atomically: one object per (document, measure) for documents with a non-zero score,
    fields doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted, test_words (the words of that test
    the document holds), where the ranking's stability was computed, stability, and for an ensemble,
    sign_agreement (the share of seeds whose score has the mean's sign)."""
    import json

    from .io import atomic_open

    with atomic_open(path) as f:
        for t in targets:
            s = result.delta_bias_if_removed[t.name]
            up = result.delta_bias_if_upweighted(t.name)
            own = test_word_ids(result, t)
            st = (stab or {}).get(t.name, {}).get("stability")
            ag = (agreement or {}).get(t.name)
            for i in np.flatnonzero(s):
                held = sorted(words[w] for w in result.doc_words.get(int(i), ()) if w in own)
                row = {"doc_id": result.doc_ids[i], "test": t.name, "delta_bias_if_removed": float(s[i]),
                       "delta_bias_if_upweighted": float(up[i]), "test_words": held}
                if st is not None:
                    row["stability"] = round(float(st[i]), 4)
                if ag is not None:
                    row["sign_agreement"] = round(float(ag[i]), 4)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")




def score_folder(corpus, kind: str, run_config: dict, out_dir=None, reports_dir: str | Path = "reports") -> Path:
    """``out_dir``, or the default ``reports/<corpus>-<model family>-<hash of the run config>``."""
    key = hashlib.sha256(json.dumps(run_config, sort_keys=True).encode()).hexdigest()[:8]
    return Path(out_dir) if out_dir else Path(reports_dir) / f"{corpus.name}-{kind}-{key}"


def _texts_and_counts(corpus, ids: set, words: list, progress=None) -> tuple[dict, dict]:
    """({id: text} of the documents ``ids``, {word: count} of ``words``) in one pass over ``corpus``."""
    from collections import Counter

    texts: dict = {}
    counts: Counter = Counter()
    want, tok = set(words), corpus.tokenizer
    if not ids and not want:
        return texts, {}
    total, n = corpus.n_documents_known, 0
    for n, doc in enumerate(corpus, 1):
        if doc.id in ids:
            texts[doc.id] = doc.text
        if want:
            counts.update(t for t in tok(doc) if t in want)
        if progress and n % 5000 == 0:
            progress("reading the shown documents", n, total)
    if progress:
        progress("reading the shown documents", n, n)
    return texts, {w: int(counts.get(w, 0)) for w in words}


# the one wording of the dropped-word note (score, weat, experiment)
DROPPED_WORDS = "words not in the model's vocabulary (absent or under min_count)"
DROPPED_TOKENS = "words the tokenizer does not know"
PARTNER_DROPPED = "in the model, dropped with its X-Y pair's other word (the measure pairs X and Y word by word)"


# ------------------------------------------------------------------ evidence
LOST_FRACTION = 0.25       # a set that lost more than this share of its words gets a warning
REMOVAL_FRACTIONS = (("0.1%", 0.001), ("1%", 0.01))


def _magnitude(d: float) -> str:
    a = abs(d)
    return "negligible" if a < 0.2 else "small" if a < 0.5 else "medium" if a < 0.8 else "strong"


def evidence(original: BiasTest | None, kept: BiasTest | None, stats: dict | None, dropped: dict, counts: dict,
             rare: dict, spread: dict | None, measurable: Container[str] = ()) -> dict:
    """What the number rests on, and whether it is distinguishable from word-sampling noise: the effect size with
    p and CI, the seed spread, the words used and dropped (with their corpus counts), warnings and a one-sentence
    verdict."""
    warnings, sets = [], []
    if original is not None and kept is not None:
        from .wordsets import SET_FIELDS
        for f, so, sk in zip(SET_FIELDS, original.sets, kept.sets):
            gone = [w for w in so.words if w not in sk.words]
            lost = len(gone) / len(so.words)
            sets.append({"field": f, "name": so.name,
                         "used": [{"word": w, "count": counts.get(w)} for w in sk.words],
                         "dropped": [{"word": w, "count": counts.get(w, rare.get(w)),
                                      "reason": "seen fewer times than --min-word-count" if w in rare
                                      else PARTNER_DROPPED if w in measurable
                                      else "not in the model's vocabulary"} for w in gone],
                         "lost_fraction": lost})
            if lost > LOST_FRACTION:
                warnings.append(f"{so.name} ({f}) lost {len(gone)} of its {len(so.words)} words "
                                f"({', '.join(gone[:8])}{' ...' if len(gone) > 8 else ''}): the test runs on "
                                f"{len(sk.words)} of them")
    if stats is None:
        return {"sets": sets, "warnings": warnings, "significant": None,
                "verdict": "a word query has no significance test: read B against other words' values"}
    d, p = stats["effect_size"], stats["p_value"]
    lo, hi = stats.get("ci_low"), stats.get("ci_high")
    ci_has_zero = lo is not None and hi is not None and lo <= 0 <= hi
    # --measure: that measure's verdict (some have no p); the LM measures keep WEAT's wording
    from .measures.registry import MEASURES
    if stats.get("metric") in MEASURES:        # (WEAT's stats carry no metric: its wording is the one below)
        return _measure_evidence(stats, original, kept, spread, sets, warnings, ci_has_zero)
    significant = p < 0.05 and not ci_has_zero
    ptxt = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    citxt = "" if lo is None else f", 95% CI [{lo:+.2f}, {hi:+.2f}]"
    pairs = stats.get("metric") == "paired sentences"     # a log-likelihood gap over sentence pairs, not words
    if not significant:
        warnings.insert(0, "not significant: these documents move the number; the number itself is not "
                           f"distinguishable from {'pair' if pairs else 'word'}-sampling noise ({ptxt}{citxt}"
                           f"{' includes 0' if ci_has_zero else ''})")
    seed_noise = bool(spread and spread.get("n_seeds", 1) > 1 and (spread["min"] < 0 < spread["max"] or
                                                                   spread["sd"] > abs(spread["mean"]) / 2))
    if seed_noise:
        warnings.insert(0, f"within seed noise: the effect size varies across training seeds (mean "
                           f"{spread['mean']:+.2f}, sd {spread['sd']:.2f}, range [{spread['min']:+.2f}, "
                           f"{spread['max']:+.2f}]); these documents move one seed's number, not a property of "
                           "the corpus")
    lead = f"gap = {d:+.2f} nats ({ptxt}{citxt})" if pairs else f"d = {d:+.2f} ({ptxt}{citxt})"
    if seed_noise:
        verdict = (f"{lead}: within training-seed noise (over {spread['n_seeds']} seeds sd {spread['sd']:.2f}, "
                   f"range [{spread['min']:+.2f}, {spread['max']:+.2f}])")
    elif significant and kept is not None:
        x, y, a, b = (s.name for s in kept.sets)
        if d < 0:
            x, y = y, x
        reduced = any(st["lost_fraction"] > LOST_FRACTION for st in sets)
        verdict = (f"{lead}: a {_magnitude(d)} association of {x} with {a} and {y} with {b}, on "
                   f"{'reduced ' if reduced else ''}word lists of {', '.join(str(len(s.words)) for s in kept.sets)} "
                   "words")
    elif significant:
        verdict = (f"{lead}: the model prefers the more stereotyping sentence of these pairs" if pairs and d > 0
                   else f"{lead}: the model prefers the less stereotyping sentence of these pairs" if pairs
                   else f"{lead}: distinguishable from no difference")
    else:
        verdict = f"{lead}: not distinguishable from no {'preference' if pairs else 'association'} on these " \
                  f"{'pairs' if pairs else 'words'}"
    return {"effect_size": d, "p_value": p, "exact": stats.get("exact"), "ci_low": lo, "ci_high": hi,
            "seed_spread": spread if spread and spread.get("n_seeds", 1) > 1 else None, "sets": sets,
            "warnings": warnings, "significant": significant, "seed_noise": seed_noise, "verdict": verdict + "."}


def _measure_evidence(stats: dict, original, kept, spread, sets: list, warnings: list, ci_has_zero: bool) -> dict:
    """``evidence`` for a test read with a measure other than WEAT: ``measures.suite.verdict``'s sentence and
    significance (None for the measures with no permutation test: said in a warning)."""
    from .measures.suite import verdict

    d, p, lo, hi = stats["effect_size"], stats["p_value"], stats["ci_low"], stats["ci_high"]
    v = verdict(stats["metric"], d, p, lo, hi, kept, original, spread)
    ptxt = None if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")
    if v["significant"] is False:
        warnings.insert(0, "not significant: these documents move the number; the number itself is not "
                           f"distinguishable from word-sampling noise ({ptxt}, 95% CI [{lo:+.2f}, {hi:+.2f}]"
                           f"{' includes 0' if ci_has_zero else ''})")
    elif v["significant"] is None:
        warnings.insert(0, f"{stats.get('label', stats['metric'])} has no significance test: read its value "
                           f"against its 95% CI [{lo:+.2f}, {hi:+.2f}] and the spread over seeds (--seeds 3)")
    if v["seed_noise"]:
        warnings.insert(0, f"within seed noise: the measure varies across training seeds (mean "
                           f"{spread['mean']:+.2f}, sd {spread['sd']:.2f}); these documents move one seed's "
                           "number, not a property of the corpus")
    return {"effect_size": d, "p_value": p, "exact": stats.get("exact"), "ci_low": lo, "ci_high": hi,
            "seed_spread": spread if spread and spread.get("n_seeds", 1) > 1 else None, "sets": sets,
            "warnings": warnings, "significant": v["significant"], "seed_noise": v["seed_noise"],
            "verdict": v["verdict"], "metric": stats["metric"], "label": stats.get("label")}


def check_command(corpus, tests, model, estimator: EstimatorConfig, measure: str = "weat") -> str | None:
    """The ``biasaudit experiment`` command that checks this ranking by retraining (same corpus, model settings
    and tests; the top 0.1% and 1% removed and upweighted against random removal over 3 seeds); None when the
    model was given in memory (no command line can name it)."""
    import shlex
    from dataclasses import fields as dc_fields

    fam = family_of(model)
    origin = (getattr(model, "meta", None) or {}).get("origin")
    if origin and not origin.get("files"):
        return None       # a model given in memory has no command line: biasaudit.experiment checks it
    if not origin and getattr(model, "config", None) is None:
        # a checkpoint (--checkpoint, from_hf) has no training config: an experiment would rank with another
        # model (a fresh LM, or the checkpoint fine-tuned), so no command checks this one
        return None
    parts = ["biasaudit", "experiment"]
    if corpus.source and corpus.source != "gcide":
        parts += ["--corpus", corpus.source]
    if corpus.fields != ("id", "text"):
        parts += ["--id-field", corpus.fields[0], "--text-field", corpus.fields[1]]
    if corpus.tokenizer.spec != "biasaudit":
        parts += ["--tokenizer", corpus.tokenizer.spec]
    if fam.name != "skipgram":
        parts += ["--model", fam.name]
    if origin:          # a user's model: the experiment reads it (and its settings) again
        parts += ["--embeddings", origin["files"][0]["path"]]
        if len(origin["files"]) > 1:
            parts += ["--vocab", origin["files"][1]["path"]]
    if origin:
        for k, v in origin.get("given", {}).items():
            parts += [f"--{k.replace('_', '-')}", str(v)]
    elif model.config is not None and fam.config_type is not None:
        default = fam.config_type()
        extra = []
        for f in dc_fields(model.config):
            v = getattr(model.config, f.name)
            if f.name == "seed" or v == getattr(default, f.name):
                continue
            if f.name in fam.options:
                parts += [f"--{f.name.replace('_', '-')}", str(v)]
            elif f.name == "finetune":
                parts += ["--checkpoint", str(v), "--finetune"]
            elif getattr(fam, "takes_extra", False):
                extra.append(f"{f.name}={v}")
        if extra:
            parts += ["--lm-config", ",".join(extra)]
    for t in tests or []:
        parts += ["--test", str(t) if isinstance(t, (str, Path)) else t.name]   # a BiasTest: its name
    if estimator.name != fam.default_estimator or estimator.to_dict()["damping"] != EstimatorConfig().damping:
        parts += ["--estimator", estimator.label]
    if measure != DEFAULT_MEASURE:
        parts += ["--measure", measure]
    parts += ["--k", "0.1%,1%", "--seeds", "3", "--conditions", "baseline,remove-top,upweight-top,remove-random"]
    return shlex.join(parts)


# ------------------------------------------------------------------ the score run
def seed_measures(fam, model, targets, originals, templates=None, pairs=None) -> list:
    """A seed model's own measures for ``targets``: the same tests (the words ``originals`` kept) and pair sets."""
    out = fam.bias_measures(model, [originals[t.name][1] for t in targets if t.name in originals], templates)
    if pairs is not None:
        from .measures.lm import resolve_pairs
        out += [fam.pair_measure(model, ps.name, ps.pairs, ps.ids, ps.source) for ps in resolve_pairs(pairs)]
    return out


def run_score(model, corpus, tests, estimator: EstimatorConfig, out_dir=None, overwrite=False, strict_oov=False,
              query=None, top: int = 10, progress=None, reports_dir: str | Path = "reports", client=None,
              device: str = "cpu", templates=None, pairs=None, min_word_count: int = 1, seed_models=(),
              n_resamples: int = N_RESAMPLES, ensemble: int = 1, measure: str = "weat") -> RunResult:
    """Score every document of ``corpus`` against the bias tests (or a word query; or, for LMs, paired
    sentences ``pairs`` = (name, [(more, less), ...])) and write the outputs (staged, then moved into place).

    Test words missing from the model (and, with ``min_word_count``, rarer words) are dropped and listed
    (``strict_oov``: an error); a test left with a set of fewer than 2 words is skipped with a note, and only a run
    with no test left fails. ``seed_models``: the same model trained with other seeds, for the spread of the
    effect size over seeds and the stability of the ranking over seeds as well as words. ``ensemble``: rank by the
    mean score of the model and the first ``ensemble - 1`` seed models (``biasaudit.influence.ensemble``).
    ``measure``: the measure the tests are read with (word vectors: "weat" or a differentiable one of
    ``biasaudit.measures.embedding``); its statistics stand where WEAT's do."""
    fam = family_of(model)
    if ensemble > 1 and len(seed_models) < ensemble - 1:
        raise ConfigError(f"ensemble={ensemble} needs {ensemble} trained seeds (the model and seed_models), got "
                          f"{len(seed_models) + 1}").with_cli(
            f"--ensemble {ensemble} needs {ensemble} trained seeds, got {len(seed_models) + 1}")
    if ensemble > 1 and query is not None:
        raise ConfigError("ensemble ranks by bias tests or pairs; a query takes one model").with_cli(
            "--ensemble ranks by bias tests or --pairs; --query takes one model")
    notes: list[str] = []
    targets, weats, roles, originals, drops = [], {}, {}, {}, {}
    resolved = []
    rare: dict[str, int] = {}
    known: set[str] = set()
    if query is not None:
        if not fam.word_vectors:
            raise ConfigError(f"query reads word vectors; a {fam.label} model takes tests or pairs").with_cli(
                f"--query reads word vectors; --model {fam.name} takes --test or --pairs")
        if not is_default(measure):
            raise ConfigError(f"measure={measure!r} reads bias tests; a query is ranked by its own word association")
        word, toward, away = query
        targets.append(query_target(word.lower(), toward, away, model.vocab))
        roles[targets[-1].name] = {"target": [word.lower()], "attribute": list(toward) + list(away)}
    else:
        from .measures.lm import resolve_pairs
        resolved = check_run_tests(fam, tests, resolve_pairs(pairs) if pairs is not None else None, measure)
        if resolved:
            known, rare = measurable_words(model, {w for t in resolved for w in t.words}, min_word_count, corpus)
        measures, kept_tests, dropped, skipped = (bias_measures(model, resolved, strict_oov, templates,
                                                                min_word_count, corpus)
                                                  if resolved else ([], [], {}, {}))
        for name, reason in skipped.items():
            notes.append(f"{name}: skipped, {reason}")
        missing = DROPPED_TOKENS if fam.unit == "tokens" else DROPPED_WORDS
        by_name = {t.name: t for t in resolved}
        for kept, m in zip(kept_tests, measures):
            gone = dropped.get(kept.name)
            if gone:
                oov = {k: [w for w in v if w not in rare and w not in known] for k, v in gone.items()}
                few = {k: [w for w in v if w in rare] for k, v in gone.items()}
                partner = {k: [w for w in v if w in known] for k, v in gone.items()}   # paired measures
                for label, part in ((missing, oov), (f"words seen fewer than {min_word_count} times", few),
                                    ("words in the model whose X-Y pair lost its other word", partner)):
                    part = {k: v for k, v in part.items() if v}
                    if part:
                        notes.append(f"{kept.name}: dropped {label} "
                                     + "; ".join(f"{k}: {', '.join(v)}" for k, v in part.items()))
            targets.append(m)
            originals[kept.name] = (by_name[kept.name], kept)
            drops[kept.name] = gone or {}
            roles[kept.name] = {"target": list(kept.target_x.words + kept.target_y.words),
                                "attribute": list(kept.attribute_a.words + kept.attribute_b.words),
                                "sets": {k: v for k, v in kept.to_dict().items() if k.startswith(("target", "attr"))}}
            if progress:
                progress("measuring tests", len(weats), len(kept_tests))
            # the same permutations and bootstrap (and seed) as `biasaudit weat`: the same p and CI there and here
            weats[kept.name] = fam.weat(model, kept, templates, n_permutations=N_PERMUTATIONS,
                                        n_bootstrap=N_BOOTSTRAP).to_dict()
            if progress:
                progress("measuring tests", len(weats), len(kept_tests))
            weats[kept.name]["dropped_words"] = gone or {}
        if pairs is not None:
            if not hasattr(fam, "pair_measure"):
                raise ConfigError(f"pairs measures a language model; a {fam.label} model does not take it"
                                  ).with_cli(f"--pairs measures a language model; --model {fam.name} does not take it")
            from .measures.lm import dropped_pairs_notes, resolve_pairs
            pair_targets = [fam.pair_measure(model, ps.name, ps.pairs, ps.ids, ps.source)
                            for ps in resolve_pairs(pairs)]
            notes += dropped_pairs_notes(pair_targets)
            for m in pair_targets:
                targets.append(m)
                weats[m.name] = m.stats(model.net).to_dict()
                roles[m.name] = {"target": [], "attribute": []}
    if progress:
        progress("checking the corpus", 0, 1)
    corpus.scan()          # an empty corpus or repeated ids fail here, before any work
    if progress:
        progress("checking the corpus", 1, 1)
    run_config = {"model": fam.name, "model_config": model.config.to_dict() if model.config else model.meta,
                  "corpus": corpus.describe(), "estimator": estimator.to_dict(),
                  "tests": [t.name for t in targets], "test_words": {t.name: list(t.words) for t in targets}}
    if min_word_count > 1:
        run_config["min_word_count"] = min_word_count
    if measure != DEFAULT_MEASURE:
        run_config["measure"] = measure
    origin = (getattr(model, "meta", None) or {}).get("origin")
    if origin:
        run_config["model_files"] = [{"path": f["path"], "sha256": f["sha256"]} for f in origin["files"]]
    if seed_models:
        run_config["seeds"] = [model.config.seed] + [m.config.seed for m in seed_models]
    if ensemble > 1:
        run_config["ensemble"] = [model.config.seed] + [m.config.seed for m in seed_models[:ensemble - 1]]
    if any(t.kind in ("template", "pairs") for t in targets):
        run_config["templates"] = sorted({tpl for t in targets if t.kind == "template" for tpl in t.templates})
        run_config["pairs_sha256"] = {t.name: hashlib.sha256(json.dumps(t.pairs).encode()).hexdigest()
                                      for t in targets if t.kind == "pairs"}
    folder = score_folder(corpus, fam.name, run_config, out_dir, reports_dir)
    out = claim_folder(folder, "score", run_config, overwrite, known=SCORE_FILES)
    if not model.corpus.get("hash"):
        notes.append("the model was not trained by biasaudit: its training corpus cannot be checked, so the "
                     "scores assume it was trained on this corpus")
    elif corpus.hash != model.corpus["hash"]:
        raise CorpusError(f"corpus {corpus.name!r} is not the one the model was trained on (hash differs)")

    ensemble_models = seed_models[:ensemble - 1] if ensemble > 1 else []
    ensemble_targets = [seed_measures(fam, m, targets, originals, templates, pairs) for m in ensemble_models]
    # the same scorer on every seed's model; documents ranked by the mean score (influence.rank)
    result, agreement = rank(model, corpus, targets, estimator, ensemble_models, ensemble_targets,
                             run_config.get("ensemble", ()), progress=progress, client=client,
                             device=str(resolve_device(device)), seed_progress=False)
    # other seeds: the effect size's spread, and rankings to resample the seed with
    spreads, bases, per_basis = {}, [result.basis], [targets]
    for t in targets if seed_models else []:
        if t.name in originals:
            kept = originals[t.name][1]
            values = [weats[t.name]["effect_size"]] + [
                fam.weat(m, kept, templates, n_permutations=1, n_bootstrap=0).effect_size for m in seed_models]
            spreads[t.name] = seed_spread(values)
    if seed_models and all(t.name in originals for t in targets):
        kept_list = [originals[t.name][1] for t in targets]
        if result.basis is not None:
            for k, m in enumerate(seed_models):
                if progress:
                    progress("scoring the other seeds", k, len(seed_models))
                seed_targets = fam.bias_measures(m, kept_list, templates)
                per_basis.append(seed_targets)
                bases.append(score_model(m, corpus, seed_targets, estimator, client=client,
                                         device=str(resolve_device(device))).basis)
            if progress:
                progress("scoring the other seeds", len(seed_models), len(seed_models))
    stab = {}
    if n_resamples > 0 and all(b is not None for b in bases):
        stab = stability(bases, per_basis, result.delta_bias_if_removed, n_resamples, progress=progress)
    # what removing the top 0.1% and 1% would do, re-measured on the changed model
    removal = {t.name: [] for t in targets}
    if result.predictor is not None:
        reqs, keys = [], []
        for t in targets:
            s = result.delta_bias_if_removed[t.name]
            neg = np.flatnonzero(s < 0)
            order = neg[np.argsort(s[neg], kind="stable")]
            for label, frac in REMOVAL_FRACTIONS:
                k = max(1, int(round(frac * len(s))))
                if len(order):
                    reqs.append((t.name, order[:k], 0))
                    keys.append((t.name, label, min(k, len(order)), float(s[order[:k]].sum())))
        for (name, label, k, linear), value in zip(keys, result.predictor.predict(reqs, progress) if reqs else []):
            removal[name].append({"removed": label, "n_docs": k, "effect_size_before": result.bias_value[name],
                                  "predicted_effect_size": value, "linear_prediction": result.bias_value[name] + linear})
    # the documents shown (summary.json's top, the report's cards, the terminal's lists): one order, by score, the
    # table's; each carries its stability and evidence, so a document ranking through one rare word shows it there
    shown, table = {}, {}
    for t in targets:
        shown[t.name] = top_documents(result, t.name, top)
        table[t.name] = top_documents(result, t.name, max(top, TABLE_N // 2))
    i2k = result.words if result.words is not None else model.vocab.index_to_key
    need = {result.doc_ids[i] for d in list(table.values()) + list(shown.values()) for idx in d.values() for i in idx}
    word_counts_all, missing_counts = {}, []
    if originals:
        vocab = getattr(model, "vocab", None)
        every = {w for o, _ in originals.values() for w in o.words}
        word_counts_all = ({w: vocab.count(w) for w in every} if vocab is not None else {})
        missing_counts = [w for w in every if not word_counts_all.get(w)]
    # one pass for the shown documents' texts and the counts of the words the model lacks
    texts, missing = _texts_and_counts(corpus, need, missing_counts, progress)
    word_counts_all.update(missing)

    tests_out = []
    for t in targets:
        s = result.delta_bias_if_removed[t.name]
        up = result.delta_bias_if_upweighted(t.name)
        own = test_word_ids(result, t)
        st = stab.get(t.name)
        shares, warning = word_shares(result, t.name, model.vocab) if result.word_contributions[t.name] else ([], None)
        if originals.get(t.name):
            field_of = {w: f for f, ws in originals[t.name][1].to_dict().items() if f.startswith(("target", "attr"))
                        for w in ws["words"]}
            for r in shares:
                r["set"] = field_of.get(r["word"])
                r["rare"] = r["corpus_count"] is not None and r["corpus_count"] < RARE_COUNT
        if not np.any(s):
            raise CorpusError(f"{t.name}: no document contains a test word in a training pair; nothing to score")

        def doc(i, n_chars):
            words = sorted(i2k[w] for w in result.doc_words.get(i, ()) if w in own)
            d = {"doc_id": result.doc_ids[i], "delta_bias_if_removed": float(s[i]),
                 "delta_bias_if_upweighted": float(up[i]), "test_words": words,
                 "snippet": snippet(texts.get(result.doc_ids[i], ""), set(words), n_chars)}
            if st is not None:
                d["stability"] = float(st["stability"][i])
                d["evidence"] = st["evidence"].get(i)
            if t.name in agreement:
                d["sign_agreement"] = float(agreement[t.name][i])
            return d
        tops = {direction: [doc(i, 300) for i in idx] for direction, idx in shown[t.name].items()}
        rows = sorted({i for idx in table[t.name].values() for i in idx}, key=lambda i: s[i])
        original, kept = originals.get(t.name, (None, None))
        tests_out.append({"name": t.name, "kind": t.kind, "description": t.description,
                          "evidence": evidence(original, kept, weats.get(t.name), drops.get(t.name, {}),
                                               word_counts_all, rare, spreads.get(t.name), known),
                          "bias_value": result.bias_value[t.name], "weat": weats.get(t.name),
                          "sum_delta_if_removed": float(s.sum()), "n_documents_scored": int(np.count_nonzero(s)),
                          "removal_predictions": removal[t.name],
                          "word_shares": shares, "warning": warning, "solver": result.solver_info[t.name],
                          "stability": None if st is None else st["summary"],
                          "ensemble": None if t.name not in agreement else {
                              "seeds": run_config["ensemble"],
                              "mean_sign_agreement": result.solver_info[t.name].get("mean_sign_agreement"),
                              "share_unanimous": float(np.mean(agreement[t.name][s != 0] == 1.0)) if np.any(s) else None},
                          "roles": roles.get(t.name, {}), "top": tops, "table": [doc(i, 600) for i in rows],
                          "histogram": _histogram(s)})
    summary = {"sign_convention": "delta_bias_if_removed = grad B^T H^-1 grad L_d: predicted change of B if the "
                                  "document is removed and the model retrained; negative = the document drives the "
                                  "bias up. delta_bias_if_upweighted: predicted change with one more copy of the document "
                                  "(-delta_bias_if_removed for skip-gram and LMs, whose losses are linear in documents; "
                                  "computed exactly from the changed counts for GloVe).",
               "config": run_config, "n_documents": len(result.doc_ids),
               "vocabulary": fam.vocabulary_summary(model), "tests": tests_out, "notes": notes,
               "model_origin": origin,
               "timings": {k: round(v, 3) for k, v in result.timings.items()},
               "seeds": run_config.get("seeds", [model.config.seed] if model.config else []),
               "versions": versions("gensim", "numpy", "torch"),
               # experiment retrains against bias tests; a query or paired sentences alone have no such command
               "check_command": check_command(corpus, tests, model, estimator, measure)
               if query is None and (tests or pairs is None) else None,
               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "out_dir": str(folder)}
    if progress:
        progress("writing the results", 0, 1)
    with out.stage() as tmp:
        write_scores(result, tmp / "scores.jsonl", i2k, targets, stab, agreement)
        write_json(tmp / "summary.json", summary)
        write_json(tmp / "config.json", run_config)
    if progress:
        progress("writing the results", 1, 1)
    return RunResult(folder, MappingProxyType(summary))
