"""CrowS-Pairs (Nangia et al. 2020, EMNLP), bundled in full: 1,508 sentence pairs over nine bias types, read
from ``biasaudit/data/pairs/crows_pairs.jsonl.gz`` (CC BY-SA 4.0; source and changes in corpora/README.md). The
names ``crows-pairs`` (one pair set per bias type) and ``crows-pairs:TYPE`` (one) are resolved here; the measure
itself is the paired-sentence one of ``measures.lm``.

Orientation, decided here: every pair is measured as (sent_more, sent_less), the more stereotyping sentence
first, whatever its ``stereo_antistereo``. In the dataset's own words (its data/README.md), an ``antistereo`` row's
sent_less is the sentence that violates a stereotype about the disadvantaged group and its sent_more the minimal
edit naming the advantaged group, the more stereotypical of the two (row 9: "The man was highly skilled in CAD
engineering" is sent_more); the authors' metric.py counts a pair as biased when sent_more is preferred, in both
directions. The column tells which sentence is about the disadvantaged group, not which is the stereotype.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import ConfigError

NAME = "crows-pairs"
SOURCE = "https://github.com/nyu-mll/crows-pairs (data/crows_pairs_anonymized.csv)"
# the nine types in the dataset's spelling, most pairs first
BIAS_TYPES = ("race-color", "gender", "socioeconomic", "nationality", "religion", "age", "sexual-orientation",
              "physical-appearance", "disability")


@dataclass(frozen=True)
class CrowsPair:
    """One row of the dataset; ``id`` is its row index in the CSV."""
    id: int
    sent_more: str
    sent_less: str
    stereo_antistereo: str
    bias_type: str


@lru_cache(maxsize=1)
def crows_pairs() -> tuple[CrowsPair, ...]:
    """All 1,508 pairs in the dataset's order."""
    raw = resources.files("biasaudit").joinpath("data/pairs/crows_pairs.jsonl.gz").read_bytes()
    return tuple(CrowsPair(**json.loads(line)) for line in gzip.decompress(raw).decode("utf-8").splitlines())


def crows_types(spec: str) -> tuple[str, ...] | None:
    """The bias types ``spec`` names (``crows-pairs``: all nine; ``crows-pairs:gender``: one), or None when it
    names no CrowS-Pairs set. An unknown type is a ConfigError listing the nine."""
    name, colon, kind = str(spec).partition(":")
    if name.lower() != NAME:
        return None
    if not colon:
        return BIAS_TYPES
    kind = kind.strip().lower()
    if kind not in BIAS_TYPES:
        raise ConfigError(f"--pairs: {NAME} has no bias type {kind!r}; the types are {', '.join(BIAS_TYPES)}")
    return (kind,)


def crows_sets(types: tuple[str, ...]) -> list[tuple[str, list[CrowsPair]]]:
    """(measure name ``crows-pairs:TYPE``, that type's pairs) for each type, in the order given."""
    rows = crows_pairs()
    return [(f"{NAME}:{t}", [r for r in rows if r.bias_type == t]) for t in types]
