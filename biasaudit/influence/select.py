"""Edit sets chosen as sets: greedy selection on re-measured group predictions, and the stopping rule (the smallest
prefix of a selection whose predicted measure is inside a band around the goal).

Top-k by individual score is not the best set of k: near-duplicates and shared contexts make document effects
non-additive (removing one of two copies moves a word less than removing both, and a word's vector saturates). Here
every candidate is judged by the group prediction of the set chosen so far plus itself (``ScoreResult.predictor``:
the measure re-run on the model moved by the whole set's estimated parameter change, see ``predict.py``), so a
document whose effect the chosen set already holds falls behind.

Decided here:
- Direction: toward zero. A document is a candidate when its individual score moves the measure toward 0 (d > 0:
  ``delta_bias_if_removed < 0``; d < 0: ``> 0``); ``toward_zero_order`` ranks every document by that move,
  strongest first (the top-k of a toward-zero edit is its first k). For swaps and augmentations the same order is
  used: a rewrite's effect mirrors its original's, and the re-measured predictions (rewrites included) then judge
  the set.
- Objective of a set with prediction m: with a ``goal`` (debias: 0, or the user's target), |m - goal|; without one
  (an experiment's ``remove-selected``, compared with ``remove-top`` at equal size), the move itself,
  sign(d) x m, as low as possible.
- Greedy in chunks (``greedy_select``). The pool is the first ``pool`` x n documents of the toward-zero order
  (at least n). Each round re-measures, for every pool document not yet chosen, the prediction of (chosen set +
  that document) in one ``predict`` call, and adds the ``chunk`` best (default: n / ``rounds``, so ``rounds``
  rounds fill n); within a chunk, documents keep the order of their marginal objective. With a ``stop`` rule
  (debias), rounds end once the chosen set is inside the band. The finished set of n is then measured beside the
  pool's first n (top-k) and the better kept (``Selection.fallback`` says when that was top-k), so the selected
  set is never predicted worse than top-k at equal size.
- Cost, in group predictions: at most ``rounds`` x ``pool`` x n (each candidate of each round) + 1, each a
  prediction of a set of up to n documents (block: the test words' Newton re-solves on the set's pairs; cg: a CG
  solve; ekfac: one gradient pass over the set and one measure; linear (magic, ensembles): a sum). With the
  defaults (8 rounds, pool 3) that is at most 24 n + 1 predictions, against n for a prefix scan of top-k.
- The stopping rule (``smallest_inside``): the prefixes 1, 2, ... of a selection order are predicted in batches of
  ``step`` in increasing size and the first inside |m - goal| <= band is the edit (the same answer as predicting
  every prefix, at the cost of the prefixes up to it, rounded up to the batch); None when no prefix up to the
  bound is inside.

This module takes a ``measure``: a function from a list of document-index arrays to their predicted values (one
request each); ``group_measure`` builds it from a predictor and a request shape (removal, copies, rewrites).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# how an edit set of k documents is chosen: the first k by individual score, or as a set (``greedy_select``);
# the experiment's --select and debias's
SELECT = ("top-k", "greedy")

Measure = Callable[[list], list]


@dataclass(frozen=True)
class Selection:
    """An ordered edit set: ``order`` (document positions, in the order chosen), the predicted value of the whole
    set (``predicted``), how many group predictions the choice took, and whether top-k was kept because the
    greedy set was not predicted better (``fallback``)."""
    order: np.ndarray
    predicted: float | None
    n_predictions: int
    method: str = "greedy"
    fallback: bool = False
    rounds: list = field(default_factory=list)     # (set size after the round, its predicted value)

    def to_dict(self) -> dict:
        return {"method": self.method, "n": int(len(self.order)), "predicted": self.predicted,
                "n_predictions": self.n_predictions, "fallback_to_top_k": self.fallback,
                "rounds": [[int(n), v] for n, v in self.rounds]}


def toward_zero_order(scores: np.ndarray, bias: float) -> np.ndarray:
    """Every document position, those whose removal moves ``bias`` toward 0 most first (``scores``:
    delta_bias_if_removed; ties keep document order)."""
    sign = 1.0 if bias >= 0 else -1.0
    return np.argsort(sign * np.asarray(scores, dtype=np.float64), kind="stable")


def objective(value: float, bias: float, goal: float | None) -> float:
    """What a selection minimises: |value - goal| with a goal, else the signed move sign(bias) x value."""
    if goal is not None:
        return abs(value - goal)
    return (1.0 if bias >= 0 else -1.0) * value


def group_measure(predictor, name: str, times: int = 0, added: Callable | None = None,
                  progress=None) -> Measure:
    """A ``measure`` over document sets from a group predictor: each set removed (``times`` 0), kept with extra
    copies (t >= 2) or kept (1); ``added(docs)``: the documents trained on in addition (counterfactual rewrites)."""
    def measure(sets: list) -> list:
        reqs = []
        for docs in sets:
            docs = np.asarray(docs, dtype=np.int64)
            extra = added(docs) if added is not None else None
            reqs.append((name, docs, times, extra) if extra else (name, docs, times))
        return [None if v is None else float(v) for v in predictor.predict(reqs, progress)] if reqs else []
    return measure


def greedy_select(measure: Measure, order: np.ndarray, n: int, bias: float, goal: float | None = 0.0,
                  pool: int = 3, rounds: int = 8, chunk: int | None = None,
                  stop: Callable[[float], bool] | None = None) -> Selection:
    """Choose up to ``n`` documents from the first ``pool`` x n of ``order`` (the toward-zero order), ``chunk``
    per round by their re-measured marginal objective given the set chosen so far (see the module docstring)."""
    order = np.asarray(order, dtype=np.int64)
    n = int(min(n, len(order)))
    if n <= 0:
        return Selection(np.zeros(0, np.int64), None, 0)
    cands = list(order[:max(n, int(pool * n))].tolist())
    chunk = int(chunk or max(1, math.ceil(n / max(1, rounds))))
    chosen: list[int] = []
    value, count, history = None, 0, []
    while len(chosen) < n:
        taken = set(chosen)
        left = [c for c in cands if c not in taken]
        vals = measure([np.asarray(chosen + [c], dtype=np.int64) for c in left])
        count += len(left)
        if any(v is None for v in vals):
            raise ValueError("the predictor cannot measure these sets")
        obj = np.array([objective(v, bias, goal) for v in vals])
        best = np.argsort(obj, kind="stable")[:min(chunk, n - len(chosen))]
        chosen += [left[i] for i in best.tolist()]
        value = measure([np.asarray(chosen, dtype=np.int64)])[0] if len(best) > 1 else vals[int(best[0])]
        count += 1 if len(best) > 1 else 0
        history.append((len(chosen), value))
        if stop is not None and stop(value):
            break
    if len(chosen) == n and set(order[:n].tolist()) != set(chosen):     # never worse than top-k at equal size
        top = order[:n]
        v_top = measure([top])[0]
        count += 1
        if v_top is not None and objective(v_top, bias, goal) < objective(value, bias, goal):
            return Selection(top.copy(), v_top, count, fallback=True, rounds=history)
    return Selection(np.asarray(chosen, dtype=np.int64), value, count, rounds=history)


def smallest_inside(measure: Measure, order: np.ndarray, band: float, goal: float = 0.0, n_max: int | None = None,
                    step: int | None = None) -> tuple[int | None, float | None, int]:
    """The smallest prefix of ``order`` (up to ``n_max``) whose prediction is within ``band`` of ``goal``:
    (its size, its predicted value, predictions made); (None, the last prefix's value, predictions) when none is.
    Prefixes are predicted in increasing batches of ``step`` (default: about a tenth of n_max)."""
    return scan_prefixes(measure, order, band, goal, n_max, step)[:3]


def scan_prefixes(measure: Measure, order: np.ndarray, band: float, goal: float = 0.0, n_max: int | None = None,
                  step: int | None = None) -> tuple[int | None, float | None, int, tuple[int, float] | None]:
    """``smallest_inside`` and, as a fourth value, the prefix predicted closest to ``goal`` among those predicted
    (size, value; the smaller on a tie): where no prefix is inside the band because the predictions jump over it,
    the edit that comes nearest, not the whole bound."""
    order = np.asarray(order, dtype=np.int64)
    n_max = len(order) if n_max is None else min(int(n_max), len(order))
    step = int(step or max(1, math.ceil(n_max / 10)))
    count, last, closest = 0, None, None
    for start in range(1, n_max + 1, step):
        sizes = list(range(start, min(n_max, start + step - 1) + 1))
        vals = measure([order[:s] for s in sizes])
        count += len(sizes)
        for s, v in zip(sizes, vals):
            if v is None:
                return None, None, count, None
            last = v
            if closest is None or abs(v - goal) < abs(closest[1] - goal):
                closest = (s, v)
            if abs(v - goal) <= band:
                return s, v, count, closest
    return None, last, count, closest
