"""A toy model family in one file: the whole contract of a new family (tests/test_family_registry.py trains it
through ``biasaudit.api`` and runs it through ``api.measure`` and ``api.score``). The registry line is the last one.

``cooc``: word vectors from document co-occurrence (random indexing). The vocabulary is the corpus's words under
its own tokenizer seen at least ``min_count`` times; C is the (V, n_docs) matrix of how often each word occurs in
each document, in corpus order; the vectors are C R with R a (n_docs, vector_size) Gaussian matrix of variance
1 / vector_size drawn from ``seed``: words that share documents get close vectors. No loss is minimised, so
``objective_kind`` is None: only the estimators that read the corpus alone (``lexical``) fit it, and its default
is one of them. The saved model is the folder every embedding family writes (``WordVectorModel.write_folder``,
``biasaudit.models.folder``: safetensors + JSON, checksums; no pickle)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from biasaudit.batches import encode_batches
from biasaudit.errors import ArtifactError
from biasaudit.models.base import Config, register, setting, versions
from biasaudit.models.embeddings import EmbeddingFamily, WordVectorModel
from biasaudit.models.folder import read_model_folder
from biasaudit.vocab import TOKENIZER, Vocab, training_vocab

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CoocConfig(Config):
    """Settings of the document co-occurrence vectors."""
    family: ClassVar[str] = "cooc"
    vector_size: int = setting(16, "Embedding dimension: the columns of the random projection.")
    min_count: int = setting(2, "Ignore words seen fewer times.")
    seed: int = setting(1, "Seed of the random projection.")

    def __post_init__(self):
        self._positive("vector_size", "min_count")
        self._seed()


@dataclass(frozen=True, repr=False)
class CoocModel(WordVectorModel):
    """Document co-occurrence vectors; ``vectors`` is the embedding the bias tests read."""
    family: ClassVar[str] = "cooc"
    vocab: Vocab
    vectors: np.ndarray          # (V, vector_size) float32
    config: CoocConfig
    corpus: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def save(self, folder: str | Path, keep_existing: bool = False) -> Path:
        """Write the model folder atomically (``biasaudit.models.folder``)."""
        return self.write_folder(folder, {"vectors": self.vectors}, FORMAT_VERSION, keep_existing)

    @classmethod
    def load(cls, folder: str | Path) -> CoocModel:
        cfg, arrays, vocab = read_model_folder(folder, "cooc", FORMAT_VERSION, "co-occurrence")
        try:
            config = CoocConfig.from_dict(cfg["config"])
        except Exception as e:
            raise ArtifactError(f"{folder}: cannot read model ({e})") from e
        if arrays["vectors"].shape != (len(vocab), config.vector_size):
            raise ArtifactError(f"{folder}: array shapes do not match the vocabulary and vector_size")
        return cls(vocab, arrays["vectors"], config, cfg.get("corpus", {}), cfg.get("meta", {}))


def document_counts(corpus, vocab: Vocab) -> np.ndarray:
    """C: (V, n_docs) float64, how often each vocabulary word occurs in each document (corpus order)."""
    cols = []
    for batch in encode_batches(corpus, vocab):
        n = len(batch.ids)
        # one bincount per batch over (word, document) cells: no loop per token
        cells = np.bincount(batch.tokens * n + batch.doc, minlength=len(vocab) * n)
        cols.append(cells.reshape(len(vocab), n))
    return np.concatenate(cols, axis=1).astype(np.float64)


def train_cooc(corpus, config: CoocConfig) -> CoocModel:
    """The vectors C R (see the module docstring); the same seed gives identical vectors."""
    corpus.scan()              # an empty corpus or repeated ids fail here, before any work
    t0 = time.perf_counter()
    vocab = training_vocab(corpus, config.min_count)
    C = document_counts(corpus, vocab)                                            # (V, n_docs)
    R = np.random.default_rng(config.seed).standard_normal((C.shape[1], config.vector_size))
    vectors = (C @ R / np.sqrt(config.vector_size)).astype(np.float32)           # (V, vector_size)
    return CoocModel(vocab, vectors, config, corpus.describe(),
                     {"train_seconds": round(time.perf_counter() - t0, 3), "versions": versions("numpy")})


class CoocFamily(EmbeddingFamily):
    name = "cooc"
    label = "co-occurrence"
    config_type = CoocConfig
    model_type = CoocModel
    options = frozenset({"vector_size", "min_count", "seed"})
    default_estimator = "lexical"     # the one kind of estimator that fits a family without a loss
    replays = False
    objective_kind = None

    def train(self, corpus, config, progress=None, device="cpu") -> CoocModel:
        return train_cooc(corpus, config)

    def cache_spec(self, corpus_hash: str, config: CoocConfig) -> dict:
        return {"model": "cooc", "corpus": corpus_hash, "config": config.to_dict(), "tokenizer": TOKENIZER,
                "format": FORMAT_VERSION}

    def describe(self, config: CoocConfig) -> str:
        return "document co-occurrence"


FAMILY = register(CoocFamily())
