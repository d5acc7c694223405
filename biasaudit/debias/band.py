"""The stopping band of a debias edit: the seed noise of a test's measure, its significance, the refusal of an
insignificant bias, and the stopping rule that picks how many documents to edit (the smallest prefix predicted
inside the band, a greedy set, or the one predicted nearest 0)."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def seed_noise(fam, models, test, templates=None) -> float | None:
    """The sample sd (ddof=1) of the test's measure over the models of several training seeds (None: one model)."""
    if len(models) < 2:
        return None
    return float(np.std([fam.weat(m, test, templates).effect_size for m in models], ddof=1))


def significance(ev) -> bool:
    """The measure is distinguishable from word-sampling noise: p < 0.05 (where it has a permutation test) and
    its 95% bootstrap CI does not hold 0."""
    return bool((ev.p_value is None or ev.p_value < 0.05) and not ev.ci_low <= 0 <= ev.ci_high)


def refuse_insignificant(evidence: dict) -> None:
    """One line naming every test whose bias is not significant, with its evidence (d, p, CI)."""
    bad = {n: ev for n, ev in evidence.items() if not significance(ev)}
    if bad:
        raise ConfigError("; ".join(
            f"{n}: d {ev.effect_size:+.2f}, p {'-' if ev.p_value is None else f'{ev.p_value:.3f}'}, 95% CI "
            f"[{ev.ci_low:+.2f}, {ev.ci_high:+.2f}]" for n, ev in bad.items())
            + " - not significant (p >= 0.05 or the CI holds 0): debias will not edit a corpus to move a bias that "
            "may be word-sampling noise (--force edits anyway)")



def band_of(fam, models, test, ev, target: float | None, templates=None) -> tuple[float, str]:
    """The band |d| <= band the edit aims inside, and where it came from: ``target`` when given, else the sd of d
    over the seeds' ``models`` (2 or more), else the bootstrap 95% CI half-width of d (``ev``)."""
    noise = seed_noise(fam, models, test, templates)
    if target is not None:
        return float(target), "--target"
    if noise is not None:
        return noise, f"the sd of d over {len(models)} training seeds"
    return (ev.ci_high - ev.ci_low) / 2, "the bootstrap 95% CI half-width of d (one seed)"


def stopping_rule(measure, order, d0: float, n_edit: int, k_label: str, band: float, rule: dict, o):
    """The documents to edit for one test, searched with ``measure`` (a group prediction of an edit): the smallest
    prefix of ``order`` (``o.select="top-k"``) or of the greedy set (``"greedy"``, bounded by the top-k prefix that
    reaches the band) predicted inside |d| <= ``band``; when none is, the one predicted nearest 0. Fills ``rule``."""
    from ..influence.select import greedy_select, scan_prefixes

    n_top, count_top, nearest = None, 0, []
    if o.select == "greedy":
        # a set chosen as a set is wanted only if smaller than the top-k prefix that reaches the band (or,
        # when none does, comes nearest 0), so that prefix bounds the search (candidates: pool x it, not
        # pool x --k: 3,786 on GCIDE at 1%)
        n_top, _, count_top, close = scan_prefixes(measure, order[:n_edit], band)
        nearest.append((close, order))
        size = n_top if n_top is not None else (close[0] if close is not None else n_edit)
        found = greedy_select(measure, order, size, d0, goal=0.0, pool=o.pool, rounds=o.rounds,
                              stop=lambda v: abs(v) <= band)
        ranked = found.order
        rule["selection"] = {**found.to_dict(), "size_bound": size, "top_k_reaches_at": n_top}
    else:
        ranked = order[:n_edit]
    n, value, count, close = scan_prefixes(measure, ranked, band)
    nearest.insert(0, (close, ranked))
    if n is None and n_top is not None:     # the chosen set never got inside: top-k's prefix does
        ranked, n = order[:n_edit], n_top
        rule["selection"]["fallback_to_top_k"] = True
    rule["n_predictions"] = count + count_top + (rule.get("selection", {}).get("n_predictions") or 0)
    if n is not None:
        rule.update(reached=True, note=f"{n} documents bring the predicted d inside |d| <= {band:.3f}")
        return ranked[:n]
    # no prefix inside: the one predicted nearest 0 (where predictions jump over the band)
    options = [(c, od) for c, od in nearest if c is not None]
    if not options:         # the predictor could not measure these edits: the whole bound
        size, v, from_order = n_edit, None, ranked
    else:
        (size, v), from_order = min(options, key=lambda co: (abs(co[0][1]), co[0][0]))
    which = f"the {size} predicted nearest 0 (d {v:+.3f}) edited" if v is not None else f"all {size} edited"
    rule.update(reached=False, nearest_predicted=v,
                note=f"no edit of up to {n_edit} documents (--k {k_label}) is predicted inside the band "
                     f"|d| <= {band:.3f}: {which}")
    return from_order[:size]
