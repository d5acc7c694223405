"""What the word-embedding families share (skip-gram, GloVe, vectors read from a file): the bias tests read one
matrix of word vectors, so the measures, the WEAT statistics and the retraining measurements are the same for all.

A model of these families has ``vocab`` (or at least ``key_to_index``/``index_to_key``) and ``vectors`` (V, dim),
the embedding the tests read; the models trained here share ``WordVectorModel`` (their word index, short repr and
saved folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..measures.embedding import measure, value_on_vectors, values_on_vectors
from ..measures.targets import measure_target
from ..vocab import TOKENIZER
from ..wordsets import BiasTest
from .base import model_repr
from .folder import is_model_dir, model_field, write_model_folder


def evaluate_vectors(words, vectors: np.ndarray, tests: list[BiasTest], heldout: dict[str, BiasTest],
                     with_quality: bool = True) -> dict:
    """Effect sizes of the audited tests and their held-out companions (each read with its test's measure), the
    audited tests read with every measure of ``TRANSFER_MEASURES`` (``measures``: how a bias ranked by one
    measure moved on the others), and embedding quality (similarity and analogy benchmarks) of one matrix of word
    vectors."""
    from ..quality import quality

    k2i = {w: i for i, w in enumerate(words)}
    out = {"effects": {t.name: value_on_vectors(k2i, vectors, t) for t in tests},
           "heldout_effects": {name: value_on_vectors(k2i, vectors, h) for name, h in heldout.items()},
           "measures": {t.name: values_on_vectors(k2i, vectors, t) for t in tests}}
    if with_quality:
        out["quality"] = quality(words, vectors)
    return out


class WordVectorModel:
    """What the word-vector models trained here share: a frozen dataclass with ``vocab``, ``config``, ``corpus``
    and ``meta`` and a ``family`` ClassVar, declared with ``repr=False`` (a dataclass's own repr would replace this
    short one)."""

    def __repr__(self) -> str:
        return model_repr(self)

    @property
    def index_to_key(self):
        return self.vocab.index_to_key

    @property
    def key_to_index(self):
        return self.vocab.key_to_index

    def write_folder(self, folder: str | Path, arrays: dict, format_version: int, keep_existing: bool = False,
                     **fields) -> Path:
        """Write the model folder atomically (``biasaudit.models.folder``): ``arrays`` and config.json (format,
        family, config, vocabulary, ``fields``, corpus, meta)."""
        return write_model_folder(
            folder, arrays, self.vocab,
            {"format_version": format_version, "model": self.family, "config": self.config.to_dict(),
             "vocab": {"size": len(self.vocab), "min_count": self.vocab.min_count,
                       "tokenizer": self.corpus.get("tokenizer", TOKENIZER)},
             **fields, "corpus": self.corpus, "meta": self.meta}, keep_existing=keep_existing)


class EmbeddingFamily:
    """Shared behaviour of the word-vector families; each family class sets the ClassVars and adds training."""
    word_vectors: ClassVar[bool] = True
    takes_templates: ClassVar[bool] = False
    unit: ClassVar[str] = "words"
    default_seeds: ClassVar[int] = 1
    modes: ClassVar[tuple] = ("scratch",)
    model_type: ClassVar[type]          # the model class: its ``load(folder)`` reads a saved model

    def retrain(self, edited, config, full):
        """From scratch on the edited corpus, vocabulary included (as gensim or the GloVe tool would)."""
        return self.train(edited, config)

    def make_config(self, given: dict, extra: str | None = None):
        return self.config_type(**given)

    def load(self, folder, device: str = "cpu"):
        return self.model_type.load(folder)

    def recognises(self, folder) -> bool:
        """A model folder of this tool whose config.json names this family."""
        return is_model_dir(folder) and model_field(folder) == self.name

    def known_words(self, model, words) -> set[str]:
        return {w for w in words if w in model.key_to_index}

    def bias_measures(self, model, tests: list[BiasTest], templates=None) -> list:
        return [measure_target(t.measure, t, model.vocab) for t in tests]

    def weat(self, model, test: BiasTest, templates=None, **stats) -> Any:
        """The test's statistics, by the measure it carries (WEAT by default): ``measures.embedding.measure``."""
        return measure(test.measure, model, test, **stats)

    def evaluate(self, model, tests: list, heldout: dict, quality: bool = True, templates=None) -> dict:
        return evaluate_vectors(model.index_to_key, model.vectors, tests, heldout, quality)

    def vocabulary_summary(self, model) -> dict:
        return {"size": len(model.vocab), "tokens_in_vocabulary": int(model.vocab.counts.sum())}

    def size(self, model) -> int:
        return len(model.index_to_key)

    def magic_words(self, model, corpus, measures, replay) -> tuple[None, dict]:
        """For ``--estimator magic``: (None: the indices are the model's vocabulary, per document the indices of
        the measures' words it holds), as the other embedding scorers give ``doc_words``."""
        from ..batches import encode_batches

        rows = np.unique(np.concatenate([np.asarray(m.rows, dtype=np.int64) for m in measures]))
        mask = np.zeros(len(model.vocab), dtype=bool)
        mask[rows] = True
        out, off = {}, 0
        for batch in encode_batches(corpus, model.vocab):
            has = mask[batch.tokens]
            for d, w in np.unique(np.stack([batch.doc[has] + off, batch.tokens[has]]), axis=1).T:
                out.setdefault(int(d), []).append(int(w))
            off += len(batch.ids)
        return None, {d: tuple(w) for d, w in out.items()}
