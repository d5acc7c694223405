"""Corpora as batches of encoded documents, and sums over (word, word) keys: what training and scoring of every
embedding family share.

- ``encode_batches``: documents tokenized and encoded a batch at a time (the corpus is never held), as one flat
  token array per batch with each token's document and chunk (documents over 10,000 tokens are chunked as gensim
  would, and pairs never cross a chunk);
- ``DocBatch.parts``: a batch in pieces of bounded size, cut between chunks, so memory follows the piece and not
  the document (a 2-million-token document is enumerated 50,000 tokens at a time);
- ``PairSums``: summed weights per integer key (``row * V + column``), merged in chunks.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, repeat
from typing import Iterator

import numpy as np

from .corpus import Corpus
from .vocab import MAX_CHUNK, Vocab

PART_TOKENS = 50_000   # tokens per piece of a batch that pairs are enumerated over: bounds memory whatever the
                       # document sizes (a 2-million-token document is enumerated 50,000 tokens at a time)


@dataclass
class DocBatch:
    """A batch of documents as one flat token array."""
    ids: list[str]
    tokens: np.ndarray   # (n_tokens,) vocabulary indices, OOV removed
    doc: np.ndarray      # (n_tokens,) index of the document (within the batch) of each token
    chunk: np.ndarray    # (n_tokens,) global chunk number: pairs never cross chunks

    def parts(self, max_tokens: int = PART_TOKENS) -> Iterator["DocBatch"]:
        """The batch in pieces of about ``max_tokens`` tokens (at most one 10,000-token chunk more), cut only
        where a chunk starts: no pair crosses a chunk, so enumerating the pieces one by one gives every pair of
        the batch once, with memory bounded by the piece. Pieces keep the batch's ids and document numbers."""
        n = len(self.tokens)
        if n <= max_tokens:
            yield self
            return
        starts = np.flatnonzero(np.r_[True, self.chunk[1:] != self.chunk[:-1]])     # first token of each chunk
        piece = starts // max_tokens
        cuts = np.r_[starts[np.r_[True, piece[1:] != piece[:-1]]], n]
        for a, b in zip(cuts[:-1], cuts[1:]):
            yield DocBatch(self.ids, self.tokens[a:b], self.doc[a:b], self.chunk[a:b])


def encode_batches(corpus: Corpus, vocab: Vocab, batch_size: int = 2000) -> Iterator[DocBatch]:
    """Tokenize and encode documents, a batch at a time (the whole corpus is never held)."""
    get = vocab.key_to_index.get
    chunk_no = 0
    tok = corpus.tokenizer
    for docs in corpus.iter_batches(batch_size):
        toks = [tok(d) for d in docs]
        flat = list(chain.from_iterable(toks))
        idx = np.fromiter(map(get, flat, repeat(-1)), np.int64, len(flat))
        doc_raw = np.repeat(np.arange(len(docs), dtype=np.int64), [len(t) for t in toks])
        keep = idx >= 0   # out-of-vocabulary tokens are removed before windowing
        tokens, doc = idx[keep], doc_raw[keep]
        lengths = np.bincount(doc, minlength=len(docs))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos = np.arange(len(tokens), dtype=np.int64) - np.repeat(starts, lengths)
        # chunks of MAX_CHUNK tokens of the raw text; after OOV removal a chunk can only be shorter, so chunking
        # the encoded tokens at MAX_CHUNK keeps every pair gensim could see
        n_chunks = np.maximum(1, -(-lengths // MAX_CHUNK))
        first = chunk_no + np.concatenate([[0], np.cumsum(n_chunks)[:-1]])
        chunk_of = np.repeat(first, lengths) + pos // MAX_CHUNK
        chunk_no += int(n_chunks.sum())
        yield DocBatch([d.id for d in docs], tokens, doc, chunk_of)


def same_chunk_positions(chunk: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (p, p + r) of a batch whose two tokens are in the same chunk (windows never cross a chunk)."""
    p = np.arange(max(0, len(chunk) - r))
    q = p + r
    same = chunk[p] == chunk[q]
    return p[same], q[same]


def merge_pairs(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``vals`` per distinct key: (sorted unique keys, sums)."""
    k, inv = np.unique(keys, return_inverse=True)
    return k, np.bincount(inv, weights=vals, minlength=len(k))


class PairSums:
    """Summed weights per integer pair key, accumulated batch by batch and merged every ``merge_every``
    pending entries, so memory follows the distinct pairs, not the corpus."""

    def __init__(self, merge_every: int = 20_000_000):
        self.merge_every = merge_every
        self.keys, self.vals = np.zeros(0, np.int64), np.zeros(0)
        self._pk, self._pv, self._pn = [], [], 0

    def add(self, keys: np.ndarray, vals: np.ndarray) -> None:
        k, v = merge_pairs(keys, vals)
        self._pk.append(k)
        self._pv.append(v)
        self._pn += len(k)
        if self._pn > self.merge_every:
            self._flush()

    def _flush(self) -> None:
        self.keys, self.vals = merge_pairs(np.concatenate([self.keys, *self._pk]),
                                           np.concatenate([self.vals, *self._pv]))
        self._pk, self._pv, self._pn = [], [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._flush()
        return self.keys, self.vals


def corpus_pair_sums(corpus: Corpus, vocab: Vocab, pairs_of, progress=None, merge_every: int = 20_000_000
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed weights per (row word, column word) over a corpus, sorted by (row, column): ``pairs_of(part)`` gives
    (rows, columns, weights, documents) for each part of each batch (a family's pair enumeration)."""
    V = len(vocab)
    sums, done = PairSums(merge_every), 0
    for batch in encode_batches(corpus, vocab):
        for part in batch.parts():
            i, j, x, _ = pairs_of(part)
            sums.add(i * V + j, x)
        done += len(batch.ids)
        if progress:
            progress("co-occurrence", done, corpus.n_documents_known)
    keys, vals = sums.result()
    return keys // V, keys % V, vals
