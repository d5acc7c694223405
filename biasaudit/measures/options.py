"""The counts a caller gives a run, each checked once, here: the API's verbs and the command line both call
``check_count`` (the CLI turns its ConfigError into a usage error, exit 2), so ``ba.measure(..., n_bootstrap=0)``
and ``biasaudit weat --bootstrap 0`` are refused with the same line.

Lower bounds are what the statistics need (a permutation p needs a sample, a percentile CI a hundred resamples);
upper bounds keep time and memory sane whatever is asked: the permutation test and the bootstraps work in chunks,
so their memory does not grow with the count past a few tens of MB, but their time does (10,000,000 permutations
already resolve p to 1e-7); an ensemble or a seed spread trains and holds one model per seed.
"""
from __future__ import annotations

from numbers import Integral

from ..errors import ConfigError

# name (the API's keyword): (lowest, highest, the command line's option)
COUNTS = {
    "n_permutations": (1, 10_000_000, "--permutations"),
    "n_bootstrap": (100, 10_000, "--bootstrap"),
    "seeds": (1, 100, "--seeds"),
    "ensemble": (1, 100, "--ensemble"),
    "resamples": (0, 10_000, "--resamples"),
    "min_word_count": (1, 10 ** 9, "--min-word-count"),    # a word seen fewer times is dropped (1: none)
}
COUNTS["n_seeds"] = COUNTS["seeds"]      # train_seeds' name for it
COUNTS["n_resamples"] = COUNTS["resamples"]   # ScoreOptions' name for it


def check_count(name: str, value):
    """``value`` as an int when it is a whole number within ``COUNTS[name]``, else a ConfigError naming the
    argument and the range (in the command line's words, its option: ``for_cli``)."""
    lowest, highest, flag = COUNTS[name]
    if isinstance(value, bool) or not isinstance(value, Integral) or not lowest <= value <= highest:
        rule = f"must be a whole number from {lowest:,} to {highest:,}, got {value!r}"
        raise ConfigError(f"{name} {rule}").with_cli(f"{flag} {rule}")
    return int(value)
