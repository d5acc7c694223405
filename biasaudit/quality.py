"""Embedding quality, to show what a debiasing costs: Spearman correlation with human similarity judgements
(WordSim-353, SimLex-999) and analogy accuracy (Mikolov's questions-words), from the evaluation files gensim
ships in ``gensim/test/test_data`` (nothing is downloaded). Pairs and questions with out-of-vocabulary words are
skipped (gensim's convention) and the coverage is reported.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

ANALOGY_VOCAB = 30_000   # candidate answers: the most frequent words (gensim's restrict_vocab)


def gensim_test_data() -> Path:
    import gensim
    return Path(gensim.__file__).parent / "test" / "test_data"


def keyed_vectors(words, vectors: np.ndarray):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    return kv


def quality(words, vectors: np.ndarray, analogies: bool = True) -> dict:
    """{wordsim353, simlex999: Spearman; *_coverage: fraction of pairs scored; analogy: accuracy}."""
    kv = keyed_vectors(words, vectors)
    data = gensim_test_data()
    out = {}
    logging.getLogger("gensim").setLevel(logging.ERROR)
    for name, fname in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        path = data / fname
        try:
            (_, _), (rho, _), oov = kv.evaluate_word_pairs(str(path), dummy4unknown=False)
        except (ValueError, ZeroDivisionError):   # no pair in the vocabulary
            rho, oov = float("nan"), 100.0
        out[name] = None if rho != rho else float(rho)
        out[f"{name}_coverage"] = round(1 - oov / 100, 4)
    if analogies:
        try:
            score, sections = kv.evaluate_word_analogies(str(data / "questions-words.txt"),
                                                         restrict_vocab=min(ANALOGY_VOCAB, len(kv)))
        except (ValueError, ZeroDivisionError):
            score, sections = float("nan"), []
        total = next((s for s in sections if s["section"] == "Total accuracy"), None)
        n_q = 0 if total is None else len(total["correct"]) + len(total["incorrect"])
        out["analogy"] = float(score) if n_q else None
        out["analogy_questions"] = n_q
    return out
