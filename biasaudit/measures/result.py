"""One result type for every bias measure: WEAT on word vectors, template association and paired sentences on
language models."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..wordsets import DEFAULT_MEASURE
from .registry import get_measure

# the language models' measures (``measures.lm``); a registered measure's convention is its row's (``registry``)
CONVENTIONS = {
    "template association": "(mean_X s - mean_Y s) / sample std (ddof=1) of s over X and Y; s = mean log p of A "
                            "words minus B words after each target word",
    "paired sentences": "mean over pairs of log p(more stereotyping) - log p(less stereotyping), in nats",
}


@dataclass(frozen=True)
class MeasureResult:
    """A bias measure's value with its uncertainty: permutation p-value (exact or Monte Carlo with its standard
    error) and a confidence interval, on the words (or pairs) it was computed on. ``effect_size`` holds the
    measure's value (the effect size for WEAT); ``p_value`` and ``exact`` are None for a measure with no
    permutation test (Direct Bias, MAC, ECT, RNSB)."""
    test: str
    effect_size: float
    statistic: float | None
    p_value: float | None
    exact: bool | None
    n_permutations: int
    p_value_se: float
    ci_low: float
    ci_high: float
    ci_level: float
    n_bootstrap: int
    sizes: dict
    dropped_words: dict = field(default_factory=dict)
    seed: int | None = None
    metric: str = DEFAULT_MEASURE
    extra: dict = field(default_factory=dict)      # metric-specific figures (fraction_preferred, n_pairs)

    def to_dict(self) -> dict:
        d = {"test": self.test, "effect_size": self.effect_size, "statistic": self.statistic,
             "p_value": self.p_value, "exact": self.exact, "n_permutations": self.n_permutations,
             "p_value_se": self.p_value_se, "ci_low": self.ci_low, "ci_high": self.ci_high,
             "ci_level": self.ci_level, "n_bootstrap": self.n_bootstrap, "sizes": dict(self.sizes),
             "dropped_words": dict(self.dropped_words), "seed": self.seed}
        if self.metric != DEFAULT_MEASURE:       # WEAT's rows carry no metric field
            d["metric"] = self.metric
        d.update(self.extra)
        d["effect_size_convention"] = (CONVENTIONS[self.metric] if self.metric in CONVENTIONS
                                       else get_measure(self.metric).convention)
        return d

    def __getitem__(self, key: str):
        """Dictionary-style access to ``to_dict()``'s fields."""
        return self.to_dict()[key]
