"""The scoring verb: ``score`` ranks every document of a corpus by its influence on each bias test."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..errors import ConfigError
from .arguments import Log, Progress, _checked, _given_options, _phase, _reports_progress, _warn_dropped
from .checks import model_family
from .loading import (
    _more_seeds,
    _one_model,
    _test_specs,
    estimators,
    load_corpus,
    read_templates,
    run_config,
    seed_count,
)
from .results import ScoreResult


@_checked
def _score_settings(*, estimator=None, pairs=None, templates=None, ensemble: int = 1, resamples: int = 100,
                    min_word_count: int = 1, strict_oov: bool = False, top: int = 10, out=None,
                    overwrite: bool = False, device: str = "cpu", measure: str = "weat", request=None,
                    metasmoothness: int | None = None) -> tuple:
    """``score``'s run settings given as keywords (each of the wrong kind one ConfigError naming it), in order."""
    return (estimator, pairs, templates, ensemble, resamples, min_word_count, strict_oov, top, out, overwrite,
            device, measure, request, metasmoothness)


def _score_options(options, query, settings: dict) -> tuple:
    """``score``'s run settings: from ``options`` (an ``audit.ScoreOptions``; its query when ``query`` is None)
    or from the keywords (``_score_settings``), not both."""
    from ..audit import ScoreOptions

    if not _given_options(options, ScoreOptions, settings):
        return (query, *_score_settings(**settings))
    o = options
    return (query if query is not None or o.query is None else o.query, o.estimator, o.pairs, o.templates,
            o.ensemble, o.n_resamples, o.min_word_count, o.strict_oov, o.top, o.out_dir, o.overwrite, o.device,
            o.measure, None, o.metasmoothness)


@dataclass(frozen=True)
class ScoreRequest:
    """What ``score_request`` checked before any training: the pair sets and templates read, and the output
    folder held (its run lock, while this object lives; None: reports/ is writable)."""
    pairs: Any
    templates: Any
    folder: Any


def score_request(family, tests=None, *, query: str | None = None, toward: Iterable[str] = (),
                  away: Iterable[str] = (), pairs=None, templates=None, measure: str = "weat",
                  out=None) -> ScoreRequest:
    """``score``'s checks before any model is trained, for a model family (a name, config or model): tests or a
    query, not both; ``toward``/``away`` only with a query; ``templates`` and ``pairs`` only for language models,
    read; the tests' measures and names; ``out`` claimed (new, empty or this tool's score outputs) or reports/
    writable. ``score(..., request=)`` takes the result instead of checking again."""
    from ..audit import SCORE_FILES, check_run_tests
    from ..io import check_writable, claim_folder
    from ..measures.lm import resolve_pairs

    fam = model_family(family)
    specs = _test_specs(tests)
    if query is not None and specs:
        raise ConfigError("use either tests or query, not both").with_cli("use either --test or --query").usage(
            "--query")
    if (toward or away) and query is None:
        raise ConfigError("toward/away need query").with_cli("--toward/--away need --query").usage("--toward")
    if (templates is not None or pairs is not None) and not fam.takes_templates:
        raise ConfigError(f"{'pairs' if pairs is not None else 'templates'}= measures language models "
                          "(model='lm')").with_cli("--templates and --pairs measure language models; add --model lm")
    tpl = read_templates(fam, templates)
    pairs = resolve_pairs(pairs) if pairs is not None else None
    if query is None:          # the tests' measures and every test and pair-set name
        check_run_tests(fam, specs, pairs, measure)
    folder = None
    if out is not None:        # held (the folder's run lock) as long as the request
        folder = claim_folder(out, "score", None, overwrite=True, known=SCORE_FILES, check_config=False)
    else:
        check_writable("reports")
    return ScoreRequest(pairs, tpl, folder)


@_reports_progress
def score(model, corpus, tests=None, *, options=None, query: str | None = None, toward: Iterable[str] = (),
          away: Iterable[str] = (), seeds: int | None = None, seed_models: Sequence = (),
          scheduler: str | None = None, cache=None, progress: Progress | None = None, log: Log | None = None,
          on_model=None, report: bool = True, **settings) -> ScoreResult:
    """Rank every document of ``corpus`` by its influence on each bias test (``biasaudit score``).

    delta_bias_if_removed(d): the predicted change of the effect size if d is removed and the model retrained;
    negative means d drives the bias up. ``estimator``: the family's default for the model (block; for an LM trained
    here in the audited phase magic, else ekfac), or a name with settings ("cg:damping=0.05", "magic").
    ``query``/``toward``/``away``: score a word query instead of tests; ``pairs`` (LMs): a JSONL file of paired
    sentences, or a bundled set: "crows-pairs" (one measure per bias type, named "crows-pairs:gender", ...) or
    "crows-pairs:TYPE"; a path that exists is always a file. ``seeds`` (or ``seed_models``): other seeds' models for the
    effect size's spread and the ranking's stability; ``ensemble``: rank by the mean score of that many seeds' models
    (missing seeds are trained with the model's settings). ``measure``: the bias measure the tests are read with and
    documents ranked by: "weat" or, for word vectors, a differentiable one of
    ``biasaudit.measures.embedding`` ("ripa", "direct-bias", "rnd", "mac"). Writes ``out`` (default
    reports/<corpus>-<family>-<hash>/) and, with ``report``, report.html there.

    ``metasmoothness``: directions of the audited run's metasmoothness check (None: 2 for a language model trained
    here, else none; 0: none), printed first and written to summary.json.

    The run settings (``estimator``, ``pairs``, ``templates``, ``ensemble``, ``resamples``, ``min_word_count``,
    ``strict_oov``, ``top``, ``out``, ``overwrite``, ``device``, ``measure``, ``metasmoothness``) are keywords, or one
    ``options=ScoreOptions(...)`` (``biasaudit.audit.ScoreOptions``); with keywords, ``request``: a
    ``score_request`` made before the models were trained (its pairs, templates and held folder are used, not
    checked again)."""
    from ..audit import ScoreOptions, check_target_measure, run_score
    from ..distributed import dask_client
    from ..measures.options import check_count
    from ..models import family_of

    (query, estimator, pairs, templates, ensemble, resamples, min_word_count, strict_oov, top, out, overwrite, device,
     measure, request, metasmoothness) = _score_options(options, query, settings)
    if isinstance(query, tuple):                 # ScoreOptions' (word, toward, away)
        query, toward, away = query
    model = _one_model(model, "score")
    fam = family_of(model)
    (est,) = estimators([estimator] if estimator is not None else None, fam, run_config(model))
    ensemble, resamples = check_count("ensemble", ensemble), check_count("resamples", resamples)
    seeds = None if seeds is None else check_count("seeds", seeds)
    check_target_measure(fam, measure)
    corpus = load_corpus(corpus)
    specs = _test_specs(tests)
    if request is None:
        request = score_request(fam, specs, query=query, toward=toward, away=away, pairs=pairs, templates=templates,
                                measure=measure, out=out)
    elif not isinstance(request, ScoreRequest):
        raise ConfigError(f"request must be a ScoreRequest (score_request makes one), got {type(request).__name__}")
    words = lambda ws: [w.strip().lower() for w in ws if w.strip()]
    run = ScoreOptions(est, out_dir=out, overwrite=overwrite, strict_oov=strict_oov,
                       query=(query, words(toward), words(away)) if query is not None else None, top=top,
                       device=device, templates=request.templates, pairs=request.pairs,
                       min_word_count=min_word_count, n_resamples=resamples, ensemble=ensemble, measure=measure,
                       metasmoothness=metasmoothness)
    n = seed_count(fam, seeds, ensemble, trained=getattr(model, "config", None) is not None)
    seed_models = list(seed_models)
    seed_models += _more_seeds(model, corpus, len(seed_models), n - 1 - len(seed_models), device=device, cache=cache,
                               progress=progress, log=log, on_model=on_model, why="--seeds or --ensemble")
    with dask_client(scheduler) as client:
        res = run_score(model, corpus, specs, run, seed_models=tuple(seed_models), progress=progress,
                        client=client)
    result = ScoreResult(res.folder, res.summary)
    _warn_dropped(result.dropped_words)
    if report:
        with _phase(progress, "writing the report"):
            result.report()
    return result
