"""``lissa``: the stochastic recursion of Agarwal et al. as used by the cross-loss influence paper,
x_j = g + (1 - lambda) x_{j-1} - H~ x_{j-1} / scale, estimate x_J / scale, averaged over repeats, with H~ an
unbiased Hessian-vector product from a random batch of pairs and input rows. Its fixed point is
(H + lambda * scale * I)^-1 g; lambda is set so that lambda * scale equals the shared damping (damping * mu).
The scale must exceed the largest eigenvalue of H for the recursion to converge: it is raised to 1.2 times a
power-iteration estimate when needed, and the value used is recorded."""
from __future__ import annotations

import torch

from .cg import free_rows_mask
from .estimators import EstimatorConfig


def _top_eigenvalue(objective, free, gn: bool, iters: int = 30, seed: int = 0) -> float:
    g = torch.Generator(device="cpu").manual_seed(seed)
    xu = torch.randn(objective.U.shape, generator=g, dtype=objective.dtype).to(objective.device) * free[:, None]
    xc = torch.randn(objective.C.shape, generator=g, dtype=objective.dtype).to(objective.device)
    lam = 0.0
    for _ in range(iters):
        n = float((xu * xu).sum() + (xc * xc).sum()) ** 0.5
        xu, xc = xu / n, xc / n
        hu, hc = objective.hvp(xu, xc, free, gauss_newton=gn)
        lam = float((xu * hu).sum() + (xc * hc).sum())
        xu, xc = hu, hc
    return lam


def solve_lissa(objective, grad_u: torch.Tensor, rows, config: EstimatorConfig, blocks=None, mu: float = 1.0,
                progress=None):
    free = free_rows_mask(objective, rows, config)
    gn = config.hessian == "gauss-newton"
    top = _top_eigenvalue(objective, free, gn, seed=config.seed)
    scale = max(config.lissa_scale, 1.2 * top)
    damping_abs = config.damping * mu
    lam = damping_abs / scale
    n_pairs, V = len(objective.pw), objective.V
    B, R = min(config.lissa_batch, n_pairs), min(config.lissa_rows, V)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    bu = grad_u * free[:, None]
    est_u, est_c = torch.zeros_like(bu), torch.zeros_like(objective.C)
    total = config.lissa_repeats * config.lissa_depth
    for rep in range(config.lissa_repeats):
        hu, hc = bu.clone(), torch.zeros_like(objective.C)
        for j in range(config.lissa_depth):
            # a batch as large as the data is the full, deterministic product
            ps = None if B >= n_pairs else torch.randint(0, n_pairs, (B,), generator=gen).to(objective.device)
            rs = None if R >= V else torch.randint(0, V, (R,), generator=gen).to(objective.device)
            Hu, Hc = objective.hvp(hu, hc, free, pair_sample=ps, pair_scale=1.0 if ps is None else n_pairs / B,
                                   row_sample=rs, row_scale=1.0 if rs is None else V / R, gauss_newton=gn)
            hu = bu + (1 - lam) * hu - Hu / scale
            hc = (1 - lam) * hc - Hc / scale
            if progress and j % 100 == 0:
                progress("lissa", rep * config.lissa_depth + j, total)
        est_u += hu / scale / config.lissa_repeats
        est_c += hc / scale / config.lissa_repeats
    return est_u, est_c, {"damping_absolute": damping_abs, "mean_curvature": mu, "scale": scale,
                          "top_eigenvalue": top, "depth": config.lissa_depth, "repeats": config.lissa_repeats}
