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
- An ensemble's group predictions are for a seed outside the ensemble (what ``--fresh-seeds`` retrains), so each
  mean score is shrunk toward the mean over documents by the scores' seed reliability (empirical Bayes):
  lambda = tau^2 / (tau^2 + sigma^2 / N), sigma^2 the within-document variance across the N seeds (pooled over
  documents), tau^2 = var(mean scores) - sigma^2 / N the variance of the documents' expected scores (clipped to
  [0, 1]). Why: the top-k by the mean of N seeds are selected partly for their seeds' own noise (one batch order's
  response), which a fresh seed does not repeat; on the real-word planted LM corpus magic's unshrunk predictions
  overstated the fresh seeds' change about 3-fold (docs/results/lm_smooth.md). lambda is estimated from the run,
  nothing is tuned; the ranking (one order for every lambda) and the scores written are the unshrunk means.
  Shrunk are the sets the ranking chose (its top k, a greedy selection); a set chosen without the scores (random
  documents, a user's ids) gets the plain sum, which is unbiased for it: shrinking the 60 planted documents'
  scores under-predicted their removal 3-fold where the plain sum was within 4% (the same run). An experiment
  retraining on the ensemble's own seeds (no ``--fresh-seeds``) uses the plain sums: each of those seeds repeats
  its own response. A removal of a ranking's end (top or bottom k) with three or more seeds is shrunk by that
  set's own lambda (``group_reliability``, leave one seed out), which is right for a set whose scores agree across
  seeds better than a typical document's, and equal to the common lambda where the documents are alike.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from .result import ScoreResult


def seed_reliability(stack: np.ndarray) -> float | None:
    """lambda of the module docstring for scores ``stack`` (n_seeds, n_docs); None below two seeds or documents,
    or where the mean scores do not vary."""
    n_seeds, n_docs = stack.shape
    if n_seeds < 2 or n_docs < 2:
        return None
    total = float(stack.mean(0).var(ddof=1))
    if not total > 0:
        return None
    noise = float(stack.var(0, ddof=1).mean()) / n_seeds
    return float(np.clip((total - noise) / total, 0.0, 1.0))


def ranking_end(mean: np.ndarray, docs: np.ndarray) -> str | None:
    """"low" when ``docs`` are the k lowest ``mean`` scores (a top-k removal's set: np.argsort, stable, as the
    experiment's plan ranks), "high" when the k highest, else None."""
    k, want = len(docs), set(np.asarray(docs).tolist())
    if not 0 < k < len(mean):
        return None
    order = np.argsort(mean, kind="stable")
    return "low" if set(order[:k].tolist()) == want else "high" if set(order[::-1][:k].tolist()) == want else None


def group_reliability(stack: np.ndarray, docs: np.ndarray) -> float | None:
    """The shrinkage of the set ``docs`` when it is an end of the ensemble's ranking (``ranking_end``), estimated by
    leaving one seed out: choose the k documents at that end by the other N - 1 seeds' mean, and compare the
    left-out seed's sum over them with the others' (each measured from its own mean score), summed over the
    left-out seeds. That ratio lambda' is the shrinkage of a selection by N - 1 seeds (for Gaussian scores
    E[expected score | mean] is linear with slope lambda, so the ratio is lambda for any selection by the mean);
    the N seeds' mean is more reliable: 1/lambda - 1 = (N - 1)/N (1/lambda' - 1) (Spearman-Brown). Clipped to
    [0, 1]. It is the winner's curse of this very selection, where one lambda for every document
    (``seed_reliability``) over-shrinks a set whose scores agree across seeds far better than a typical
    document's (a planted set). None below three seeds or when ``docs`` is not such a set."""
    n_seeds, n_docs = stack.shape
    end = ranking_end(stack.mean(0), docs) if n_seeds >= 3 else None
    if end is None:
        return None
    k, num, den = len(docs), 0.0, 0.0
    for j in range(n_seeds):
        others = np.delete(stack, j, axis=0).mean(0)
        order = np.argsort(others, kind="stable")
        chosen = order[:k] if end == "low" else order[::-1][:k]
        num += float(stack[j, chosen].sum() - k * stack[j].mean())
        den += float(others[chosen].sum() - k * others.mean())
    if not den:
        return None
    fewer = float(np.clip(num / den, 0.0, 1.0))
    return 0.0 if fewer == 0 else 1.0 / (1.0 + (n_seeds - 1) / n_seeds * (1.0 / fewer - 1.0))


def shrunk_sum(scores: np.ndarray, docs: np.ndarray, lam: float | None) -> float:
    """The sum of ``scores[docs]``, each shrunk toward the mean score by ``lam`` (None: not shrunk)."""
    total = float(scores[docs].sum())
    if lam is None:
        return total
    return lam * total + (1.0 - lam) * len(docs) * float(scores.mean())


class LinearPredictor:
    """Group predictions as the linear sum of the documents' scores, clipped to each measure's range; ``shrink``
    ({measure: lambda}): an ensemble's seed reliability, each score shrunk toward the mean (module docstring);
    ``stacks`` ({measure: (n_seeds, n_docs) scores}): the seeds' own scores, for a set at an end of the ranking
    its own lambda (``group_reliability``; ``shrinkage`` says which a set gets)."""

    def __init__(self, result: ScoreResult, bounds: dict[str, float], shrink: dict[str, float | None] | None = None,
                 stacks: dict[str, np.ndarray] | None = None):
        self.result, self.bounds, self.shrink, self.stacks = result, bounds, shrink or {}, stacks or {}

    def unshrunk(self) -> "LinearPredictor":
        """The plain sums: the prediction for a set chosen without the scores (random documents, a user's ids),
        whose mean scores are not inflated by selection on the seeds' noise."""
        return LinearPredictor(self.result, self.bounds)

    def shrinkage(self, name: str, docs, removal: bool = True) -> tuple[float, str] | None:
        """(lambda, which) a prediction for ``docs`` of measure ``name`` is shrunk by: a removal of a ranking's end
        its own set's (``group_reliability``), any other every document's; None: not shrunk (the plain sum)."""
        lam = self.shrink.get(name)
        if lam is None:
            return None
        group = group_reliability(self.stacks[name], np.asarray(docs)) if removal and name in self.stacks else None
        return (lam, "every document's seed reliability") if group is None else (
            group, "this set's own seed reliability, one seed left out")

    def shrinkage_note(self, name: str, docs, removal: bool = True) -> str:
        got = self.shrinkage(name, docs, removal)
        return "is not shrunk" if got is None else f"is shrunk by {got[0]:.2f} ({got[1]})"

    def predict(self, requests, progress=None) -> list[float]:
        out = []
        for req in requests:
            name, docs, times = req[:3]
            if len(req) > 3 and req[3]:
                raise ConfigError(f"{self.result.estimator.label} scores the corpus's own documents; added "
                                  "rewrites (swap/augment conditions) need block, cg or ekfac predictions")
            docs = np.asarray(docs, dtype=np.int64)
            lam = (self.shrinkage(name, docs, times == 0) or (None,))[0]
            if times == 0:
                delta = shrunk_sum(self.result.delta_bias_if_removed[name], docs, lam)
            else:
                delta = (times - 1) * shrunk_sum(self.result.delta_bias_if_upweighted(name), docs, lam)
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
    mean, agreement, up, shrink, stacks = {}, {}, None, {}, {}
    for name in first.delta_bias_if_removed:
        stack = stacks[name] = np.stack([r.delta_bias_if_removed[name] for r in results])   # (n_seeds, n_docs)
        mean[name] = stack.mean(0)
        agreement[name] = (np.sign(stack) == np.sign(mean[name])[None, :]).mean(0)
        shrink[name] = seed_reliability(stack)
    if first.upweighted is not None:
        up = {name: np.mean([r.upweighted[name] for r in results], axis=0) for name in first.upweighted}
    info = {name: {**first.solver_info[name], "ensemble": len(results), "ensemble_seeds": list(seeds),
                   "mean_sign_agreement": float(agreement[name][mean[name] != 0].mean())
                   if np.any(mean[name]) else None, "seed_reliability": shrink[name]}
            for name in first.delta_bias_if_removed}
    timings = {k: float(sum(r.timings.get(k, 0.0) for r in results)) for k in first.timings}
    out = replace(first, delta_bias_if_removed=mean, upweighted=up, solver_info=info, timings=timings,
                  predictor=None, basis=None)
    return replace(out, predictor=LinearPredictor(out, bounds, shrink, stacks)), agreement
