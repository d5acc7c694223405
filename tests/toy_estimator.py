"""A toy estimator in one file: the whole contract of a new estimator (tests/test_estimator_registry.py runs it
through ``biasaudit.api.score``). ``scaled-gradient-dot:scale=S`` scores a document S times what gradient-dot
gives it, so its results have an exact oracle. The registry line is the decorator."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from biasaudit.influence.estimators import EstimatorConfig, GradientDotConfig, register_estimator


def score_scaled(model, corpus, targets, config, progress=None, client=None, device="cpu", **_):
    """The scorer: gradient-dot's scorer for this family's objective (through the registry), scaled."""
    from biasaudit.models import family_of

    scorer = GradientDotConfig.scorer(family_of(model).objective_kind)
    r = scorer(model, corpus, targets, GradientDotConfig(), progress=progress, client=client, device=device)
    up = None if r.upweighted is None else {n: config.scale * v for n, v in r.upweighted.items()}
    return replace(r, delta_bias_if_removed={n: config.scale * v for n, v in r.delta_bias_if_removed.items()},
                   upweighted=up, estimator=config, predictor=None, basis=None,
                   solver_info={n: {"estimator": config.label, "scale": config.scale} for n in r.solver_info})


@register_estimator
@dataclass(frozen=True)
class ScaledGradientDotConfig(EstimatorConfig):
    """``scaled-gradient-dot``: gradient-dot times ``scale`` (a toy)."""
    name: ClassVar[str] = "scaled-gradient-dot"
    serves: ClassVar[dict] = {"pairs": score_scaled, "counts": score_scaled}
    scale: float = 1.0

    def check(self):
        return None if self.scale > 0 else f"scale must be > 0, got {self.scale!r}"
