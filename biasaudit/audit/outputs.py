"""What a score run writes and shows: snippets, histograms, ``scores.jsonl``, the output folder, the evidence of
each test (dropped words, rare words, the seed spread) and the ``biasaudit experiment`` command that checks it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Container

import numpy as np

from ..influence.estimators import EstimatorConfig
from ..influence.result import DocumentScores, test_word_ids
from ..models.base import default_estimator_of, family_of
from ..vocab import TOKEN
from ..wordsets import DEFAULT_MEASURE, BiasTest


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


def write_scores(result: DocumentScores, path, words, targets, stab: dict | None = None,
                 agreement: dict | None = None) -> None:
    """Write ``scores.jsonl`` atomically: one object per (document, measure) for documents with a non-zero score,
    fields doc_id, test, delta_bias_if_removed, delta_bias_if_upweighted, test_words (the words of that test
    the document holds), where the ranking's stability was computed, stability, and for an ensemble,
    sign_agreement (the share of seeds whose score has the mean's sign)."""
    import json

    from ..io import atomic_open

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
        from ..wordsets import SET_FIELDS
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
    from ..measures.registry import MEASURES
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


def starting_evidence(ev: dict, start: dict | None) -> dict:
    """``evidence`` with what the model the attributed phase started from measured (``start``: its statistics,
    name and the phase's change with its CI, from ``run.starting_bias``); a warning where more than half of the
    effect size (of the same sign) is the starting model's own."""
    if not start or ev.get("effect_size") is None or start.get("effect_size") is None:
        return ev
    d, d0 = ev["effect_size"], start["effect_size"]
    change = start.get("change")
    ev = {**ev, "before_audited_phase": {**start, "change": d - d0 if change is None else change}}
    if d * d0 > 0 and abs(d0) > abs(d) / 2:
        p, lo, hi = start["p_value"], start.get("ci_low"), start.get("ci_high")
        stats = ", ".join(([] if p is None else ["p < 0.001" if p < 0.001 else f"p = {p:.3f}"])
                          + ([] if lo is None or hi is None else [f"95% CI [{lo:+.2f}, {hi:+.2f}]"]))
        ev["warnings"] = ev["warnings"] + [
            f"mostly the starting model's: {start['model']} measures d = {d0:+.2f}"
            + (f" ({stats})" if stats else "") + f" before the audited phase, which moved it by "
            f"{ev['before_audited_phase']['change']:+.2f}. The scores rank the corpus's documents by what they did "
            "in that phase: removing them can undo that change, not the starting model's own association"]
    return ev


def _measure_evidence(stats: dict, original, kept, spread, sets: list, warnings: list, ci_has_zero: bool) -> dict:
    """``evidence`` for a test read with a measure other than WEAT: ``measures.suite.verdict``'s sentence and
    significance (None for the measures with no permutation test: said in a warning)."""
    from ..measures.suite import verdict

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


def check_command(corpus, tests, model, estimator: EstimatorConfig, measure: str = "weat",
                  templates=None, ensemble: int = 1) -> str | None:
    """The ``biasaudit experiment`` command that checks this ranking by retraining (same corpus, model settings
    and tests; the top 0.1% and 1% removed and upweighted against random removal over 3 seeds; an ensemble's
    ranking again, retrained on seeds it did not use); None when the model was given in memory (no command line
    can name it)."""
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
        default = fam.default_config(model.config) if hasattr(fam, "default_config") else fam.config_type()
        parts += fam.command_flags(model.config) if hasattr(fam, "command_flags") else []
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
    if getattr(templates, "source", None):       # templates read from a file: the same file again
        parts += ["--templates", templates.source]
    default = default_estimator_of(fam, None if origin else model.config)
    if estimator.name != default or estimator.to_dict()["damping"] != EstimatorConfig().damping:
        parts += ["--estimator", estimator.label]
    if measure != DEFAULT_MEASURE:
        parts += ["--measure", measure]
    if ensemble > 1:        # the ensemble's ranking, and the fresh seeds its predictions are for
        parts += ["--ensemble", str(ensemble), "--fresh-seeds"]
    parts += ["--k", "0.1%,1%", "--seeds", "3", "--conditions", "baseline,remove-top,upweight-top,remove-random"]
    return shlex.join(parts)


