"""``biasaudit experiment``: retrain with the ranked documents removed or upweighted, against random removal, over
paired seeds, and measure whether the bias moves as the influence scores predicted.

Design, decided here:
- Rankings come from the baseline model of the first seed (the model ``biasaudit score`` audits). Removal sets:
  ``remove-top`` = the k documents with the most negative ``delta_bias_if_removed`` (they drive the bias up),
  ``remove-bottom`` = the k most positive, ``upweight-top`` = the top k repeated ``upweight`` times in all,
  ``remove-random`` = k documents drawn with a fixed seed (shared by all tests and estimators), ``remove-ids`` =
  a set the user names. ``hard-debias`` is Bolukbasi et al. 2016's neutralize step on each baseline model (no
  retraining).
- Seeds are paired: condition c at seed s is trained with the same seed (initialisation and sampling) as the
  baseline at seed s, and every change is measured against that baseline.
- Predicted effect size = baseline effect size + the summed ``delta_bias_if_removed`` of the removed documents
  (removal) or + (upweight - 1) x the summed ``delta_bias_if_upweighted`` (upweighting).
- Every retrain is one task: its result is written atomically to ``runs/<run id>.json`` as soon as it ends; a
  rerun skips finished runs. Identical edits (e.g. the same top set under two estimators) are trained once.
- Tasks go to Dask (``--scheduler``: ``local`` by default, an address, or ``none`` for in-process).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .corpus import Corpus, MemoryCorpus
from .errors import ArtifactError, ConfigError
from .io import atomic_write_text, write_json
from .metrics import associations, effect_size
from .models.registry import model_name, score_model, train_model, train_or_load_model
from .models.skipgram import SkipGramConfig, SkipGramModel
from .wordsets import BiasTest

CONDITIONS = ("baseline", "remove-top", "remove-bottom", "upweight-top", "remove-random", "remove-ids",
              "hard-debias")
DEFAULT_CONDITIONS = ("baseline", "remove-top", "remove-bottom", "upweight-top", "remove-random", "hard-debias")
MODES = ("scratch", "warm-start", "undo")
RANDOM_SEED = 12345

# Bolukbasi et al. 2016's definitional pairs (female, male) for the gender direction
DEFINITIONAL_PAIRS = [("woman", "man"), ("girl", "boy"), ("she", "he"), ("mother", "father"),
                      ("daughter", "son"), ("gal", "guy"), ("female", "male"), ("her", "his"),
                      ("herself", "himself"), ("mary", "john")]


def parse_k(item: str) -> float | int:
    """One ``--k`` size: a percentage in (0, 100) as a float fraction, or a count >= 1 as an int."""
    item = item.strip()
    try:
        value = float(item[:-1]) if item.endswith("%") else int(item)
    except ValueError as e:
        raise ConfigError(f"--k: {item!r} is neither a percentage (0.1%) nor a count") from e
    if item.endswith("%"):
        if not 0 < value < 100:
            raise ConfigError(f"--k: {item} is not a percentage between 0 and 100")
        return value / 100
    if value < 1:
        raise ConfigError(f"--k: {item} is not a count of at least 1")
    return value


def parse_ks(spec: str, n_docs: int) -> list[tuple[str, int]]:
    """``0.1%,0.5%,1%`` or counts ``100,500`` -> [(label, count)]; each count at least 1 and below n_docs."""
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        v = parse_k(item)
        n = max(1, round(v * n_docs)) if isinstance(v, float) else v
        if n >= n_docs:
            raise ConfigError(f"--k: {item} is {n} documents, not fewer than the corpus's {n_docs}")
        out.append((item, n))
    if not out:
        raise ConfigError("--k: give at least one size")
    labels = [l for l, _ in out]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--k: a size is given twice ({spec})")
    return out


# ------------------------------------------------------------------ measuring one model
def _effect(model_words: dict, vectors: np.ndarray, test: BiasTest) -> float | None:
    """WEAT effect size on the test's in-vocabulary words (None when a set keeps fewer than 2)."""
    sets = []
    for s in test.sets:
        idx = [model_words[w] for w in s.words if w in model_words]
        if len(idx) < 2:
            return None
        sets.append(vectors[idx])
    X, Y, A, B = sets
    return effect_size(associations(X, A, B), associations(Y, A, B))


def measure(words, vectors: np.ndarray, tests: list[BiasTest], heldout: dict[str, BiasTest],
            with_quality: bool = True) -> dict:
    from .quality import quality

    k2i = {w: i for i, w in enumerate(words)}
    out = {"effects": {t.name: _effect(k2i, vectors, t) for t in tests},
           "heldout_effects": {name: _effect(k2i, vectors, h) for name, h in heldout.items()}}
    if with_quality:
        out["quality"] = quality(words, vectors)
    return out


def measure_lm(model, tests: list[BiasTest], heldout: dict[str, BiasTest], templates=None) -> dict:
    """Template-association effect sizes of a language model (None where a set keeps fewer than 2 known words),
    and its mean training loss per token as the quality figure."""
    from .errors import VocabularyError
    from .lm_metrics import template_measure

    def effect(t):
        try:
            return template_measure(t, model, templates, allow_oov=True)[0].stats(model.net, n_permutations=1,
                                                                                   n_bootstrap=0)["effect_size"]
        except VocabularyError:
            return None

    loss = model.meta.get("loss_per_epoch") or [None]
    return {"effects": {t.name: effect(t) for t in tests},
            "heldout_effects": {name: effect(h) for name, h in heldout.items()},
            "quality": {"train_loss_per_token": loss[-1]}}


def hard_debias(model: SkipGramModel, gendered: set[str]) -> np.ndarray:
    """Bolukbasi et al. 2016, neutralize step: unit-normalise every vector, take the gender direction as the first
    principal component of the centred definitional pairs, and remove it from every word not in ``gendered``
    (the definitional words and the tests' target words). The equalize step is not applied."""
    k2i = model.vocab.key_to_index
    V = model.vectors / np.linalg.norm(model.vectors, axis=1, keepdims=True).clip(1e-12)
    diffs = []
    for f, m in DEFINITIONAL_PAIRS:
        if f in k2i and m in k2i:
            centre = (V[k2i[f]] + V[k2i[m]]) / 2
            diffs += [V[k2i[f]] - centre, V[k2i[m]] - centre]
    if len(diffs) < 4:
        raise ConfigError("hard-debias: fewer than 2 definitional gender pairs are in the vocabulary")
    g = np.linalg.svd(np.array(diffs), full_matrices=False)[2][0]
    keep = np.array([w in gendered or w in {x for p in DEFINITIONAL_PAIRS for x in p} for w in model.vocab.index_to_key])
    out = V - np.outer(V @ g, g)
    out[keep] = V[keep]
    return out


# ------------------------------------------------------------------ one retrain (runs on a worker)
@dataclass
class Task:
    run_id: str
    kind: str                 # baseline | remove | upweight
    ids: tuple = ()           # documents removed / upweighted
    times: int = 1            # copies in all, for upweight
    seed: int = 1
    out_file: str = ""


def _warm_start(base: SkipGramModel, corpus: Corpus, config: SkipGramConfig, epochs: int) -> SkipGramModel:
    """Continue training the baseline model on the edited corpus for ``epochs`` epochs (gensim)."""
    from gensim.models import Word2Vec

    from .models.skipgram import _stable_hash
    from .vocab import MAX_CHUNK, TokenStream

    w2v = Word2Vec(vector_size=config.vector_size, window=config.window, min_count=config.min_count,
                   sample=config.sample, seed=config.seed, workers=config.workers, sg=1, hs=0,
                   negative=config.negative, ns_exponent=config.ns_exponent, alpha=config.alpha,
                   min_alpha=config.min_alpha, hashfxn=_stable_hash, shrink_windows=config.shrink_windows)
    w2v.build_vocab_from_freq({w: int(c) for w, c in zip(base.vocab.index_to_key, base.vocab.counts)})
    order = [base.vocab.key_to_index[w] for w in w2v.wv.index_to_key]
    w2v.wv.vectors[:] = base.vectors[order]
    w2v.syn1neg[:] = base.output_vectors[order]
    stream = TokenStream(corpus, MAX_CHUNK)
    n_chunks = sum(1 for _ in stream)
    w2v.train(corpus_iterable=stream, total_examples=n_chunks, epochs=epochs)
    back = [w2v.wv.key_to_index[w] for w in base.vocab.index_to_key]
    return replace(base, vectors=np.array(w2v.wv.vectors[back]), output_vectors=np.array(w2v.syn1neg[back]))


def _undo(base: SkipGramModel, corpus: Corpus, task: Task, epochs: int) -> SkipGramModel:
    """The paper's check: gradient ascent on the removed documents' expected loss (descent on the added copies'),
    ``epochs`` steps at the mean learning rate of training."""
    import torch

    from .models.skipgram_objective import SkipGramObjective

    docs = [d for d in corpus if d.id in set(task.ids)]
    sign = 1.0 if task.kind == "remove" else -(task.times - 1)
    lr = (base.config.alpha + base.config.min_alpha) / 2
    model = base
    for _ in range(epochs):
        o = SkipGramObjective(model, MemoryCorpus(docs, "edit"))
        gU, gC = o.gradient()
        model = replace(model, vectors=(o.U + sign * lr * gU).to(torch.float32).numpy(),
                        output_vectors=(o.C + sign * lr * gC).to(torch.float32).numpy())
    return model


def run_task(task: Task, corpus: Corpus, config: SkipGramConfig, mode: str, warm_epochs: int,
             tests: list[BiasTest], heldout: dict[str, BiasTest], cache: str | None,
             with_quality: bool = True, templates=None) -> dict:
    """Train (or edit) one model, measure it, write ``task.out_file`` atomically and return the record."""
    t0 = time.perf_counter()
    cfg = replace(config, seed=task.seed)
    if task.kind == "baseline":
        model, _ = train_or_load_model(corpus, cfg, cache=Path(cache) if cache else None)
    else:
        edited = corpus.without(task.ids) if task.kind == "remove" else corpus.upweight(task.ids, task.times)
        if mode == "scratch":
            model = train_model(edited, cfg)
        else:
            base, _ = train_or_load_model(corpus, cfg, cache=Path(cache) if cache else None)
            model = (_warm_start(base, edited, cfg, warm_epochs) if mode == "warm-start"
                     else _undo(base, corpus, task, warm_epochs))
    from .models.lm import LMModel

    is_lm = isinstance(model, LMModel)
    rec = {"run_id": task.run_id, "kind": task.kind, "n_docs": len(task.ids), "times": task.times,
           "seed": task.seed, "mode": mode,
           **(measure_lm(model, tests, heldout, templates) if is_lm else
              measure(model.vocab.index_to_key, model.vectors, tests, heldout, with_quality))}
    if task.kind == "baseline" and not is_lm:
        gendered = {w for t in tests for s in (t.target_x, t.target_y) for w in s.words}
        gendered |= {w for h in heldout.values() for s in (h.target_x, h.target_y) for w in s.words}
        try:
            hd = hard_debias(model, gendered)
            rec["hard_debias"] = measure(model.vocab.index_to_key, hd, tests, heldout, with_quality)
        except ConfigError as e:
            rec["hard_debias"] = {"error": str(e)}
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(task.out_file, rec)
    return rec


# ------------------------------------------------------------------ the whole experiment
@dataclass
class ExperimentSpec:
    corpus: Corpus
    model: SkipGramConfig
    tests: list[BiasTest]
    heldout: dict[str, BiasTest]
    estimators: list            # EstimatorConfig
    ks: str = "0.1%,0.5%,1%"
    seeds: int = 3
    conditions: tuple = DEFAULT_CONDITIONS
    upweight: int = 5
    mode: str = "scratch"
    warm_epochs: int = 1
    remove_ids: tuple = ()
    lds: int = 0
    lds_fraction: float = 0.5
    quality: bool = True
    strict_oov: bool = False   # fail on test words missing from the vocabulary instead of dropping them
    templates: tuple | None = None   # LM template association (None: the bundled templates)
    extra: dict = field(default_factory=dict)

    def validate(self):
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad:
            raise ConfigError(f"--conditions: unknown {', '.join(bad)} (known: {', '.join(CONDITIONS)})")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.seeds < 1 or self.upweight < 2 or self.warm_epochs < 1 or self.lds < 0:
            raise ConfigError("--seeds >= 1, --upweight >= 2, --warm-epochs >= 1 and --lds >= 0 are required")
        if "remove-ids" in self.conditions and not self.remove_ids:
            raise ConfigError("condition remove-ids needs --remove-ids FILE")
        if model_name(self.model) != "skipgram" and self.mode != "scratch":
            raise ConfigError(f"--mode {self.mode} is implemented for skip-gram only; use --mode scratch")
        if model_name(self.model) == "lm" and "hard-debias" in self.conditions:
            raise ConfigError("condition hard-debias projects word vectors; it does not apply to --model lm")
        if not 0 < self.lds_fraction < 1:
            raise ConfigError("--lds-fraction must be in (0, 1)")

    def to_config(self) -> dict:
        return {"corpus": {"name": self.corpus.name, "hash": self.corpus.hash}, "model_family": model_name(self.model),
                "model": self.model.to_dict(),
                "tests": [t.to_dict() for t in self.tests],
                "heldout": {k: v.to_dict() for k, v in self.heldout.items()},
                "estimators": [e.to_dict() for e in self.estimators], "ks": self.ks, "seeds": self.seeds,
                "conditions": list(self.conditions), "upweight": self.upweight, "mode": self.mode,
                "warm_epochs": self.warm_epochs,
                "remove_ids_sha256": hashlib.sha256("\n".join(sorted(self.remove_ids)).encode()).hexdigest(),
                "lds": self.lds, "lds_fraction": self.lds_fraction, "quality": self.quality,
                **({"templates": list(self.templates)} if self.templates else {})}


def _edit_id(kind: str, ids, times: int = 1) -> str:
    h = hashlib.sha256(f"{kind}|{times}|".encode() + "\n".join(sorted(ids)).encode("utf-8")).hexdigest()
    return f"{kind}-{h[:12]}"


EXPERIMENT_FILES = ("experiment-config.json", "scores.json", "results.csv", "experiment.json", "report.html",
                    "runs", "score")


def prepare_output(out_dir: Path, config: dict, overwrite: bool):
    """Claim ``out_dir`` for this experiment (``biasaudit.io.claim_folder``): a folder holding another experiment
    is refused unless ``overwrite``, which deletes that experiment's files (and only those) first."""
    from .io import claim_folder, same_config

    out = claim_folder(out_dir, "experiment", config, overwrite, known=EXPERIMENT_FILES)
    if out.manifest is not None and not same_config(out):
        out.remove_owned()
    out.begin()
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "experiment-config.json", config)
    return out


def _read_run(path: Path, run_id: str) -> dict | None:
    """A finished run's record, or None (with a warning) when the file is damaged: the run is done again."""
    import warnings

    from .errors import BiasAuditWarning
    from .io import read_json

    try:
        rec = read_json(path, "run record")
        if not (isinstance(rec, dict) and rec.get("run_id") == run_id and isinstance(rec.get("effects"), dict)
                and isinstance(rec.get("heldout_effects"), dict)):
            raise ArtifactError(f"{path}: corrupted run record (fields missing)")
        return rec
    except ArtifactError as e:
        warnings.warn(f"{e}; that training run is done again", BiasAuditWarning, stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def run_experiment(spec: ExperimentSpec, out_dir: Path, overwrite: bool = False, client=None,
                   progress=None, log=None, cache: Path | None = None) -> dict:
    """Run (or resume) the experiment into ``out_dir``; returns the summary written to experiment.json."""
    from .models.registry import bias_measures

    spec.validate()
    t_start = time.perf_counter()
    corpus = spec.corpus
    stats = corpus.scan()
    config = spec.to_config()
    out_dir = Path(out_dir)
    ks = parse_ks(spec.ks, stats.n_documents)
    if spec.remove_ids:   # an edit naming a document that is not there is an error, before any training
        ids = {d.id for d in corpus}
        absent = [i for i in spec.remove_ids if i not in ids]
        if absent:
            raise ConfigError(f"--remove-ids: {len(absent)} id(s) are not in corpus {corpus.name!r}: "
                              + ", ".join(repr(i) for i in absent[:5]) + (" ..." if len(absent) > 5 else ""))
    out = prepare_output(out_dir, config, overwrite)
    seeds = [spec.model.seed + i for i in range(spec.seeds)]
    log = log or (lambda msg: None)

    # rankings: from the first seed's baseline model, one score pass per estimator
    base_model, _ = train_or_load_model(corpus, replace(spec.model, seed=seeds[0]), cache=cache)
    targets, kept_tests, dropped, skipped = bias_measures(base_model, spec.tests, spec.strict_oov, spec.templates)
    for name, reason in skipped.items():
        log(f"{name}: skipped, {reason}")
    for name, gone in dropped.items():
        if name not in skipped:
            log(f"{name}: dropped out-of-vocabulary words " + "; ".join(f"{k}: {', '.join(v)}" for k, v in gone.items()))
    scores, doc_ids, solver_info = {}, None, {}
    saved = out_dir / "scores.json"
    # the rankings are reused only for this very corpus, model, tests and estimators
    rank_key = hashlib.sha256(json.dumps({"corpus": stats.hash, "model": spec.model.to_dict(),
                                          "tests": [t.to_dict() for t in kept_tests],
                                          "estimators": [e.to_dict() for e in spec.estimators]},
                                         sort_keys=True).encode()).hexdigest()
    if saved.exists():
        try:
            old = json.loads(saved.read_text(encoding="utf-8"))
            if old.get("key") == rank_key and set(old["scores"]) == {e.label for e in spec.estimators}:
                doc_ids = old["doc_ids"]
                scores = {e: {t: np.asarray(v) for t, v in by.items()} for e, by in old["scores"].items()}
                solver_info = old.get("solver_info", {})
                if len(doc_ids) != stats.n_documents:
                    raise ValueError("document count differs")
                log(f"reusing the rankings in {saved}")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            scores, doc_ids, solver_info = {}, None, {}
    for est in spec.estimators:
        if est.label in scores:
            continue
        r = score_model(base_model, corpus, targets, est, progress=progress)
        doc_ids = r.doc_ids
        scores[est.label] = {t.name: r.delta_bias_if_removed[t.name] for t in targets}
        conv = "; ".join(f"{n}: {i['iterations']} iterations, residual {i['relative_residual']:.1e}"
                         for n, i in r.solver_info.items() if "iterations" in i)
        log(f"scored {len(doc_ids)} documents with {est.label} in {r.timings['total']:.1f} s"
            + (f" ({conv})" if conv else ""))
        solver_info[est.label] = r.solver_info
    atomic_write_text(saved, json.dumps(
        {"key": rank_key, "doc_ids": doc_ids, "scores": {e: {t: np.asarray(v).tolist() for t, v in s.items()} for e, s in scores.items()},
         "solver_info": solver_info}))
    pos = {d: i for i, d in enumerate(doc_ids)}

    # edits: (edit id) -> (kind, ids, times); rows reference edits
    edits: dict[str, tuple] = {"baseline": ("baseline", (), 1)}
    plan = []   # (estimator, test, condition, k label, k, edit id, predicted delta)
    rng = np.random.default_rng(RANDOM_SEED)
    random_sets = {}
    for label, k in ks:
        random_sets[label] = tuple(sorted(rng.choice(len(doc_ids), size=k, replace=False).tolist()))
    user_ids = tuple(spec.remove_ids)
    for est, by_test in scores.items():
        for t in kept_tests:
            s = by_test[t.name]
            order = np.argsort(s, kind="stable")
            plan.append((est, t.name, "baseline", "0", 0, "baseline", 0.0))
            for label, k in ks:
                sets = {"remove-top": ("remove", order[:k], 1), "remove-bottom": ("remove", order[::-1][:k], 1),
                        "upweight-top": ("upweight", order[:k], spec.upweight),
                        "remove-random": ("remove", np.array(random_sets[label]), 1)}
                for cond in spec.conditions:
                    if cond not in sets:
                        continue
                    kind, idx, times = sets[cond]
                    ids = tuple(doc_ids[i] for i in idx)
                    eid = _edit_id(kind, ids, times)
                    edits[eid] = (kind, ids, times)
                    pred = float(s[idx].sum()) if kind == "remove" else -(times - 1) * float(s[idx].sum())
                    plan.append((est, t.name, cond, label, k, eid, pred))
            if "remove-ids" in spec.conditions and user_ids:
                eid = _edit_id("remove", user_ids)
                edits[eid] = ("remove", user_ids, 1)
                plan.append((est, t.name, "remove-ids", str(len(user_ids)), len(user_ids), eid,
                             float(s[[pos[i] for i in user_ids]].sum())))
    lds_edits = []
    if spec.lds:
        lrng = np.random.default_rng(RANDOM_SEED + 1)
        n_drop = int(round(spec.lds_fraction * len(doc_ids)))
        for j in range(spec.lds):
            idx = np.sort(lrng.choice(len(doc_ids), size=n_drop, replace=False))
            ids = tuple(doc_ids[i] for i in idx)
            eid = _edit_id("remove", ids)
            edits[eid] = ("remove", ids, 1)
            lds_edits.append((eid, idx))

    # tasks: every edit at every seed (LDS subsets at the first seed only)
    lds_ids = {e for e, _ in lds_edits}
    tasks = []
    for eid, (kind, ids, times) in edits.items():
        for seed in (seeds[:1] if eid in lds_ids and not any(p[5] == eid for p in plan) else seeds):
            run_id = f"{eid}-s{seed}"
            tasks.append(Task(run_id, kind, ids, times, seed, str(out_dir / "runs" / f"{run_id}.json")))
    done = {t.run_id: rec for t in tasks if Path(t.out_file).exists()
            and (rec := _read_run(Path(t.out_file), t.run_id)) is not None}
    todo = [t for t in tasks if t.run_id not in done]
    log(f"{len(tasks)} training runs: {len(done)} already finished, {len(todo)} to run")
    kw = dict(corpus=corpus, config=spec.model, mode=spec.mode, warm_epochs=spec.warm_epochs,
              tests=kept_tests, heldout=spec.heldout, cache=str(cache) if cache else None,
              with_quality=spec.quality, templates=spec.templates)
    # baselines first: warm-start and undo need them, and they fill the model cache
    todo.sort(key=lambda t: t.kind != "baseline")
    if client is None:
        for i, t in enumerate(todo):
            done[t.run_id] = run_task(t, **kw)
            if progress:
                progress("retraining", i + 1, len(todo))
    else:
        from dask.distributed import as_completed

        base_tasks = [t for t in todo if t.kind == "baseline"]
        rest = [t for t in todo if t.kind != "baseline"]
        n = 0
        for group in (base_tasks, rest):
            futures = [client.submit(run_task, t, pure=False, **kw) for t in group]
            for fut in as_completed(futures):
                rec = fut.result()
                done[rec["run_id"]] = rec
                n += 1
                if progress:
                    progress("retraining", n, len(todo))

    summary, results_csv = summarise(spec, plan, done, seeds, ks, scores, lds_edits, stats)
    # the first estimator's score outputs (top documents with their text) for the report
    from .influence.report import run_score
    run_score(base_model, corpus, spec.tests, spec.estimators[0],
              out_dir=out_dir / "score", overwrite=True, strict_oov=spec.strict_oov, templates=spec.templates)
    summary["solver_info"] = solver_info
    summary["run_seconds"] = round(time.perf_counter() - t_start, 1)
    summary["train_seconds_per_run"] = _mean([r.get("seconds") for r in done.values()])
    with out.stage() as tmp:
        atomic_write_text(tmp / "results.csv", results_csv)
        write_json(tmp / "experiment.json", summary)
    return summary


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _sd(xs):
    xs = [x for x in xs if x is not None]
    return float(np.std(xs, ddof=1)) if len(xs) > 1 else None


RESULT_COLUMNS = ["estimator", "test", "condition", "k", "n_docs", "seed", "effect_size", "predicted_effect_size",
                  "baseline_effect_size", "heldout_effect_size", "baseline_heldout_effect_size", "wordsim353",
                  "simlex999", "analogy", "run_id"]


def summarise(spec, plan, runs, seeds, ks, scores, lds_edits, stats) -> tuple[dict, str]:
    """experiment.json's summary and results.csv's text, from the finished runs."""
    from scipy.stats import pearsonr, spearmanr, ttest_rel

    rows = []
    for est, test, cond, label, k, eid, pred in plan:
        for seed in seeds:
            base = runs[f"baseline-s{seed}"]
            b_eff, b_held = base["effects"].get(test), base["heldout_effects"].get(test)
            if cond == "hard-debias":
                continue
            rec = runs[f"{eid}-s{seed}"] if eid != "baseline" else base
            q = rec.get("quality", {})
            rows.append({"estimator": est, "test": test, "condition": cond, "k": label, "n_docs": k,
                         "seed": seed, "effect_size": rec["effects"].get(test),
                         "predicted_effect_size": None if b_eff is None else b_eff + pred,
                         "baseline_effect_size": b_eff, "heldout_effect_size": rec["heldout_effects"].get(test),
                         "baseline_heldout_effect_size": b_held, "wordsim353": q.get("wordsim353"),
                         "simlex999": q.get("simlex999"), "analogy": q.get("analogy"), "run_id": rec["run_id"]})
        if cond == "baseline" and "hard-debias" in spec.conditions:
            for seed in seeds:
                base = runs[f"baseline-s{seed}"]
                hd = base.get("hard_debias", {})
                if "effects" not in hd:
                    continue
                q = hd.get("quality", {})
                rows.append({"estimator": est, "test": test, "condition": "hard-debias", "k": "0", "n_docs": 0,
                             "seed": seed, "effect_size": hd["effects"].get(test), "predicted_effect_size": None,
                             "baseline_effect_size": base["effects"].get(test),
                             "heldout_effect_size": hd["heldout_effects"].get(test),
                             "baseline_heldout_effect_size": base["heldout_effects"].get(test),
                             "wordsim353": q.get("wordsim353"), "simlex999": q.get("simlex999"),
                             "analogy": q.get("analogy"), "run_id": base["run_id"] + "+hard-debias"})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})

    def change(r, key="effect_size", base="baseline_effect_size"):
        return None if r[key] is None or r[base] is None else r[key] - r[base]

    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["estimator"], r["test"], r["condition"], r["k"]), []).append(r)
    conditions = []
    for (est, test, cond, label), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        d = {"estimator": est, "test": test, "condition": cond, "k": label, "n_docs": rs[0]["n_docs"],
             "n_seeds": len(rs), "effect_size_mean": _mean([r["effect_size"] for r in rs]),
             "effect_size_sd": _sd([r["effect_size"] for r in rs]),
             "change_mean": _mean([change(r) for r in rs]), "change_sd": _sd([change(r) for r in rs]),
             "predicted_change_mean": _mean([None if r["predicted_effect_size"] is None else
                                             r["predicted_effect_size"] - r["baseline_effect_size"] for r in rs]),
             "heldout_effect_size_mean": _mean([r["heldout_effect_size"] for r in rs]),
             "heldout_change_mean": _mean([change(r, "heldout_effect_size", "baseline_heldout_effect_size")
                                           for r in rs]),
             "heldout_change_sd": _sd([change(r, "heldout_effect_size", "baseline_heldout_effect_size")
                                       for r in rs]),
             "wordsim353_mean": _mean([r["wordsim353"] for r in rs]),
             "simlex999_mean": _mean([r["simlex999"] for r in rs]), "analogy_mean": _mean([r["analogy"] for r in rs])}
        rand = groups.get((est, test, "remove-random", label))
        if cond not in ("remove-random", "baseline", "hard-debias") and rand:
            rand = sorted(rand, key=lambda r: r["seed"])
            a = [change(r) for r in rs]
            b = [change(r) for r in rand]
            if all(x is not None for x in a + b) and len(a) == len(b):
                d["difference_from_random"] = float(np.mean(np.subtract(a, b)))
                d["difference_from_random_p"] = (float(ttest_rel(a, b).pvalue) if len(a) > 1 and
                                                 np.std(np.subtract(a, b)) > 0 else None)
                ah = [change(r, "heldout_effect_size", "baseline_heldout_effect_size") for r in rs]
                bh = [change(r, "heldout_effect_size", "baseline_heldout_effect_size") for r in rand]
                if all(x is not None for x in ah + bh):
                    d["heldout_difference_from_random"] = float(np.mean(np.subtract(ah, bh)))
        conditions.append(d)

    correlation = []
    for est in scores:
        for t in spec.tests:
            pairs = [(r["predicted_effect_size"] - r["baseline_effect_size"], change(r)) for r in rows
                     if r["estimator"] == est and r["test"] == t.name and r["condition"] not in ("baseline", "hard-debias")
                     and r["predicted_effect_size"] is not None and change(r) is not None]
            if len(pairs) >= 3:
                p, a = np.array(pairs).T
                # calibration from the ranked edits only: random removal predicts about 0 and its ratio is noise
                ranked = np.array([r["condition"] not in ("remove-random",) for r in rows
                                   if r["estimator"] == est and r["test"] == t.name
                                   and r["condition"] not in ("baseline", "hard-debias")
                                   and r["predicted_effect_size"] is not None and change(r) is not None])
                keep = ranked & (np.abs(p) > 1e-9)
                ratio = a[keep] / p[keep]
                correlation.append({"estimator": est, "test": t.name, "n": len(pairs),
                                    "pearson": float(pearsonr(p, a)[0]) if np.std(p) > 0 and np.std(a) > 0 else None,
                                    "spearman": float(spearmanr(p, a)[0]) if np.std(p) > 0 and np.std(a) > 0 else None,
                                    "median_actual_over_predicted": float(np.median(ratio)) if len(ratio) else None,
                                    "ratio_over": "ranked edits (remove-top/bottom, upweight-top, remove-ids)"})
    lds = []
    if lds_edits:
        seed = seeds[0]
        base = runs[f"baseline-s{seed}"]
        for est, by_test in scores.items():
            for t in spec.tests:
                if base["effects"].get(t.name) is None:
                    continue
                pred = [float(by_test[t.name][idx].sum()) for _, idx in lds_edits]
                act = [runs[f"{eid}-s{seed}"]["effects"][t.name] - base["effects"][t.name] for eid, _ in lds_edits]
                lds.append({"estimator": est, "test": t.name, "n_subsets": len(lds_edits),
                            "fraction_removed": spec.lds_fraction,
                            "spearman": float(spearmanr(pred, act)[0]) if len(pred) > 2 else None})
    rand_sd = {}
    for d in conditions:
        if d["condition"] == "remove-random":
            rand_sd.setdefault(d["test"], {})[d["k"]] = d["change_sd"]
    return {"corpus": {"name": spec.corpus.name, **stats.to_dict()}, "model": spec.model.to_dict(),
            "seeds": seeds, "mode": spec.mode, "k": [{"label": l, "n_docs": n} for l, n in ks],
            "estimators": [e.label for e in spec.estimators], "tests": [t.name for t in spec.tests],
            "heldout": {k: v.name for k, v in spec.heldout.items()},
            "sign_convention": "delta_bias_if_removed < 0: the document drives the bias up",
            "conditions": conditions, "predicted_vs_actual": correlation, "lds": lds,
            "random_removal_change_sd": rand_sd,
            "scope": (f"effect sizes on the audited word lists and their held-out companions only; "
                      f"{len(seeds)} seed(s); random removal of the same size is the control")}, buf.getvalue()
