"""Skip-gram with negative sampling: configuration, training with gensim Word2Vec (sg=1), the saved model
(input vectors, output vectors ``syn1neg``, vocabulary counts, config) and the family (``--model skipgram``).

The embedding the bias tests read is the input vectors (gensim's ``wv.vectors``). Saved models are a folder
with ``config.json`` (config, corpus hash, checksums), ``vocab.json`` and ``vectors.safetensors``: no pickle.
Training is deterministic by default (``workers=1``): the same seed gives identical vectors. Backends register
in ``TRAINERS`` (``gensim`` here; ``torch`` in ``biasaudit.models.torch_skipgram``).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from ..corpus import Corpus, MemoryCorpus
from ..errors import ArtifactError, ConfigError, CorpusError
from ..vocab import MAX_CHUNK, TOKENIZER, TokenStream, Vocab
from .base import REPLAYS, Config, Progress, find_replay, register, replay_refusal_of, setting, versions
from .embeddings import EmbeddingFamily, WordVectorModel
from .folder import read_model_folder

FORMAT_VERSION = 1
BACKENDS = ("gensim", "torch")
TRAINERS: dict[str, Callable] = {}   # backend -> train(corpus, config, progress, device)


@dataclass(frozen=True)
class SkipGramConfig(Config):
    """Skip-gram training settings, with gensim's names and defaults (sg=1, negative sampling)."""
    family: ClassVar[str] = "skipgram"
    vector_size: int = setting(100, "Embedding dimension.")
    window: int = setting(5, "Maximum context window (gensim's reduced windows: each centre word draws 1..window).")
    min_count: int = setting(5, "Ignore words seen fewer times.")
    negative: int = setting(5, "Negative samples per positive pair.")
    epochs: int = setting(5, "Training epochs.")
    seed: int = setting(1, "Training seed: initialisation and sampling.")
    workers: int = setting(1, "gensim threads; 1 is deterministic (identical vectors per seed), more are faster.")
    sample: float = setting(1e-3, "Frequent-word subsampling threshold (gensim's sample), in [0, 1).")
    alpha: float = setting(0.025, "Initial learning rate.")
    min_alpha: float = setting(0.0001, "Final learning rate (linear decay).")
    ns_exponent: float = setting(0.75, "Exponent of the unigram noise distribution.")
    shrink_windows: bool = setting(True, "gensim's reduced windows: effective window drawn uniformly in 1..window.")
    backend: str = setting("gensim", "gensim (C; deterministic with workers=1) or torch (same objective, minibatch "
                           "SGD; CPU or GPU).")

    def __post_init__(self):
        self._positive("vector_size", "window", "min_count", "negative", "epochs", "workers")
        if not (0 <= self.sample < 1):
            raise ConfigError(f"SkipGramConfig.sample must be in [0, 1), got {self.sample!r}")
        if not (0 < self.min_alpha <= self.alpha < float("inf")):
            raise ConfigError("SkipGramConfig.alpha/min_alpha must satisfy 0 < min_alpha <= alpha (finite)")
        if not isinstance(self.ns_exponent, (int, float)) or not np.isfinite(self.ns_exponent):
            raise ConfigError(f"SkipGramConfig.ns_exponent must be a finite number, got {self.ns_exponent!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"SkipGramConfig.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        self._seed()


@dataclass(frozen=True, repr=False)
class SkipGramModel(WordVectorModel):
    """A trained skip-gram model. ``vectors`` (input vectors) is the embedding the bias tests read."""
    family: ClassVar[str] = "skipgram"
    vocab: Vocab
    vectors: np.ndarray          # (V, dim) float32 input vectors, gensim's wv.vectors
    output_vectors: np.ndarray   # (V, dim) float32 context vectors, gensim's syn1neg
    config: SkipGramConfig
    corpus: dict = field(default_factory=dict)   # name, hash, n_documents
    meta: dict = field(default_factory=dict)     # train_seconds, versions

    def save(self, folder: str | Path, keep_existing: bool = False) -> Path:
        """Write the model folder atomically (see ``biasaudit.models.folder``)."""
        return self.write_folder(folder, {"input": self.vectors, "output": self.output_vectors}, FORMAT_VERSION,
                                 keep_existing, embedding="input vectors (gensim wv.vectors)")

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


def stable_hash(s: str) -> int:
    # gensim seeds with hashfxn; Python's str hash changes per process unless PYTHONHASHSEED is fixed
    return zlib.crc32(s.encode("utf-8"))


def _word2vec(config: SkipGramConfig, **kw):
    """A gensim Word2Vec with this config's settings (sg=1, negative sampling, the stable hash)."""
    from gensim.models import Word2Vec

    return Word2Vec(vector_size=config.vector_size, window=config.window, min_count=config.min_count,
                    sample=config.sample, seed=config.seed, workers=config.workers, sg=1, hs=0,
                    negative=config.negative, ns_exponent=config.ns_exponent, alpha=config.alpha,
                    min_alpha=config.min_alpha, hashfxn=stable_hash, shrink_windows=config.shrink_windows, **kw)


def train_gensim(corpus: Corpus, config: SkipGramConfig, progress: Progress | None = None,
                 device: str = "cpu") -> SkipGramModel:
    """gensim's skip-gram on ``corpus`` (documents over 10,000 tokens are chunked, never truncated)."""
    from gensim.models.callbacks import CallbackAny2Vec

    corpus.scan()          # an empty corpus or repeated ids fail here, before any work

    class _Counted(TokenStream):
        """The stream, counting the chunks gensim has taken (all epochs): progress within an epoch, not only at
        its end (one epoch of a large corpus takes minutes)."""
        stage, total, done = "train", None, 0

        def __iter__(self):
            for piece in super().__iter__():
                yield piece
                self.done += 1
                if progress and self.done % 1000 == 0:
                    progress(self.stage, self.done, self.total)

    class _Epochs(CallbackAny2Vec):
        def on_epoch_end(self, model):
            if progress:
                progress("train", stream.done, stream.total)

    t0 = time.perf_counter()
    stream = _Counted(corpus, MAX_CHUNK)
    stream.stage = "counting words"
    if progress:
        progress(stream.stage, 0, corpus.n_documents_known)
    w2v = _word2vec(config, epochs=config.epochs)
    w2v.build_vocab(corpus_iterable=stream)
    if progress:
        progress(stream.stage, stream.done, stream.done)
    if len(w2v.wv.index_to_key) == 0:
        raise CorpusError(f"corpus {corpus.name!r}: no word occurs min_count={config.min_count} times; "
                          "nothing to train")
    # the count: document chunks trained on, over all epochs
    stream.stage, stream.total, stream.done = "train", w2v.corpus_count * config.epochs, 0
    if progress:
        progress("train", 0, stream.total)
    w2v.train(corpus_iterable=stream, total_examples=w2v.corpus_count, epochs=config.epochs, callbacks=[_Epochs()])
    counts = np.array([w2v.wv.get_vecattr(w, "count") for w in w2v.wv.index_to_key], dtype=np.int64)
    vocab = Vocab(tuple(w2v.wv.index_to_key), counts, config.min_count)
    return SkipGramModel(vocab, np.array(w2v.wv.vectors, dtype=np.float32), np.array(w2v.syn1neg, dtype=np.float32),
                         config, corpus.describe(),
                         {"train_seconds": round(time.perf_counter() - t0, 3), "backend": "gensim",
                          "versions": versions("gensim", "numpy", "torch")})


TRAINERS["gensim"] = train_gensim


def train_skipgram(corpus: Corpus, config: SkipGramConfig = SkipGramConfig(),
                   progress: Progress | None = None, device: str = "cpu") -> SkipGramModel:
    """Train skip-gram with negative sampling on ``corpus`` with the config's backend (gensim, or torch on
    ``device``)."""
    return TRAINERS[config.backend](corpus, config, progress, device)


def warm_start(base: SkipGramModel, corpus: Corpus, config: SkipGramConfig, epochs: int) -> SkipGramModel:
    """Continue training the baseline model on an edited corpus for ``epochs`` epochs (gensim)."""
    w2v = _word2vec(config)
    w2v.build_vocab_from_freq({w: int(c) for w, c in zip(base.vocab.index_to_key, base.vocab.counts)})
    order = [base.vocab.key_to_index[w] for w in w2v.wv.index_to_key]
    w2v.wv.vectors[:] = base.vectors[order]
    w2v.syn1neg[:] = base.output_vectors[order]
    stream = TokenStream(corpus, MAX_CHUNK)
    n_chunks = sum(1 for _ in stream)
    w2v.train(corpus_iterable=stream, total_examples=n_chunks, epochs=epochs)
    back = [w2v.wv.key_to_index[w] for w in base.vocab.index_to_key]
    return replace(base, vectors=np.array(w2v.wv.vectors[back]), output_vectors=np.array(w2v.syn1neg[back]))


def undo(base: SkipGramModel, corpus: Corpus, ids, sign: float, epochs: int) -> SkipGramModel:
    """The cross-loss paper's check: ``epochs`` steps of gradient ascent (``sign`` > 0) on the expected loss of the
    documents ``ids`` (descent with ``sign`` < 0, for added copies), at the mean learning rate of training."""
    import torch

    from .skipgram_objective import SkipGramObjective

    docs = [d for d in corpus if d.id in set(ids)]
    lr = (base.config.alpha + base.config.min_alpha) / 2
    model = base
    for _ in range(epochs):
        o = SkipGramObjective(model, MemoryCorpus(docs, "edit"))
        gU, gC = o.gradient()
        model = replace(model, vectors=(o.U + sign * lr * gU).to(torch.float32).numpy(),
                        output_vectors=(o.C + sign * lr * gC).to(torch.float32).numpy())
    return model


class SkipGramFamily(EmbeddingFamily):
    name = "skipgram"
    label = "skip-gram"
    config_type = SkipGramConfig
    model_type = SkipGramModel
    options = frozenset({"vector_size", "window", "min_count", "negative", "epochs", "seed", "workers", "sample",
                         "backend"})
    default_estimator = "block"
    replays = True                   # --backend torch only (estimator_refusal)
    modes = ("scratch", "warm-start", "undo")
    objective_kind = "pairs"

    def train(self, corpus, config, progress=None, device="cpu") -> SkipGramModel:
        return train_skipgram(corpus, config, progress, device)

    def estimator_refusal(self, name: str, config) -> str | None:
        """magic replays the recorded run: only the torch backend records one (refused before any training)."""
        if name == "magic" and f"skipgram:{getattr(config, 'backend', 'torch')}" not in REPLAYS:
            return ("--estimator magic replays the recorded training run, and gensim's C training cannot be "
                    "replayed: train with --backend torch")
        return None

    def cache_spec(self, corpus_hash: str, config: SkipGramConfig) -> dict:
        cfg = config.to_dict()
        if cfg["backend"] == "gensim":
            del cfg["backend"]   # gensim keys are unchanged from before the torch backend existed
            lib = versions("gensim")
        else:
            lib = versions("torch")
        lib.pop("biasaudit")
        return {"model": "skipgram", "corpus": corpus_hash, "config": cfg, "tokenizer": TOKENIZER,
                **lib, "format": FORMAT_VERSION}

    def describe(self, config: SkipGramConfig) -> str:
        return f"skip-gram ({config.backend})"

    def objective(self, model: SkipGramModel):
        from .skipgram_objective import PairEnumerator
        return PairEnumerator.of(model)

    def warm_start(self, base, corpus, config, epochs: int):
        return warm_start(base, corpus, config, epochs)

    def undo(self, base, corpus, ids, sign: float, epochs: int):
        return undo(base, corpus, ids, sign, epochs)

    def replay(self, model, corpus, device: str = "cpu"):
        """The model's recorded torch training run (``--estimator magic``); refused in one line where there is
        none (gensim's run, an older model)."""
        why = self.replay_refusal(model)
        if why:
            raise ConfigError(why)
        return find_replay(f"skipgram:{model.meta['backend']}", model, corpus, device)

    def replay_refusal(self, model) -> str | None:
        key = f"skipgram:{model.meta.get('backend')}"
        if key not in REPLAYS:
            return ("--estimator magic differentiates a skip-gram run trained here in torch: train with --backend "
                    "torch (gensim's run cannot be replayed)")
        return replay_refusal_of(key, model)


FAMILY = register(SkipGramFamily())
