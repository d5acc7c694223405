"""WEAT statistics (Caliskan et al. 2017): association, test statistic, effect size, permutation p-value,
bootstrap confidence interval. One torch implementation (differentiable: the influence test loss) and a float64
NumPy reference that gives the reported numbers.

Conventions, decided here:
- s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b).
- statistic = sum_{x in X} s(x, A, B) - sum_{y in Y} s(y, A, B).
- effect size = (mean_{x in X} s - mean_{y in Y} s) / std_{w in X u Y} s, the sample std (ddof=1) over X and Y
  pooled. Positive when X goes with A and Y with B.
- p-value: one-sided, the fraction of equal-size re-partitions (X_i, Y_i) of X u Y, the observed one included,
  whose statistic is >= the observed. Exact enumeration up to ``EXACT_LIMIT`` partitions; beyond that Monte Carlo
  with a seeded RNG, p = (1 + #{>= observed}) / (1 + n) and its binomial standard error reported.
- confidence interval: percentile bootstrap of the effect size, resampling the words of each of the four sets
  with replacement (word-level noise; seed-level noise is reported separately from several training seeds).
Sets of unequal size are used as they are, never truncated.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import torch

from ..errors import BiasAuditError
from ..wordsets import BiasTest
from .registry import Measure, register
from .result import MeasureResult

EXACT_LIMIT = 100_000
BOOTSTRAP_CHUNK = 2 ** 21      # values per bootstrap block (16 MB of float64)


# ---------------------------------------------------------------- torch (differentiable)
def association_torch(T: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """s(w, A, B) for each row w of T. T (n, d), A (n_a, d), B (n_b, d) -> (n,)."""
    Tn = T / T.norm(dim=1, keepdim=True)
    An = A / A.norm(dim=1, keepdim=True)
    Bn = B / B.norm(dim=1, keepdim=True)
    return (Tn @ An.T).mean(dim=1) - (Tn @ Bn.T).mean(dim=1)


def weat_effect_size_torch(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """WEAT effect size as a differentiable scalar (see the module docstring for the convention)."""
    sx, sy = association_torch(X, A, B), association_torch(Y, A, B)
    return (sx.mean() - sy.mean()) / torch.cat([sx, sy]).std(unbiased=True)


def weat_statistic_torch(X, Y, A, B) -> torch.Tensor:
    return association_torch(X, A, B).sum() - association_torch(Y, A, B).sum()


# ---------------------------------------------------------------- float64 reference
def _unit(M: np.ndarray) -> np.ndarray:
    M = np.asarray(M, dtype=np.float64)
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise BiasAuditError("a test word has an all-zero vector; its cosine is undefined")
    return M / norms


def associations(T, A, B) -> np.ndarray:
    """s(w, A, B) in float64 for each row of T."""
    Tn, An, Bn = _unit(T), _unit(A), _unit(B)
    return (Tn @ An.T).mean(axis=1) - (Tn @ Bn.T).mean(axis=1)


def effect_size(sx: np.ndarray, sy: np.ndarray) -> float:
    pooled = np.concatenate([sx, sy])
    sd = pooled.std(ddof=1)
    if not sd > 0:
        raise BiasAuditError("the associations of all target words are equal: the effect size is undefined")
    return float((sx.mean() - sy.mean()) / sd)


def effect_size_bound(n_x: int, n_y: int) -> float:
    """The largest |effect size| possible with n_x and n_y target words: every X word at one association and every
    Y word at another gives sqrt(n (n - 1) / (n_x n_y)), n = n_x + n_y (just under 2 for equal sets)."""
    n = n_x + n_y
    return math.sqrt(n * (n - 1) / (n_x * n_y))


def permutation_p_value(s: np.ndarray, n_x: int, n_samples: int = 100_000, seed: int = 0,
                        exact_limit: int = EXACT_LIMIT) -> tuple[float, bool, int, float]:
    """One-sided permutation p-value of the WEAT statistic.

    ``s`` holds the associations of X's words then Y's (first ``n_x`` are X). Returns
    (p, exact, n_partitions_used, standard_error); the standard error is 0 when exact."""
    s = np.asarray(s, dtype=np.float64)
    n = len(s)
    total = s.sum()
    observed = 2 * s[:n_x].sum() - total  # sum_X s - sum_Y s
    tol = 1e-10 * max(1.0, np.abs(s).sum())
    n_partitions = math.comb(n, n_x)
    if n_partitions <= exact_limit:
        idx = np.fromiter((i for c in combinations(range(n), n_x) for i in c), dtype=np.int64,
                          count=n_partitions * n_x).reshape(n_partitions, n_x)
        stats = 2 * s[idx].sum(axis=1) - total
        return float(np.mean(stats >= observed - tol)), True, n_partitions, 0.0
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_samples:
        m = min(10_000, n_samples - done)
        perm = np.argsort(rng.random((m, n)), axis=1)[:, :n_x]
        hits += int(np.sum(2 * s[perm].sum(axis=1) - total >= observed - tol))
        done += m
    p = (1 + hits) / (1 + n_samples)
    return p, False, n_samples, math.sqrt(p * (1 - p) / n_samples)


def bootstrap_effect_sizes(X, Y, A, B, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Effect sizes of ``n_boot`` resamplings (with replacement) of the words of each set; degenerate
    resamples (zero spread) are left out."""
    Xn, Yn, An, Bn = _unit(X), _unit(Y), _unit(A), _unit(B)
    return bootstrap_from_blocks(Xn @ An.T, Xn @ Bn.T, Yn @ An.T, Yn @ Bn.T, n_boot, seed)  # cosine blocks


def bootstrap_from_blocks(cxa, cxb, cya, cyb, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """The bootstrap of ``bootstrap_effect_sizes`` from any word-by-word association blocks (target rows,
    attribute columns): cosines for embeddings, template log-probabilities for language models."""
    rng = np.random.default_rng(seed)
    (nx, na), (ny, nb) = cxa.shape, cyb.shape
    ix = rng.integers(0, nx, (n_boot, nx))
    iy = rng.integers(0, ny, (n_boot, ny))
    ia = rng.integers(0, na, (n_boot, na))
    ib = rng.integers(0, nb, (n_boot, nb))

    def s_of(ca, cb, it):  # (n_boot, n_t): association of each resampled target word
        # in chunks of resamples, each (step, n_t, n_a) block under BOOTSTRAP_CHUNK values: memory stays flat
        # whatever n_boot is, and each row's numbers are the ones the whole block would give
        step = max(1, BOOTSTRAP_CHUNK // max(1, it.shape[1] * max(na, nb)))
        return np.concatenate([np.take_along_axis(ca[it[i:i + step]], ia[i:i + step, None, :], axis=2).mean(axis=2)
                               - np.take_along_axis(cb[it[i:i + step]], ib[i:i + step, None, :], axis=2).mean(axis=2)
                               for i in range(0, max(n_boot, 1), step)])

    sx, sy = s_of(cxa, cxb, ix), s_of(cya, cyb, iy)
    sd = np.concatenate([sx, sy], axis=1).std(axis=1, ddof=1)
    ok = sd > 1e-12
    return (sx.mean(axis=1)[ok] - sy.mean(axis=1)[ok]) / sd[ok]


WeatResult = MeasureResult    # the name the WEAT functions have always returned


N_PERMUTATIONS = 100_000   # Monte Carlo samples past 100,000 partitions: the same in `weat` and `score`
N_BOOTSTRAP = 1000         # bootstrap resamples of the CI: the same in `weat` and `score` (same seed: the same CI)


def weat(vectors: dict | object, test: BiasTest, allow_oov: bool = False, n_permutations: int = N_PERMUTATIONS,
         n_bootstrap: int = N_BOOTSTRAP, ci_level: float = 0.95, seed: int = 0, model_seed: int | None = None) -> WeatResult:
    """WEAT statistics of ``test`` on word vectors (a mapping word -> vector, or any object with
    ``key_to_index`` and ``vectors``). Out-of-vocabulary words raise VocabularyError unless ``allow_oov``."""
    if hasattr(vectors, "key_to_index"):
        k2i, M = vectors.key_to_index, np.asarray(vectors.vectors)
        lookup = lambda ws: M[[k2i[w] for w in ws]]
        vocab = k2i
    else:
        vocab = vectors
        lookup = lambda ws: np.stack([np.asarray(vectors[w]) for w in ws])
    test, dropped = test.restrict(vocab, allow_oov)
    X, Y, A, B = (lookup(s.words) for s in test.sets)
    sx, sy = associations(X, A, B), associations(Y, A, B)
    es = effect_size(sx, sy)
    p, exact, n_used, se = permutation_p_value(np.concatenate([sx, sy]), len(sx), n_permutations, seed)
    boots = bootstrap_effect_sizes(X, Y, A, B, n_bootstrap, seed)
    if len(boots) < max(10, n_bootstrap // 2):
        lo = hi = es
    else:
        lo, hi = np.quantile(boots, [(1 - ci_level) / 2, 1 - (1 - ci_level) / 2])
    return WeatResult(test.name, es, float(sx.sum() - sy.sum()), p, exact, n_used, se, float(lo), float(hi),
                      ci_level, len(boots), {f: len(s.words) for f, s in zip(("x", "y", "a", "b"), test.sets)},
                      dropped, model_seed)


def seed_spread(effect_sizes: list[float]) -> dict:
    """Mean, sample sd (ddof=1) and range of effect sizes over training seeds."""
    e = np.asarray(effect_sizes, dtype=np.float64)
    return {"n_seeds": len(e), "mean": float(e.mean()), "sd": float(e.std(ddof=1)) if len(e) > 1 else 0.0,
            "min": float(e.min()), "max": float(e.max())}


def weat_value(X, Y, A, B) -> float:
    """WEAT's effect size of the four sets' float64 vectors (the row's value)."""
    return effect_size(associations(X, A, B), associations(Y, A, B))


def cohen_size(d: float) -> str:
    """The size word of a significant d on Cohen's scale (the verdict's "a strong association")."""
    d = abs(d)
    return "negligible " if d < 0.2 else "small " if d < 0.5 else "medium " if d < 0.8 else "strong "


WEAT = register(Measure(
    "weat", "WEAT", "Caliskan, Bryson & Narayanan 2017", weat_value, weat_effect_size_torch, True, False,
    "(mean_X s - mean_Y s) / sd of s; > 0: X goes with A and Y with B", bound=effect_size_bound,
    convention="(mean_X s - mean_Y s) / sample std (ddof=1) of s over X and Y; s = mean cos to A - mean cos to B",
    symbol="d", strength=cohen_size, word_vectors_only=False, stats=weat, describe=lambda test: test.description))
