"""The skip-gram training pairs of documents, vectorised: which (input word, output word) pairs a document
contributes to the expected objective, and with what weight.

Expected pair weight, decided here (gensim's sampling, in expectation):
- reduced windows (``shrink_windows``): gensim draws the effective window b uniformly from 1..window per centre
  word, so a pair at distance r is trained with probability (window - r + 1) / window (1 without shrinking);
- frequent-word subsampling (``sample``): each occurrence of word w is kept with gensim's probability
  keep(w) = min(1, (sqrt(f_w / t) + 1) t / f_w), t = sample * (total retained count), before windowing. A pair
  needs both words kept, and its distance is counted over the kept words only, so dropped words bring further
  words into the window: the weight is keep_p keep_q E[max(0, window - K)] / window with K the number of kept
  words between them (computed exactly by a dynamic program; pairs up to 4 * window apart).
- out-of-vocabulary tokens are removed before windowing, as gensim does; documents are chunked at 10,000 tokens
  (pairs never cross a chunk boundary).
Every ordered pair (input t_p, output t_q) with 0 < |p - q| <= window appears once: gensim trains
syn0[context] against syn1neg[centre], and windows are symmetric, so this enumeration is the same in expectation.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, repeat
from typing import Iterator

import numpy as np

from ..corpus import Corpus
from ..vocab import MAX_CHUNK, Vocab, tokenize


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """gensim's per-word probability of keeping an occurrence under frequent-word subsampling."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    t = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)


def noise_distribution(counts: np.ndarray, ns_exponent: float = 0.75) -> np.ndarray:
    """Negative-sampling distribution: count^ns_exponent, normalised (gensim's cum_table)."""
    p = np.asarray(counts, dtype=np.float64) ** ns_exponent
    return p / p.sum()


def window_weights(window: int, shrink: bool = True) -> np.ndarray:
    """(window + 1,) expected weight of a pair at distance r (index 0 unused)."""
    r = np.arange(window + 1, dtype=np.float64)
    w = (window - r + 1) / window if shrink else np.ones(window + 1)
    w[0] = 0.0
    return w


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
    for docs in corpus.iter_batches(batch_size):
        toks = [tokenize(d.text) for d in docs]
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


def near_positions(batch: DocBatch, mask: np.ndarray, reach: int) -> DocBatch:
    """The part of a batch within ``reach`` positions of a flagged word, as a batch whose chunks break wherever
    positions were skipped: every pair that involves a flagged word and spans at most ``reach`` positions keeps
    its exact expected weight (which depends only on the words between the two)."""
    hit = np.flatnonzero(mask[batch.tokens])
    n = len(batch.tokens)
    if len(hit) == 0:
        z = np.zeros(0, np.int64)
        return DocBatch(batch.ids, z, z, z)
    diff = np.zeros(n + 1, np.int64)
    np.add.at(diff, np.maximum(0, hit - reach), 1)
    np.add.at(diff, np.minimum(n, hit + reach + 1), -1)
    keep = np.flatnonzero(np.cumsum(diff[:n]) > 0)
    brk = np.ones(len(keep), dtype=bool)
    brk[1:] = (np.diff(keep) != 1) | (batch.chunk[keep[1:]] != batch.chunk[keep[:-1]])
    return DocBatch(batch.ids, batch.tokens[keep], batch.doc[keep], np.cumsum(brk))


def batch_pairs(batch: DocBatch, window: int, weights_r: np.ndarray, keep: np.ndarray,
                inputs_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All training pairs of a batch (or of one of its ``parts()``: callers with large batches loop over the
    parts): (input word, output word, expected weight, document index).

    With subsampling (some keep < 1) a pair at text distance r is trained when both words are kept and the K kept
    words between them satisfy K + 1 <= b, b the reduced window: weight = keep_p keep_q E[max(0, window - K)] /
    window (``weights_r`` shape, exact for shrink_windows). K's distribution is built by a vectorised dynamic
    program over the positions, distances growing until the weight left is below 1e-4 (at most 4 * window).
    ``inputs_mask`` (V,) bool keeps only pairs whose input word is flagged (e.g. the test words)."""
    subsampled = bool(np.any(keep[batch.tokens] < 1.0))
    max_r = 4 * window if subsampled else window
    if inputs_mask is not None:
        batch = near_positions(batch, inputs_mask, max_r)
    t, ch = batch.tokens, batch.chunk
    n = len(t)
    kp = keep[t]
    shrink = weights_r[window] < 1.0 or window == 1
    # D[p, k]: probability that k of the words strictly between p and p + r are kept (k < window)
    D = np.zeros((n, window))
    D[:, 0] = 1.0
    fill = (window - np.arange(window)) / window if shrink else np.ones(window)
    outs_w, outs_c, outs_x, outs_d = [], [], [], []
    for r in range(1, max_r + 1):
        if r >= 2:
            q = np.zeros(n)
            q[: n - r + 1] = kp[r - 1:]  # the word at p + r - 1 is now between p and p + r
            D[:, 1:] = D[:, 1:] * (1 - q[:, None]) + D[:, :-1] * q[:, None]
            D[:, 0] *= 1 - q
        if r >= n:
            break
        p = np.arange(n - r)
        qpos = p + r
        same = ch[p] == ch[qpos]
        p, qpos = p[same], qpos[same]
        wgt = (D[p] @ fill) * kp[p] * kp[qpos]
        if r > window and wgt.size and wgt.max() < 1e-4:
            break
        live = wgt > 0
        p, qpos, wgt = p[live], qpos[live], wgt[live]
        for a, b in ((p, qpos), (qpos, p)):  # both orders: (input, output)
            if inputs_mask is not None:
                m = inputs_mask[t[a]]
                a, b, x = a[m], b[m], wgt[m]
            else:
                x = wgt
            outs_w.append(t[a])
            outs_c.append(t[b])
            outs_x.append(x)
            outs_d.append(batch.doc[a])
    if not outs_w:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0), z
    return (np.concatenate(outs_w), np.concatenate(outs_c), np.concatenate(outs_x), np.concatenate(outs_d))


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


def cooccurrence(corpus: Corpus, vocab: Vocab, window: int, weights_r: np.ndarray, keep: np.ndarray,
                 inputs_mask: np.ndarray | None = None, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed expected pair weights over the corpus: unique (input, output) pairs and their total weight."""
    V = len(vocab)
    sums = PairSums()
    done = 0
    for batch in encode_batches(corpus, vocab):
        for part in batch.parts():
            w, c, x, _ = batch_pairs(part, window, weights_r, keep, inputs_mask)
            sums.add(w * V + c, x)
        done += len(batch.ids)
        if progress:
            progress("co-occurrence", done, None)
    keys, vals = sums.result()
    return keys // V, keys % V, vals
