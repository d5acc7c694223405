"""Estimator configuration and registry. An estimator is fitted once on (model, corpus) and then applies an
inverse Hessian to the bias gradient (or, for the floors, reads the corpus alone).

Each estimator registers one frozen config class (kronfluence's ``ScoreArguments``/``FactorArguments`` pattern):
its own settings with their checks, and what it serves, declared once:

- ``serves``: the objective kinds it scores (a family's ``objective_kind``: ``pairs``, ``counts``, ``task``), each
  with its scorer (``"module:function"`` under ``biasaudit.influence``, imported when used, or a callable); ``"*"``:
  every family, from the corpus and the tests' words alone (``lexical``);
- ``needs_replay``: it differentiates the family's recorded training run (the family declares ``replays``);
- ``group_predictions``: the objective kinds where its result re-measures the removal of a group of documents
  (a predictor re-solving the model; the others predict linearly, the sum of the documents' scores);
- ``solve``: how the shared scorers apply H^-1 (``blocks``, ``identity``, ``iterative``, ``ekfac``; None: its
  scorer is its own).

``check_estimators`` decides from these declarations, once, whether an estimator fits a family;
``influence.score_model`` calls the scorer the estimator declares for the family's objective kind. A new
estimator is one file (its config class under ``@register_estimator`` and its scorer) plus one line importing
that file at the end of this module (docs/architecture.md shows one).

Damping, decided here: ``damping`` is relative, a multiple of the mean curvature mu = mean over the test words of
trace(H_w) / dim, with H_w the Hessian block of word w's input vector. The solve is (H + damping * mu * I) x = g.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, fields
from typing import Callable, ClassVar

from ..errors import ConfigError

ESTIMATORS: dict[str, type] = {}     # name -> config class, in the order messages list them
DEFAULT = "block"                    # what ``EstimatorConfig()`` builds

# Compatibility: before each estimator had its own class, one flat EstimatorConfig held these settings (in this
# order, with these defaults) and its to_dict() wrote them all. summary.json, experiment.json, manifests,
# ranking-cache keys and resume checks hold that dict, so the estimators of then still write it, byte for byte:
# their own settings over these defaults (metasmoothness left out at 0, as it was).
FLAT_SETTINGS = {"name": "block", "damping": 0.1, "params": "test-inputs", "hessian": "gauss-newton",
                 "max_iter": 100, "tol": 1e-3, "lissa_scale": 25.0, "lissa_depth": 5000, "lissa_repeats": 10,
                 "lissa_batch": 4096, "lissa_rows": 256, "seed": 0, "noise_top": 4000, "noise_tail": 1000,
                 "metasmoothness": 0, "anchor": "trained"}
FLAT_ESTIMATORS = ("block", "cg", "lissa", "gradient-dot", "ekfac", "magic", "lexical")

_WHOLE = ("max_iter", "lissa_depth", "lissa_repeats", "lissa_batch", "lissa_rows", "noise_top", "noise_tail")
_CHOICES = {"params": ("test-inputs", "all"), "hessian": ("gauss-newton", "exact"), "anchor": ("trained", "optimum")}


def _check_setting(f: str, v) -> str | None:
    """Why setting ``f`` = ``v`` is out of range (one line), or None. Each shared setting is checked here once,
    whichever estimators carry it."""
    if f in _CHOICES and v not in _CHOICES[f]:
        return f"{f} must be {' or '.join(repr(c) for c in _CHOICES[f])}, got {v!r}"
    if f in _WHOLE and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 10 ** 8):
        return f"{f} must be a whole number from 1 to 100,000,000, got {v!r}"
    if f == "seed" and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2 ** 32):
        return f"seed must be a whole number from 0 to 2^32 - 1, got {v!r}"
    if f == "metasmoothness" and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10):
        return f"metasmoothness must be a whole number from 0 to 10 (directions), got {v!r}"
    if f in ("damping", "tol", "lissa_scale"):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return f"{f} must be a finite number, got {v!r}"
        if f == "damping" and v < 0:
            return f"damping must be >= 0, got {v!r}"
        if f != "damping" and v <= 0:
            return f"{f} must be > 0, got {v!r}"
    return None


class _ByName(type):
    """``EstimatorConfig(name="cg", max_iter=200)`` builds the registered class of that name (``CGConfig``), as the
    one flat config did; a registered class is built as itself. A setting the estimator does not have is refused
    naming the estimator's own settings."""

    def __call__(cls, *args, **kwargs):
        if cls is EstimatorConfig:
            if len(args) > 1:
                raise ConfigError("EstimatorConfig: give the name, then settings by keyword "
                                  "(EstimatorConfig(name='cg', max_iter=200))")
            name = args[0] if args else kwargs.pop("name", DEFAULT)
            return estimator_class(name)(**kwargs)
        if "name" in kwargs:
            if kwargs.pop("name") != cls.name:
                raise ConfigError(f"{cls.__name__} is the config of {cls.name!r}")
        own = cls.settings()
        odd = [k for k in kwargs if k not in own]
        if odd:
            raise ConfigError(f"estimator {cls.name}: {cls.not_own(odd[0])}")
        return super().__call__(*args, **kwargs)


@dataclass(frozen=True)
class EstimatorConfig(metaclass=_ByName):
    """How to apply H^-1: the base of every estimator's config (see the module docstring).
    ``EstimatorConfig(name=..., **settings)`` builds the registered class of that name."""
    name: ClassVar[str]
    serves: ClassVar[dict] = {}
    needs_replay: ClassVar[bool] = False
    group_predictions: ClassVar[tuple] = ()
    solve: ClassVar[str | None] = None

    def __post_init__(self):
        for f in fields(self):
            why = _check_setting(f.name, getattr(self, f.name))
            if why:
                raise ConfigError(f"EstimatorConfig.{why} (estimator {self.name})")
        why = self.check()
        if why:
            raise ConfigError(f"EstimatorConfig.{why} (estimator {self.name})")

    def check(self) -> str | None:
        """An estimator's own check beyond each setting's range (override): why the settings do not fit, or None."""
        return None

    @classmethod
    def settings(cls) -> tuple:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def settings_text(cls) -> str:
        """``block's settings: damping, anchor`` (``gradient-dot takes no settings``), for messages."""
        own = cls.settings()
        return f"{cls.name}'s settings: {', '.join(own)}" if own else f"{cls.name} takes no settings"

    @classmethod
    def not_own(cls, setting: str) -> str:
        """Why ``setting`` is refused: whose setting it is, and this estimator's own."""
        owners = [n for n, c in ESTIMATORS.items() if setting in c.settings()]
        owned = " and ".join(owners) if len(owners) < 3 else ", ".join(owners[:-1]) + " and " + owners[-1]
        whose = f"a setting of {owned}, not of {cls.name}" if owners else f"not a setting of {cls.name}"
        return f"{setting} is {whose} ({cls.settings_text()})"

    @classmethod
    def corpus_only(cls) -> bool:
        return "*" in cls.serves

    @classmethod
    def fits(cls, family) -> bool:
        """Does this estimator score ``family``'s models (by the declarations alone)."""
        if cls.corpus_only():
            return True
        return family.objective_kind in cls.serves and (not cls.needs_replay or bool(getattr(family, "replays",
                                                                                            False)))

    @classmethod
    def scorer(cls, objective_kind) -> Callable:
        """The scorer it declares for ``objective_kind``: ``f(model, corpus, targets, config, progress=, client=,
        device=)`` -> ScoreResult."""
        fn = cls.serves["*"] if cls.corpus_only() else cls.serves[objective_kind]
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module, __package__), attr)
        return fn

    @property
    def label(self) -> str:
        """How results name it (``block:damping=0.1``): its damping, where it has one."""
        return f"{self.name}:damping={self.damping:g}" if "damping" in self.settings() else self.name

    def to_dict(self) -> dict:
        own = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.name not in FLAT_ESTIMATORS:
            return {"name": self.name, **own}
        d = dict(FLAT_SETTINGS, name=self.name, **own)     # the flat dict of before (see FLAT_SETTINGS)
        if not d["metasmoothness"]:
            del d["metasmoothness"]     # older runs' settings (and ranking-cache keys) unchanged
        return d

    @classmethod
    def parse(cls, spec: str) -> "EstimatorConfig":
        """``block``, ``cg:damping=0.01,max_iter=500``, ``lissa:lissa_depth=1000``."""
        name, _, rest = spec.partition(":")
        est = estimator_class(name.strip())
        if not rest:
            return est()
        types = {f.name: f.type for f in fields(est)}
        kw = {}
        for item in rest.split(","):
            k, eq, v = item.partition("=")
            k = k.strip()
            if not eq or k not in types:
                raise ConfigError(f"estimator {spec!r}: bad setting {item!r}: "
                                  f"{est.not_own(k) if eq else est.settings_text()}")
            t = types[k]
            try:
                kw[k] = v.strip() if t == "str" else int(v) if t == "int" else float(v)
            except ValueError as e:
                raise ConfigError(f"estimator {spec!r}: {k} needs a number, got {v!r}") from e
        return est(**kw)


def register_estimator(cls: type) -> type:
    """Register an estimator's config class under its ``name`` (a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, EstimatorConfig) and isinstance(getattr(cls, "name", None),
                                                                                      str)):
        raise TypeError("register_estimator takes an EstimatorConfig subclass with a name")
    ESTIMATORS[cls.name] = cls
    return cls


def estimator_class(name: str) -> type:
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"EstimatorConfig.name: unknown estimator {name!r} (one of {', '.join(ESTIMATORS)})") \
            from None


# ------------------------------------------------------------------ the estimators
_PER_WORD = {"pairs": ".scorer:score_documents", "counts": ".counts:score_glove"}


@register_estimator
@dataclass(frozen=True)
class BlockConfig(EstimatorConfig):
    """``block``: per-word d x d Hessian blocks of the test words' input vectors (Brunet et al. 2019)."""
    name: ClassVar[str] = "block"
    serves: ClassVar[dict] = _PER_WORD
    group_predictions: ClassVar[tuple] = ("pairs", "counts")
    solve: ClassVar[str] = "blocks"
    damping: float = 0.1          # relative to the mean test-word curvature (see module docstring)
    anchor: str = "trained"       # skip-gram: where group predictions re-solve a word from, "trained" (the
                                  # trained vector, offset by its residual gradient) or "optimum" (the word's
                                  # optimum with the context vectors fixed; the change between optima is applied)

    @property
    def label(self) -> str:
        return super().label + (f",anchor={self.anchor}" if self.anchor != "trained" else "")


@dataclass(frozen=True)
class _IterativeConfig(EstimatorConfig):
    """What cg and lissa share: a solve over the test words' input vectors and all output vectors (or all)."""
    serves: ClassVar[dict] = {"pairs": ".scorer:score_documents"}
    group_predictions: ClassVar[tuple] = ("pairs",)
    solve: ClassVar[str] = "iterative"
    damping: float = 0.1
    params: str = "test-inputs"   # "test-inputs" (test words' input vectors + all output vectors) or "all"
    hessian: str = "gauss-newton" # "gauss-newton" (PSD) or "exact" (indefinite: needs enough damping)


@register_estimator
@dataclass(frozen=True)
class CGConfig(_IterativeConfig):
    """``cg``: preconditioned conjugate gradient with exact Hessian-vector products."""
    name: ClassVar[str] = "cg"
    serves: ClassVar[dict] = {"pairs": ".scorer:score_documents", "counts": ".counts:score_glove"}
    max_iter: int = 100
    tol: float = 1e-3             # relative residual (scores need about three digits; each iteration
                                  # costs one Hessian-vector product over all pairs)
    seed: int = 0
    noise_top: int = 4000         # noise words taken exactly; the rest importance-sampled
    noise_tail: int = 1000


@register_estimator
@dataclass(frozen=True)
class LissaConfig(_IterativeConfig):
    """``lissa``: the stochastic recursion (paper defaults: scale 25, depth 5000, 10 repeats); the scale is raised
    above the largest eigenvalue when needed (recorded in the results)."""
    name: ClassVar[str] = "lissa"
    lissa_scale: float = 25.0
    lissa_depth: int = 5000
    lissa_repeats: int = 10
    lissa_batch: int = 4096       # pairs per stochastic Hessian-vector product
    lissa_rows: int = 256         # input rows per stochastic negative-sampling term
    seed: int = 0
    noise_top: int = 4000
    noise_tail: int = 1000


@register_estimator
@dataclass(frozen=True)
class GradientDotConfig(EstimatorConfig):
    """``gradient-dot``: no Hessian, the bias gradient itself (a TracIn-like baseline); no settings."""
    name: ClassVar[str] = "gradient-dot"
    serves: ClassVar[dict] = {**_PER_WORD, "task": ".ekfac:score_lm"}
    solve: ClassVar[str] = "identity"


@register_estimator
@dataclass(frozen=True)
class EkfacConfig(EstimatorConfig):
    """``ekfac``: kronfluence's EK-FAC over the network's summed token loss; damping scales kronfluence's
    heuristic (damping x the mean eigenvalue of each module's factors)."""
    name: ClassVar[str] = "ekfac"
    serves: ClassVar[dict] = {"task": ".ekfac:score_lm"}
    group_predictions: ClassVar[tuple] = ("task",)
    solve: ClassVar[str] = "ekfac"
    damping: float = 0.1


@register_estimator
@dataclass(frozen=True)
class MagicConfig(EstimatorConfig):
    """``magic``: exact metagradients through the recorded training run, whatever the objective."""
    name: ClassVar[str] = "magic"
    serves: ClassVar[dict] = {k: ".magic:score_magic" for k in ("pairs", "counts", "task")}
    needs_replay: ClassVar[bool] = True
    metasmoothness: int = 0       # directions of a metasmoothness check of the replayed run (0: none; costs
                                  # 1 + 2 x directions trainings), in the solver info, a note below its threshold


@register_estimator
@dataclass(frozen=True)
class LexicalConfig(EstimatorConfig):
    """``lexical``: the BM25 floor, from the corpus and the tests' words alone (no model): fits every family."""
    name: ClassVar[str] = "lexical"
    serves: ClassVar[dict] = {"*": ".lexical:score_lexical"}


# ------------------------------------------------------------------ families and lists
def estimators_for(family) -> list[str]:
    """The estimators that fit ``family``: its default first, then the registry's order."""
    default = getattr(family, "default_estimator", None)
    return ([default] if default else []) + [n for n, c in ESTIMATORS.items() if n != default and c.fits(family)]


def check_estimators(estimators, family, config=None) -> None:
    """The one place that decides whether estimators fit a family (before any training), from their declarations;
    with ``config``, also whether they fit that configuration (the family's ``estimator_refusal``: e.g. magic
    replays a training run, which gensim's C training cannot give)."""
    from ..models.base import FAMILIES, human_list

    for e in estimators:
        est = type(e)
        if est.fits(family):
            refusal = getattr(family, "estimator_refusal", None)
            why = refusal(e.name, config) if (refusal is not None and config is not None
                                              and not est.corpus_only()) else None
            if why:
                raise ConfigError(why)
            continue
        fits = [f for f in FAMILIES.values() if est.fits(f)]
        # "embeddings" only to a family that is not one (said to a word-vector family without a loss, it misleads)
        vectors = len(fits) > 1 and all(f.word_vectors for f in fits) and not family.word_vectors
        takes = human_list(estimators_for(family))

        def whom(form: str) -> str:
            return "embeddings" if vectors else human_list(form.format(f.name) for f in fits) or "no model family"
        # the API's words (model='glove'), and the command line's (--model glove)
        raise ConfigError(f"estimator {e.name!r} is for {whom('model={!r}')}; model={family.name!r} takes "
                          f"{takes}").with_cli(f"estimator {e.name!r} is for {whom('--model {}')}; --model "
                                               f"{family.name} takes {takes}")


def parse_estimators(specs) -> list[EstimatorConfig]:
    """``block,cg:damping=0.5,max_iter=9`` (settings without a ':' continue the estimator before them), from
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
        raise ConfigError(f"estimator: an estimator is given twice ({', '.join(labels)})").with_cli(
            f"--estimator: an estimator is given twice ({', '.join(labels)})")
    if not ests:
        raise ConfigError("estimator: give at least one estimator").with_cli(
            "--estimator: give at least one estimator")
    return ests


# An estimator kept in a file of its own registers itself when that file is imported: one line per file here,
# ``from . import <file>  # noqa: E402,F401`` (docs/architecture.md shows one).
