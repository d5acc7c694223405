"""Running an experiment: rank once, train every edit at every seed, measure each model, resume after an interruption.

- Every retrain is one task: its record is written atomically to ``runs/<run id>.json`` as soon as it ends; a rerun
  skips finished runs (a damaged record is run again). Run ids are content hashes of the edits.
- Tasks go to Dask (``client``: a LocalCluster, a scheduler address) or run in this process.
- The rankings are saved in ``scores.json`` with a key of the corpus hash, model config, tests and estimators, and
  reused only when all of them match.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ..audit import RunResult, ScoreOptions, bias_measures, run_score
from ..corpus import Corpus
from .baselines import hard_debias
from ..errors import ArtifactError, BiasAuditWarning, ConfigError
from ..influence import rank, score_model
from ..io import MAX_DATA_BYTES, MAX_RECORD_BYTES, atomic_write_text, claim_folder, read_json, same_config, write_json
from ..models.base import family_of, retrain_model, train_or_load
from ..models.embeddings import evaluate_vectors
from ..wordsets import BiasTest
from .plan import RANKED_CONDITIONS, ExperimentSpec, build_plan, parse_ks
from .summary import _mean, leaderboard, summarise

RUN_FILE = r"(baseline|[a-z]+-[0-9a-f]{12})-s\d+\.json"   # runs/<edit id>-s<seed>.json
EXPERIMENT_FILES = ("experiment-config.json", "scores.json", "results.csv", "summary.csv", "experiment.json",
                    "report.html", "runs", "score")


# ------------------------------------------------------------------ one retrain (runs on a worker)
@dataclass(frozen=True)
class Task:
    run_id: str
    kind: str                 # baseline | remove | upweight
    ids: tuple = ()           # documents removed / upweighted
    times: int = 1            # copies in all, for upweight
    seed: int = 1
    out_file: str = ""
    swaps: object = None      # swap / augment / augment-all: the swap list of the rewrites
    config_sha256: str = ""   # the experiment's config (``config_hash``): carried by the record, checked on resume


def run_task(task: Task, corpus: Corpus, config, mode: str, warm_epochs: int,
             tests: list[BiasTest], heldout: dict[str, BiasTest], cache: str | None,
             with_quality: bool = True, templates=None) -> dict:
    """Train (or edit) one model, measure it, write ``task.out_file`` atomically and return the record."""
    t0 = time.perf_counter()
    cfg = replace(config, seed=task.seed)
    fam = family_of(cfg)
    if task.kind == "baseline":
        model, _ = train_or_load(corpus, cfg, cache=Path(cache) if cache else None)
    else:
        edited = {"remove": lambda: corpus.without(task.ids),
                  "upweight": lambda: corpus.upweight(task.ids, task.times),
                  "swap": lambda: corpus.swapped(task.ids, task.swaps),
                  "augment": lambda: corpus.augmented(task.ids, task.swaps),
                  "augment-all": lambda: corpus.augmented(None, task.swaps)}[task.kind]()
        if mode == "scratch":
            model = retrain_model(edited, cfg, corpus)
        elif mode == "masked":        # the same run with the edited documents' weights at 0 (or e copies)
            if task.kind not in ("remove", "upweight"):
                raise ConfigError(f"--mode masked takes removals and upweights, not {task.kind}")
            pos = {d.id: i for i, d in enumerate(corpus)}
            weights = np.ones(len(pos))
            weights[[pos[i] for i in task.ids]] = 0.0 if task.kind == "remove" else float(task.times)
            model = fam.retrain_weighted(corpus, cfg, weights)
        else:
            base, _ = train_or_load(corpus, cfg, cache=Path(cache) if cache else None)
            if mode == "warm-start":
                model = fam.warm_start(base, edited, cfg, warm_epochs)
            else:
                if task.kind not in ("remove", "upweight"):
                    raise ConfigError(f"--mode undo takes removals and upweights, not {task.kind}")
                sign = 1.0 if task.kind == "remove" else -(task.times - 1)
                model = fam.undo(base, corpus, task.ids, sign, warm_epochs)
    rec = {"run_id": task.run_id, "kind": task.kind, "n_docs": len(task.ids), "times": task.times,
           "seed": task.seed, "mode": mode, "config_sha256": task.config_sha256,
           **fam.evaluate(model, tests, heldout, with_quality, templates)}
    if task.kind == "baseline" and fam.word_vectors:
        gendered = {w for t in tests for s in (t.target_x, t.target_y) for w in s.words}
        gendered |= {w for h in heldout.values() for s in (h.target_x, h.target_y) for w in s.words}
        try:
            hd = hard_debias(model, gendered)
            rec["hard_debias"] = evaluate_vectors(model.vocab.index_to_key, hd, tests, heldout, with_quality)
        except ConfigError as e:
            rec["hard_debias"] = {"error": str(e)}
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    trained = (getattr(model, "meta", None) or {}).get("train_seconds")
    if task.kind == "baseline" and trained:   # its training time as measured, also where the cache supplied it
        rec["train_seconds"] = round(float(trained), 2)
    write_json(task.out_file, rec)
    return rec


# ------------------------------------------------------------------ the folder
def config_hash(config: dict) -> str:
    """sha256 of an experiment's config (``ExperimentSpec.to_config``), on every run record: a resume reuses its own."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def default_folder(spec: ExperimentSpec, reports_dir: str | Path = "reports") -> Path:
    """``reports/<corpus>-<model family>-experiment-<hash of the spec>``."""
    key = config_hash(spec.to_config())[:8]
    return Path(reports_dir) / f"{spec.corpus.name}-{family_of(spec.model).name}-experiment-{key}"


def prepare_output(out_dir: Path, config: dict, overwrite: bool):
    """Claim ``out_dir`` for this experiment (``biasaudit.io.claim_folder``): a folder holding another experiment
    is refused unless ``overwrite``, which deletes that experiment's files (and only those) first."""
    out = claim_folder(out_dir, "experiment", config, overwrite, known=EXPERIMENT_FILES,
                       file_patterns={"runs": RUN_FILE})
    if out.manifest is not None and not same_config(out):
        out.remove_owned()
    out.begin()
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "experiment-config.json", config)
    return out


def _read_run(path: Path, run_id: str, config_sha256: str) -> dict | None:
    """A finished run's record, or None (with a warning) when the file is damaged or was made with another config
    (another run writing the same folder): the run is done again. The record is read without following a link
    (``claim_folder`` refused a linked ``runs``), and only the file inside the folder is ever removed."""
    try:
        rec = read_json(path, "run record", MAX_RECORD_BYTES, follow=False)
        if not (isinstance(rec, dict) and rec.get("run_id") == run_id and isinstance(rec.get("effects"), dict)
                and isinstance(rec.get("heldout_effects"), dict)):
            raise ArtifactError(f"{path}: corrupted run record (fields missing)")
        if rec.get("config_sha256") != config_sha256:
            raise ArtifactError(f"{path}: a run record of another config (config_sha256 "
                                f"{str(rec.get('config_sha256'))[:12] or 'missing'}, this run's {config_sha256[:12]})")
        return rec
    except ArtifactError as e:
        warnings.warn(f"{e}; that training run is done again", BiasAuditWarning, stacklevel=2)
        if not path.parent.is_symlink():
            path.unlink(missing_ok=True)
        return None


def _rankings(spec, base_model, corpus, targets, kept_tests, stats, saved: Path, progress, log,
              ensemble_models=(), ensemble_targets=()):
    """Each estimator's scores of every document for every kept test, from ``saved`` when it holds this very
    corpus, model, tests and estimators; with the saved group predictions and the scorers' predictors (for the
    estimators scored now)."""
    key = {"corpus": corpus.hash, "model": spec.model.to_dict(), "tests": [t.to_dict() for t in kept_tests],
           "estimators": [e.to_dict() for e in spec.estimators]}
    if spec.ranking_model is not None:
        key["model_files"] = spec.model_files
    if spec.ensemble > 1:
        key["ensemble"] = spec.ranking_seeds
    rank_key = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    scores, doc_ids, solver_info, predictions, bias, predictors, results = {}, None, {}, {}, {}, {}, {}
    linear_added, selected, seconds = {}, {}, {}
    if saved.exists() or saved.is_symlink():
        try:
            old = read_json(saved, "rankings file", MAX_DATA_BYTES, follow=False)
            if old.get("key") == rank_key and set(old["scores"]) == {e.label for e in spec.estimators}:
                doc_ids = old["doc_ids"]
                scores = {e: {t: np.asarray(v) for t, v in by.items()} for e, by in old["scores"].items()}
                solver_info = old.get("solver_info", {})
                predictions = dict(old.get("predictions", {}))
                linear_added = dict(old.get("linear_added", {}))
                selected = dict(old.get("selected", {}))
                bias = dict(old.get("bias", {}))
                seconds = dict(old.get("seconds", {}))
                if len(doc_ids) != stats.n_documents:
                    raise ValueError("document count differs")
                log(f"reusing the rankings in {saved}")
        except (ArtifactError, KeyError, TypeError, ValueError, AttributeError):
            scores, doc_ids, solver_info, predictions, bias, linear_added = {}, None, {}, {}, {}, {}
            seconds, selected = {}, {}
    for est in spec.estimators:
        if est.label in scores:
            continue
        t_est = time.perf_counter()
        # the same estimator on every ensemble seed's model; ranked by the mean (influence.rank)
        r, _ = rank(base_model, corpus, targets, est, ensemble_models, ensemble_targets, spec.ranking_seeds,
                    progress=progress)
        if ensemble_models:
            r.timings["total"] = time.perf_counter() - t_est
        doc_ids = r.doc_ids
        scores[est.label] = {t.name: r.delta_bias_if_removed[t.name] for t in targets}
        bias[est.label] = dict(r.bias_value)
        predictors[est.label] = r.predictor      # the first estimator's result, for the report's score folder:
        results[est.label] = None if ensemble_models or est is not spec.estimators[0] else (r, targets)
        conv = "; ".join(f"{n}: {i['iterations']} iterations, residual {i['relative_residual']:.1e}"
                         for n, i in r.solver_info.items() if "iterations" in i)
        log(f"scored {len(doc_ids)} documents with {est.label} in {r.timings['total']:.1f} s"
            + (f" ({conv})" if conv else ""))
        solver_info[est.label] = r.solver_info
        seconds[est.label] = round(time.perf_counter() - t_est, 3)
    return {"key": rank_key, "scores": scores, "doc_ids": doc_ids, "solver_info": solver_info,
            "predictions": predictions, "bias": bias, "predictors": predictors, "linear_added": linear_added,
            "seconds": seconds, "selected": selected, "results": results}


def _save_rankings(saved: Path, r: dict) -> None:
    atomic_write_text(saved, json.dumps(
        {"key": r["key"], "doc_ids": r["doc_ids"],
         "scores": {e: {t: np.asarray(v).tolist() for t, v in s.items()} for e, s in r["scores"].items()},
         "solver_info": r["solver_info"], "bias": r["bias"], "predictions": r["predictions"],
         "linear_added": r["linear_added"], "seconds": r.get("seconds", {}), "selected": r.get("selected", {})}))


def _predictor(r: dict, est_label: str, spec, base_model, corpus, targets, progress):
    """The estimator's group predictor (scoring again when the rankings were reused from scores.json)."""
    if est_label not in r["predictors"]:
        est = next(e for e in spec.estimators if e.label == est_label)
        res = score_model(base_model, corpus, targets, est, progress=progress)
        r["predictors"][est_label] = res.predictor
        r["bias"][est_label] = dict(res.bias_value)
    return r["predictors"][est_label]


def _selections(spec, r: dict, ks, tests, by: dict, base_model, corpus, targets, progress, log) -> dict:
    """``remove-selected``'s sets: for each estimator, test and k, ``influence.select.greedy_select`` on the
    estimator's group predictions (no goal: the move toward 0 as large as possible), from the toward-zero order of
    ``by`` (the scores documents are chosen by). Kept in ``r["selected"]`` (saved in scores.json, so a resumed run
    does not choose again). An estimator without group predictions (gradient-dot) has no such rows."""
    from ..influence.select import greedy_select, group_measure, toward_zero_order

    saved = r.setdefault("selected", {})
    out: dict = {}
    for est in spec.estimators:
        for t in tests:
            for label, k in ks:
                key = f"{est.label}|{t.name}|{label}"
                if key not in saved:
                    predictor = _predictor(r, est.label, spec, base_model, corpus, targets, progress)
                    if predictor is None:
                        saved[key] = None
                    else:
                        t0 = time.perf_counter()
                        bias = r["bias"][est.label][t.name]
                        order = toward_zero_order(by[est.label][t.name], bias)
                        sel = greedy_select(group_measure(predictor, t.name), order, k, bias, goal=None)
                        saved[key] = sel.order.tolist()
                        log(f"{est.label}, {t.name}, k {label}: greedy set of {len(sel.order)} chosen with "
                            f"{sel.n_predictions} group predictions in {time.perf_counter() - t0:.1f} s"
                            + (" (top-k kept: predicted better)" if sel.fallback else ""))
                if saved[key] is not None:
                    out.setdefault(est.label, {}).setdefault(t.name, {})[label] = np.asarray(saved[key], np.int64)
    return out


def _remeasure(plan, r: dict, spec, base_model, corpus, targets, progress, log) -> None:
    """The group prediction of every edit row (the measure re-run on the model moved by the edit's estimated
    parameter change), into ``r["predictions"]`` (saved, so a resumed run does not redo them)."""
    todo: dict[str, list] = {}
    for row in plan.rows:
        if row.docs is not None and row.key not in r["predictions"]:
            todo.setdefault(row.estimator, []).append(row)
    for est_label, rows in todo.items():
        predictor = _predictor(r, est_label, spec, base_model, corpus, targets, progress)
        if predictor is None:
            for row in rows:
                r["predictions"][row.key] = None
            continue
        t0 = time.perf_counter()
        reqs = []
        for row in rows:
            if row.swaps is None:
                reqs.append((row.test, row.docs, row.times))
                continue
            added = _rewrites(corpus, row)
            reqs.append((row.test, row.docs, row.times, added))
            lin = getattr(predictor, "linear_added", None)
            r["linear_added"][row.key] = None if lin is None else float(lin(row.test, added))
        values = _predict(predictor, rows, reqs, spec.fresh_seeds)
        r["predictions"].update({row.key: None if v is None else float(v) for row, v in zip(rows, values)})
        log(f"re-measured {len(rows)} group predictions of {est_label} in {time.perf_counter() - t0:.1f} s")
        note = getattr(predictor, "shrinkage_note", None) if spec.fresh_seeds else None    # an ensemble's
        for w in (w for w in rows if note and w.condition in RANKED_CONDITIONS):
            log(f"{est_label} / {w.test}: the prediction for its top {len(w.docs)} {note(w.test, w.docs, not w.times)}")


def _predict(predictor, rows, reqs, fresh: bool = True) -> list:
    """Each row's group prediction: a set the ranking chose, retrained on ``fresh`` seeds, as the predictor gives
    it (an ensemble's: shrunk); any other by the plain sums where the predictor has them (influence.ensemble)."""
    plain = getattr(predictor, "unshrunk", None)
    if plain is None:
        return predictor.predict(reqs)
    ranked = [fresh and row.condition in RANKED_CONDITIONS for row in rows]
    shrunk = iter(predictor.predict([q for q, r in zip(reqs, ranked) if r]))
    other = iter(plain().predict([q for q, r in zip(reqs, ranked) if not r]))
    return [next(shrunk) if r else next(other) for r in ranked]


def _rewrites(corpus, row) -> list:
    """The counterfactual rewrites a swap / augment row adds (those that change their document)."""
    want = None if len(row.docs) == corpus.scan().n_documents else set(int(i) for i in row.docs)
    out = []
    for i, d in enumerate(corpus):
        if want is None or i in want:
            cf = row.swaps.swap_document(d)
            if cf.text != d.text or cf.tokens != d.tokens:
                out.append(cf)
    return out


def _execute(todo: list[Task], done: dict, kw: dict, client, progress) -> None:
    """Run the tasks (baselines first: warm-start and undo need them, and they fill the model cache)."""
    todo = sorted(todo, key=lambda t: t.kind != "baseline")
    if client is None:
        for i, t in enumerate(todo):
            done[t.run_id] = run_task(t, **kw)
            if progress:
                progress("retraining", i + 1, len(todo))
        return
    from dask.distributed import as_completed

    n = 0
    for group in ([t for t in todo if t.kind == "baseline"], [t for t in todo if t.kind != "baseline"]):
        futures = [client.submit(run_task, t, pure=False, **kw) for t in group]
        for fut in as_completed(futures):
            rec = fut.result()
            done[rec["run_id"]] = rec
            n += 1
            if progress:
                progress("retraining", n, len(todo))


# ------------------------------------------------------------------ the whole experiment
def _check_remove_ids(spec, corpus) -> None:
    """An edit naming a document that is not there is an error, before any training."""
    if spec.remove_ids:
        ids = {d.id for d in corpus}
        absent = [i for i in spec.remove_ids if i not in ids]
        if absent:
            raise ConfigError(f"--remove-ids: {len(absent)} id(s) are not in corpus {corpus.name!r}: "
                              + ", ".join(repr(i) for i in absent[:5]) + (" ..." if len(absent) > 5 else ""))


def ranking_targets(spec, corpus, seeds, cache, log) -> tuple:
    """The model the rankings come from (the first seed's baseline, or the user's model) and its measures: the
    tests kept (dropped words logged) and, with ``rank_by="concept"``, their concept tests.
    Returns (model, targets, kept tests, concept tests)."""
    if spec.ranking_model is not None:
        base_model = spec.ranking_model
        log("rankings come from the given model; every baseline and edit is retrained with its settings "
            f"({family_of(spec.model).describe(spec.model)}, seeds {', '.join(map(str, seeds))})")
    else:
        base_model, _ = train_or_load(corpus, replace(spec.model, seed=spec.ranking_seeds[0]), cache=cache)
    targets, kept_tests, dropped, skipped = bias_measures(base_model, spec.tests, spec.strict_oov, spec.templates,
                                                          spec.min_word_count, corpus)
    for name, reason in skipped.items():
        log(f"{name}: skipped, {reason}")
    paired = {t.name for t in spec.tests if t.paired}
    for name, gone in dropped.items():
        if name not in skipped:
            log(f"{name}: dropped words not in the model's vocabulary (absent or under min_count)"
                + (" and the other word of their X-Y pair " if name in paired else " ")
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in gone.items()))
    concepts = []
    if spec.rank_by == "concept":      # rank by the audited test plus its concept test (swap-list targets)
        from ..swaps import concept_test
        fam = family_of(base_model)
        concepts = [concept_test(t, spec.heldout.get(t.name), spec.swaps,
                                 fam.known_words(base_model, {a for p in spec.swaps.pairs for a in p}))
                    for t in kept_tests]
        targets = targets + fam.bias_measures(base_model, concepts, spec.templates)
        log("ranking by concept: " + "; ".join(c.description for c in concepts))
    return base_model, targets, kept_tests, concepts


def ensemble_members(spec, corpus, measured: list, seeds, cache, log) -> tuple[list, list]:
    """--ensemble: the other ranking seeds' models and their measures of the ``measured`` tests."""
    ensemble_models, ensemble_targets = [], []
    for seed in spec.ranking_seeds[1:]:
        m, _ = train_or_load(corpus, replace(spec.model, seed=seed), cache=cache)
        ensemble_models.append(m)
        ensemble_targets.append(family_of(m).bias_measures(m, measured, spec.templates))
    if spec.ensemble > 1:
        log(f"rankings: the mean score over the models of seeds {', '.join(map(str, spec.ranking_seeds))}"
            + (f"; retraining on seeds {', '.join(map(str, seeds))}, which the ranking did not use"
               if spec.fresh_seeds else ""))
    return ensemble_models, ensemble_targets


def tasks_of(spec, plan, seeds, cfg_hash: str, out_dir: Path) -> list:
    """Every edit at every seed; LDS subsets at the same-seed and cross-seed seeds only (with their baselines)."""
    lds_ids = {e for e, _ in plan.lds}
    lds_seeds = sorted(set(spec.lds_seeds.values())) if plan.lds else []
    tasks = []
    for eid, (kind, ids, times, swaps) in plan.edits.items():
        in_rows = eid == "baseline" or any(p.edit == eid for p in plan.rows)
        run_seeds = list(seeds) if in_rows else []
        if eid in lds_ids or eid == "baseline":
            run_seeds += [s for s in lds_seeds if s not in run_seeds]
        for seed in run_seeds:
            run_id = f"{eid}-s{seed}"
            tasks.append(Task(run_id, kind, ids, times, seed, str(out_dir / "runs" / f"{run_id}.json"), swaps,
                              config_sha256=cfg_hash))
    return tasks


def retrain(spec, plan, corpus, seeds, kept_tests, config, out_dir, client, progress, log, cache) -> dict:
    """The training runs: those finished before (a resumed experiment) read back, the rest run. Returns each
    run's record by run id."""
    cfg_hash = config_hash(config)
    tasks = tasks_of(spec, plan, seeds, cfg_hash, out_dir)
    done = {t.run_id: rec for t in tasks if (Path(t.out_file).exists() or Path(t.out_file).is_symlink())
            and (rec := _read_run(Path(t.out_file), t.run_id, cfg_hash)) is not None}
    todo = [t for t in tasks if t.run_id not in done]
    log(f"{len(tasks)} training runs: {len(done)} already finished, {len(todo)} to run")
    kw = dict(corpus=corpus, config=spec.model, mode=spec.mode, warm_epochs=spec.warm_epochs,
              tests=kept_tests, heldout=spec.heldout, cache=str(cache) if cache else None,
              with_quality=spec.quality, templates=spec.templates)
    _execute(todo, done, kw, client, progress)
    return done


FLOOR = "lexical (floor)"


def lexical_floor(spec, base_model, corpus, targets, lds_edits) -> dict:
    """The lexical estimator's scores (no model enters; milliseconds), for the LDS rows beside the estimators asked
    for: the floor each has to beat, in every leaderboard with LDS. Empty without LDS or when lexical was asked."""
    from ..influence.estimators import LexicalConfig
    if not lds_edits or any(isinstance(e, LexicalConfig) for e in spec.estimators):
        return {}
    r, _ = rank(base_model, corpus, targets, LexicalConfig(), [], [], spec.ranking_seeds)
    return {FLOOR: {t.name: r.delta_bias_if_removed[t.name] for t in targets}}


def add_run_facts(summary: dict, spec, ranked: dict, done: dict, base_model, kept_tests) -> None:
    """The solver, scoring times, the leaderboard and (for a given model) its own effects, added to the summary."""
    summary["solver_info"] = ranked["solver_info"]
    summary["scoring_seconds"] = ranked.get("seconds", {})
    summary["leaderboard"] = leaderboard(summary, ranked.get("seconds", {}),
                                         _mean([r.get("train_seconds", r.get("seconds")) for r in done.values()
                                                if r.get("kind") == "baseline"]))
    if spec.ranking_model is not None:   # the user's model beside the baselines retrained with its settings
        fam = family_of(base_model)
        summary["given_model"] = {"origin": base_model.meta.get("origin"),
                                  "effects": fam.evaluate(base_model, kept_tests, {}, False, spec.templates)["effects"]}


def run_experiment(spec: ExperimentSpec, out_dir: Path, overwrite: bool = False, client=None,
                   progress=None, log=None, cache: Path | None = None) -> RunResult:
    """Run (or resume) the experiment into ``out_dir``; returns the folder and the summary written to
    experiment.json."""
    t_start = time.perf_counter()
    corpus = spec.corpus
    stats = corpus.scan()
    config = spec.to_config()
    out_dir = Path(out_dir)
    ks = parse_ks(spec.ks, stats.n_documents)
    _check_remove_ids(spec, corpus)
    out = prepare_output(out_dir, config, overwrite)
    seeds = spec.seed_list
    log = log or (lambda msg: None)

    # rankings: from the first seed's baseline model (or the user's model), one score pass per estimator
    base_model, targets, kept_tests, concepts = ranking_targets(spec, corpus, seeds, cache, log)
    ensemble_models, ensemble_targets = ensemble_members(spec, corpus, kept_tests + concepts, seeds, cache, log)
    ranked = _rankings(spec, base_model, corpus, targets, kept_tests + concepts, stats, out_dir / "scores.json",
                       progress, log, ensemble_models, ensemble_targets)
    scores, doc_ids = ranked["scores"], ranked["doc_ids"]
    select = None
    if concepts:
        select = {e: {t.name: by[t.name] + by[c.name] for t, c in zip(kept_tests, concepts)}
                  for e, by in scores.items()}
    selected = None
    if spec.select == "greedy":        # remove-selected: chosen as sets on the group predictions
        selected = _selections(spec, ranked, ks, kept_tests, select or scores, base_model, corpus, targets,
                               progress, log)
    plan = build_plan(spec, scores, doc_ids, ks, kept_tests, select, selected)
    _remeasure(plan, ranked, spec, base_model, corpus, targets, progress, log)
    _save_rankings(out_dir / "scores.json", ranked)
    done = retrain(spec, plan, corpus, seeds, kept_tests, config, out_dir, client, progress, log, cache)

    bounds = {t.name: t.bound for t in targets}
    floor = lexical_floor(spec, base_model, corpus, targets, plan.lds)
    summary, results_csv, summary_csv = summarise(spec, plan.rows, done, seeds, ks, scores, plan.lds, stats,
                                                  ranked["predictions"], ranked["bias"], bounds,
                                                  ranked["linear_added"], floor)
    # the first estimator's score outputs (top documents with their text) for the report, from its ranking above
    # where it was scored now (else scored again); no metasmoothness check: the experiment measures retraining
    run_score(base_model, corpus, spec.tests, ScoreOptions(
        spec.estimators[0], out_dir=out_dir / "score", overwrite=True, strict_oov=spec.strict_oov,
        templates=spec.templates, min_word_count=spec.min_word_count, metasmoothness=0), progress=progress,
        scored=ranked["results"].get(spec.estimators[0].label))
    add_run_facts(summary, spec, ranked, done, base_model, kept_tests)
    summary["run_seconds"] = round(time.perf_counter() - t_start, 1)
    summary["train_seconds_per_run"] = _mean([r.get("seconds") for r in done.values()])
    with out.stage() as tmp:
        atomic_write_text(tmp / "results.csv", results_csv)
        atomic_write_text(tmp / "summary.csv", summary_csv)
        write_json(tmp / "experiment.json", summary)
    return RunResult(out_dir, MappingProxyType(summary))
