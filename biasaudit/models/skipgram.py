"""Skip-gram with negative sampling: configuration, training with gensim Word2Vec (sg=1), the saved model
(input vectors, output vectors ``syn1neg``, vocabulary counts, config) and the model cache.

The embedding the bias tests read is the input vectors (gensim's ``wv.vectors``). Saved models are a folder
with ``config.json`` (config, corpus hash, checksums), ``vocab.json`` and ``vectors.safetensors``: no pickle.
Training is deterministic by default (``workers=1``): the same seed gives identical vectors.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from ..corpus import Corpus
from ..errors import ArtifactError, ConfigError, CorpusError
from .folder import cache_folder, read_model_folder, train_or_load_cached, write_model_folder
from ..vocab import MAX_CHUNK, TOKENIZER, TokenStream, Vocab

FORMAT_VERSION = 1
BACKENDS = ("gensim", "torch")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class SkipGramConfig:
    """Skip-gram training settings, with gensim's names and defaults (sg=1, negative sampling)."""
    vector_size: int = 100
    window: int = 5
    min_count: int = 5
    negative: int = 5
    epochs: int = 5
    seed: int = 1
    workers: int = 1          # 1 = deterministic (same seed, same vectors); more threads are faster but not
    sample: float = 1e-3      # frequent-word subsampling threshold (gensim's ``sample``)
    alpha: float = 0.025
    min_alpha: float = 0.0001
    ns_exponent: float = 0.75
    shrink_windows: bool = True  # gensim's reduced windows: effective window drawn uniformly in 1..window
    backend: str = "gensim"      # "gensim" (C, deterministic with workers=1) or "torch" (CPU or GPU)

    def __post_init__(self):
        for name in ("vector_size", "window", "min_count", "negative", "epochs", "workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"SkipGramConfig.{name} must be a positive integer, got {v!r}")
        if not (0 <= self.sample < 1):
            raise ConfigError(f"SkipGramConfig.sample must be in [0, 1), got {self.sample!r}")
        if not (0 < self.min_alpha <= self.alpha):
            raise ConfigError("SkipGramConfig.alpha/min_alpha must satisfy 0 < min_alpha <= alpha")
        if self.backend not in BACKENDS:
            raise ConfigError(f"SkipGramConfig.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"SkipGramConfig.seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SkipGramConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"SkipGramConfig: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass(frozen=True)
class SkipGramModel:
    """A trained skip-gram model. ``vectors`` (input vectors) is the embedding the bias tests read."""
    vocab: Vocab
    vectors: np.ndarray          # (V, dim) float32 input vectors, gensim's wv.vectors
    output_vectors: np.ndarray   # (V, dim) float32 context vectors, gensim's syn1neg
    config: SkipGramConfig
    corpus: dict = field(default_factory=dict)   # name, hash, n_documents
    meta: dict = field(default_factory=dict)     # train_seconds, versions

    @property
    def index_to_key(self):
        return self.vocab.index_to_key

    @property
    def key_to_index(self):
        return self.vocab.key_to_index

    def save(self, folder: str | Path, keep_existing: bool = False) -> Path:
        """Write the model folder atomically (see ``biasaudit.models.folder``)."""
        return write_model_folder(
            folder, {"input": self.vectors, "output": self.output_vectors}, self.vocab,
            {"format_version": FORMAT_VERSION, "model": "skipgram", "config": self.config.to_dict(),
             "vocab": {"size": len(self.vocab), "min_count": self.vocab.min_count, "tokenizer": TOKENIZER},
             "embedding": "input vectors (gensim wv.vectors)", "corpus": self.corpus, "meta": self.meta},
            keep_existing=keep_existing)

    @classmethod
    def load(cls, folder: str | Path) -> "SkipGramModel":
        """Load a model folder, checking its checksums: a truncated or altered file is an ArtifactError."""
        cfg, arrays, vocab = read_model_folder(folder, "skipgram", FORMAT_VERSION, "skip-gram")
        try:
            config = SkipGramConfig.from_dict(cfg["config"])
        except Exception as e:
            raise ArtifactError(f"{folder}: cannot read model ({e})") from e
        if arrays["input"].shape != arrays["output"].shape or arrays["input"].shape[0] != len(vocab):
            raise ArtifactError(f"{folder}: array shapes do not match the vocabulary")
        return cls(vocab, arrays["input"], arrays["output"], config, cfg.get("corpus", {}), cfg.get("meta", {}))


def _stable_hash(s: str) -> int:
    # gensim seeds with hashfxn; Python's str hash changes per process unless PYTHONHASHSEED is fixed
    return zlib.crc32(s.encode("utf-8"))


def _versions() -> dict:
    import gensim
    import numpy
    import torch

    from .. import __version__
    return {"biasaudit": __version__, "gensim": gensim.__version__, "numpy": numpy.__version__,
            "torch": torch.__version__}


def train_skipgram(corpus: Corpus, config: SkipGramConfig = SkipGramConfig(),
                   progress: Progress | None = None, device: str = "cpu") -> SkipGramModel:
    """Train skip-gram with negative sampling on ``corpus`` with gensim, or with torch on ``device`` when
    ``config.backend == "torch"`` (documents over 10,000 tokens are chunked, never truncated)."""
    if config.backend == "torch":
        from .torch_skipgram import train_skipgram_torch
        return train_skipgram_torch(corpus, config, device, progress)
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    stats = corpus.scan()

    class _Epochs(CallbackAny2Vec):
        def __init__(self):
            self.n = 0

        def on_epoch_end(self, model):
            self.n += 1
            if progress:
                progress("train", self.n, config.epochs)

    t0 = time.perf_counter()
    stream = TokenStream(corpus, MAX_CHUNK)
    w2v = Word2Vec(vector_size=config.vector_size, window=config.window, min_count=config.min_count,
                   sample=config.sample, seed=config.seed, workers=config.workers, sg=1, hs=0,
                   negative=config.negative, ns_exponent=config.ns_exponent, alpha=config.alpha,
                   min_alpha=config.min_alpha, epochs=config.epochs, hashfxn=_stable_hash,
                   shrink_windows=config.shrink_windows)
    w2v.build_vocab(corpus_iterable=stream)
    if len(w2v.wv.index_to_key) == 0:
        raise CorpusError(f"corpus {corpus.name!r}: no word occurs min_count={config.min_count} times; "
                          "nothing to train")
    if progress:
        progress("train", 0, config.epochs)
    w2v.train(corpus_iterable=stream, total_examples=w2v.corpus_count, epochs=config.epochs, callbacks=[_Epochs()])
    counts = np.array([w2v.wv.get_vecattr(w, "count") for w in w2v.wv.index_to_key], dtype=np.int64)
    vocab = Vocab(tuple(w2v.wv.index_to_key), counts, config.min_count)
    return SkipGramModel(vocab, np.array(w2v.wv.vectors, dtype=np.float32), np.array(w2v.syn1neg, dtype=np.float32),
                         config, {"name": corpus.name, **stats.to_dict()},
                         {"train_seconds": round(time.perf_counter() - t0, 3), "backend": "gensim",
                          "versions": _versions()})


def cache_spec(corpus_hash: str, config: SkipGramConfig) -> dict:
    import gensim

    cfg = config.to_dict()
    if cfg["backend"] == "gensim":
        del cfg["backend"]   # gensim keys are unchanged from before the torch backend existed
        versions = {"gensim": gensim.__version__}
    else:
        import torch
        versions = {"torch": torch.__version__}
    return {"model": "skipgram", "corpus": corpus_hash, "config": cfg, "tokenizer": TOKENIZER,
            **versions, "format": FORMAT_VERSION}


def train_or_load(corpus: Corpus, config: SkipGramConfig = SkipGramConfig(), cache: Path | None = None,
                  progress: Progress | None = None, device: str = "cpu") -> tuple[SkipGramModel, bool]:
    """The cached model for (corpus hash, config), training and caching it if absent. Returns (model, cached).
    The torch backend's device is not part of the key: a model trained on GPU is reused on CPU."""
    folder = cache_folder(cache, "skipgram", cache_spec(corpus.hash, config))
    return train_or_load_cached(folder, SkipGramModel.load, lambda: train_skipgram(corpus, config, progress, device))
