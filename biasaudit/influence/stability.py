"""How much a ranking depends on which words the test happens to list (and on the training seed).

The word sets are resampled with replacement (the bootstrap the confidence interval uses) and, with several
trained seeds, the seed is resampled too; every document is scored again under each resample. For ``block`` and
``gradient-dot`` this is cheap: a document's score is a sum over the test words it touches,

    score_d(B) = sum_w s_w(B) . G[d, w],   s_w = (H_w + lambda I)^-1 dB/du_w   (gradient-dot: dB/du_w),

so the per-document, per-word gradients G are kept from scoring and only the small solves s_w are redone.

Reported, per test:
- ``stability`` of a document: the fraction of resamples in which it stays among the test's ``TOP`` documents in
  the same direction (driving the bias up, or down). 1: any reasonable word list ranks it there; low: it ranks
  through a word or two the resample may leave out (often a rare or ambiguous word).
- ``evidence`` of a document: its score in the worst quarter of resamples (the influence that three quarters of
  the resamples grant it; 0 when more than a quarter drop it, as they drop a document that ranks through a single
  word). The shown lists are ordered by it.
- the mean overlap of the top ``TOP`` between resamples and with the ranking itself.
Stability says nothing about whether the words measure the concept: it is robustness to the word sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import hashlib
import json

import numpy as np
import torch

TOP = 100
N_RESAMPLES = 100
CANDIDATES = 500     # documents per direction whose evidence is computed (the top of the ranking)
EVIDENCE_QUANTILE = 0.75   # evidence: the score that 75% of resamples grant (in the document's direction)


@dataclass(frozen=True)
class DocWordBasis:
    """Every scored document's gradient in each test word's vector (rows: (document, word) pairs), and the
    estimator's per-word solve: score_d = sum over d's rows of solve(dB/du)[word] . G[row]."""
    doc: np.ndarray                  # (n_rows,) document index
    word: np.ndarray                 # (n_rows,) vocabulary index of the test word
    G: np.ndarray                    # (n_rows, dim)
    n_docs: int
    embedding: torch.Tensor          # (V, dim) the vectors the measure reads
    solve: Callable                  # (word, dB/du_word, test name) -> direction for that word
    candidates: dict | None = None   # test name -> the documents its resamples may rank (its own top documents;
                                     # the basis keeps the union over the tests run together); None: all

    def scores(self, target) -> np.ndarray:
        """Every document's score for a (resampled) measure: those outside the test's own candidates are 0, so
        the scores, and the stability read from them, are the same whichever tests ran beside it."""
        grad = target.gradient(self.embedding)                                  # (V, dim)
        words = np.unique(self.word)
        S = np.zeros((int(words.max()) + 1 if len(words) else 0, self.G.shape[1]))
        live = set(int(r) for r in target.rows)
        for w in words.tolist():
            if w in live:
                S[w] = self.solve(w, grad[w], target.name).cpu().numpy()
        vals = np.einsum("ij,ij->i", self.G, S[self.word])
        out = np.bincount(self.doc, weights=vals, minlength=self.n_docs)
        own = None if self.candidates is None else self.candidates.get(target.name)
        if own is not None:
            keep = np.zeros(self.n_docs, dtype=bool)
            keep[own] = True
            out[~keep] = 0.0
        return out


def _top(s: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``top`` most negative (negative) and most positive (positive) scores."""
    neg = np.flatnonzero(s < 0)
    pos = np.flatnonzero(s > 0)
    if len(neg) > top:
        neg = neg[np.argpartition(s[neg], top)[:top]]
    if len(pos) > top:
        pos = pos[np.argpartition(-s[pos], top)[:top]]
    return neg, pos


def _mean_overlap(sets: list[np.ndarray], top: int) -> float | None:
    if len(sets) < 2:
        return None
    tot, n = 0.0, 0
    as_sets = [set(s.tolist()) for s in sets]
    for i in range(len(as_sets)):
        for j in range(i + 1, len(as_sets)):
            tot += len(as_sets[i] & as_sets[j]) / top
            n += 1
    return tot / n


def test_seed(seed: int, target) -> int:
    """The resampling seed of one test: from ``seed`` and the test's own identity (its name and the words it
    reads, in order), so its stability is the same whichever tests run beside it and in whatever order."""
    key = json.dumps([int(seed), target.name, [str(w) for w in target.words]], ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def stability(bases: list[DocWordBasis], targets_per_basis: list[list], scores: dict, n_resamples: int = N_RESAMPLES,
              top: int = TOP, seed: int = 0, progress=None) -> dict:
    """Per target name: {"stability": (n_docs,), "evidence": {doc index: worst-decile score}, "summary": {...}}.

    ``bases[i]`` and ``targets_per_basis[i]`` belong to the i-th trained seed; resample r uses seed r mod n.
    Each test's resamples are drawn from its own generator (``test_seed``): a test's every output is the same
    alone or beside others.
    ``progress``: called as ("ranking stability", resamples done, all tests' resamples)."""
    from ..measures.targets import resample_target

    out = {}
    for k, target in enumerate(targets_per_basis[0]):
        rng = np.random.default_rng(test_seed(seed, target))
        original = scores[target.name]
        n_docs = len(original)
        hits = np.zeros(n_docs)
        neg0, pos0 = _top(original, top)
        cand = np.unique(np.concatenate(_top(original, CANDIDATES)))
        cand_scores = np.zeros((n_resamples, len(cand)))
        tops_neg, tops_pos = [], []
        for r in range(n_resamples):
            if progress and r % 10 == 0:
                progress("ranking stability", k * n_resamples + r, len(targets_per_basis[0]) * n_resamples)
            b = r % len(bases)
            t = resample_target(targets_per_basis[b][k], rng)
            s = bases[b].scores(t)
            neg, pos = _top(s, top)
            hit = np.zeros(n_docs, dtype=bool)
            hit[neg[np.sign(original[neg]) < 0]] = True
            hit[pos[np.sign(original[pos]) > 0]] = True
            hits += hit
            cand_scores[r] = s[cand]
            tops_neg.append(neg)
            tops_pos.append(pos)
        stab = hits / n_resamples
        stab[original == 0] = 0.0
        # worst quarter in the document's own direction: the score 75% of resamples grant at least
        signs = np.sign(original[cand])
        worst = np.where(signs < 0, np.quantile(cand_scores, EVIDENCE_QUANTILE, axis=0),
                         np.quantile(cand_scores, 1 - EVIDENCE_QUANTILE, axis=0))
        worst = np.where(np.sign(worst) == signs, worst, 0.0)
        with_orig = [np.mean([len(set(t.tolist()) & set(o.tolist())) / top for t in tt]) if len(o) else None
                     for tt, o in ((tops_neg, neg0), (tops_pos, pos0))]
        out[target.name] = {
            "stability": stab, "evidence": dict(zip(cand.tolist(), worst.tolist())),
            "summary": {"n_resamples": n_resamples, "seeds": len(bases), "top": top,
                        "mean_top_overlap_between_resamples": {"increase_bias": _mean_overlap(tops_neg[:50], top),
                                                               "decrease_bias": _mean_overlap(tops_pos[:50], top)},
                        "mean_top_overlap_with_ranking": {"increase_bias": with_orig[0],
                                                          "decrease_bias": with_orig[1]}}}
    if progress:
        progress("ranking stability", len(out) * n_resamples, len(out) * n_resamples)
    return out
