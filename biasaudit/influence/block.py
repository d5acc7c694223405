"""``block`` (Brunet et al. 2019's scheme carried over to skip-gram) and ``gradient-dot``.

block: per-word d x d Hessian blocks of the test words' input vectors with the context vectors held fixed;
s_w = (H_w + damping * mu * I)^-1 dB/du_w. gradient-dot: no Hessian, s_w = dB/du_w (a TracIn-like baseline).

mu is each test's own: the mean curvature of its words' blocks (``own_curvature``). Taken over all tests' words
at once, a test's scores would change with the tests run beside it.
"""
from __future__ import annotations

import torch

from .estimators import EstimatorConfig


def mean_curvature(objective, rows) -> tuple[float, dict]:
    """mu = mean over ``rows`` of trace(H_w)/dim, and the blocks themselves."""
    blocks = objective.input_blocks(rows)
    return own_curvature(blocks, rows, objective.dim), blocks


def own_curvature(blocks: dict, rows, dim: int) -> float:
    """mu of one test: the mean over its words (``rows``) of trace(H_w)/dim, the scale its damping is relative
    to. Per test, so that a test's result does not depend on which other tests run beside it."""
    words = sorted({int(w) for w in rows})
    return float(sum(float(torch.trace(blocks[w])) for w in words) / (len(words) * dim))


def solve_block(objective, grad_u: torch.Tensor, rows, config: EstimatorConfig, blocks: dict, mu: float):
    v = torch.zeros_like(grad_u)
    lam = config.damping * mu
    conds = []
    eye = torch.eye(objective.dim, dtype=grad_u.dtype, device=grad_u.device)
    for w in rows:
        H = blocks[int(w)] + lam * eye
        v[w] = torch.linalg.solve(H, grad_u[w])
        ev = torch.linalg.eigvalsh(H)
        conds.append(float(ev[-1] / ev[0]))
    return v, None, {"damping_absolute": lam, "mean_curvature": mu, "max_condition_number": max(conds)}


def solve_gradient_dot(objective, grad_u, rows, config, blocks=None, mu=None):
    return grad_u.clone(), None, {}


def word_solver(config: EstimatorConfig, blocks: dict, mus: dict, dim: int, dtype=torch.float64, device="cpu"):
    """(word, dB/du_w, test name) -> the estimator's direction for that word: (H_w + damping * mu_test I)^-1 g for
    ``block`` (each test its own mu, the inverses made once per word and test), g for ``gradient-dot``."""
    if config.solve == "identity":
        return lambda w, g, name=None: g
    eye = torch.eye(dim, dtype=dtype, device=device)
    inv: dict = {}

    def solve(w, g, name):
        if (w, name) not in inv:
            inv[w, name] = torch.linalg.inv(blocks[w] + config.damping * mus[name] * eye)
        return inv[w, name] @ g
    return solve
