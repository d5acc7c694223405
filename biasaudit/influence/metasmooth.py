"""Metasmoothness of a training run: whether the trained parameters respond to the documents' weights smoothly
enough for a metagradient (``--estimator magic``) or an influence function to predict retraining (Definition 2 of
Engstrom et al. 2025, "Optimizing ML Training with Metagradient Descent", arXiv 2503.13751; bergson's
``magic/metasmoothness.py`` measures the same).

Decided here:
- Three trainings of the audited run with document weights 1, 1 + h v and 1 + 2h v, for a direction v ~ N(0, I)
  over the documents (seeded), same seed and batches (the family's ``retrain_weighted``: ``--mode masked``'s run).
  With theta_0, theta_h, theta_2h the final parameters, the score is the movement-weighted sign agreement of the two
  consecutive finite differences: sum_i |theta_2h - theta_0|_i / ||theta_2h - theta_0||_1 * sign(theta_h -
  theta_0)_i * sign(theta_2h - theta_h)_i, in [-1, 1]; near 1 where the response is locally linear.
- Two directions by default (the baseline training shared: 1 + 2 x directions trainings); the reported figure is
  the smallest. Also recorded per direction: the measure's three values and the ratio of its two differences
  (1 for a linear response).
- ``h`` = 0.01 by default: the differences stay far above float64 rounding, and a smooth run is near-linear over it
  (measured on a tiny LM, two directions: Adam with eps_root 1e-6 0.996/0.997 at h 0.01, 0.965/0.942 at 0.05;
  torch's AdamW 0.18/0.36 and 0.41/0.32).
- ``THRESHOLD`` = 0.9, calibrated against magic's same-seed masked LDS (docs/results/lm_smooth.md,
  ``scripts/metasmooth_calibration.py``, ``scripts/lm_smooth.py``): the runs measured at or above it had LDS 0.62 to
  0.99 (every one above 0.6); those below it from 0.16 to 0.84, so below it a ranking may or may not confirm. The
  score is over all parameters, and parameters the measure barely reads (AdamW moves rarely-updated ones by about
  the learning rate whatever their gradient) can pull it down while the measure itself responds linearly: the
  measure's own difference ratio per direction is recorded beside it.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

THRESHOLD = 0.9
H = 0.01


def metasmoothness_score(theta0: np.ndarray, theta_h: np.ndarray, theta_2h: np.ndarray) -> float:
    """Movement-weighted sign agreement of consecutive finite differences (see the module docstring)."""
    d = np.abs(theta_2h - theta0)
    total = float(d.sum())
    if total == 0:
        return 1.0
    return float((d / total * np.sign(theta_h - theta0) * np.sign(theta_2h - theta_h)).sum())


def metasmoothness(train_weighted: Callable[[np.ndarray], object], parameters: Callable[[object], np.ndarray],
                   n_docs: int, measures: dict[str, Callable[[object], float]] | None = None, h: float = H,
                   directions: int = 2, seed: int = 0, progress=None, baseline=None) -> dict:
    """The run's metasmoothness (see the module docstring). ``train_weighted(w)``: the run with document weights w,
    a model; ``parameters(model)``: its parameters as one float64 vector; ``measures``: name -> value of a model.
    ``baseline``: the run with weights 1 when the caller holds it (one training fewer)."""
    measures = measures or {}
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    n_train = 2 * directions + (baseline is None)
    if progress:
        progress("metasmoothness trainings", 0, n_train)
    base = train_weighted(np.ones(n_docs)) if baseline is None else baseline
    theta0 = parameters(base)
    b0 = {k: f(base) for k, f in measures.items()}
    out = []
    for k in range(directions):
        v = rng.standard_normal(n_docs)
        models = []
        for j in (1, 2):
            models.append(train_weighted(1.0 + j * h * v))
            if progress:
                progress("metasmoothness trainings", (baseline is None) + 2 * k + j, n_train)
        th, t2h = parameters(models[0]), parameters(models[1])
        row = {"direction": k, "score": metasmoothness_score(theta0, th, t2h),
               "movement_l1": float(np.abs(t2h - theta0).sum())}
        for name, f in measures.items():
            b1, b2 = f(models[0]), f(models[1])
            d1, d2 = b1 - b0[name], b2 - b1
            row.setdefault("measures", {})[name] = {"values": [b0[name], b1, b2],
                                                     "difference_ratio": d2 / d1 if d1 != 0 else None}
        out.append(row)
    scores = [r["score"] for r in out]
    return {"metasmoothness": min(scores), "scores": scores, "h": h, "directions": out, "seed": seed,
            "trainings": n_train, "threshold": THRESHOLD, "smooth": min(scores) >= THRESHOLD,
            "seconds": round(time.perf_counter() - t0, 3)}


def _parameters(model) -> np.ndarray:
    """Every trained parameter as one float64 vector: a network's, or the word vectors a family exposes."""
    import torch
    if hasattr(model, "net"):
        return torch.cat([p.detach().double().flatten() for p in model.net.parameters()]).cpu().numpy()
    return np.asarray(model.vectors, dtype=np.float64).ravel()


def _value(measure):
    import torch

    def f(model) -> float:
        with torch.no_grad():
            if hasattr(measure, "value"):       # a word-vector measure reads the embedding the family exposes
                return float(measure.value(torch.as_tensor(np.asarray(model.vectors))))
            return float(measure.fn(model.net))
    return f


def run_metasmoothness(model, corpus, measures=(), h: float = H, directions: int = 2, seed: int = 0,
                       progress=None, reuse_model: bool = False) -> dict:
    """The metasmoothness of a model's recorded run (trained here, by a family with weighted retraining) on
    ``corpus``, over all its parameters. ``reuse_model``: ``model`` is the run with weights 1 (it was trained on
    ``corpus`` with its config), so it is not trained again."""
    from ..models.base import family_of

    fam = family_of(model)
    n_docs = sum(1 for _ in corpus)
    return metasmoothness(lambda w: fam.retrain_weighted(corpus, model.config, w), _parameters, n_docs,
                          {m.name: _value(m) for m in measures}, h, directions, seed, progress,
                          baseline=model if reuse_model else None)


def audited_run_check(model, corpus, measures, directions: int, progress=None) -> dict:
    """``score``'s check of the audited run: its metasmoothness (``run_metasmoothness``, the model itself as the
    run with weights 1: 2 trainings per direction) and a note saying what it means for the rankings, which the
    command prints first."""
    ms = run_metasmoothness(model, corpus, measures, directions=directions, progress=progress, reuse_model=True)
    v, n = ms["metasmoothness"], len(ms["scores"])
    if ms["smooth"]:
        ms["note"] = (f"metasmoothness {v:.5g} (the smallest of {n} direction(s); at or above {THRESHOLD}): the "
                      "training run responds smoothly to the documents' weights, so its rankings are expected to "
                      "confirm on retraining (on the same seed; across seeds, check with biasaudit experiment)")
    else:
        ms["note"] = (f"metasmoothness {v:.2f} (the smallest of {n} direction(s); below {THRESHOLD}): this training "
                      "run is not smooth in the documents' weights, so rankings of this run are NOT expected to "
                      f"confirm on retraining (measured: runs below {THRESHOLD} reached magic LDS 0.15 to 0.84, runs "
                      "above it 0.62 to 0.99; docs/results/lm_smooth.md). A language model's default audited phase "
                      "(--model lm without --from-scratch: a smooth fine-tune of the bundled base) measures above "
                      "0.99")
    return ms


lm_metasmoothness = run_metasmoothness     # the name the tests and scripts of the LM study use
