"""Test-word pair instances of the pair scorer (``scorer.py``): each a (key, weight, document) where the key is
``row_pos * V + c`` over the dense (test rows x V) directions; scored by per-document sums, and spilled to raw
files when a corpus has more than memory should hold.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

SPILL_CHUNK = 1 << 20       # instances read back from a spill file at a time


class _Spill:
    """Test-word pair instances (key, weight, document) appended to raw files in a private temporary folder and
    read back in chunks of ``SPILL_CHUNK``: scoring a large corpus without a second pass over its text, in
    memory bounded by the chunk (24 bytes per instance on disk)."""

    DTYPES = (np.int64, np.float64, np.int64)

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="biasaudit-instances-"))
        self.files = [open(self.folder / f"{n}.bin", "wb") for n in "kxd"]
        self.n = 0

    def write(self, arrays) -> None:
        for f, a, t in zip(self.files, arrays, self.DTYPES):
            np.asarray(a, dtype=t).tofile(f)
        self.n += len(arrays[0])

    def chunks(self):
        for f in self.files:
            f.flush()
        for start in range(0, self.n, SPILL_CHUNK):
            count = min(SPILL_CHUNK, self.n - start)
            yield tuple(np.fromfile(self.folder / f"{n}.bin", dtype=t, count=count, offset=start * 8)
                        for n, t in zip("kxd", self.DTYPES))

    def close(self) -> None:
        for f in self.files:
            f.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _score_instances(K, X, D, n_docs: int, st, values: dict) -> tuple[dict, dict]:
    """Per-document sums of weight * (h + g) over test-word pair instances (dense keys row_pos * V + c); ``st``:
    the scorer's setup (its vocabulary and test rows)."""
    return _pair_sums(values, K, st.rows[K // len(st.vocab)], X, D, n_docs, len(st.vocab))


def _pair_sums(values: dict, at, words, x, docs, n_docs: int, V: int) -> tuple[dict, dict]:
    """Per test (``values``: name -> (h, g)), each pair's weight * (h[at] + g[word]) summed per document and per
    input word: (scores (n_docs,), word totals (V,))."""
    scores, word_tot = {}, {}
    for name, (h, g) in values.items():
        val = x * (h[at] + g[words])
        scores[name] = np.bincount(docs, weights=val, minlength=n_docs)
        word_tot[name] = np.bincount(words, weights=val, minlength=V)
    return scores, word_tot


def _score_spill(spill: _Spill, n_docs: int, st, values: dict) -> tuple[dict, dict]:
    """Scores from the spilled instances, a chunk at a time (the same sums as ``_score_instances``)."""
    scores, word_tot = None, None
    for K, X, D in spill.chunks():
        sc, wt = _score_instances(K, X, D, n_docs, st, values)
        scores = sc if scores is None else {n: scores[n] + sc[n] for n in sc}
        word_tot = wt if word_tot is None else {n: word_tot[n] + wt[n] for n in wt}
    return scores, word_tot
