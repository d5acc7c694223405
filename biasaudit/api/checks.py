"""What a caller (the command line) asks of the library around the verbs: the model families and their limits,
the checks a verb runs before any work (counts, sizes, a scheduler, a tokenizer, a device, a measure, the tests'
measures, estimators, a fine-tune's checkpoint, ids to remove), the bundled tests and swap lists, the debias
methods, and an experiment's trainings. Each asks the one function below the API that decides it, imported when
called, so ``import biasaudit.api`` stays light; a check raises the error that function raises."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError


# ------------------------------------------------------------------ model families
def model_family(model):
    """The model family of a name ("skipgram", "glove", "lm"), a model config or a model; a family as it is."""
    from ..models import family_of, get_family

    if isinstance(model, str):
        return get_family(model)
    return family_of(model) if hasattr(model, "family") else model


def model_families() -> list:
    """Every registered model family, in the order they registered."""
    from ..models import FAMILIES

    return list(FAMILIES.values())


def model_limits() -> dict:
    """The upper bounds of the shared training options ({"vector_size": ..., "window": ..., ...})."""
    from ..models.base import LIMITS

    return dict(LIMITS)


def check_device(device: str) -> None:
    """An unusable torch device (``cuda`` without CUDA, a bad name) is a ConfigError before any work."""
    from ..models.base import resolve_device

    resolve_device(device)


def finetune_config(config, checkpoint: str | Path):
    """``config`` (a language model's) set to fine-tune the local checkpoint folder ``checkpoint``."""
    from ..models.checkpoint import require_config_json

    checkpoint = Path(checkpoint)
    require_config_json(checkpoint, ConfigError)
    return replace(config, finetune=str(checkpoint.resolve()))


# ------------------------------------------------------------------ settings
def check_count(name: str, value: int) -> int:
    """A count (seeds, ensemble, resamples, permutations, bootstrap resamples) within its bounds, else a
    ConfigError naming it and the bounds (``measures.options.check_count``)."""
    from ..measures.options import check_count as check

    return check(name, value)


def check_sizes(k: str) -> str:
    """``k``: comma-separated sizes, percentages of the corpus (0 < p < 100) or counts (>= 1), each checked."""
    from ..experiments import parse_k

    items = [s for s in k.split(",") if s.strip()]
    if not items:
        raise ConfigError("give at least one size")
    for item in items:
        parse_k(item)
    return k


def check_scheduler(scheduler: str) -> str:
    """A Dask scheduler: ``local`` or an address ``tcp://HOST:PORT`` (``distributed.check_scheduler``)."""
    from ..distributed import check_scheduler as check

    return check(scheduler)


def check_tokenizer(tokenizer: str) -> str:
    """A tokenizer's name (``biasaudit``, ``whitespace``, ``simple_preprocess``, ``field:NAME``), checked."""
    from ..tokens import Tokenizer

    Tokenizer(tokenizer)
    return tokenizer


def parse_estimators(specs) -> list:
    """Estimator configs from names with settings, one string or several (``"block,cg:damping=0.5"``), not yet
    checked against a family (``estimators`` does both)."""
    from ..influence.estimators import parse_estimators as parse

    return parse(specs)


# ------------------------------------------------------------------ tests and measures
def check_measure(family, measure: str) -> None:
    """A ConfigError, before any training, when ``measure`` cannot rank documents for ``family``."""
    from ..audit import check_target_measure

    check_target_measure(model_family(family), measure)


def check_tests(family, tests: list, measure: str = "weat") -> list:
    """``tests`` (BiasTests) read with ``measure``, or the measure each carries, checked for ``family`` before
    any training."""
    from ..audit import read_tests_with

    return read_tests_with(model_family(family), tests, measure)


def check_carried_measures(tests: list) -> None:
    """The measure each test carries (a test file's ``"measure"``) is a known one."""
    from ..audit import check_carried_measures as check

    check(tests)


def bundled_tests() -> dict:
    """The bundled bias tests by name."""
    from ..wordsets import bundled_tests as bundled

    return bundled()


def default_tests() -> tuple:
    """The names of the tests read when none is given."""
    from ..wordsets import DEFAULT_TESTS

    return DEFAULT_TESTS


# ------------------------------------------------------------------ experiments and edits
def read_ids(path: str | Path) -> tuple:
    """Document ids from a file, one a line (``--remove-ids``): lines end at "\\n" only, blank ones skipped."""
    from ..io import MAX_DATA_BYTES, read_regular

    try:
        text = read_regular(path, "--remove-ids file", ConfigError, MAX_DATA_BYTES).decode("utf-8")
        # one id a line, lines ending at "\n" only (an id may hold U+2028 or U+0085: splitlines() cut it)
        ids = tuple(dict.fromkeys(l.strip(" \t\r") for l in text.split("\n") if l.strip(" \t\r")))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--remove-ids: cannot read {path} ({getattr(e, 'strerror', None) or e})") from e
    if not ids:
        raise ConfigError(f"--remove-ids: {path} holds no document id")
    return ids


def count_trainings(conditions, n_tests: int, n_ks: int, seeds) -> int:
    """The trainings of an experiment with these conditions, tests, sizes and seeds (``experiments.cost``)."""
    from ..experiments.cost import count_trainings as count

    return count(conditions, n_tests, n_ks, seeds)


def debias_methods() -> tuple:
    """The ways ``debias_corpus`` edits a document: remove, swap, augment."""
    from ..debias import METHODS

    return METHODS


def edit_selections() -> tuple:
    """How an edit set of k documents is chosen (``select=``): "top-k" (by individual score), "greedy" (as a set)."""
    from ..influence.select import SELECT

    return SELECT


def read_swaps(path: str | Path):
    """A swap list (pairs of words for counterfactual rewrites) from a JSON or TSV/CSV file."""
    from ..swaps import load_swaps

    return load_swaps(path)


def check_debias_out(out, corpus) -> None:
    """Before any training: ``out`` (else reports/) is outside the corpus and can hold debias outputs."""
    from ..debias import claim_out

    claim_out(out, corpus)
