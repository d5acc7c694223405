"""What every model family shares, and the contract each one fulfils.

- ``ModelFamily``: the protocol a family implements (its config type, training, loading, cache key, the bias
  measures it supports, its default estimator, its retraining modes, the kind of objective influence scores).
  Families register themselves with ``register``; ``biasaudit.models`` imports each family module once, so adding a
  family is one new file plus one line there. Nothing outside ``biasaudit.models`` asks which family a model is:
  it asks the family (``family_of(model)``).
- One cache (``train_or_load``): ``<cache>/models/<family>-<key>``, the key a hash of the corpus and the config; a
  damaged entry is retrained and replaced, two processes training the same model end with one, a cache that cannot
  be written costs a warning.
- Shared plumbing: the progress callback type, library versions, the torch device.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

from ..errors import ArtifactError, BiasAuditWarning, ConfigError

Progress = Callable[[str, int, int], None]  # (stage, done, total)


# ------------------------------------------------------------------ the contract
@runtime_checkable
class ModelFamily(Protocol):
    """A model family: skip-gram, GloVe, a transformer LM, or plain word vectors read from a file.

    ``objective_kind`` names the influence machinery that scores the family's documents (``pairs``: a loss summed
    over weighted word pairs; ``counts``: a loss over co-occurrence counts; ``task``: a network's summed token
    loss, through kronfluence); ``None``: the family cannot be scored (vectors without their training loss)."""
    name: ClassVar[str]                  # "skipgram": the --model value and the cache prefix
    label: ClassVar[str]                 # "skip-gram": how messages name it
    config_type: ClassVar[type | None]
    options: ClassVar[frozenset]         # the shared training options (--window, ...) the family takes
    default_estimator: ClassVar[str | None]   # the influence estimator --estimator defaults to (None: none
                                         # fits but the corpus-only ones); which fit is decided by the estimators'
                                         # declarations (influence/estimators.py: objective kinds, a replay)
    replays: ClassVar[bool]              # its recorded training run can be replayed (estimators needing one: magic)
    modes: ClassVar[tuple]               # experiment retraining modes (scratch, warm-start, undo)
    objective_kind: ClassVar[str | None]
    word_vectors: ClassVar[bool]         # tests read word vectors (hard-debias and similarity benchmarks apply)
    takes_templates: ClassVar[bool]      # measured through templates and sentences (language models)
    unit: ClassVar[str]                  # what its vocabulary counts: "words" or "tokens"
    default_seeds: ClassVar[int]         # seeds ``score`` trains by default (the measure's spread over seeds)

    def make_config(self, given: dict, extra: str | None = None) -> Any: ...
    def train(self, corpus, config, progress: Progress | None = None, device: str = "cpu") -> Any: ...
    def retrain(self, edited, config, full) -> Any: ...   # a retraining run of an experiment: trained on the
                                                           # edited corpus, with what the baseline fixed (``full``)
    def load(self, folder: Path, device: str = "cpu") -> Any: ...
    def cache_spec(self, corpus_hash: str, config) -> dict: ...
    def known_words(self, model, words) -> set[str]: ...
    def bias_measures(self, model, tests: list, templates=None) -> list: ...
    def weat(self, model, test, templates=None, **stats) -> Any: ...
    def evaluate(self, model, tests: list, heldout: dict, quality: bool = True, templates=None) -> dict: ...
    def vocabulary_summary(self, model) -> dict: ...
    def recognises(self, folder: Path) -> bool: ...         # is this folder one of the family's models
    def size(self, model) -> int: ...                       # vocabulary (or token) count, for messages
    def magic_words(self, model, corpus, measures, replay) -> tuple: ...   # the report's word index for magic

    # what a family declares decides which of these it implements (tests/test_layers.py checks each family):
    takes_extra: ClassVar[bool]          # optional (default False): takes --lm-config style extra settings
    smoothness_directions: ClassVar[int]  # optional (default 0): directions of the metasmoothness check score runs
                                          # on a model trained here ("masked" in modes)
    def describe(self, config) -> str: ...                  # config_type is not None (the family trains)
    def objective(self, model) -> Any: ...                  # objective_kind "pairs" or "task"
    def replay(self, model, corpus, device: str = "cpu") -> Any: ...      # replays
    def replay_refusal(self, model) -> str | None: ...                    # replays
    def retrain_weighted(self, full, config, weights) -> Any: ...         # "masked" in modes
    def warm_start(self, base, corpus, config, epochs: int) -> Any: ...   # "warm-start" in modes
    def undo(self, base, corpus, ids, sign: float, epochs: int) -> Any: ...   # "undo" in modes
    def pair_measure(self, model, name: str, pairs: list, ids=None, source: str = "") -> Any: ...  # takes_templates
    def estimator_refusal(self, name: str, config) -> str | None: ...     # optional: why an estimator that
                                                                          # fits the family does not fit this config
    def default_config(self, config) -> Any: ...          # optional: the default config of ``config``'s kind (else
                                                          # config_type()): a command line spells out the rest
    def command_flags(self, config) -> list: ...          # optional: flags a command line needs for this config
    def prepare(self, config, progress: Progress | None = None) -> None: ...   # optional: before training (the
                                                                               # LM family builds its base once)


# (method, the family's declaration that requires it): checked for every registered family by the layering test
CONDITIONAL_METHODS = (
    ("train", lambda f: f.config_type is not None), ("cache_spec", lambda f: f.config_type is not None),
    ("describe", lambda f: f.config_type is not None),
    ("objective", lambda f: f.objective_kind in ("pairs", "task")),
    ("replay", lambda f: f.replays), ("replay_refusal", lambda f: f.replays),
    ("retrain_weighted", lambda f: "masked" in f.modes), ("warm_start", lambda f: "warm-start" in f.modes),
    ("undo", lambda f: "undo" in f.modes), ("pair_measure", lambda f: f.takes_templates),
)
ALWAYS_METHODS = ("make_config", "retrain", "load", "known_words", "bias_measures", "weat", "evaluate",
                  "vocabulary_summary", "recognises", "size", "magic_words")


FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add a family to the registry (each family module calls this once, at import)."""
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    """The family called ``name`` (the --model value); a ConfigError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(n for n, f in FAMILIES.items() if f.config_type is not None)
        raise ConfigError(f"unknown --model {name!r} (one of {known})") from None


def family_of(obj) -> ModelFamily:
    """The family of a model or config (each carries its family's name as ``family``)."""
    return get_family(obj.family)


def model_repr(model) -> str:
    """A model's short repr (not its vocabulary and arrays): family, vocabulary size, dimensions, corpus, seed."""
    fam = family_of(model)
    out = f"{type(model).__name__}({fam.name}, {fam.size(model):,} {fam.unit}"
    vectors = getattr(model, "vectors", None)
    hidden = getattr(getattr(getattr(model, "net", None), "config", None), "hidden_size", None)
    if vectors is not None:
        out += f", {vectors.shape[1]} dimensions"
    elif hidden is not None:
        out += f", hidden size {hidden}"
    corpus = getattr(model, "corpus", None) or {}
    if corpus.get("name"):
        n = corpus.get("n_documents")
        out += f", corpus {corpus['name']!r}" + (f" ({n:,} documents)" if isinstance(n, int) else "")
    if getattr(model, "source", ""):
        out += f", from {model.source!r}"
    seed = getattr(getattr(model, "config", None), "seed", None)
    return out + (f", seed {seed})" if seed is not None else ")")


def make_config(model: str, extra: str | None = None, **options):
    """A family's config from the shared training options (None: not given, the family's default); an option the
    family does not take is refused, naming it. ``extra``: the family's own settings string (``--lm-config``), for
    families that take one (``takes_extra``)."""
    fam = get_family(model)
    if extra is not None and not getattr(fam, "takes_extra", False):
        extras = [f.name for f in FAMILIES.values() if getattr(f, "takes_extra", False)]
        raise ConfigError(f"lm_config applies to {human_list(f'model={n!r}' for n in extras)} only").with_cli(
            f"--lm-config applies to {human_list(f'--model {n}' for n in extras)} only")
    given = {k: v for k, v in options.items() if v is not None}
    for k in given:
        if k not in fam.options:
            raise ConfigError(f"{k} is not an option of model={fam.name!r} (its options: "
                              f"{', '.join(sorted(fam.options))})").with_cli(
                f"--{k.replace('_', '-')} does not apply to --model {fam.name}")
    return fam.make_config(given, extra)


def human_list(items) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


def replay_difference(pairs, tolerance: float, what: str, hint: str = "") -> float:
    """The largest relative difference between replayed tensors and the saved arrays they must equal (``pairs`` of
    (replayed, saved)); a replay that does not reproduce the saved model is refused: its metagradient would not be
    the model's."""
    import numpy as np
    import torch

    worst = 0.0
    for replayed, saved in pairs:
        s = torch.as_tensor(saved.detach() if isinstance(saved, torch.Tensor) else np.asarray(saved))
        s = s.to(replayed.dtype)
        worst = max(worst, float((replayed.cpu() - s.cpu()).abs().max()) / max(float(s.abs().max()), 1e-12))
    if worst > tolerance:
        raise ConfigError(f"replaying the recorded run did not reproduce the saved {what} (relative difference "
                          f"{worst:.1e}{hint}); the metagradient would not be the model's")
    return worst


REPLAYS: dict[str, type] = {}   # replay key -> the class that replays a recorded run: Cls(model, corpus, device)
                                # and Cls.refusal(model) (one line, or None); filled by each *_replay module


def register_replay(key: str, replay: type) -> type:
    """Register the replay of a family's recorded training run under ``key`` (the family's name, or
    "family:backend"); each ``*_replay`` module calls it once, and the family looks it up (no import back)."""
    REPLAYS[key] = replay
    return replay


def default_estimator_of(family, config=None) -> str | None:
    """The estimator ``--estimator`` defaults to for ``family``; given the training ``config``, the family's own
    choice for that run where it makes one (``default_estimator_for``: an LM's audited phase and its run from
    scratch differ)."""
    choose = getattr(family, "default_estimator_for", None)
    return choose(config) if (choose is not None and config is not None) else family.default_estimator


def find_replay(key: str, model, corpus, device: str = "cpu"):
    """The registered replay of ``model``'s run, refused in one line where there is none or the record does not fit."""
    replay = REPLAYS.get(key)
    why = replay_refusal_of(key, model)
    if why:
        raise ConfigError(why)
    return replay(model, corpus, device)


def replay_refusal_of(key: str, model) -> str | None:
    replay = REPLAYS.get(key)
    if replay is None:
        return f"--estimator magic: no replay of {key} runs is installed"
    return replay.refusal(model)


def run_record_refusal(meta: dict, what: str, version: int) -> str | None:
    """Why a model's saved run record cannot be replayed by ``--estimator magic`` (one line), or None: the record
    missing or of another version (an older biasaudit), or a run trained with document weights."""
    run = meta.get("run")
    if not isinstance(run, dict) or run.get("version") != version:
        return (f"this {what} was saved without the record of its training run (trained by an older biasaudit, or "
                "by another tool); train it again (--overwrite, or a fresh --cache) to audit it with "
                "--estimator magic")
    if run.get("weighted"):
        return f"this {what} was trained with document weights; magic differentiates runs with every weight 1"
    return None


# ------------------------------------------------------------------ the cache
def cache_dir() -> Path:
    """$BIASAUDIT_CACHE, else ~/.cache/biasaudit."""
    return Path(os.environ.get("BIASAUDIT_CACHE") or Path.home() / ".cache" / "biasaudit")


def cache_folder(cache: Path | None, family: str, spec: dict) -> Path:
    """The cache entry of a model: ``<cache>/models/<family>-<hash of spec>`` (spec: corpus hash, config,
    tokenizer, library versions, format)."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache or cache_dir()) / "models" / f"{family}-{key}"


def train_or_load_cached(folder: Path, load: Callable, train: Callable, store: bool = True):
    """The cached model in ``folder`` (``load(folder)``), else ``train()`` saved there (``store=False``: not
    saved; the caller keeps the only copy). Returns (model, cached).

    A damaged entry is retrained and replaced (with a warning); when two processes train the same model, the
    first saved is kept; a cache that cannot be written costs a warning, and the trained model is returned."""
    from ..io import clean_stale_temps

    clean_stale_temps(folder.parent)
    if folder.is_dir() and any(folder.iterdir()):
        try:
            return load(folder), True
        except ArtifactError as e:
            warnings.warn(f"the cached model is damaged and is retrained: {e}", BiasAuditWarning, stacklevel=2)
            shutil.rmtree(folder, ignore_errors=True)   # the cache is this tool's own: no user file lives there
    model = train()
    if not store:
        return model, False
    try:
        model.save(folder, keep_existing=True)
    except (OSError, ArtifactError) as e:
        warnings.warn(f"could not cache the model in {folder} ({getattr(e, 'strerror', None) or e}); it will be "
                      "trained again next time", BiasAuditWarning, stacklevel=2)
    return model, False


def train_model(corpus, config, progress: Progress | None = None, device: str = "cpu"):
    """Train the model ``config`` describes on ``corpus`` (no cache)."""
    return family_of(config).train(corpus, config, progress, device)


def retrain_model(edited, config, full):
    """Train ``config``'s model on an edited corpus for an experiment, keeping fixed what the family's baseline on
    ``full`` fixes before training (a language model's tokenizer)."""
    return family_of(config).retrain(edited, config, full)


def train_or_load(corpus, config, cache: Path | None = None, progress: Progress | None = None,
                  device: str = "cpu", store: bool = True):
    """The cached model for (corpus hash, config), training and caching it if absent (``store=False``: trained
    but not cached, for ``train --out``, whose folder is then the only copy). Returns (model, cached).
    The device is not part of the key: a model trained on a GPU is reused on the CPU. A family's ``prepare`` runs
    first, with ``progress``."""
    fam = family_of(config)
    if hasattr(fam, "prepare"):      # what training starts from, built once (a language model's base), reported
        fam.prepare(config, progress)
    folder = cache_folder(cache, fam.name, fam.cache_spec(corpus.hash, config))
    return train_or_load_cached(folder, lambda f: fam.load(f, device),
                                lambda: fam.train(corpus, config, progress, device), store)


def cached_train_seconds(corpus, config, cache: Path | None = None) -> float | None:
    """The measured training time (meta ``train_seconds``) of the cached model for (corpus, config), read from its
    folder's small JSON record (``biasaudit.json`` beside an HF checkpoint, else ``config.json``) without loading
    the model; None when it is not cached or holds no such record. What an experiment's plan estimates from."""
    fam = family_of(config)
    folder = cache_folder(cache, fam.name, fam.cache_spec(corpus.hash, config))
    from ..io import read_json

    for name in ("biasaudit.json", "config.json"):
        path = folder / name
        try:
            if not path.is_file():
                continue
            secs = (read_json(path, "model record", 1 << 20).get("meta") or {}).get("train_seconds")
        except (ArtifactError, AttributeError):
            continue
        if isinstance(secs, (int, float)) and secs > 0:
            return float(secs)
    return None


def load_model(path: Path, device: str = "cpu"):
    """A model folder of any family (the family that recognises it loads it)."""
    from ..io import read_json, regular_file

    path = Path(path)
    if os.path.lexists(path / "config.json"):    # every family's recognises reads it: a FIFO would block them all
        regular_file(path / "config.json", "model config")
    for fam in FAMILIES.values():
        recognise = getattr(fam, "recognises", None)
        if recognise is not None and recognise(path):
            return fam.load(path, device)
    if (path / "config.json").exists():
        head = read_json(path / "config.json", "model config")   # a corrupted file says so
        if not isinstance(head, dict):
            raise ArtifactError(f"{path}/config.json: corrupted model config (not a JSON object)")
    raise ArtifactError(f"{path}: folder is not a model of this tool (no config.json with a known model family)")


# ------------------------------------------------------------------ plumbing
def versions(*packages: str) -> dict:
    """{"biasaudit": ..., package: version, ...} for the record of how a result was made."""
    import importlib

    from .._version import __version__
    out = {"biasaudit": __version__}
    for p in packages:
        out[p] = importlib.import_module(p).__version__
    return out


def resolve_device(device: str):
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available); a clear error when CUDA is absent."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but this torch build has no CUDA device "
                          f"(torch {torch.__version__}); use --device cpu")
    return dev


# ------------------------------------------------------------------ configs
def setting(default, help: str):
    """A config field with its help text (read by the command line for the option's --help)."""
    from dataclasses import field
    return field(default=default, metadata={"help": help})


class Config:
    """What every family's frozen config dataclass shares: to_dict / from_dict, field checks, field help."""
    family: ClassVar[str]

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        from dataclasses import fields
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected an object of settings, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def help(cls, name: str) -> str:
        from dataclasses import fields
        for f in fields(cls):
            if f.name == name:
                return f.metadata.get("help", "")
        return ""

    def _positive(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            top = LIMITS.get(name, 2 ** 31 - 1)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
                raise ConfigError(f"{type(self).__name__}.{name} must be a whole number from 1 to {top:,}, got {v!r}")

    def _seed(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 32:
            raise ConfigError(f"{type(self).__name__}.seed must be a whole number from 0 to 2^32 - 1, got "
                              f"{self.seed!r}")


# the largest sensible values (the C code behind gensim overflows, or the run could never finish)
LIMITS = {"vector_size": 100_000, "window": 1_000, "negative": 1_000, "epochs": 100_000, "workers": 1_024}
