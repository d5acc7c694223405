"""Chunking and the Vocab (gensim's key_to_index / index_to_key, with counts and min_count).

Tokenizers: ``biasaudit.tokens``.

Chunking: gensim silently truncates a sentence at 10,000 tokens, so documents longer than ``MAX_CHUNK`` tokens
are split into consecutive chunks that keep the document id; nothing is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from .corpus import Corpus
from .tokens import DEFAULT_TOKENIZER, TOKEN, TOKENIZER, Tokenizer, tokenize  # noqa: F401 (re-exported)

MAX_CHUNK = 10_000


def chunk(tokens: Sequence[str], max_len: int = MAX_CHUNK) -> list[Sequence[str]]:
    """Split a token list into consecutive pieces of at most ``max_len`` tokens (an empty list gives none)."""
    return [tokens[i:i + max_len] for i in range(0, len(tokens), max_len)]


class TokenStream:
    """Re-iterable stream of token chunks of a corpus, as gensim wants sentences (one pass per epoch)."""

    def __init__(self, corpus: Corpus, max_len: int = MAX_CHUNK):
        self.corpus, self.max_len = corpus, max_len

    def __iter__(self) -> Iterator[list[str]]:
        tok = self.corpus.tokenizer
        for doc in self.corpus:
            tokens = tok(doc)
            for piece in chunk(tokens, self.max_len):
                yield list(piece)


@dataclass(frozen=True)
class Vocab:
    """Words kept for training, most frequent first (gensim's order), with their corpus counts."""
    index_to_key: tuple[str, ...]
    counts: np.ndarray  # (V,) int64, corpus frequency of each word
    min_count: int
    key_to_index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "key_to_index", {w: i for i, w in enumerate(self.index_to_key)})

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def count(self, word: str) -> int:
        i = self.key_to_index.get(word)
        return 0 if i is None else int(self.counts[i])

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Indices of the in-vocabulary tokens (out-of-vocabulary tokens are dropped, as gensim does)."""
        k2i = self.key_to_index
        return np.fromiter((k2i[t] for t in tokens if t in k2i), dtype=np.int64)


def build_vocab(token_lists: Iterable[Sequence[str]], min_count: int = 5) -> Vocab:
    """Count tokens and keep those seen at least ``min_count`` times, sorted by count (ties alphabetically)."""
    from collections import Counter

    c: Counter = Counter()
    for toks in token_lists:
        c.update(toks)
    kept = sorted(((w, n) for w, n in c.items() if n >= min_count), key=lambda x: (-x[1], x[0]))
    return Vocab(tuple(w for w, _ in kept), np.array([n for _, n in kept], dtype=np.int64), min_count)


def training_vocab(corpus: Corpus, min_count: int) -> Vocab:
    """The vocabulary a model trains on (tokens chunked as for training); a clear error when it is empty."""
    from .errors import CorpusError

    vocab = build_vocab(TokenStream(corpus, MAX_CHUNK), min_count)
    if len(vocab) == 0:
        raise CorpusError(f"corpus {corpus.name!r}: no word occurs min_count={min_count} times; nothing to train")
    return vocab


def word_counts(corpus: Corpus, words) -> dict[str, int]:
    """How often each of ``words`` occurs in ``corpus`` under the tokenizer (one pass)."""
    from collections import Counter

    want = set(words)
    c: Counter = Counter()
    tok = corpus.tokenizer
    if want:
        for doc in corpus:
            c.update(t for t in tok(doc) if t in want)
    return {w: int(c.get(w, 0)) for w in words}
