"""A toy measure in one file: the whole contract of a new bias measure (tests/test_measure_registry.py runs it
through ``biasaudit measure`` and ``biasaudit.api.score``, as an influence target). The registry line is the last
one.

``cos-gap``: the gap in mean cosine similarity, p(w) = mean_x cos(w, x) - mean_y cos(w, y) for each attribute word
w, and cos-gap = mean_A p - mean_B p (equivalently mean_X s - mean_Y s with WEAT's s: WEAT's numerator, without
its division by the spread). Signed, positive when X goes with A and Y with B; in [-4, 4]; its permutation p
re-partitions A u B (``p_scores``: each attribute word's X-side association)."""
from __future__ import annotations

import numpy as np
import torch

from biasaudit.measures.registry import Measure, register


def _unit(M):
    M = np.asarray(M, dtype=np.float64)
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def gap_scores(X, Y, W) -> np.ndarray:
    """p(w) = mean_x cos(w, x) - mean_y cos(w, y) for each row w of W."""
    Wn = _unit(W)
    return (Wn @ _unit(X).T).mean(axis=1) - (Wn @ _unit(Y).T).mean(axis=1)


def cos_gap(X, Y, A, B) -> float:
    return float(gap_scores(X, Y, A).mean() - gap_scores(X, Y, B).mean())


def cos_gap_torch(X, Y, A, B) -> torch.Tensor:
    """The same, differentiable: documents can be ranked by it."""
    def unit(M):
        return M / M.norm(dim=1, keepdim=True)

    def p(W):
        return (unit(W) @ unit(X).T).mean(dim=1) - (unit(W) @ unit(Y).T).mean(dim=1)
    return p(A).mean() - p(B).mean()


COS_GAP = Measure(
    "cos-gap", "Cosine gap", "a toy (tests/toy_measure.py)", cos_gap, cos_gap_torch, signed=True, paired=False,
    reading="mean_A - mean_B of mean cos to X - mean cos to Y; > 0: X goes with A and Y with B", bound=4.0,
    convention="mean_A p - mean_B p, p(w) = mean_x cos(w, x) - mean_y cos(w, y); positive when X goes with A and Y "
               "with B", p_scores=gap_scores)

register(COS_GAP)
