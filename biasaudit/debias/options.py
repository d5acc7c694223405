"""What a debias run is asked to do, as one frozen object that checks itself: ``DebiasOptions``. ``run_debias``
takes it; a bad field is one ConfigError naming it."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..influence.estimators import EstimatorConfig
from ..influence.select import SELECT

METHODS = ("remove", "swap", "augment")

# run_debias's former positional parameters after (model, corpus, tests), in order
POSITIONAL = ("estimator", "k", "method", "swaps", "out_dir", "overwrite", "rank_by", "heldout", "strict_oov",
              "min_word_count", "templates")


@dataclass(frozen=True)
class DebiasOptions:
    """The settings of a debias run (``run_debias``; see its docstring for what each does).

    ``estimator``, ``k`` (the bound, "1%" or a count), ``method`` (remove, swap, augment), ``swaps`` (a SwapList),
    ``out_dir``/``overwrite``/``reports_dir``, ``rank_by`` ("test" or "concept"), ``heldout`` (each test's held-out
    companion), ``strict_oov``, ``min_word_count``, ``templates``, ``command`` (recorded in the manifest),
    ``select`` (greedy, top-k), ``target`` (the |d| to reach), ``force`` (edit an insignificant bias), ``verify``
    (seeds retrained on the edit), ``pool``/``rounds`` (the greedy search), ``cache``, ``device``."""
    estimator: EstimatorConfig = EstimatorConfig()
    k: str = "1%"
    method: str = "remove"
    swaps: object = None
    out_dir: str | Path | None = None
    overwrite: bool = False
    rank_by: str = "test"
    heldout: dict | None = None
    strict_oov: bool = False
    min_word_count: int = 1
    templates: object = None
    command: str = ""
    reports_dir: str | Path = "reports"
    select: str = "greedy"
    target: float | None = None
    force: bool = False
    verify: int = 0
    pool: int = 3
    rounds: int = 8
    cache: object = None
    device: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.estimator, EstimatorConfig):
            raise ConfigError(f"estimator must be an EstimatorConfig, got {type(self.estimator).__name__}")
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.select not in SELECT:
            shown = ", ".join(sorted(SELECT))      # greedy first, as this message has always listed them
            raise ConfigError(f"--select must be one of {shown}, got {self.select!r}")
        if self.target is not None and not (np.isfinite(self.target) and self.target >= 0):
            raise ConfigError(f"--target must be a number >= 0 (the |d| to reach), got {self.target!r}")
        if not isinstance(self.verify, int) or self.verify < 0:
            raise ConfigError(f"--verify must be a whole number >= 0, got {self.verify!r}")

    @classmethod
    def from_arguments(cls, args: tuple, kwargs: dict) -> "DebiasOptions":
        """The options from ``run_debias``'s former positional (``POSITIONAL``) and keyword arguments; an unknown
        or repeated one is a ConfigError naming it."""
        if len(args) > len(POSITIONAL):
            raise ConfigError(f"run_debias takes at most {len(POSITIONAL)} settings by position, got {len(args)}")
        given = dict(zip(POSITIONAL, args))
        twice = sorted(set(given) & set(kwargs))
        unknown = sorted(set(kwargs) - {f.name for f in fields(cls)})
        if twice or unknown:
            raise ConfigError(f"debias options: {'given twice' if twice else 'unknown'} {', '.join(twice or unknown)}")
        return cls(**given, **kwargs)
