"""``block`` (Brunet et al. 2019's scheme carried over to skip-gram) and ``gradient-dot``.

block: per-word d x d Hessian blocks of the test words' input vectors with the context vectors held fixed;
s_w = (H_w + damping * mu * I)^-1 dB/du_w. gradient-dot: no Hessian, s_w = dB/du_w (a TracIn-like baseline).
"""
from __future__ import annotations

import torch

from .estimators import EstimatorConfig


def mean_curvature(objective, rows) -> tuple[float, dict]:
    """mu = mean over ``rows`` of trace(H_w)/dim, and the blocks themselves."""
    blocks = objective.input_blocks(rows)
    mu = float(sum(torch.trace(H) for H in blocks.values()) / (len(blocks) * objective.dim))
    return mu, blocks


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
