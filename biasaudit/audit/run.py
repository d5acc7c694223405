"""The score run as its steps (``run_score``): resolve the targets, describe the run, claim its folder, rank the
documents (``influence.rank``), the seeds' spread and the ranking's stability, what removing the top documents
would do, one section per test, and the outputs (staged, then moved into place)."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ..errors import BiasAuditError, ConfigError, CorpusError
from ..influence import rank, score_model
from ..influence.estimators import EstimatorConfig
from ..influence.result import RARE_COUNT, test_word_ids, top_documents, word_shares
from ..influence.stability import stability
from ..io import claim_folder, write_json
from ..measures.registry import is_default
from ..measures.targets import query_target
from ..measures.weat import N_BOOTSTRAP, N_PERMUTATIONS, seed_spread
from ..models.base import family_of, resolve_device, versions
from ..wordsets import DEFAULT_MEASURE
from .measures import bias_measures, check_run_tests, measurable_words
from .options import ScoreOptions
from .outputs import (DROPPED_TOKENS, DROPPED_WORDS, REMOVAL_FRACTIONS, TABLE_N, _histogram, _texts_and_counts,
                      check_command, evidence, score_folder, snippet, starting_evidence, write_scores)
from .result import RunResult

SCORE_FILES = ("scores.jsonl", "summary.json", "config.json", "report.html")

SIGN_CONVENTION = ("delta_bias_if_removed = grad B^T H^-1 grad L_d: predicted change of B if the document is removed "
                   "and the model retrained; negative = the document drives the bias up. delta_bias_if_upweighted: "
                   "predicted change with one more copy of the document (-delta_bias_if_removed for skip-gram and "
                   "LMs, whose losses are linear in documents; computed exactly from the changed counts for GloVe).")


@dataclass
class Targets:
    """What the run measures: the targets (one per test, query or pair set) and, by name, each one's statistics,
    roles, (original, kept) test, dropped words; the notes for the summary; the rare and measurable words."""
    targets: list = field(default_factory=list)
    weats: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)
    originals: dict = field(default_factory=dict)
    drops: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    rare: dict = field(default_factory=dict)
    known: set = field(default_factory=set)


# ------------------------------------------------------------------ targets
def seed_measures(fam, model, targets, originals, templates=None, pairs=None) -> list:
    """A seed model's own measures for ``targets``: the same tests (the words ``originals`` kept) and pair sets."""
    out = fam.bias_measures(model, [originals[t.name][1] for t in targets if t.name in originals], templates)
    if pairs is not None:
        from ..measures.lm import resolve_pairs
        out += [fam.pair_measure(model, ps.name, ps.pairs, ps.ids, ps.source) for ps in resolve_pairs(pairs)]
    return out


def query_targets(fam, model, options: ScoreOptions) -> Targets:
    """The one target of a word query (word, toward, away)."""
    if not fam.word_vectors:
        raise ConfigError(f"query reads word vectors; a {fam.label} model takes tests or pairs").with_cli(
            f"--query reads word vectors; --model {fam.name} takes --test or --pairs")
    if not is_default(options.measure):
        raise ConfigError(f"measure={options.measure!r} reads bias tests; a query is ranked by its own word "
                          "association")
    word, toward, away = options.query
    out = Targets()
    out.targets.append(query_target(word.lower(), toward, away, model.vocab))
    out.roles[out.targets[-1].name] = {"target": [word.lower()], "attribute": list(toward) + list(away)}
    return out


def drop_notes(fam, name: str, gone: dict, rare: dict, known: set, min_word_count: int) -> list[str]:
    """The notes for the words a test lost: missing from the model, too rare, or dropped with their pair."""
    missing = DROPPED_TOKENS if fam.unit == "tokens" else DROPPED_WORDS
    oov = {k: [w for w in v if w not in rare and w not in known] for k, v in gone.items()}
    few = {k: [w for w in v if w in rare] for k, v in gone.items()}
    partner = {k: [w for w in v if w in known] for k, v in gone.items()}   # paired measures
    notes = []
    for label, part in ((missing, oov), (f"words seen fewer than {min_word_count} times", few),
                        ("words in the model whose X-Y pair lost its other word", partner)):
        part = {k: v for k, v in part.items() if v}
        if part:
            notes.append(f"{name}: dropped {label} " + "; ".join(f"{k}: {', '.join(v)}" for k, v in part.items()))
    return notes


def test_targets(fam, model, corpus, tests, options: ScoreOptions, progress=None) -> Targets:
    """The targets of the bias tests (the words the model lacks dropped, with notes) and of the paired sentences,
    with each one's statistics (the same permutations and bootstrap as ``biasaudit weat``)."""
    from ..measures.lm import resolve_pairs
    out = Targets()
    pairs, templates = options.pairs, options.templates
    resolved = check_run_tests(fam, tests, resolve_pairs(pairs) if pairs is not None else None, options.measure)
    if resolved:
        out.known, out.rare = measurable_words(model, {w for t in resolved for w in t.words},
                                               options.min_word_count, corpus)
    measures, kept_tests, dropped, skipped = (bias_measures(model, resolved, options.strict_oov, templates,
                                                            options.min_word_count, corpus)
                                              if resolved else ([], [], {}, {}))
    for name, reason in skipped.items():
        out.notes.append(f"{name}: skipped, {reason}")
    by_name = {t.name: t for t in resolved}
    for kept, m in zip(kept_tests, measures):
        gone = dropped.get(kept.name)
        if gone:
            out.notes += drop_notes(fam, kept.name, gone, out.rare, out.known, options.min_word_count)
        out.targets.append(m)
        out.originals[kept.name] = (by_name[kept.name], kept)
        out.drops[kept.name] = gone or {}
        out.roles[kept.name] = {"target": list(kept.target_x.words + kept.target_y.words),
                                "attribute": list(kept.attribute_a.words + kept.attribute_b.words),
                                "sets": {k: v for k, v in kept.to_dict().items()
                                         if k.startswith(("target", "attr"))}}
        if progress:
            progress("measuring tests", len(out.weats), len(kept_tests))
        # the same permutations and bootstrap (and seed) as `biasaudit weat`: the same p and CI there and here
        out.weats[kept.name] = fam.weat(model, kept, templates, n_permutations=N_PERMUTATIONS,
                                        n_bootstrap=N_BOOTSTRAP).to_dict()
        if progress:
            progress("measuring tests", len(out.weats), len(kept_tests))
        out.weats[kept.name]["dropped_words"] = gone or {}
    if pairs is not None:
        add_pair_targets(fam, model, pairs, out)
    return out


def add_pair_targets(fam, model, pairs, out: Targets) -> None:
    """A language model's paired-sentence measures, added to ``out``."""
    if not hasattr(fam, "pair_measure"):
        raise ConfigError(f"pairs measures a language model; a {fam.label} model does not take it"
                          ).with_cli(f"--pairs measures a language model; --model {fam.name} does not take it")
    from ..measures.lm import dropped_pairs_notes, resolve_pairs
    pair_targets = [fam.pair_measure(model, ps.name, ps.pairs, ps.ids, ps.source) for ps in resolve_pairs(pairs)]
    out.notes += dropped_pairs_notes(pair_targets)
    for m in pair_targets:
        out.targets.append(m)
        out.weats[m.name] = m.stats(model.net).to_dict()
        out.roles[m.name] = {"target": [], "attribute": []}


# ------------------------------------------------------------------ the run's description and folder
def run_config_of(fam, model, corpus, targets: list, options: ScoreOptions, seed_models) -> dict:
    """``config.json``: what the run measured with what (the folder's name hashes it)."""
    run_config = {"model": fam.name, "model_config": model.config.to_dict() if model.config else model.meta,
                  "corpus": corpus.describe(), "estimator": options.estimator.to_dict(),
                  "tests": [t.name for t in targets], "test_words": {t.name: list(t.words) for t in targets}}
    if options.min_word_count > 1:
        run_config["min_word_count"] = options.min_word_count
    if options.measure != DEFAULT_MEASURE:
        run_config["measure"] = options.measure
    origin = (getattr(model, "meta", None) or {}).get("origin")
    if origin:
        run_config["model_files"] = [{"path": f["path"], "sha256": f["sha256"]} for f in origin["files"]]
    if seed_models:
        run_config["seeds"] = [model.config.seed] + [m.config.seed for m in seed_models]
    if options.ensemble > 1:
        run_config["ensemble"] = [model.config.seed] + [m.config.seed for m in seed_models[:options.ensemble - 1]]
    if any(t.kind in ("template", "pairs") for t in targets):
        run_config["templates"] = sorted({tpl for t in targets if t.kind == "template" for tpl in t.templates})
        run_config["pairs_sha256"] = {t.name: hashlib.sha256(json.dumps(t.pairs).encode()).hexdigest()
                                      for t in targets if t.kind == "pairs"}
    return run_config


def check_trained_on(model, corpus, notes: list) -> None:
    """A CorpusError when the model was trained on another corpus; a note when that cannot be checked."""
    if not model.corpus.get("hash"):
        notes.append("the model was not trained by biasaudit: its training corpus cannot be checked, so the "
                     "scores assume it was trained on this corpus")
    elif corpus.hash != model.corpus["hash"]:
        raise CorpusError(f"corpus {corpus.name!r} is not the one the model was trained on (hash differs)")


def audited_run_smoothness(fam, model, corpus, got: Targets, o: ScoreOptions, progress=None) -> dict | None:
    """The audited run's metasmoothness (``influence.metasmooth.audited_run_check``) with its note first among the
    run's notes, where ``o.metasmoothness`` directions (None: the family's ``smoothness_directions``, 2 for a
    language model, 0 otherwise) are asked of a model trained here on this corpus by a family that retrains with
    document weights; else None."""
    directions = o.metasmoothness if o.metasmoothness is not None else getattr(fam, "smoothness_directions", 0)
    if (not directions or o.query is not None or getattr(model, "config", None) is None
            or not model.corpus.get("hash") or "masked" not in fam.modes):
        return None
    from ..influence.metasmooth import audited_run_check
    ms = audited_run_check(model, corpus, got.targets, directions, progress)
    got.notes.insert(0, ms["note"])
    return ms


def starting_bias(fam, model, got: Targets, o: ScoreOptions, progress=None) -> dict:
    """Each test's statistics on the model the attributed phase started from (a fine-tune's checkpoint: the
    family's ``starting_point``), with the same words, templates, permutations and bootstrap, that model's name,
    and the phase's change of d with a paired bootstrap CI; {} where there is none (a run from scratch, a word
    embedding, a query), or, with a note, where that model cannot be read or measured."""
    start = getattr(fam, "starting_point", None)
    if start is None or not got.originals:
        return {}
    out = {}
    try:
        point = start(model)
        if point is None:
            return {}
        base, label = point
        measures = {t.name: t for t in got.targets}
        for k, (name, (_, kept)) in enumerate(got.originals.items()):
            if progress:
                progress("measuring the starting model", k, len(got.originals))
            st = fam.weat(base, kept, o.templates, n_permutations=N_PERMUTATIONS, n_bootstrap=N_BOOTSTRAP).to_dict()
            m = measures.get(name)            # the run's own measure of this test, read on both models
            change = (m.paired_change(model.net, base.net, N_BOOTSTRAP) if hasattr(m, "paired_change")
                      else (None, None, None))
            out[name] = {"model": label, **{f: st.get(f) for f in ("effect_size", "p_value", "ci_low", "ci_high")},
                         "change": change[0], "change_ci_low": change[1], "change_ci_high": change[2]}
    except (BiasAuditError, OSError, RuntimeError, ValueError) as e:
        got.notes.append(f"what the model the audited phase started from measured is left out: {e}")
        return {}
    if progress:
        progress("measuring the starting model", len(got.originals), len(got.originals))
    return out


# ------------------------------------------------------------------ seeds
def seed_spreads(fam, got: Targets, seed_models, templates) -> dict:
    """Each test's effect size over the seeds (``seed_spread``)."""
    spreads = {}
    for t in got.targets if seed_models else []:
        if t.name in got.originals:
            kept = got.originals[t.name][1]
            values = [got.weats[t.name]["effect_size"]] + [
                fam.weat(m, kept, templates, n_permutations=1, n_bootstrap=0).effect_size for m in seed_models]
            spreads[t.name] = seed_spread(values)
    return spreads


def ranking_stability(fam, result, corpus, got: Targets, seed_models, options: ScoreOptions, client=None,
                      progress=None) -> dict:
    """The ranking's stability over resampled words and (with ``seed_models``) seeds: each seed's model scored
    with the same estimator, then ``stability``."""
    bases, per_basis = [result.basis], [got.targets]
    if seed_models and all(t.name in got.originals for t in got.targets):
        kept_list = [got.originals[t.name][1] for t in got.targets]
        if result.basis is not None:
            for k, m in enumerate(seed_models):
                if progress:
                    progress("scoring the other seeds", k, len(seed_models))
                seed_targets = fam.bias_measures(m, kept_list, options.templates)
                per_basis.append(seed_targets)
                bases.append(score_model(m, corpus, seed_targets, options.estimator, client=client,
                                         device=str(resolve_device(options.device))).basis)
            if progress:
                progress("scoring the other seeds", len(seed_models), len(seed_models))
    if options.n_resamples > 0 and all(b is not None for b in bases):
        return stability(bases, per_basis, result.delta_bias_if_removed, options.n_resamples, progress=progress)
    return {}


# ------------------------------------------------------------------ removal predictions
def removal_predictions(result, targets, progress=None) -> dict:
    """What removing the top 0.1% and 1% would do to each test, re-measured on the changed model."""
    removal = {t.name: [] for t in targets}
    if result.predictor is None:
        return removal
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
    shrinkage = getattr(result.predictor, "shrinkage", None)     # an ensemble's: the lambda each set is shrunk by
    values = result.predictor.predict(reqs, progress) if reqs else []
    for (name, label, k, linear), req, value in zip(keys, reqs, values):
        got = shrinkage(name, req[1]) if shrinkage else None
        removal[name].append({"removed": label, "n_docs": k, "effect_size_before": result.bias_value[name],
                              "predicted_effect_size": value, "linear_prediction": result.bias_value[name] + linear,
                              **({"shrunk_by": got[0]} if got else {})})
    return removal


# ------------------------------------------------------------------ the sections
@dataclass
class Shown:
    """The documents shown (summary.json's top, the report's cards and table), their texts, the test words'
    corpus counts and the vocabulary the scores index."""
    top: dict
    table: dict
    texts: dict
    word_counts: dict
    i2k: Any


def shown_documents(result, model, corpus, got: Targets, top: int, progress=None) -> Shown:
    """The documents shown: one order, by score, the table's; one pass over the corpus for their texts and the
    counts of the test words the model lacks."""
    shown = {t.name: top_documents(result, t.name, top) for t in got.targets}
    table = {t.name: top_documents(result, t.name, max(top, TABLE_N // 2)) for t in got.targets}
    i2k = result.words if result.words is not None else model.vocab.index_to_key
    need = {result.doc_ids[i] for d in list(table.values()) + list(shown.values()) for idx in d.values() for i in idx}
    word_counts_all, missing_counts = {}, []
    if got.originals:
        vocab = getattr(model, "vocab", None)
        every = {w for o, _ in got.originals.values() for w in o.words}
        word_counts_all = ({w: vocab.count(w) for w in every} if vocab is not None else {})
        missing_counts = [w for w in every if not word_counts_all.get(w)]
    texts, missing = _texts_and_counts(corpus, need, missing_counts, progress)
    word_counts_all.update(missing)
    return Shown(shown, table, texts, word_counts_all, i2k)


def _word_shares(result, t, model, got: Targets) -> tuple[list, str | None]:
    """The words a test's scores flow through, each with its set and whether it is rare in the corpus."""
    shares, warning = word_shares(result, t.name, model.vocab) if result.word_contributions[t.name] else ([], None)
    if got.originals.get(t.name):
        field_of = {w: f for f, ws in got.originals[t.name][1].to_dict().items() if f.startswith(("target", "attr"))
                    for w in ws["words"]}
        for r in shares:
            r["set"] = field_of.get(r["word"])
            r["rare"] = r["corpus_count"] is not None and r["corpus_count"] < RARE_COUNT
    return shares, warning


def test_section(t, result, model, got: Targets, shown: Shown, stab: dict, agreement: dict, removal: dict,
                 spreads: dict, run_config: dict, start: dict | None = None) -> dict:
    """summary.json's section for one test: its evidence (with ``start``, what the model the attributed phase
    started from measured), statistics, removal predictions, word shares, stability, ensemble agreement, and the
    documents shown."""
    s = result.delta_bias_if_removed[t.name]
    up = result.delta_bias_if_upweighted(t.name)
    own = test_word_ids(result, t)
    st = stab.get(t.name)
    shares, warning = _word_shares(result, t, model, got)
    if not np.any(s):
        raise CorpusError(f"{t.name}: no document contains a test word in a training pair; nothing to score")

    def doc(i, n_chars):
        words = sorted(shown.i2k[w] for w in result.doc_words.get(i, ()) if w in own)
        d = {"doc_id": result.doc_ids[i], "delta_bias_if_removed": float(s[i]),
             "delta_bias_if_upweighted": float(up[i]), "test_words": words,
             "snippet": snippet(shown.texts.get(result.doc_ids[i], ""), set(words), n_chars)}
        if st is not None:
            d["stability"] = float(st["stability"][i])
            d["evidence"] = st["evidence"].get(i)
        if t.name in agreement:
            d["sign_agreement"] = float(agreement[t.name][i])
        return d
    tops = {direction: [doc(i, 300) for i in idx] for direction, idx in shown.top[t.name].items()}
    rows = sorted({i for idx in shown.table[t.name].values() for i in idx}, key=lambda i: s[i])
    original, kept = got.originals.get(t.name, (None, None))
    return {"name": t.name, "kind": t.kind, "description": t.description,
            "evidence": starting_evidence(evidence(original, kept, got.weats.get(t.name), got.drops.get(t.name, {}),
                                                   shown.word_counts, got.rare, spreads.get(t.name), got.known),
                                          (start or {}).get(t.name)),
            "bias_value": result.bias_value[t.name], "weat": got.weats.get(t.name),
            "sum_delta_if_removed": float(s.sum()), "n_documents_scored": int(np.count_nonzero(s)),
            "removal_predictions": removal[t.name],
            "word_shares": shares, "warning": warning, "solver": result.solver_info[t.name],
            "stability": None if st is None else st["summary"],
            "ensemble": None if t.name not in agreement else {
                "seeds": run_config["ensemble"],
                "mean_sign_agreement": result.solver_info[t.name].get("mean_sign_agreement"),
                "seed_reliability": result.solver_info[t.name].get("seed_reliability"),
                "share_unanimous": float(np.mean(agreement[t.name][s != 0] == 1.0)) if np.any(s) else None},
            "roles": got.roles.get(t.name, {}), "top": tops, "table": [doc(i, 600) for i in rows],
            "histogram": _histogram(s)}


# ------------------------------------------------------------------ the pipeline
def _options(options, legacy: dict) -> ScoreOptions:
    """``options`` as ScoreOptions: given, or built from an EstimatorConfig and the former keyword arguments."""
    if isinstance(options, ScoreOptions):
        if legacy:
            raise ConfigError(f"run_score takes ScoreOptions or keyword settings, not both: {', '.join(legacy)}")
        return options
    if options is None or isinstance(options, EstimatorConfig):
        return ScoreOptions.from_keywords(options, **legacy)
    raise ConfigError(f"options must be ScoreOptions, got {type(options).__name__}")


def run_score(model, corpus, tests, options: ScoreOptions | EstimatorConfig | None = None, *, seed_models=(),
              progress=None, client=None, scored=None, **legacy) -> RunResult:
    """Score every document of ``corpus`` against the bias tests (or a word query; or, for LMs, paired
    sentences) as ``options`` (``ScoreOptions``) say, and write the outputs (staged, then moved into place).

    Test words missing from the model (and, with ``min_word_count``, rarer words) are dropped and listed
    (``strict_oov``: an error); a test left with a set of fewer than 2 words is skipped with a note, and only a run
    with no test left fails. ``seed_models``: the same model trained with other seeds, for the spread of the
    effect size over seeds and the stability of the ranking over seeds as well as words; the first
    ``ensemble - 1`` of them rank with the model (``influence.rank``). ``client``: a dask client for the scorer.
    An EstimatorConfig and keyword settings in place of ``options`` still work (``ScoreOptions.from_keywords``).
    ``scored``: (DocumentScores, its targets) of this model and corpus already ranked with ``options``' estimator
    (an experiment's ranking), used instead of scoring again where its targets read the same words."""
    o = _options(options, legacy)
    fam = family_of(model)
    if o.ensemble > 1 and len(seed_models) < o.ensemble - 1:
        raise ConfigError(f"ensemble={o.ensemble} needs {o.ensemble} trained seeds (the model and seed_models), got "
                          f"{len(seed_models) + 1}").with_cli(
            f"--ensemble {o.ensemble} needs {o.ensemble} trained seeds, got {len(seed_models) + 1}")
    got = (query_targets(fam, model, o) if o.query is not None
           else test_targets(fam, model, corpus, tests, o, progress))
    _step(progress, "checking the corpus", corpus.scan)     # an empty corpus or repeated ids fail here
    run_config = run_config_of(fam, model, corpus, got.targets, o, seed_models)
    folder = score_folder(corpus, fam.name, run_config, o.out_dir, o.reports_dir)
    out = claim_folder(folder, "score", run_config, o.overwrite, known=SCORE_FILES)
    check_trained_on(model, corpus, got.notes)
    smoothness = audited_run_smoothness(fam, model, corpus, got, o, progress)
    start = starting_bias(fam, model, got, o, progress)
    ensemble_models = seed_models[:o.ensemble - 1] if o.ensemble > 1 else []
    ensemble_targets = [seed_measures(fam, m, got.targets, got.originals, o.templates, o.pairs)
                        for m in ensemble_models]
    if _reusable(scored, got.targets, o):
        result, agreement = scored[0], {}
    else:
        result, agreement = rank(model, corpus, got.targets, o.estimator, ensemble_models, ensemble_targets,
                                 run_config.get("ensemble", ()), progress=progress, client=client,
                                 device=str(resolve_device(o.device)), seed_progress=False)
    spreads = seed_spreads(fam, got, seed_models, o.templates)
    stab = ranking_stability(fam, result, corpus, got, seed_models, o, client, progress)
    removal = removal_predictions(result, got.targets, progress)
    shown = shown_documents(result, model, corpus, got, o.top, progress)
    tests_out = [test_section(t, result, model, got, shown, stab, agreement, removal, spreads, run_config, start)
                 for t in got.targets]
    summary = summary_of(fam, model, corpus, tests, o, run_config, result, tests_out, got.notes, folder)
    if smoothness:
        summary = {**summary, "metasmoothness": smoothness}
    if progress:
        progress("writing the results", 0, 1)
    with out.stage() as tmp:
        write_scores(result, tmp / "scores.jsonl", shown.i2k, got.targets, stab, agreement)
        write_json(tmp / "summary.json", summary)
        write_json(tmp / "config.json", run_config)
    if progress:
        progress("writing the results", 1, 1)
    return RunResult(folder, MappingProxyType(summary))


def _reusable(scored, targets, o: ScoreOptions) -> bool:
    """Whether ``scored`` (DocumentScores, its targets) ranks what this run would: the same estimator, no
    ensemble, and the same targets reading the same words (an experiment's concept tests beside them: no)."""
    if scored is None or o.ensemble > 1 or scored[0].estimator != o.estimator:
        return False
    words = {t.name: tuple(t.words) for t in scored[1]}
    return words == {t.name: tuple(t.words) for t in targets}


def _step(progress, label: str, work) -> None:
    """``work()`` between a progress line's 0 of 1 and 1 of 1."""
    if progress:
        progress(label, 0, 1)
    work()
    if progress:
        progress(label, 1, 1)


def summary_of(fam, model, corpus, tests, o: ScoreOptions, run_config: dict, result, tests_out: list, notes: list,
               folder) -> Mapping[str, Any]:
    """``summary.json``: the run's config, tests, notes, timings, seeds and versions."""
    return {"sign_convention": SIGN_CONVENTION,
            "config": run_config, "n_documents": len(result.doc_ids),
            "vocabulary": fam.vocabulary_summary(model), "tests": tests_out, "notes": notes,
            "model_origin": (getattr(model, "meta", None) or {}).get("origin"),
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "seeds": run_config.get("seeds", [model.config.seed] if model.config else []),
            "versions": versions("gensim", "numpy", "torch"),
            # experiment retrains against bias tests; a query or paired sentences alone have no such command
            "check_command": check_command(corpus, tests, model, o.estimator, o.measure, o.templates, o.ensemble)
            if o.query is None and (tests or o.pairs is None) else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "out_dir": str(folder)}
