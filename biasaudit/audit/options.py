"""What a score run is asked to do, as one frozen object that checks itself: ``ScoreOptions``. The API's ``score``
builds it from its keyword arguments, ``run_score`` takes it; a bad field is one ConfigError naming it."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import ConfigError
from ..influence.estimators import EstimatorConfig
from ..influence.stability import N_RESAMPLES
from ..measures.options import check_count


@dataclass(frozen=True)
class ScoreOptions:
    """The settings of a score run (``run_score``).

    ``estimator``: the influence estimator; ``out_dir``/``overwrite``/``reports_dir``: where the outputs go;
    ``strict_oov``: a test word the model lacks is an error, not a note; ``query``: (word, toward, away) scored
    instead of tests; ``top``: documents shown per direction; ``device``: where the scorer runs; ``templates``,
    ``pairs``: a language model's sentence templates and paired sentences; ``min_word_count``: rarer test words are
    dropped; ``n_resamples``: resamples of the ranking's stability; ``ensemble``: rank by the mean score of that
    many seeds' models; ``measure``: the measure the tests are read with; ``metasmoothness``: directions of the
    audited run's metasmoothness check (2 trainings each; None: the family's default, 2 for a language model
    trained here, else 0; 0: none)."""
    estimator: EstimatorConfig = EstimatorConfig()
    out_dir: str | Path | None = None
    overwrite: bool = False
    strict_oov: bool = False
    query: tuple | None = None
    top: int = 10
    reports_dir: str | Path = "reports"
    device: str = "cpu"
    templates: object = None
    pairs: object = None
    min_word_count: int = 1
    n_resamples: int = N_RESAMPLES
    ensemble: int = 1
    measure: str = "weat"
    metasmoothness: int | None = None

    def __post_init__(self):
        if not isinstance(self.estimator, EstimatorConfig):
            raise ConfigError(f"estimator must be an EstimatorConfig, got {type(self.estimator).__name__}")
        object.__setattr__(self, "ensemble", check_count("ensemble", self.ensemble))
        object.__setattr__(self, "n_resamples", check_count("n_resamples", self.n_resamples))
        ms = self.metasmoothness
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= 10):
            raise ConfigError(f"metasmoothness must be a whole number of directions from 0 to 10, got {ms!r}")
        for name in ("top", "min_word_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.query is not None and (not isinstance(self.query, tuple) or len(self.query) != 3):
            raise ConfigError(f"query must be (word, toward, away), got {self.query!r}")
        if self.ensemble > 1 and self.query is not None:
            raise ConfigError("ensemble ranks by bias tests or pairs; a query takes one model").with_cli(
                "--ensemble ranks by bias tests or --pairs; --query takes one model")

    @classmethod
    def from_keywords(cls, estimator: EstimatorConfig | None = None, **kwargs) -> "ScoreOptions":
        """The options from ``run_score``'s former keyword arguments; an unknown one is a ConfigError naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(f"score options: unknown {', '.join(unknown)}")
        return cls(estimator=estimator if estimator is not None else EstimatorConfig(), **kwargs)
