"""Every word-vector bias measure of one bias test, side by side (``biasaudit measure``): WEAT (``weat``) and RIPA,
Direct Bias, RND, MAC, ECT, RNSB (``embedding``), each with its uncertainty and a one-sentence verdict in the
wording of ``score``'s evidence (``biasaudit.audit.evidence``), over one model or several training seeds.

Missing words follow the one rule (``biasaudit.wordsets.restrict_tests``): dropped and listed, a test whose set
keeps fewer than 2 words skipped with the reason; a measure that cannot run on a test (RIPA and Direct Bias when
X and Y cannot pair) is skipped for that test with the reason, the others still run.
"""
from __future__ import annotations

from typing import Container, Iterable

from ..errors import BiasAuditError, ConfigError
from ..wordsets import BiasTest, restrict_tests
from .embedding import measure
from .registry import MEASURES, get_measure
from .weat import seed_spread

ALL_MEASURES = tuple(MEASURES)       # the built-in rows, WEAT first (a measure registered later joins "all")
LOST_FRACTION = 0.25       # as score's evidence: a set that lost more than this share of its words is "reduced"


def resolve_measures(names: Iterable[str] | None) -> tuple[str, ...]:
    """Measure names, checked (None or empty: every registered one, WEAT first)."""
    if not names:
        return tuple(MEASURES)
    out = []
    for n in names:
        key = get_measure(n).name
        if key not in out:
            out.append(key)
    return tuple(out)


def verdict(name: str, value: float, p: float | None, ci_low: float, ci_high: float, kept: BiasTest,
            original: BiasTest | None = None, spread: dict | None = None) -> dict:
    """One sentence on the number, in ``score``'s wording: "a strong (WEAT; other measures: significant)
    association of X with A and Y with B",
    "not distinguishable from no association on these words" or "within training-seed noise"; for a measure with
    no significance test (Direct Bias, MAC, ECT, RNSB), what its number means and that it has none."""
    m = get_measure(name)
    signed = m.signed
    ptxt = None if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")
    citxt = f"95% CI [{ci_low:+.2f}, {ci_high:+.2f}]"
    lead = f"{m.symbol or m.label} = {value:+.3f} ({ptxt + ', ' if ptxt else ''}{citxt})"
    original = original or kept
    reduced = any(len(sk.words) < (1 - LOST_FRACTION) * len(so.words) for so, sk in zip(original.sets, kept.sets))
    seed_noise = bool(spread and spread.get("n_seeds", 1) > 1 and
                      ((signed and spread["min"] < 0 < spread["max"]) or spread["sd"] > abs(spread["mean"]) / 2))
    significant = None
    if p is not None:
        significant = bool(p < 0.05 and not ci_low <= 0 <= ci_high)
    if seed_noise:
        text = (f"{lead}: within training-seed noise (over {spread['n_seeds']} seeds sd {spread['sd']:.2f}, "
                f"range [{spread['min']:+.2f}, {spread['max']:+.2f}])")
    elif significant:
        x, y, a, b = (s.name for s in kept.sets)
        if value < 0:
            x, y = y, x
        # WEAT's d has Cohen's scale; the other measures have none in their own units, so the strength said is
        # what their test establishes ("a association" had the word missing)
        size = m.strength(value) if m.strength else "significant "
        text = (f"{lead}: a {size}association of {x} with {a} and {y} with {b}, on "
                f"{'reduced ' if reduced else ''}word lists of {', '.join(str(len(s.words)) for s in kept.sets)} "
                "words")
    elif significant is False:
        text = f"{lead}: not distinguishable from no association on these words"
    else:
        text = f"{lead}: {m.reading}; this measure has no significance test"
    return {"significant": significant, "seed_noise": seed_noise, "verdict": text + "."}


def measure_all(vectors, tests: list[BiasTest], measures: Iterable[str] | None = None, strict: bool = False,
                **kwargs) -> tuple[list[dict], dict, list[dict]]:
    """Every measure of every test on one model's word vectors (see ``measure_models``)."""
    return measure_models([vectors], tests, measures, strict, **kwargs)


def measure_models(models: list, tests: list[BiasTest], measures: Iterable[str] | None = None, strict: bool = False,
                   known: Container[str] | None = None, model_seeds: list | None = None,
                   n_permutations: int = 100_000, n_bootstrap: int = 1000, seed: int = 0
                   ) -> tuple[list[dict], dict, list[dict]]:
    """Every measure of every test on each model's word vectors (mappings word -> vector, or objects with
    ``key_to_index`` and ``vectors``; several: training seeds of one model, whose spread the verdict reads).

    ``known``: the words the models can measure (default: the first model's vocabulary; a caller narrows it,
    e.g. to words seen often enough). Returns (rows, {skipped test: reason}, [{test, measure, reason}] for a
    measure that cannot run on a test). One row per (test, measure, model): ``MeasureResult.to_dict()`` plus
    ``measure``, ``seed``, ``dropped_words``, ``seed_spread``, ``significant``, ``seed_noise`` and ``verdict``."""
    names = resolve_measures(measures)
    if not models:
        raise ConfigError("no model to measure")
    if known is None:
        first = models[0]
        known = first.key_to_index if hasattr(first, "key_to_index") else first
    seeds = list(model_seeds) if model_seeds is not None else [None] * len(models)
    kept, dropped, skipped = restrict_tests(list(tests), known, strict)
    rows, not_run = [], []
    for original, test in kept:
        for name in names:
            try:
                results = [measure(name, v, test, n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                                   seed=seed, original=original) for v in models]
            except BiasAuditError as e:
                not_run.append({"test": original.name, "measure": name, "reason": str(e)})
                continue
            spread = seed_spread([r.effect_size for r in results])
            for r, s in zip(results, seeds):
                d = r.to_dict()
                d.update({"measure": name, "seed": s, "dropped_words": dropped.get(original.name, {}),
                          "seed_spread": spread})
                d.update(verdict(name, r.effect_size, r.p_value, r.ci_low, r.ci_high, test, original, spread))
                rows.append(d)
    return rows, skipped, not_run
