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

import numpy as np

from ..batches import DocBatch, corpus_pair_sums, same_chunk_positions
from ..corpus import Corpus
from ..vocab import Vocab


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
        p, qpos = same_chunk_positions(ch, r)
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


def cooccurrence(corpus: Corpus, vocab: Vocab, window: int, weights_r: np.ndarray, keep: np.ndarray,
                 inputs_mask: np.ndarray | None = None, progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed expected pair weights over the corpus: unique (input, output) pairs and their total weight."""
    return corpus_pair_sums(corpus, vocab, lambda part: batch_pairs(part, window, weights_r, keep, inputs_mask),
                            progress)
