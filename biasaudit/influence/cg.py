"""``cg``: conjugate gradient on (H + damping * mu * I) x = g with exact Hessian-vector products over the test
words' input vectors and all output vectors (``params="test-inputs"``) or all parameters (``params="all"``)."""
from __future__ import annotations

import torch

from .estimators import EstimatorConfig


def free_rows_mask(objective, rows, config: EstimatorConfig) -> torch.Tensor:
    free = torch.zeros(objective.V, dtype=torch.bool, device=objective.device)
    if config.params == "all":
        free[:] = True
    else:
        free[torch.as_tensor(rows, device=objective.device)] = True
    return free


def solve_cg(objective, grad_u: torch.Tensor, rows, config: EstimatorConfig, blocks=None, mu: float = 1.0,
             progress=None):
    free = free_rows_mask(objective, rows, config)
    lam = config.damping * mu

    def A(xu, xc):
        hu, hc = objective.hvp(xu, xc, free, gauss_newton=config.hessian == "gauss-newton")
        return hu + lam * xu * free[:, None], hc + lam * xc

    bu, bc = grad_u * free[:, None], torch.zeros_like(objective.C)
    xu, xc = torch.zeros_like(bu), torch.zeros_like(bc)
    ru, rc = bu.clone(), bc.clone()
    pu, pc = ru.clone(), rc.clone()
    rs = float((ru * ru).sum() + (rc * rc).sum())
    bnorm = rs ** 0.5
    it = 0
    rel = 1.0
    for it in range(1, config.max_iter + 1):
        Au, Ac = A(pu, pc)
        curv = float((pu * Au).sum() + (pc * Ac).sum())
        if curv <= 0:  # only with hessian="exact" and too little damping
            return xu, xc, {"damping_absolute": lam, "mean_curvature": mu, "iterations": it,
                            "relative_residual": rel, "converged": False,
                            "stopped": "negative curvature: raise damping or use hessian=gauss-newton"}
        alpha = rs / curv
        xu += alpha * pu
        xc += alpha * pc
        ru -= alpha * Au
        rc -= alpha * Ac
        rs_new = float((ru * ru).sum() + (rc * rc).sum())
        rel = rs_new ** 0.5 / bnorm
        if progress:
            progress("cg", it, config.max_iter)
        if rel < config.tol:
            break
        pu, pc = ru + (rs_new / rs) * pu, rc + (rs_new / rs) * pc
        rs = rs_new
    return xu, xc, {"damping_absolute": lam, "mean_curvature": mu, "iterations": it,
                    "relative_residual": rel, "converged": rel < config.tol}
