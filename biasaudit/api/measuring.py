"""The measuring verbs: ``measure`` (WEAT, or template association for language models) and ``measures``
(every word-vector measure side by side), with ``measures_request``, their check before any training."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError
from .arguments import _checked, _warn_dropped
from .loading import _models, _test_specs, read_templates
from .results import WeatResult


@_checked
def measure(model, tests=None, *, seed_models: Sequence = (), strict_oov: bool = False,
            n_permutations: int = 100_000, n_bootstrap: int = 1000, min_word_count: int = 1,
            templates=None, sd: str = "sample") -> WeatResult:
    """WEAT effect sizes (template association for language models), exact or Monte Carlo permutation p-values
    and bootstrap CIs over words, for one model or several seeds' models (``model`` a list, or ``seed_models``:
    their spread is in each row). Missing words are dropped (a ``DroppedWordsWarning``) and listed in
    ``dropped_words`` (``strict_oov``: an error).

    ``sd``: the spread d is divided by: ``"sample"`` (ddof=1, Caliskan et al.'s and this tool's everywhere) or
    ``"population"`` (ddof=0, WEFE's ``WEAT(return_effect_size=True)``), which is larger by sqrt(n/(n-1)) for
    n = |X| + |Y| target words (0.686 here is 0.733 in WEFE with 4 + 4 words). p-values do not change."""
    from ..audit import weat_across_models
    from ..measures.options import check_count
    from ..models import family_of
    from ..wordsets import resolve_tests

    models = _models(model, seed_models)
    n_permutations, n_bootstrap = check_count("n_permutations", n_permutations), check_count("n_bootstrap",
                                                                                               n_bootstrap)
    min_word_count = check_count("min_word_count", min_word_count)
    fam = family_of(models[0])
    tpl = read_templates(fam, templates)
    extra = {"templates": tpl} if fam.takes_templates else {}
    rows, skipped = weat_across_models(models, resolve_tests(_test_specs(tests)), strict=strict_oov,
                                       n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                                       min_word_count=min_word_count, **extra)
    if sd not in ("sample", "population"):
        raise ConfigError(f"sd must be 'sample' (ddof=1) or 'population' (ddof=0, WEFE's), got {sd!r}")
    if sd == "population":
        rows = [_population_sd(r) for r in rows]
    result = WeatResult(rows, skipped)
    _warn_dropped(result.dropped_words)
    return result


def _population_sd(row: dict) -> dict:
    """A WEAT row with d over the population sd (ddof=0, WEFE's): d, its CI and every bootstrap resample (the same
    n words) scale by sqrt(n/(n-1)), n = |X| + |Y|; p is a rank and does not change."""
    if "metric" in row:        # WEAT's rows on word vectors carry no metric field
        raise ConfigError("sd='population' is WEFE's convention for WEAT on word vectors; language models' "
                          "template association keeps the sample sd")
    n = row["sizes"]["x"] + row["sizes"]["y"]
    f = (n / (n - 1)) ** 0.5
    out = dict(row, effect_size=row["effect_size"] * f, ci_low=row["ci_low"] * f, ci_high=row["ci_high"] * f)
    out["effect_size_convention"] = row["effect_size_convention"].replace(
        "sample std (ddof=1)", "population std (ddof=0, WEFE's)")
    if row.get("seed_spread"):
        s = row["seed_spread"]
        out["seed_spread"] = dict(s, **{k: s[k] * f for k in ("mean", "sd", "min", "max") if k in s})
    return out


@dataclass(frozen=True)
class MeasuresResult:
    """What ``measures`` gives: ``rows`` (one per test, measure and seed: value, 95% CI over words, p where the
    measure has one, verdict), ``skipped`` ({test: reason}) and ``not_run`` ([{test, measure, reason}]: a measure
    a test cannot feed)."""
    rows: list
    skipped: dict
    not_run: list


def measures_request(model: str = "skipgram", tests=None, names=None) -> tuple[list, list]:
    """The measure names and tests ``measures`` computes for a model family (a family name), resolved and checked
    before any model is trained or loaded: (measure names, tests). ``names``: measure names (a list, or one
    comma-separated string); None: all."""
    from ..audit import check_carried_measures
    from ..measures.suite import resolve_measures
    from ..models import get_family
    from ..wordsets import resolve_tests

    if isinstance(names, str):
        names = [names]
    names = resolve_measures([n for m in names or [] for n in m.split(",") if n.strip()])
    tests = resolve_tests(_test_specs(tests))
    check_carried_measures(tests)
    fam = get_family(model)
    if not fam.word_vectors:
        raise ConfigError(f"the word-vector measures need word vectors; model={fam.name!r} has none (measure() "
                          "measures language models)").with_cli(
            f"the word-vector measures need word vectors; --model {fam.name} has none (`biasaudit weat` measures "
            "language models)")
    return names, tests


@_checked
def measures(model, tests=None, *, names=None, seed_models: Sequence = (), strict_oov: bool = False,
             n_permutations: int = 100_000, n_bootstrap: int = 1000, min_word_count: int = 1) -> MeasuresResult:
    """Every word-vector bias measure side by side (``biasaudit measure``): WEAT, RIPA, Direct Bias, RND, MAC, ECT
    and RNSB (``names``: a subset), each with its bootstrap 95% CI over words, a permutation p where it has one
    and a verdict, for one model or several seeds' models. ``measure`` is WEAT alone (``biasaudit weat``), for
    word vectors and language models."""
    from ..audit import measures_across_models
    from ..measures.options import check_count
    from ..models import family_of

    models = _models(model, seed_models)
    n_permutations, n_bootstrap = (check_count("n_permutations", n_permutations),
                                   check_count("n_bootstrap", n_bootstrap))
    min_word_count = check_count("min_word_count", min_word_count)
    names, tests = measures_request(family_of(models[0]).name, tests, names)
    rows, skipped, not_run = measures_across_models(models, tests, names, strict=strict_oov,
                                                    min_word_count=min_word_count, n_permutations=n_permutations,
                                                    n_bootstrap=n_bootstrap)
    return MeasuresResult(rows, skipped, not_run)
