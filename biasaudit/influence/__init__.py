"""Cross-loss influence: which training documents move a bias measure, and by how much.

``delta_bias_if_removed(d) ~= grad B(theta)^T H^-1 grad L_d(theta)``: the predicted change of the bias measure B
(e.g. a WEAT effect size) if document d is removed and the model retrained; L is the summed training objective,
H its Hessian at the trained parameters, L_d the part of L that comes from d. A negative value means the document
drives the bias up (removing it lowers B). ``delta_bias_if_upweighted(d)`` (one more copy of d) is its negative.

The scorer is the one the estimator registers (``estimators.py``: ``serves``) for the kind of objective the
model's family declares (``objective_kind``), never chosen by the family or the estimator's name: ``pairs`` (a
loss over weighted word pairs, ``scorer``), ``counts`` (weighted least squares over co-occurrence counts,
``counts``), ``task`` (a network's summed token loss, through kronfluence, ``ekfac``); ``magic`` and ``lexical``
score every kind their own way.
"""
from __future__ import annotations

from .estimators import check_estimators
from .result import DocumentScores, ScoreResult


def score_model(model, corpus, targets, estimator, progress=None, client=None, device: str = "cpu") -> DocumentScores:
    """Every document's predicted change of every target, by the machinery the model's objective needs."""
    from ..models.base import family_of

    fam = family_of(model)
    check_estimators([estimator], fam)      # vectors without a training loss: only corpus-only estimators fit
    # the scorer the estimator registered for the family's kind of objective (estimators.py: ``serves``)
    scorer = type(estimator).scorer(fam.objective_kind)
    return scorer(model, corpus, targets, estimator, progress=progress, client=client, device=device)


def rank(model, corpus, targets, estimator, seed_models=(), seed_targets=(), seeds=(), progress=None,
         client=None, device: str = "cpu", seed_progress: bool = True):
    """The one ranking step of score, experiment and debias: every document's scores on ``model`` and, with
    ``seed_models`` (``--ensemble``: the same model trained with other seeds, each with its own measures in
    ``seed_targets``, ``seeds`` naming all of them, the audited model's first), the mean score over the seeds with
    each document's sign agreement (``influence.ensemble``). Returns (DocumentScores, {test: sign agreement}), the
    second empty without seeds."""
    result = score_model(model, corpus, targets, estimator, progress=progress, client=client, device=device)
    if not seed_models:
        return result, {}
    from .ensemble import ensemble_result

    results, n = [result], len(seed_models)
    for k, (m, tg) in enumerate(zip(seed_models, seed_targets)):
        if progress:
            progress("ensemble seeds scored", k, n)
        results.append(score_model(m, corpus, tg, estimator, progress=progress if seed_progress else None,
                                   client=client, device=device))
    if progress:
        progress("ensemble seeds scored", n, n)
    return ensemble_result(results, list(seeds), {t.name: t.bound for t in targets})


__all__ = ["DocumentScores", "ScoreResult", "rank", "score_model"]
