"""Seed ensembles (``--ensemble N``): the same model trained with N seeds, each scored with the same estimator, and
every document ranked by the mean of its N scores; and the linear group prediction an ensemble (or a metagradient)
gives.

Decided here:
- The ensemble's score of a document is the mean over seeds of its delta_bias_if_removed (the seeds' models are
  equally good estimates of "the model trained on this corpus", so no seed is weighted more); its bias value is the
  first seed's (the audited model's).
- Sign agreement of a document: the share of seeds whose score has the sign of the mean (1: every seed agrees).
  It joins the ranking's stability in the outputs.
- Group predictions: the linear sum of the edited documents' scores added to the bias value (removal: the sum;
  e extra copies: e times the upweight scores), clipped to the measure's range (a prediction never leaves it).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from .result import ScoreResult


class LinearPredictor:
    """Group predictions as the linear sum of the documents' scores, clipped to each measure's range."""

    def __init__(self, result: ScoreResult, bounds: dict[str, float]):
        self.result, self.bounds = result, bounds

    def predict(self, requests, progress=None) -> list[float]:
        out = []
        for req in requests:
            name, docs, times = req[:3]
            if len(req) > 3 and req[3]:
                raise ConfigError(f"{self.result.estimator.label} scores the corpus's own documents; added "
                                  "rewrites (swap/augment conditions) need block, cg or ekfac predictions")
            docs = np.asarray(docs, dtype=np.int64)
            if times == 0:
                delta = float(self.result.delta_bias_if_removed[name][docs].sum())
            else:
                delta = (times - 1) * float(self.result.delta_bias_if_upweighted(name)[docs].sum())
            b = self.bounds.get(name, np.inf)
            out.append(float(np.clip(self.result.bias_value[name] + delta, -b, b)))
        return out


def ensemble_result(results: list[ScoreResult], seeds: list[int], bounds: dict[str, float]) -> tuple[
        ScoreResult, dict[str, np.ndarray]]:
    """The mean of ``results`` (one per seed, the audited model's first) and each document's sign agreement."""
    first = results[0]
    for r in results[1:]:
        if list(r.doc_ids) != list(first.doc_ids) or set(r.delta_bias_if_removed) != set(first.delta_bias_if_removed):
            raise ConfigError("the ensemble's models were not scored on the same documents and measures")
    mean, agreement, up = {}, {}, None
    for name in first.delta_bias_if_removed:
        stack = np.stack([r.delta_bias_if_removed[name] for r in results])      # (n_seeds, n_docs)
        mean[name] = stack.mean(0)
        agreement[name] = (np.sign(stack) == np.sign(mean[name])[None, :]).mean(0)
    if first.upweighted is not None:
        up = {name: np.mean([r.upweighted[name] for r in results], axis=0) for name in first.upweighted}
    info = {name: {**first.solver_info[name], "ensemble": len(results), "ensemble_seeds": list(seeds),
                   "mean_sign_agreement": float(agreement[name][mean[name] != 0].mean())
                   if np.any(mean[name]) else None}
            for name in first.delta_bias_if_removed}
    timings = {k: float(sum(r.timings.get(k, 0.0) for r in results)) for k in first.timings}
    out = replace(first, delta_bias_if_removed=mean, upweighted=up, solver_info=info, timings=timings,
                  predictor=None, basis=None)
    return replace(out, predictor=LinearPredictor(out, bounds)), agreement
