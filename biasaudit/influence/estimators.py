"""Estimator configuration and registry. An estimator is fitted once on (model, corpus) and then applies an
inverse Hessian to the bias gradient; every estimator shares one scorer (``biasaudit.influence.scorer``).

Damping, decided here: ``damping`` is relative, a multiple of the mean curvature mu = mean over the test words of
trace(H_w) / dim, with H_w the Hessian block of word w's input vector. The solve is (H + damping * mu * I) x = g.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import ConfigError

ESTIMATORS = ("block", "cg", "lissa", "gradient-dot", "ekfac", "magic", "lexical")   # which fit a model family: its
# ``estimators`` (lexical, the BM25 floor, fits every family: models.base.CORPUS_ESTIMATORS)


@dataclass(frozen=True)
class EstimatorConfig:
    """How to apply H^-1. Fields not used by an estimator are ignored by it."""
    name: str = "block"
    damping: float = 0.1          # relative to the mean test-word curvature (see module docstring)
    params: str = "test-inputs"   # cg/lissa: "test-inputs" (test words' input vectors + all output vectors) or "all"
    hessian: str = "gauss-newton" # cg/lissa: "gauss-newton" (PSD) or "exact" (indefinite: needs enough damping)
    max_iter: int = 100           # cg
    tol: float = 1e-3             # cg: relative residual (scores need about three digits; each iteration
                                  # costs one Hessian-vector product over all pairs)
    lissa_scale: float = 25.0     # LiSSA (paper defaults: scale 25, depth 5000, 10 repeats); scale is raised
    lissa_depth: int = 5000       # above the largest eigenvalue when needed (recorded in the results)
    lissa_repeats: int = 10
    lissa_batch: int = 4096       # pairs per stochastic Hessian-vector product
    lissa_rows: int = 256         # input rows per stochastic negative-sampling term
    seed: int = 0
    noise_top: int = 4000         # cg/lissa: noise words taken exactly; the rest importance-sampled
    noise_tail: int = 1000
    metasmoothness: int = 0       # magic: directions of a metasmoothness check of the replayed run (0: none; costs
                                  # 1 + 2 x directions trainings), in the solver info, a note below its threshold
    anchor: str = "trained"       # block, skip-gram: where group predictions re-solve a word from, "trained" (the
                                  # trained vector, offset by its residual gradient) or "optimum" (the word's
                                  # optimum with the context vectors fixed; the change between optima is applied)

    def __post_init__(self):
        if self.name not in ESTIMATORS:
            raise ConfigError(f"EstimatorConfig.name: unknown estimator {self.name!r} (one of {', '.join(ESTIMATORS)})")
        if not self.damping >= 0:
            raise ConfigError(f"EstimatorConfig.damping must be >= 0, got {self.damping!r}")
        if self.hessian not in ("gauss-newton", "exact"):
            raise ConfigError(f"EstimatorConfig.hessian must be 'gauss-newton' or 'exact', got {self.hessian!r}")
        if self.anchor not in ("trained", "optimum"):
            raise ConfigError(f"EstimatorConfig.anchor must be 'trained' or 'optimum', got {self.anchor!r}")
        if self.anchor != "trained" and self.name != "block":
            raise ConfigError(f"EstimatorConfig.anchor={self.anchor} is a setting of block's group predictions, "
                              f"not of {self.name}")
        if not isinstance(self.metasmoothness, int) or isinstance(self.metasmoothness, bool) \
                or not 0 <= self.metasmoothness <= 10:
            raise ConfigError(f"EstimatorConfig.metasmoothness must be a whole number from 0 to 10 (directions), got "
                              f"{self.metasmoothness!r}")
        if self.metasmoothness and self.name != "magic":
            raise ConfigError(f"EstimatorConfig.metasmoothness is a setting of magic, not of {self.name}")
        if self.params not in ("test-inputs", "all"):
            raise ConfigError(f"EstimatorConfig.params must be 'test-inputs' or 'all', got {self.params!r}")
        for f in ("max_iter", "lissa_depth", "lissa_repeats", "lissa_batch", "lissa_rows", "noise_top",
                  "noise_tail"):
            v = getattr(self, f)
            if not isinstance(v, int) or not 1 <= v <= 10 ** 8:
                raise ConfigError(f"EstimatorConfig.{f} must be a whole number from 1 to 100,000,000, got {v!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2 ** 32:
            raise ConfigError(f"EstimatorConfig.seed must be a whole number from 0 to 2^32 - 1, got {self.seed!r}")
        for f in ("damping", "tol", "lissa_scale"):
            if not math.isfinite(getattr(self, f)):
                raise ConfigError(f"EstimatorConfig.{f} must be a finite number, got {getattr(self, f)!r}")
        if self.tol <= 0 or self.lissa_scale <= 0:
            raise ConfigError("EstimatorConfig.tol and lissa_scale must be > 0")

    @property
    def label(self) -> str:
        if self.name in ("gradient-dot", "magic", "lexical"):
            return self.name
        return f"{self.name}:damping={self.damping:g}" + (f",anchor={self.anchor}" if self.anchor != "trained" else "")

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["metasmoothness"]:
            del d["metasmoothness"]     # older runs' settings (and ranking-cache keys) unchanged
        return d

    @classmethod
    def parse(cls, spec: str) -> "EstimatorConfig":
        """``block``, ``cg:damping=0.01,max_iter=500``, ``lissa:lissa_depth=1000``."""
        name, _, rest = spec.partition(":")
        cfg = cls(name=name.strip())
        if not rest:
            return cfg
        types = {f.name: f.type for f in fields(cls)}
        kw = {}
        for item in rest.split(","):
            k, eq, v = item.partition("=")
            k = k.strip()
            if not eq or k not in types or k == "name":
                raise ConfigError(f"estimator {spec!r}: bad setting {item!r} (known: "
                                  f"{', '.join(f for f in types if f != 'name')})")
            t = types[k]
            try:
                kw[k] = v.strip() if t == "str" else int(v) if t == "int" else float(v)
            except ValueError as e:
                raise ConfigError(f"estimator {spec!r}: {k} needs a number, got {v!r}") from e
        return replace(cfg, **kw)


def parse_estimators(specs) -> list[EstimatorConfig]:
    """``block,cg,block:damping=0.5,max_iter=9`` (settings without a ':' continue the estimator before them), from
    one string or several; the same estimator twice is an error."""
    if isinstance(specs, str):
        specs = [specs]
    parts: list[str] = []
    for spec in specs:
        for tok in [t.strip() for t in spec.split(",") if t.strip()]:
            if "=" in tok and ":" not in tok and parts:
                parts[-1] += "," + tok
            else:
                parts.append(tok)
    ests = [EstimatorConfig.parse(p) for p in parts]
    labels = [e.label for e in ests]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--estimator: an estimator is given twice ({', '.join(labels)})")
    if not ests:
        raise ConfigError("--estimator: give at least one estimator")
    return ests
