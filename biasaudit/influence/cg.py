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
    """Preconditioned conjugate gradient: block-Jacobi on the test words' input vectors (their exact d x d
    blocks), Jacobi (the Gauss-Newton diagonal) on every other free vector."""
    free = free_rows_mask(objective, rows, config)
    lam = config.damping * mu

    def A(xu, xc):
        hu, hc = objective.hvp(xu, xc, free, gauss_newton=config.hessian == "gauss-newton")
        return hu + lam * xu * free[:, None], hc + lam * xc

    dU, dC = objective.gn_diagonal()
    dU, dC = dU + lam, dC + lam
    eye = torch.eye(objective.dim, dtype=grad_u.dtype, device=grad_u.device)
    inv_blocks = {int(w): torch.linalg.inv(blocks[int(w)] + lam * eye) for w in rows} if blocks else {}

    def precondition(ru, rc):
        zu, zc = ru / dU * free[:, None], rc / dC
        for w, Hinv in inv_blocks.items():
            zu[w] = Hinv @ ru[w]
        return zu, zc

    bu, bc = grad_u * free[:, None], torch.zeros_like(objective.C)
    xu, xc = torch.zeros_like(bu), torch.zeros_like(bc)
    ru, rc = bu.clone(), bc.clone()
    zu, zc = precondition(ru, rc)
    pu, pc = zu.clone(), zc.clone()
    rz = float((ru * zu).sum() + (rc * zc).sum())
    bnorm = float((bu * bu).sum()) ** 0.5
    it = 0
    rel = 1.0
    for it in range(1, config.max_iter + 1):
        Au, Ac = A(pu, pc)
        curv = float((pu * Au).sum() + (pc * Ac).sum())
        if curv <= 0:  # only with hessian="exact" and too little damping
            return xu, xc, {"damping_absolute": lam, "mean_curvature": mu, "iterations": it,
                            "relative_residual": rel, "converged": False,
                            "stopped": "negative curvature: raise damping or use hessian=gauss-newton"}
        alpha = rz / curv
        xu += alpha * pu
        xc += alpha * pc
        ru -= alpha * Au
        rc -= alpha * Ac
        rel = float((ru * ru).sum() + (rc * rc).sum()) ** 0.5 / bnorm
        if progress:
            progress("cg", it, config.max_iter)
        if rel < config.tol:
            break
        zu, zc = precondition(ru, rc)
        rz_new = float((ru * zu).sum() + (rc * zc).sum())
        pu, pc = zu + (rz_new / rz) * pu, zc + (rz_new / rz) * pc
        rz = rz_new
    return xu, xc, {"damping_absolute": lam, "mean_curvature": mu, "iterations": it,
                    "relative_residual": rel, "converged": rel < config.tol, "preconditioner": "block-jacobi"}
