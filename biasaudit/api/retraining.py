"""The verbs that retrain and edit: ``experiment`` (does the bias move as predicted?) and ``debias_corpus``
(an edited corpus)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ConfigError
from .arguments import Log, Progress, _checked, _given_options, _reports_progress
from .loading import (
    _is_model,
    _more_seeds,
    _one_model,
    _sizes,
    _template_list,
    _test_specs,
    check_templates,
    estimators,
    run_config,
    load_corpus,
    read_templates,
)
from .results import DebiasResult, ExperimentResult


@dataclass(frozen=True)
class _ExperimentKeywords:
    """``experiment``'s settings given as keywords, before they are read into an ExperimentSpec; built through
    ``_checked`` (each of the wrong kind one ConfigError naming it)."""
    heldout: Any = None
    estimator: Any = None
    k: str = "0.1%,0.5%,1%"
    seeds: int = 3
    conditions: Any = None
    upweight: int = 5
    mode: str = "scratch"
    warm_epochs: int = 1
    remove_ids: Iterable[str] = ()
    lds: int = 0
    lds_fraction: float = 0.5
    ensemble: int = 1
    fresh_seeds: bool = False
    select: str = "top-k"
    quality: bool = True
    strict_oov: bool = False
    min_word_count: int = 1
    rank_by: str = "test"
    swaps: Any = None
    templates: Any = None
    measure: str = "weat"


def _experiment_settings(**settings) -> dict:
    """``experiment``'s keyword settings, checked, by name (``_ExperimentKeywords``' defaults for the rest)."""
    s = _checked(_ExperimentKeywords)(**settings)
    return {f.name: getattr(s, f.name) for f in fields(s)}


def _experiment_spec(model, corpus, tests, s: dict):
    """The ExperimentSpec of ``experiment``'s arguments: the model (or config) retrained, the corpus, the tests
    read with ``s["measure"]`` (and their held-out companions), the estimators, conditions, templates and swaps."""
    from ..audit import check_target_measure, read_tests_with
    from ..experiments import DEFAULT_CONDITIONS, ExperimentSpec
    from ..models import family_of
    from ..swaps import SwapList, load_swaps
    from ..wordsets import resolve_heldout, resolve_tests

    given = None
    if _is_model(model):
        config = getattr(model, "config", None)
        if config is None:
            raise ConfigError("experiment retrains: a model without a training config (a checkpoint) is "
                              "retrained by fine-tuning it (model_config('lm', finetune=...) or --finetune)")
        if (getattr(model, "meta", None) or {}).get("origin"):
            given = model
    elif hasattr(model, "family") and hasattr(model, "seed"):
        config = model
    else:
        raise ConfigError(f"model: {type(model).__name__} is neither a model nor a model config (model_config "
                          "makes one)")
    fam = family_of(config)
    k, measure = _sizes(s["k"]), s["measure"]
    conditions, swaps, templates = s["conditions"], s["swaps"], s["templates"]
    check_target_measure(fam, measure)
    corpus = load_corpus(corpus)
    resolved = read_tests_with(fam, resolve_tests(_test_specs(tests)), measure)
    if conditions is None:
        conditions = [c for c in DEFAULT_CONDITIONS if fam.word_vectors or c != "hard-debias"]
    elif isinstance(conditions, str):
        conditions = conditions.split(",")
    ests = estimators(s["estimator"], fam, None if given is not None else config)
    check_templates(fam, templates)
    tpl = None if templates is None else _template_list(templates)
    if swaps is not None and not isinstance(swaps, SwapList):
        swaps = load_swaps(swaps)
    heldout = s["heldout"]
    held = heldout if isinstance(heldout, dict) else resolve_heldout(resolved, heldout)
    return ExperimentSpec(corpus=corpus, model=config, tests=resolved, ranking_model=given,
                          heldout=dict(zip(held, read_tests_with(fam, list(held.values()), measure))),
                          estimators=ests, ks=k, seeds=s["seeds"], templates=tpl,
                          conditions=tuple(c.strip() for c in conditions if c.strip()), upweight=s["upweight"],
                          mode=s["mode"], warm_epochs=s["warm_epochs"],
                          remove_ids=tuple(dict.fromkeys(s["remove_ids"])), lds=s["lds"],
                          lds_fraction=s["lds_fraction"], quality=s["quality"], strict_oov=s["strict_oov"],
                          min_word_count=s["min_word_count"], rank_by=s["rank_by"], ensemble=s["ensemble"],
                          fresh_seeds=s["fresh_seeds"], swaps=swaps, select=s["select"])


@_reports_progress
def experiment(model, corpus, tests=None, *, options=None, out=None, overwrite: bool = False,
               scheduler: str | None = None, cache=None, progress: Progress | None = None, log: Log | None = None,
               report: bool = True, on_plan=None, dry_run: bool = False, **settings) -> ExperimentResult:
    """Retrain without (or with more of) the top-ranked documents, against random edits of the same size, over
    paired seeds, and measure whether the bias moves as predicted (``biasaudit experiment``).

    Before anything is trained, ``on_plan`` gets the plan (``experiments.cost.ExperimentCost``: trainings, the time
    of one measured on the model's recorded or cached baseline training, workers, folder); ``dry_run`` returns that
    plan instead, having trained nothing and written no folder.

    ``model``: a config (``model_config``), a model trained here (its config is retrained) or a model you trained
    elsewhere (``load_model(path, corpus)``, ``from_gensim``: the rankings come from it, baselines and edits are
    retrained with its settings). ``estimator``: one name or several ("block,gradient-dot"), or a list.
    ``conditions``: names, comma-separated or a list (default: baseline, remove-top, remove-bottom, upweight-top,
    remove-random, and hard-debias for word vectors). ``lds``: random subsets for the linear datamodeling score;
    ``ensemble``/``fresh_seeds``: rank by several seeds' models / retrain on seeds the ranking did not use.
    ``select="greedy"``: add remove-selected, k documents chosen as a set on the group predictions, beside
    remove-top at the same k (``biasaudit.influence.select``). ``measure``: as ``score``'s; rankings, predictions
    and every retrained model's measurement (held-out companions too) read it. Resumes from the finished retrains
    in ``out``.

    The experiment's settings (``heldout`` to ``templates``, and ``measure``) are keywords, or one
    ``options=ExperimentSpec(...)`` (``biasaudit.experiments.ExperimentSpec``, which holds the corpus and tests:
    ``corpus`` and ``tests`` are then None)."""
    from ..distributed import dask_client
    from ..experiments import ExperimentSpec, default_folder, run_experiment

    if options is None:
        spec = _experiment_spec(model, corpus, tests, _experiment_settings(**settings))
    elif not isinstance(options, ExperimentSpec):
        raise ConfigError(f"options must be an ExperimentSpec, got {type(options).__name__}")
    elif settings or corpus is not None or tests is not None:
        raise ConfigError("options: an ExperimentSpec holds the corpus, tests and settings; give them there or as "
                          "arguments, not both (" + ", ".join([*settings] + ["corpus"] * (corpus is not None)
                                                             + ["tests"] * (tests is not None)) + ")")
    else:
        spec = options
    out = Path(out) if out is not None else default_folder(spec)
    if on_plan is not None or dry_run:
        from ..experiments.cost import experiment_cost
        plan = experiment_cost(spec, out, scheduler, Path(cache) if cache else None,
                               trained=model if _is_model(model) else None)
        if on_plan is not None:
            on_plan(plan)
        if dry_run:
            return plan
    with dask_client(scheduler) as client:
        res = run_experiment(spec, out, overwrite=overwrite, client=client, progress=progress, log=log,
                             cache=Path(cache) if cache else None)
    result = ExperimentResult(res.folder, res.summary)
    if report:
        result.report()
    return result


@dataclass(frozen=True)
class _DebiasKeywords:
    """``debias_corpus``'s edit settings given as keywords, in the order ``_debias_options`` returns them; built
    through ``_checked`` (each of the wrong kind one ConfigError naming it)."""
    k: str = "1%"
    method: str = "swap"
    estimator: Any = None
    swaps: Any = None
    rank_by: str = "test"
    heldout: Any = None
    strict_oov: bool = False
    min_word_count: int = 1
    templates: Any = None
    select: str = "greedy"
    target: float | None = None
    force: bool = False
    verify: int = 0
    out: Any = None
    overwrite: bool = False
    command: str = ""
    device: str = "cpu"
    cache: Any = None


def _debias_settings(**settings) -> tuple:
    """``debias_corpus``'s keyword settings, checked, in ``_DebiasKeywords``' order."""
    s = _checked(_DebiasKeywords)(**settings)
    return tuple(getattr(s, f.name) for f in fields(s))


def _debias_options(options, settings: dict) -> tuple:
    """``debias_corpus``'s edit settings: from ``options`` (a ``debias.DebiasOptions``) or from the keywords
    (``_debias_settings``), not both."""
    from ..debias import DebiasOptions

    if not _given_options(options, DebiasOptions, settings):
        return _debias_settings(**settings)
    o = options
    return (o.k, o.method, o.estimator, o.swaps, o.rank_by, o.heldout, o.strict_oov, o.min_word_count, o.templates,
            o.select, o.target, o.force, o.verify, o.out_dir, o.overwrite, o.command, o.device, o.cache)


@_reports_progress
def debias_corpus(model, corpus, tests=None, *, options=None, ensemble: int = 1, seed_models: Sequence = (),
                  seeds: int | None = None, progress: Progress | None = None, log: Log | None = None,
                  on_model=None, report: bool = True, **settings) -> DebiasResult:
    """Write an edited corpus that should carry less of each test's bias (``biasaudit debias``): the top ``k``
    documents that drive it up, removed (``method="remove"``), replaced by their counterfactual rewrite with the
    gendered words swapped (``"swap"``) or with the rewrite added beside them (``"augment"``). ``ensemble``: rank
    by the mean score of that many seeds' models (missing seeds trained with the model's settings). Writes ``out``
    (default reports/<corpus>-debias-<hash>/): the corpus in the input's format and manifest.json.

    The edit aims at |d| -> 0: documents that move each test's measure toward 0, chosen as a set (``select=
    "greedy"``, or ``"top-k"`` by individual score), as few as bring the re-measured prediction inside
    |d| <= ``target``, else the seed-noise band (the sd of d over ``seeds`` models, when 2 or more: missing seeds
    trained; ensemble seeds count), else the bootstrap 95% CI half-width of d; ``k`` is the upper bound. A test
    whose bias is not significant is refused with its evidence unless ``force``. ``verify``: retrain that many
    seeds on the edited corpus; actual against predicted, held-out tests and WordSim go into the manifest.

    The edit settings (``k``, ``method``, ``estimator``, ``swaps``, ``rank_by``, ``heldout``, ``strict_oov``,
    ``min_word_count``, ``templates``, ``select``, ``target``, ``force``, ``verify``, ``out``, ``overwrite``,
    ``command``, ``device``, ``cache``) are keywords, or one ``options=DebiasOptions(...)``
    (``biasaudit.debias.DebiasOptions``)."""
    from ..audit import read_tests_with
    from ..debias import METHODS, DebiasOptions, claim_out, run_debias
    from ..measures.options import check_count
    from ..models import family_of
    from ..swaps import SwapList, load_swaps
    from ..wordsets import resolve_heldout, resolve_tests

    (k, method, estimator, swaps, rank_by, heldout, strict_oov, min_word_count, templates, select, target, force,
     verify, out, overwrite, command, device, cache) = _debias_options(options, settings)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}").with_cli(
            f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    model = _one_model(model, "debias_corpus")
    fam = family_of(model)
    (est,) = estimators([estimator] if estimator is not None else None, fam, run_config(model))
    k, ensemble = _sizes(k), check_count("ensemble", ensemble)
    seeds = None if seeds is None else check_count("seeds", seeds)
    tpl = read_templates(fam, templates)
    resolved = resolve_tests(_test_specs(tests))
    read_tests_with(fam, resolved)  # a measure a test carries, checked before any training
    if swaps is not None and not isinstance(swaps, SwapList):
        swaps = load_swaps(swaps)
    corpus = load_corpus(corpus)
    edit = DebiasOptions(est, k, method, swaps, out, overwrite, rank_by,
                         heldout if isinstance(heldout, dict) else resolve_heldout(resolved, heldout), strict_oov,
                         min_word_count, tpl, command=command, select=select, target=target, force=force,
                         verify=verify, cache=cache, device=device)
    claim_out(out, corpus)          # before any training: the folder is usable and outside the corpus
    if ensemble > 1 and (getattr(model, "meta", None) or {}).get("origin"):
        raise ConfigError("ensemble trains its seeds' models; it cannot be used with a model trained elsewhere"
                          ).with_cli("--ensemble trains its seeds' models; it cannot be used with a model trained "
                                     "elsewhere")
    seed_models = list(seed_models)
    seed_models += _more_seeds(model, corpus, len(seed_models), ensemble - 1 - len(seed_models), device=device,
                               cache=cache, progress=progress, log=log, on_model=on_model, why="--ensemble")
    noise_models = []             # --seeds beyond the ensemble: their models only measure the seed-noise band
    if seeds is not None and seeds > 1 + len(seed_models):
        if (getattr(model, "meta", None) or {}).get("origin"):
            raise ConfigError("seeds trains other seeds' models; it cannot be used with a model trained elsewhere"
                              ).with_cli("--seeds trains other seeds' models; it cannot be used with a model "
                                         "trained elsewhere")
        noise_models = _more_seeds(model, corpus, len(seed_models), seeds - 1 - len(seed_models), device=device,
                                   cache=cache, progress=progress, log=log, on_model=on_model, why="--seeds")
    folder, manifest = run_debias(model, corpus, resolved, edit, seed_models=tuple(seed_models),
                                  noise_models=tuple(noise_models), progress=progress, log=log)
    result = DebiasResult(folder, manifest)
    if report:
        result.report()
    return result
