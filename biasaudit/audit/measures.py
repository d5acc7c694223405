"""The bias measures a score run reads: the words a model can measure, the checks on a run's tests and measure,
and the WEAT statistics (or other measures) of several models (``weat``, ``measure``)."""
from __future__ import annotations

from ..errors import ConfigError
from ..measures.registry import is_default
from ..measures.weat import seed_spread
from ..models.base import family_of
from ..wordsets import BiasTest, restrict_tests


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
            from ..vocab import word_counts
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
        from ..measures.registry import MEASURES
        rankable = ", ".join(n for n, m in MEASURES.items() if m.differentiable)
        raise ConfigError(f"measure must be a measure's name ({rankable}), got {measure!r}")
    read_tests_with(fam, [], measure)


def check_carried_measures(tests) -> None:
    """The measure a test file carries ("measure": "ripa") is a known one, whatever reads the test (``weat`` and
    ``measure`` read every test with their own measures; ``score``, ``experiment`` and ``debias`` rank by the
    carried one): a misspelt name is one error everywhere, not ignored by some commands."""
    from ..measures.registry import get_measure

    for t in tests:
        try:
            get_measure(t.measure)
        except ConfigError as e:
            raise ConfigError(f"test {t.name!r}: {e}") from e


def read_tests_with(fam, tests: list, measure: str = "weat") -> list:
    """``tests`` read with ``measure`` (``measures.embedding.read_with``) to rank documents by: the measure given,
    or one a test carries, must be known and differentiable (ECT and RNSB are refused before any training); a
    measure other than WEAT reads word vectors, so other families are refused in one line."""
    from ..measures.embedding import read_with
    from ..measures.registry import check_request, is_default

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
    from ..wordsets import resolve_tests_from, unique_names

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
    from ..measures.suite import measure_models

    fam = family_of(models[0])
    if not fam.word_vectors:
        raise ConfigError(f"the word-vector measures need word vectors; {fam.label} models have none (their "
                          "measures: `biasaudit weat` for template association)")
    check_carried_measures(tests)
    words = {w for t in tests for w in t.words}
    known, _ = measurable_words(models[0], words, min_word_count)
    seeds = [getattr(getattr(m, "config", None), "seed", None) for m in models]
    return measure_models(models, list(tests), measures, strict, known=known, model_seeds=seeds, **kwargs)


