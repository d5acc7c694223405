"""The one registry of the bias measures of a BiasTest (X, Y; A, B): WEAT and RIPA, Direct Bias, RND, MAC, ECT,
RNSB, each one row (``Measure``) that says what it computes and what it needs, and ``check_request``, the one
function that checks a request against a row (a language model asked for a word-vector measure, an influence
target without a derivative).

Each measure module registers its rows when imported (``register``); ``biasaudit.measures`` imports those modules,
one name each, so a new measure is one new file plus its name on that line (docs/architecture.md shows one). This
module imports no measure: the rows come to it.

A row declares:
- what it reads: ``word_vectors_only`` (True: word vectors, a language model is refused; WEAT is False: every
  family reads WEAT its own way, a language model by template association);
- ``paired``: X and Y pair word by word, in order (a word dropped drops its partner);
- ``differentiable`` (a torch twin ``torch_fn``): it can be an influence target, ranking documents; without one,
  ``no_derivative`` says why;
- ``significance_test``: a permutation p (``p_scores``: each attribute word's X-side association, permuted over
  A u B; or its own statistics, ``stats``, as WEAT's permutations of the target words); the others report a
  bootstrap CI and p None;
- how the verdict reads its number: ``symbol`` (WEAT's "d"), ``signed``, ``strength`` (Cohen's words for WEAT's
  d), ``reading``; the largest |value| (``bound``) and the effect-size convention written beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from ..wordsets import DEFAULT_MEASURE

__all__ = ["DEFAULT_MEASURE", "MEASURES", "Measure", "check_request", "get_measure", "is_default", "register"]


@dataclass(frozen=True)
class Measure:
    """One measure of the four word sets: its float64 value, its torch twin (None: not differentiable), and what
    the verdict says about its number (module docstring: what each field declares)."""
    name: str
    label: str
    citation: str
    value: Callable[..., float]                       # (X, Y, A, B) float64 arrays -> float
    torch_fn: Callable | None                         # (X, Y, A, B) tensors -> scalar tensor
    signed: bool
    paired: bool
    reading: str                                      # what the number means, for the verdict
    bound: float | Callable[[int, int], float] = math.inf   # the largest |value| possible (or of |X|, |Y|)
    convention: str = ""                              # effect_size_convention in the result
    symbol: str = ""                                  # what the verdict calls the number (default: label)
    strength: Callable[[float], str] | None = None    # significant: the size word ("strong "); None: "significant "
    word_vectors_only: bool = True                    # False: every family reads it (WEAT: template association)
    no_derivative: str = ""                           # why it cannot be an influence target (no torch_fn)
    p_scores: Callable | None = None                  # (X, Y, W) -> X-side association of each attribute word
    stats: Callable | None = None                     # its own statistics: (vectors, test, **options) -> result
    bootstrap: Callable | None = None                 # its own bootstrap: (X, Y, A, B, n_boot, seed) -> values
    describe: Callable | None = None                  # (test) -> the influence target's description

    @property
    def differentiable(self) -> bool:
        """It has a torch twin: documents can be ranked by it (an influence target)."""
        return self.torch_fn is not None

    @property
    def significance_test(self) -> bool:
        """It reports a permutation p (the others: a bootstrap CI only)."""
        return self.stats is not None or self.p_scores is not None

    def bound_for(self, n_x: int, n_y: int) -> float:
        """The largest |value| with n_x and n_y target words."""
        return self.bound(n_x, n_y) if callable(self.bound) else self.bound

    def description(self, test) -> str:
        """What an influence target of ``test`` read with this measure says it is."""
        return self.describe(test) if self.describe else f"{self.label} ({self.citation}): {self.reading}"


MEASURES: dict[str, Measure] = {}


def register(m: Measure) -> Measure:
    """Add (or replace) the row of measure ``m.name``; each measure module calls it once per row, at import."""
    if m.name != m.name.strip().lower().replace("_", "-"):
        raise ConfigError(f"measure name {m.name!r}: lower case, words joined by '-'")
    MEASURES[m.name] = m
    return m


def get_measure(name: str) -> Measure:
    """The row of measure ``name`` (any case; '_' for '-'), or a ConfigError listing the known ones."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in MEASURES:
        raise ConfigError(f"unknown measure {name!r}: one of {', '.join(MEASURES)}")
    return MEASURES[key]


def is_default(name: str) -> bool:
    """``name`` is the measure a run reads when none is asked (WEAT): each test then reads the one it carries."""
    return str(name).strip().lower() == DEFAULT_MEASURE


def check_request(name: str, family=None, target: bool = False, what: str = "") -> Measure:
    """The row of ``name`` when it can serve the request, else one ConfigError saying why (``what``: the request,
    named first, e.g. "--measure ect" or "test 't' carries measure ect"):

    - ``family`` (a model family: ``word_vectors``, ``label``): a word-vector measure is refused for a family
      without word vectors (language models are measured by template association or paired sentences);
    - ``target``: the measure ranks documents, so it needs a derivative (ECT's ranks and RNSB's fitted classifier
      have none)."""
    m = get_measure(name)
    if family is not None and m.word_vectors_only and not getattr(family, "word_vectors", False):
        raise ConfigError(f"{what or f'measure {m.name}'}, which reads word vectors; {family.label} models are "
                          "measured by template association (--test) or paired sentences (--pairs)")
    if target and not m.differentiable:
        rankable = ", ".join(n for n, r in MEASURES.items() if r.differentiable)
        why = (f"{m.label} cannot be an influence target (no useful derivative: {m.no_derivative or 'no torch twin'}"
               f"); one of {rankable}")
        raise ConfigError(f"{what}: {why}" if what else why)
    return m
