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


def _dot(x: tuple, y: tuple) -> float:
    return float(sum((a * b).sum() for a, b in zip(x, y)))


def pcg(apply, b: tuple, precondition, tol: float, max_iter: int, progress=None) -> tuple[tuple, dict]:
    """Preconditioned conjugate gradient for A x = b, A symmetric positive definite, over vectors given as tuples
    of tensors (one block per parameter group). ``apply(x)`` -> A x and ``precondition(r)`` -> M^-1 r return
    tuples of the same shapes. Stops at relative residual ``tol`` or ``max_iter`` iterations, or at a direction of
    non-positive curvature (A not positive definite: recorded). Returns (x, info)."""
    x = tuple(torch.zeros_like(v) for v in b)
    r = tuple(v.clone() for v in b)
    z = precondition(r)
    p = tuple(v.clone() for v in z)
    rz = _dot(r, z)
    bnorm = _dot(b, b) ** 0.5 or 1.0
    rel, it = 1.0, 0
    for it in range(1, max_iter + 1):
        Ap = apply(p)
        curv = _dot(p, Ap)
        if curv <= 0:   # only with an indefinite operator (hessian="exact" and too little damping)
            return x, {"iterations": it, "relative_residual": rel, "converged": False,
                       "stopped": "negative curvature: raise damping or use hessian=gauss-newton"}
        alpha = rz / curv
        for xi, pi in zip(x, p):
            xi += alpha * pi
        for ri, api in zip(r, Ap):
            ri -= alpha * api
        rel = _dot(r, r) ** 0.5 / bnorm
        if progress:
            progress("cg", it, max_iter)
        if rel < tol:
            break
        z = precondition(r)
        rz_new = _dot(r, z)
        p = tuple(zi + (rz_new / rz) * pi for zi, pi in zip(z, p))
        rz = rz_new
    return x, {"iterations": it, "relative_residual": rel, "converged": rel < tol}


def jacobi_pcg(apply, b: torch.Tensor, diag: torch.Tensor, tol: float, max_iter: int) -> tuple[torch.Tensor, dict]:
    """``pcg`` on one flat vector with a diagonal (Jacobi) preconditioner."""
    (x,), info = pcg(lambda v: (apply(v[0]),), (b,), lambda r: (r[0] / diag,), tol, max_iter)
    return x, {**info, "preconditioner": "jacobi"}


def solve_cg(objective, grad_u: torch.Tensor, rows, config: EstimatorConfig, blocks=None, mu: float = 1.0,
             progress=None, grad_c: torch.Tensor | None = None):
    """Preconditioned conjugate gradient over (the free input vectors, all output vectors): block-Jacobi on the
    test words' input vectors (their exact d x d blocks), Jacobi (the Gauss-Newton diagonal) on every other free
    vector. The right-hand side is (grad_u on the free rows, grad_c or zero on the output vectors)."""
    free = free_rows_mask(objective, rows, config)
    lam = config.damping * mu

    def A(x):
        hu, hc = objective.hvp(x[0], x[1], free, gauss_newton=config.hessian == "gauss-newton")
        return hu + lam * x[0] * free[:, None], hc + lam * x[1]

    dU, dC = objective.gn_diagonal()
    dU, dC = dU + lam, dC + lam
    eye = torch.eye(objective.dim, dtype=grad_u.dtype, device=grad_u.device)
    inv_blocks = {int(w): torch.linalg.inv(blocks[int(w)] + lam * eye) for w in rows} if blocks else {}

    def precondition(r):
        zu, zc = r[0] / dU * free[:, None], r[1] / dC
        for w, Hinv in inv_blocks.items():
            zu[w] = Hinv @ r[0][w]
        return zu, zc

    b = (grad_u * free[:, None], torch.zeros_like(objective.C) if grad_c is None else grad_c)
    (xu, xc), info = pcg(A, b, precondition, config.tol, config.max_iter, progress)
    info = {"damping_absolute": lam, "mean_curvature": mu, **info}
    if "stopped" not in info:
        info["preconditioner"] = "block-jacobi"
    return xu, xc, info
