"""Predicted bias after editing a set of documents, re-measured on the changed model.

Summing per-document deltas of a bounded measure over hundreds of documents leaves the measure's range (a WEAT
effect size cannot pass about 2). Instead, the parameter change the influence approximation implies for the whole
set S is applied to the model and the measure is computed again on the changed parameters:

- ``block`` (pair objectives): each test word's input vector re-solved on the edited pair weights with the
  context vectors fixed (Newton's method from the trained vector, offset by its residual gradient, with the
  estimator's damping as a proximal term). Its first step is Delta u_w = (H_w - H_w(S) + lambda I)^-1 g_w(S) for a
  removal and -(H_w + e H_w(S) + lambda I)^-1 e g_w(S) for e extra copies (g_w(S): the gradient of S's loss in
  u_w, H_w(S): its part of the block); further steps follow the curvature where S held much of a word's pairs;
- ``cg`` / ``lissa``: one conjugate-gradient solve with S's summed gradient over the test words' input vectors and
  all output vectors (the exact operator, for lissa too);
- ``gradient-dot`` has no scale: no prediction.

Each request is (target name, document indices, copies in all[, added documents]): 0 copies = removal, t >= 2 =
upweighting, 1 = the documents kept as they are; added documents (counterfactual rewrites, which are not in the
corpus) are documents trained on in addition. A swap is the originals removed (0) with their rewrites added; an
augmentation the originals kept (1) with the rewrites added. ``predict`` returns the measure's value after the
edit (always in the measure's range: it is the measure of real vectors); a predictor that cannot take added
documents returns None for such a request. ``progress``: called as ("removal predictions", done, total) with the
requests done. ``linear_added`` gives the first-order change of adding documents
(their summed upweighting scores), the linear counterpart.
"""
from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np

from ..batches import DocBatch, encode_batches


PREDICTIONS = "removal predictions"      # the progress stage of group predictions


class Predictor(Protocol):
    """What a scorer hands back for group predictions."""

    def predict(self, requests: list[tuple[str, np.ndarray, int]], progress=None) -> list[float]: ...


def selected_batches(corpus, vocab, doc_indices, batch_size: int = 2000):
    """The batches of ``corpus`` restricted to the documents whose positions are in ``doc_indices`` (document
    numbers and chunks kept, so every pair is what the whole corpus gives for that document)."""
    wanted = np.zeros(0, dtype=bool)
    sel = np.asarray(sorted(set(int(i) for i in doc_indices)), dtype=np.int64)
    off = 0
    for batch in encode_batches(corpus, vocab, batch_size):
        n = len(batch.ids)
        local = sel[(sel >= off) & (sel < off + n)] - off
        if len(local):
            wanted = np.zeros(n, dtype=bool)
            wanted[local] = True
            keep = wanted[batch.doc]
            yield off, DocBatch(batch.ids, batch.tokens[keep], batch.doc[keep], batch.chunk[keep])
        off += n


def added_pairs(docs, vocab, enumerator, mask=None):
    """(input, output, weight) of the training pairs of documents that are not in the corpus (``mask``: only
    those whose input word is flagged)."""
    from ..corpus import MemoryCorpus

    out = [[], [], []]
    for batch in encode_batches(MemoryCorpus(list(docs), "added"), vocab):
        for part in batch.parts():
            w, c, x, _ = enumerator.pairs(part, mask) if mask is not None else enumerator.pairs(part)
            for lst, arr in zip(out, (w, c, x)):
                lst.append(arr)
    return tuple(np.concatenate(a) if a else np.zeros(0) for a in out)


def _request(req):
    name, docs, times = req[:3]
    return name, np.asarray(docs, dtype=np.int64), times, (req[3] if len(req) > 3 else None)


class PairBlockPredictor:
    """``block`` group predictions for pair objectives (skip-gram)."""

    CACHE_SIZE = 50_000             # re-solved vectors kept (dim floats each, with a 20-byte key)

    def __init__(self, objective, enumerator, rows, blocks: dict, lam: dict, targets, corpus, instances=None,
                 anchor: str = "trained"):
        self.objective, self.enumerator = objective, enumerator
        self.rows = np.asarray(rows)
        self.blocks, self.lam = blocks, lam        # lam: {test name: absolute damping} (each test its own)
        self.targets = {t.name: t for t in targets}
        self.corpus = corpus
        self.instances = instances          # (K, X, D) of every test-word pair instance, when the scorer kept them
        self._cache: dict = {}              # re-solved test-word vectors, see ``_resolved``
        self.anchor = anchor                # where re-solves start (``SkipGramObjective.resolve_word``)

    def _instances(self, docs: np.ndarray):
        """(input word, output word, weight, document) of the test-word pairs of the given documents."""
        V = self.objective.V
        if self.instances is not None:
            K, X, D = self.instances
            m = np.isin(D, docs)
            return self.rows[K[m] // V], K[m] % V, X[m], D[m]
        mask = np.zeros(V, dtype=bool)
        mask[self.rows] = True
        out = [[], [], [], []]
        for off, batch in selected_batches(self.corpus, self.enumerator.vocab, docs):
            for part in batch.parts():
                w, c, x, d = self.enumerator.pairs(part, mask)
                for lst, arr in zip(out, (w, c, x, d + off)):
                    lst.append(arr)
        return tuple(np.concatenate(a) if a else np.zeros(0) for a in out)

    def _mask(self):
        mask = np.zeros(self.objective.V, dtype=bool)
        mask[self.rows] = True
        return mask

    def _resolved(self, name: str, word: int, ctx: np.ndarray, dn: np.ndarray):
        """``resolve_word`` of one test word on its edited pair weights, memoised on exactly those inputs (the
        test, the word and a digest of its edited outputs and weights, in their order): a set and the same set
        plus a document that does not touch this word give the word the same pairs, so greedy selection and
        prefix scans re-solve only the words a candidate touches. The result is bit for bit the uncached one."""
        h = hashlib.blake2b(np.ascontiguousarray(ctx, dtype=np.int64).tobytes(), digest_size=20)
        h.update(np.ascontiguousarray(dn, dtype=np.float64).tobytes())
        key = (name, int(word), len(ctx), h.digest())
        hit = self._cache.get(key)
        if hit is None:
            hit = self.objective.resolve_word(word, ctx, dn, self.lam[name], anchor=self.anchor)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))        # oldest first
            self._cache[key] = hit
        return hit

    def predict(self, requests, progress=None):
        import torch

        requests = [_request(r) for r in requests]
        union = np.unique(np.concatenate([docs for _, docs, _, _ in requests] + [np.zeros(0, np.int64)]))
        w, c, x, d = self._instances(union)
        w, c = w.astype(np.int64), c.astype(np.int64)
        out = []
        if progress:
            progress(PREDICTIONS, 0, len(requests))
        for name, docs, times, added in requests:
            m = np.isin(d, docs)
            scale = -1.0 if times == 0 else float(times - 1)     # removed, or e extra copies (1: kept)
            ww, cc, xx = w[m], c[m], scale * x[m]
            if added:
                aw, ac, ax = added_pairs(added, self.enumerator.vocab, self.enumerator, self._mask())
                ww, cc, xx = np.r_[ww, aw.astype(np.int64)], np.r_[cc, ac.astype(np.int64)], np.r_[xx, ax]
            target = self.targets[name]
            rows = np.asarray(target.rows)
            sub = self.objective.U[torch.as_tensor(rows)].clone()     # the measure reads only its words' rows
            own = set(int(r) for r in rows)
            for word in np.unique(ww).tolist():
                if word not in own:
                    continue
                sel = (ww == word) & (xx != 0)
                if sel.any():
                    sub[torch.as_tensor(np.flatnonzero(rows == word))] = self._resolved(name, word, cc[sel], xx[sel])
            out.append(float(target.fn(sub)))
            if progress:
                progress(PREDICTIONS, len(out), len(requests))
        return out

    def linear_added(self, name: str, added) -> float:
        """First-order change of the measure if ``added`` documents are trained on as well: the sum of their
        upweighting scores, -grad B_w^T (H_w + lambda I)^-1 g_w(added) over the test words."""
        import torch

        target = self.targets[name]
        w, c, x = added_pairs(added, self.enumerator.vocab, self.enumerator, self._mask())
        if len(w) == 0:
            return 0.0
        d_rows, w_rows, G = self.objective.doc_word_gradients(w.astype(np.int64), c.astype(np.int64), x,
                                                              np.zeros(len(w), dtype=np.int64))
        gB = target.gradient(self.objective.U)
        own = set(int(r) for r in target.rows)
        total = 0.0
        eye = torch.eye(self.objective.dim, dtype=self.objective.dtype, device=self.objective.device)
        for word, g in zip(w_rows.tolist(), G):
            if word not in own:
                continue
            H = self.blocks[word] + self.lam[name] * eye
            step = torch.linalg.solve(H, torch.as_tensor(g, dtype=self.objective.dtype, device=self.objective.device))
            total -= float(gB[word] @ step)
        return total


class PairSolvePredictor:
    """``cg`` / ``lissa`` group predictions for pair objectives: one CG solve with the set's summed gradient."""

    def __init__(self, model, objective, enumerator, rows, config, blocks, mu: dict, targets, corpus):
        self.model, self.objective, self.enumerator = model, objective, enumerator
        self.rows, self.config, self.blocks, self.mu = rows, config, blocks, mu
        self.targets = {t.name: t for t in targets}
        self.corpus = corpus

    def predict(self, requests, progress=None):
        from dataclasses import fields

        from ..batches import merge_pairs
        from .cg import solve_cg
        from .estimators import CGConfig

        V = self.objective.V
        # the group's step is one exact CG solve, whichever solver scored: cg's config with the scorer's shared
        # settings (damping, params, hessian, tol, ...; lissa's own are not cg's)
        cfg = CGConfig(**{f.name: getattr(self.config, f.name) for f in fields(CGConfig)
                          if hasattr(self.config, f.name)})
        out = []
        for name, docs, times, added in (_request(r) for r in requests):
            keys, vals = [], []
            sign = 1.0 if times == 0 else -float(times - 1)       # the parameter change is -(this) x H^-1 g
            for _, batch in selected_batches(self.corpus, self.enumerator.vocab, docs):
                for part in batch.parts():
                    w, c, x, _ = self.enumerator.pairs(part)
                    keys.append(w * V + c)
                    vals.append(sign * x)
            if added:
                aw, ac, ax = added_pairs(added, self.enumerator.vocab, self.enumerator)
                keys.append(aw.astype(np.int64) * V + ac.astype(np.int64))
                vals.append(-ax)
            k, n = merge_pairs(np.concatenate(keys), np.concatenate(vals))
            part_obj = self.enumerator.objective(self.model, pairs=(k // V, k % V, n), dtype=self.objective.dtype,
                                                 device=self.objective.device)
            gU, gC = part_obj.gradient()
            rows = np.unique(self.targets[name].rows)        # each test's own free rows and damping
            xu, _, _ = solve_cg(self.objective, gU, rows, cfg, self.blocks, self.mu[name], grad_c=gC)
            out.append(self.targets[name].value(self.objective.U + xu))
            if progress:
                progress(PREDICTIONS, len(out), len(requests))
        return out
