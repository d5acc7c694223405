"""The skip-gram objective that was actually trained, in expectation, at the trained parameters: the loss influence
functions differentiate (summed over documents; a deterministic function of parameters and documents).

    L = sum over pairs (w, c) of n_wc [ softplus(-u_w . c_c) + k * sum_n P(n) softplus(u_w . c_n) ]

with n_wc the summed expected pair weight (see ``biasaudit.models.skipgram_pairs``), k = ``negative`` and P the
unigram^0.75 noise distribution: the negative-sampling term is its closed-form expectation per pair, so
L_d is deterministic. u = input vectors (``wv.vectors``), c = output vectors (``syn1neg``).

For large vocabularies the noise expectation over all V words is replaced, where a method needs it for every
input word, by the ``noise_top`` most probable words exactly plus ``noise_tail`` importance samples of the rest
(seeded); exact when V <= noise_top + noise_tail.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..corpus import Corpus
from ..vocab import Vocab
from .skipgram_pairs import batch_pairs, cooccurrence, keep_probabilities, noise_distribution, window_weights

CHUNK = 1 << 16        # pairs per vectorised step: (CHUNK, dim) gathers of ~50 MB, never the whole set
FLOAT32_NOISE_V = 20_000


@dataclass
class PairEnumerator:
    """How a skip-gram model's documents become weighted training pairs: what every pass of the influence scorer
    needs (picklable, so Dask workers get it without the vectors), and the objective built from the pair sums."""
    vocab: Vocab
    window: int
    weights_r: np.ndarray
    keep: np.ndarray

    @classmethod
    def of(cls, model) -> "PairEnumerator":
        cfg = model.config
        return cls(model.vocab, cfg.window, window_weights(cfg.window, cfg.shrink_windows),
                   keep_probabilities(model.vocab.counts, cfg.sample))

    def pairs(self, batch, inputs_mask: np.ndarray | None = None):
        """(input word, output word, expected weight, document) of a batch (or one of its parts)."""
        return batch_pairs(batch, self.window, self.weights_r, self.keep, inputs_mask)

    def objective(self, model, pairs: tuple, **kw) -> "SkipGramObjective":
        """The expected loss over the given (input, output, weight) pair sums."""
        return SkipGramObjective(model, pairs=pairs, **kw)


class SkipGramObjective:
    """Expected skip-gram loss, its gradient and Hessian-vector products over (U rows marked free, all of C)."""

    def __init__(self, model, corpus: Corpus | None = None, dtype=torch.float64, device="cpu",
                 noise_top: int = 4000, noise_tail: int = 1000, seed: int = 0, progress=None,
                 pairs: tuple | None = None):
        cfg = model.config
        self.model, self.dtype, self.device = model, dtype, torch.device(device)
        self.V, self.dim = model.vectors.shape
        self.k = cfg.negative
        self.window = cfg.window
        self.keep = keep_probabilities(model.vocab.counts, cfg.sample)
        self.noise = noise_distribution(model.vocab.counts, cfg.ns_exponent)
        self.weights_r = window_weights(cfg.window, cfg.shrink_windows)
        self.U = torch.as_tensor(model.vectors, dtype=dtype, device=self.device)
        self.C = torch.as_tensor(model.output_vectors, dtype=dtype, device=self.device)
        if pairs is None:
            if corpus is None:
                raise ValueError("SkipGramObjective needs the corpus or precomputed pairs")
            pairs = cooccurrence(corpus, model.vocab, cfg.window, self.weights_r, self.keep, progress=progress)
        w, c, n = pairs
        self.pw = torch.as_tensor(w, device=self.device)
        self.pc = torch.as_tensor(c, device=self.device)
        self.pn = torch.as_tensor(n, dtype=dtype, device=self.device)
        self.keys = np.asarray(w, dtype=np.int64) * self.V + np.asarray(c, dtype=np.int64)  # sorted (np.unique)
        self.N = torch.zeros(self.V, dtype=dtype, device=self.device).index_add_(0, self.pw, self.pn)
        # noise words for the per-input-word negative expectation
        order = np.argsort(-self.noise, kind="stable")
        if self.V <= noise_top + noise_tail:
            idx, p = np.arange(self.V), self.noise
        else:
            top, rest = order[:noise_top], order[noise_top:]
            rng = np.random.default_rng(seed)
            q = self.noise[rest] / self.noise[rest].sum()
            tail = rng.choice(rest, size=noise_tail, replace=True, p=q)
            idx = np.concatenate([top, tail])
            p = np.concatenate([self.noise[top], np.full(noise_tail, self.noise[rest].sum() / noise_tail)])
        self.noise_idx = torch.as_tensor(idx, device=self.device)
        self.noise_p = torch.as_tensor(p, dtype=dtype, device=self.device)

    # ------------------------------------------------------------------ loss and gradient
    def loss(self, U: torch.Tensor | None = None, C: torch.Tensor | None = None) -> torch.Tensor:
        """The summed expected objective L (differentiable in U and C)."""
        U = self.U if U is None else U
        C = self.C if C is None else C
        total = U.new_zeros(())
        for s in range(0, len(self.pw), CHUNK):
            w, c, n = self.pw[s:s + CHUNK], self.pc[s:s + CHUNK], self.pn[s:s + CHUNK]
            total = total + (n * torch.nn.functional.softplus(-(U[w] * C[c]).sum(1))).sum()
        Cn = C[self.noise_idx]
        for s in range(0, self.V, 8192):
            X = U[s:s + 8192] @ Cn.T  # (rows, n_noise)
            total = total + self.k * (self.N[s:s + 8192, None] * self.noise_p[None, :]
                                      * torch.nn.functional.softplus(X)).sum()
        return total

    def gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(dL/dU, dL/dC) at the trained parameters, in closed form."""
        gU, gC = torch.zeros_like(self.U), torch.zeros_like(self.C)
        for s in range(0, len(self.pw), CHUNK):
            w, c, n = self.pw[s:s + CHUNK], self.pc[s:s + CHUNK], self.pn[s:s + CHUNK]
            l1 = n * (torch.sigmoid((self.U[w] * self.C[c]).sum(1)) - 1)
            gU.index_add_(0, w, l1[:, None] * self.C[c])
            gC.index_add_(0, c, l1[:, None] * self.U[w])
        Cn = self.C[self.noise_idx]
        for s in range(0, self.V, 8192):
            Wt = self.k * self.N[s:s + 8192, None] * self.noise_p[None, :] * torch.sigmoid(self.U[s:s + 8192] @ Cn.T)
            gU[s:s + 8192] += Wt @ Cn
            gC.index_add_(0, self.noise_idx, Wt.T @ self.U[s:s + 8192])
        return gU, gC

    # ------------------------------------------------------------------ curvature
    def hvp(self, a: torch.Tensor, b: torch.Tensor, free_u: torch.Tensor,
            pair_sample: torch.Tensor | None = None, pair_scale: float = 1.0,
            row_sample: torch.Tensor | None = None, row_scale: float = 1.0,
            gauss_newton: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Hessian-vector product of L over (U rows with ``free_u``, all of C) with direction (a, b).

        The exact Hessian of skip-gram is indefinite (the bilinear u . c terms); ``gauss_newton`` drops the
        first-derivative cross terms and gives the positive semi-definite Gauss-Newton matrix, which equals the
        exact Hessian on every single-vector block.

        ``a`` must be zero on rows that are not free. Optional ``pair_sample``/``row_sample`` give an unbiased
        stochastic product from a subset of pairs / input rows (LiSSA). The full product runs on sparse CSR
        kernels (sampled dense-dense and sparse-dense products) and touches the input rows only where free."""
        if pair_sample is None and row_sample is None:
            return self._hvp_full(a, b, free_u, gauss_newton)
        hU, hC = torch.zeros_like(a), torch.zeros_like(b)
        U, C = self.U, self.C
        idx = torch.arange(len(self.pw), device=self.device) if pair_sample is None else pair_sample
        for s in range(0, len(idx), CHUNK):
            j = idx[s:s + CHUNK]
            w, c, n = self.pw[j], self.pc[j], self.pn[j] * pair_scale
            Uw, Cc = U[w], C[c]
            sg = torch.sigmoid((Uw * Cc).sum(1))
            l1, l2 = n * (sg - 1) * (not gauss_newton), n * sg * (1 - sg)
            t = (Cc * a[w]).sum(1) + (Uw * b[c]).sum(1)
            hU.index_add_(0, w, (l2 * t)[:, None] * Cc + l1[:, None] * b[c])
            hC.index_add_(0, c, (l2 * t)[:, None] * Uw + l1[:, None] * a[w])
        Cn, bn = C[self.noise_idx], b[self.noise_idx]
        rows = torch.arange(self.V, device=self.device) if row_sample is None else row_sample
        for s in range(0, len(rows), 8192):
            r = rows[s:s + 8192]
            Ur, ar = U[r], a[r]
            sg = torch.sigmoid(Ur @ Cn.T)  # (rows, n_noise)
            Wt = self.k * row_scale * self.N[r, None] * self.noise_p[None, :]
            T = ar @ Cn.T + Ur @ bn.T
            M2, M1 = Wt * sg * (1 - sg) * T, Wt * sg * (not gauss_newton)
            hU.index_add_(0, r, M2 @ Cn + M1 @ bn)
            hC.index_add_(0, self.noise_idx, M2.T @ Ur + M1.T @ ar)
        hU[~free_u] = 0
        return hU, hC

    def _csr(self):
        """Cached CSR pattern of the pairs (rows = input word), its transpose permutation, per-pair curvature
        weights n s (1 - s) and first-derivative weights n (s - 1), s = sigmoid(u_w . c_c)."""
        if getattr(self, "_csr_cache", None) is None:
            V = self.V
            crow = torch.searchsorted(self.pw, torch.arange(V + 1, device=self.device))
            order_t = torch.as_tensor(np.argsort(self.pc.cpu().numpy(), kind="stable"), device=self.device)
            crow_t = torch.searchsorted(self.pc[order_t], torch.arange(V + 1, device=self.device))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's "sparse CSR is in beta" notice
                pattern = torch.sparse_csr_tensor(crow, self.pc, torch.ones_like(self.pn), (V, V))
                sg = torch.sigmoid(torch.sparse.sampled_addmm(pattern, self.U, self.C.T, beta=0.0).values())
            self._csr_cache = (crow, order_t, crow_t, self.pn * sg * (1 - sg), self.pn * (sg - 1))
        return self._csr_cache

    def _hvp_full(self, a, b, free_u, gauss_newton):
        crow, order_t, crow_t, l2, l1 = self._csr()
        V, U, C = self.V, self.U, self.C
        free_rows = torch.nonzero(free_u).flatten()
        all_free = len(free_rows) == V
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "sparse CSR is in beta" notice
            pattern = torch.sparse_csr_tensor(crow, self.pc, torch.ones_like(l2), (V, V))
            # t_wc = c_c . a_w + u_w . b_c on every pair (a is zero outside the free rows)
            t = torch.sparse.sampled_addmm(pattern, U, b.T, beta=0.0).values()
            if all_free:
                t = t + torch.sparse.sampled_addmm(pattern, a, C.T, beta=0.0).values()
            else:
                for w in free_rows.tolist():
                    lo, hi = int(crow[w]), int(crow[w + 1])
                    t[lo:hi] += C[self.pc[lo:hi]] @ a[w]
            m2 = l2 * t
            # output side: hC[c] = sum_w m2 u_w (+ l1 a_w): CSR of the transpose
            mt = torch.sparse_csr_tensor(crow_t, self.pw[order_t], m2[order_t], (V, V))
            hC = mt @ U
            if not gauss_newton:
                hC = hC + torch.sparse_csr_tensor(crow_t, self.pw[order_t], l1[order_t], (V, V)) @ a
            # input side, free rows only: hU[w] = sum_c m2 c_c (+ l1 b_c)
            hU = torch.zeros_like(a)
            if all_free:
                hU = torch.sparse_csr_tensor(crow, self.pc, m2, (V, V)) @ C
                if not gauss_newton:
                    hU = hU + torch.sparse_csr_tensor(crow, self.pc, l1, (V, V)) @ b
            else:
                for w in free_rows.tolist():
                    lo, hi = int(crow[w]), int(crow[w + 1])
                    cc = self.pc[lo:hi]
                    hU[w] = m2[lo:hi] @ C[cc] + (0 if gauss_newton else l1[lo:hi] @ b[cc])
        # negative sampling: sum over input rows r and noise words n of k N_r P_n softplus(u_r . c_n); its
        # products over all V rows, the dominant cost, run in float32 for large vocabularies (as input_blocks)
        ndt = torch.float32 if V > FLOAT32_NOISE_V else self.dtype
        Cn, bn = C[self.noise_idx].to(ndt), b[self.noise_idx].to(ndt)
        Un, an, Nn, Pn = U.to(ndt), a.to(ndt), self.N.to(ndt), self.noise_p.to(ndt)
        hCn = torch.zeros(len(self.noise_idx), self.dim, dtype=ndt, device=self.device)
        for s in range(0, V, 8192):
            r = torch.arange(s, min(V, s + 8192), device=self.device)
            Ur = Un[r]
            sg = torch.sigmoid(Ur @ Cn.T)
            Wt = self.k * Nn[r, None] * Pn[None, :]
            fr = free_u[r]
            T = Ur @ bn.T
            if fr.any():
                T[fr] += an[r[fr]] @ Cn.T
            M2 = Wt * sg * (1 - sg) * T
            hCn += M2.T @ Ur
            if fr.any():
                hU[r[fr]] += (M2[fr] @ Cn).to(self.dtype)
            if not gauss_newton and fr.any():
                M1 = Wt[fr] * sg[fr]
                hCn += M1.T @ an[r[fr]]
                hU[r[fr]] += (M1 @ bn).to(self.dtype)
        hC.index_add_(0, self.noise_idx, hCn.to(self.dtype))
        hU[~free_u] = 0
        return hU, hC

    def gn_diagonal(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Diagonal of the Gauss-Newton matrix over (U, C), for preconditioning: per-row curvature differs by
        orders of magnitude between frequent and rare words."""
        crow, order_t, crow_t, l2, _ = self._csr()
        V = self.V
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dC = torch.sparse_csr_tensor(crow_t, self.pw[order_t], l2[order_t], (V, V)) @ (self.U ** 2)
            dU = torch.sparse_csr_tensor(crow, self.pc, l2, (V, V)) @ (self.C ** 2)
        ndt = torch.float32 if V > FLOAT32_NOISE_V else self.dtype
        Cn, Un = self.C[self.noise_idx].to(ndt), self.U.to(ndt)
        Nn, Pn = self.N.to(ndt), self.noise_p.to(ndt)
        dCn = torch.zeros(len(self.noise_idx), self.dim, dtype=ndt, device=self.device)
        for s in range(0, V, 8192):
            Ur = Un[s:s + 8192]
            sg = torch.sigmoid(Ur @ Cn.T)
            M = self.k * Nn[s:s + 8192, None] * Pn[None, :] * sg * (1 - sg)
            dCn += M.T @ Ur ** 2
            dU[s:s + 8192] += (M @ Cn ** 2).to(self.dtype)
        dC.index_add_(0, self.noise_idx, dCn.to(self.dtype))
        return dU, dC

    def input_block(self, word: int, exact_noise: bool = True) -> torch.Tensor:
        """d x d Hessian of L in the input vector u_w alone (context vectors held fixed)."""
        return self.input_blocks([word], exact_noise)[int(word)]

    def input_blocks(self, words, exact_noise: bool = True) -> dict[int, torch.Tensor]:
        """{w: d x d Hessian of L in u_w alone} for several words. The positive-pair part is summed in the
        objective's dtype; the noise part (an expectation over all V words when ``exact_noise``), the dominant cost,
        is accumulated in float32 for vocabularies over FLOAT32_NOISE_V words (relative error near 1e-6)."""
        words = [int(w) for w in words]
        order = torch.argsort(self.pw, stable=True)
        sw = self.pw[order]
        wt = torch.as_tensor(words, device=self.device)
        lo = torch.searchsorted(sw, wt).tolist()
        hi = torch.searchsorted(sw, wt, right=True).tolist()
        ndt = torch.float32 if self.V > FLOAT32_NOISE_V else self.dtype
        if exact_noise:
            Cn = self.C.to(ndt)
            P = torch.as_tensor(self.noise, dtype=ndt, device=self.device)
        else:
            Cn, P = self.C[self.noise_idx].to(ndt), self.noise_p.to(ndt)
        out = {}
        for w, a, b in zip(words, lo, hi):
            j = order[a:b]
            c, n = self.pc[j], self.pn[j]
            u = self.U[w]
            Cc = self.C[c]
            sg = torch.sigmoid(Cc @ u)
            H = (Cc * (n * sg * (1 - sg))[:, None]).T @ Cc
            sgn = torch.sigmoid(Cn @ u.to(ndt))
            wn = float(self.k * self.N[w]) * P * sgn * (1 - sgn)
            out[w] = H + ((Cn * wn[:, None]).T @ Cn).to(self.dtype)
        return out

    def word_pairs(self, word: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(output words, summed weights) of the pairs whose input word is ``word``."""
        if getattr(self, "_by_word", None) is None:
            order = torch.argsort(self.pw, stable=True)
            self._by_word = (order, self.pw[order])
        order, sw = self._by_word
        lo = int(torch.searchsorted(sw, torch.tensor(word)))
        hi = int(torch.searchsorted(sw, torch.tensor(word), right=True))
        j = order[lo:hi]
        return self.pc[j], self.pn[j]

    def _word_terms(self, u: torch.Tensor, c: torch.Tensor, n: torch.Tensor, N: float):
        """Gradient and Hessian in u of sum_c n_c softplus(-u.c_c) + k N sum_v P(v) softplus(u.c_v)."""
        Cc = self.C[c]
        sg = torch.sigmoid(Cc @ u)
        P = torch.as_tensor(self.noise, dtype=self.dtype, device=self.device)
        sgn = torch.sigmoid(self.C @ u)
        grad = (n * (sg - 1)) @ Cc + self.k * N * (P * sgn) @ self.C
        hess = (Cc * (n * sg * (1 - sg))[:, None]).T @ Cc + self.k * N * (self.C * (P * sgn * (1 - sgn))[:, None]).T @ self.C
        return grad, hess

    def _word_grad(self, u: torch.Tensor, Cc: torch.Tensor, n: torch.Tensor, N: float, P: torch.Tensor):
        """The gradient part of ``_word_terms`` alone (``Cc``: the contexts' vectors, gathered once; ``P``: the
        noise distribution as a tensor): two (V, dim) products instead of a (dim, V) x (V, dim) one."""
        return (n * (torch.sigmoid(Cc @ u) - 1)) @ Cc + self.k * N * (P * torch.sigmoid(self.C @ u)) @ self.C

    def _word_base(self, word: int, anchor: str = "trained"):
        """What every re-solve of ``word`` starts from, computed once per word and anchor: its trained pairs (c0,
        n0, N0), the anchor vector (``trained``: the trained vector; ``optimum``: the root of the word's loss with
        the context vectors fixed, ``word_optimum``), the anchor's residual gradient, and the two parts of its
        Hessian there, the positive pairs' and the noise term's per unit of N (the noise part, a (dim, V) x (V,
        dim) product, is what costs)."""
        cache = self.__dict__.setdefault("_resolve_cache", {})
        if (word, anchor) not in cache:
            c0, n0 = self.word_pairs(word)
            N0 = float(n0.sum())
            u0 = self.U[word] if anchor == "trained" else self.word_optimum(word, c0, n0, N0)
            Cc = self.C[c0]
            sg = torch.sigmoid(Cc @ u0)
            P = torch.as_tensor(self.noise, dtype=self.dtype, device=self.device)
            sgn = torch.sigmoid(self.C @ u0)
            residual = (n0 * (sg - 1)) @ Cc + self.k * N0 * (P * sgn) @ self.C
            h_pos = (Cc * (n0 * sg * (1 - sg))[:, None]).T @ Cc
            h_noise = self.k * (self.C * (P * sgn * (1 - sgn))[:, None]).T @ self.C
            cache[word, anchor] = (c0, n0, N0, residual, h_pos, h_noise, u0)
        return cache[word, anchor]

    def word_optimum(self, word: int, c0, n0, N0: float, max_iter: int = 100, tol: float = 1e-10) -> torch.Tensor:
        """The minimiser of ``word``'s loss in its input vector with every context vector fixed (convex: a
        logistic loss over its pairs and the noise expectation), by Newton's method from the trained vector with
        step halving while the gradient grows. A model trained by SGD with a decaying rate stops short of it."""
        u = self.U[word].clone()
        g, H = self._word_terms(u, c0, n0, N0)
        for _ in range(max_iter):
            step = torch.linalg.solve(H, g)
            t = 1.0
            while True:
                g1, H1 = self._word_terms(u - t * step, c0, n0, N0)
                if float(g1.norm()) < float(g.norm()) or t < 1e-4:
                    break
                t /= 2
            u, g, H = u - t * step, g1, H1
            if float((t * step).norm()) <= tol * max(1.0, float(u.norm())):
                break
        return u

    def resolve_word(self, word: int, ctx: np.ndarray, dn: np.ndarray, lam: float, max_iter: int = 25,
                     tol: float = 1e-9, anchor: str = "trained") -> torch.Tensor:
        """u_w re-solved (context vectors fixed) after its pair weights change by ``dn`` at outputs ``ctx`` (the
        negative-sampling weight N_w by their sum): the root of the word's edited gradient, offset by the trained
        vector's residual gradient (so the unedited problem is solved by the trained vector itself), with a
        proximal term lam/2 |u - u_0|^2 (the estimator's damping). Its first step is the block estimator's.

        Solved by chord iterations: every step uses the edited loss's Hessian at the trained vector (exact: the
        trained Hessian's parts, cached per word, plus the edited pairs' part), so each step costs a gradient, not
        a (dim, V) x (V, dim) product; the root is the same as Newton's. Where they converge slowly or not at all
        (an edit that takes most of a word's pairs), Newton's method with a fresh Hessian each step finishes.

        ``anchor="optimum"``: the same re-solve from the word's optimum with the context vectors fixed
        (``word_optimum``, where the residual is 0) instead of the trained vector, and the change between the two
        optima added to the trained vector. An SGD-trained vector is not at that optimum, and offsetting an edit
        that takes most of a word's pairs by the trained vector's residual holds the word near where it was (on
        the planted corpus the trained anchor predicts a tenth of the planted documents' effect)."""
        u = self._resolve_from(word, ctx, dn, lam, max_iter, tol, anchor)
        return u if anchor == "trained" else self.U[word] + (u - self._word_base(word, anchor)[6])

    def _resolve_from(self, word, ctx, dn, lam, max_iter, tol, anchor):
        c0, n0, N0, residual, h_pos, h_noise, u0 = self._word_base(word, anchor)
        dn_full = torch.zeros(self.V, dtype=self.dtype, device=self.device)
        dn_full.index_add_(0, torch.as_tensor(ctx, device=self.device), torch.as_tensor(dn, dtype=self.dtype,
                                                                                       device=self.device))
        # contexts the edit adds (a rewrite pairs the word with words it never met) join the trained ones
        c1 = torch.unique(torch.cat([c0, torch.as_tensor(ctx, dtype=c0.dtype, device=self.device)]))
        n_full = torch.zeros(self.V, dtype=self.dtype, device=self.device).index_add_(0, c0, n0)
        n1 = torch.clamp(n_full[c1] + dn_full[c1], min=0.0)
        N1 = max(0.0, N0 + float(dn_full.sum()))
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        # the edited loss's Hessian at u0: the trained positive part, the edited pairs' change, the noise rescaled
        ce = c1[dn_full[c1] != 0]
        Ce = self.C[ce]
        se = torch.sigmoid(Ce @ u0)
        dh = (Ce * ((torch.clamp(n_full[ce] + dn_full[ce], min=0.0) - n_full[ce]) * se * (1 - se))[:, None]).T @ Ce
        A = h_pos + dh + N1 * h_noise + lam * eye
        L, info = torch.linalg.cholesky_ex(A)
        u, prev = u0.clone(), None
        if int(info) == 0:
            C1 = self.C[c1]                                                     # (contexts, dim)
            P = torch.as_tensor(self.noise, dtype=self.dtype, device=self.device)
            for _ in range(4 * max_iter):
                r = self._word_grad(u, C1, n1, N1, P) - residual + lam * (u - u0)
                step = torch.cholesky_solve(r[:, None], L)[:, 0]
                size = float(step.norm())
                if prev is not None and size > prev:     # diverging: Newton from the trained vector instead
                    u = u0.clone()
                    break
                u = u - step
                if size <= tol * max(1.0, float(u.norm())):
                    return u
                if prev is not None and size > 0.5 * prev:   # converging slowly: Newton finishes from here
                    break
                prev = size
        for _ in range(max_iter):
            g, H = self._word_terms(u, c1, n1, N1)
            step = torch.linalg.solve(H + lam * eye, g - residual + lam * (u - u0))
            u = u - step
            if float(step.norm()) <= tol * max(1.0, float(u.norm())):
                break
        return u

    def doc_word_gradients(self, w: np.ndarray, c: np.ndarray, x: np.ndarray, d: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For pair instances (input w, output c, weight x, document d): each (document, input word)'s gradient of
        the document's loss in u_w, (n_rows, dim) float32, with the rows' documents and words."""
        from scipy.sparse import csr_matrix

        if len(w) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        dw = d.astype(np.int64) * self.V + w.astype(np.int64)
        rows_key, row_of = np.unique(dw, return_inverse=True)
        a = np.empty(len(w))
        for s in range(0, len(w), CHUNK):       # (pairs, dim) blocks, never all instances at once
            wt, ct = torch.as_tensor(w[s:s + CHUNK]), torch.as_tensor(c[s:s + CHUNK])
            a[s:s + CHUNK] = x[s:s + CHUNK] * (torch.sigmoid((self.U[wt] * self.C[ct]).sum(1)).cpu().numpy() - 1)
        M = csr_matrix((a, (row_of, c)), shape=(len(rows_key), self.V))
        G = M @ self.C.cpu().numpy()                                           # (n_rows, dim)
        words = rows_key % self.V
        P = torch.as_tensor(self.noise, dtype=self.dtype, device=self.device)
        ng_rows = {}
        for word in np.unique(words).tolist():
            sgn = torch.sigmoid(self.C @ self.U[word])
            ng_rows[word] = (self.k * (P * sgn) @ self.C).cpu().numpy()
        ng = np.stack([ng_rows[int(v)] for v in words]) if len(words) else np.zeros((0, self.dim))
        xsum = np.bincount(row_of, weights=x, minlength=len(rows_key))
        G = G + xsum[:, None] * ng
        return rows_key // self.V, words, G.astype(np.float32)

    # ------------------------------------------------------------------ per-pair values for scoring
    def pair_values(self, vU: torch.Tensor, vC: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """For the direction v = (vU, vC): h over the unique corpus pairs (aligned with ``self.keys``) and g per
        input word, so that grad L_d . v = sum over d's pair instances of weight * (h[w, c] + g[w])."""
        h = torch.zeros(len(self.pw), dtype=self.dtype, device=self.device)
        live = torch.arange(len(self.pw), device=self.device)
        if vC is None:  # only pairs whose input word has a non-zero direction
            live = torch.nonzero(vU.abs().sum(1)[self.pw] > 0).flatten()
        for s in range(0, len(live), CHUNK):
            j = live[s:s + CHUNK]
            w, c = self.pw[j], self.pc[j]
            Uw, Cc = self.U[w], self.C[c]
            t = (Cc * vU[w]).sum(1)
            if vC is not None:
                t = t + (Uw * vC[c]).sum(1)
            h[j] = (torch.sigmoid((Uw * Cc).sum(1)) - 1) * t
        g = torch.zeros(self.V, dtype=self.dtype, device=self.device)
        if vC is None:
            # input-side direction only (block, gradient-dot): exact noise expectation over all V words,
            # needed only for the rows where vU is non-zero
            rows = torch.nonzero(vU.abs().sum(1) > 0).flatten()
            P = torch.as_tensor(self.noise, dtype=self.dtype, device=self.device)
            for s in range(0, len(rows), 256):
                r = rows[s:s + 256]
                g[r] = self.k * (P[None, :] * torch.sigmoid(self.U[r] @ self.C.T) * (vU[r] @ self.C.T)).sum(1)
            return h.cpu().numpy(), g.cpu().numpy()
        Cn, vCn = self.C[self.noise_idx], vC[self.noise_idx]
        for s in range(0, self.V, 8192):
            Ur = self.U[s:s + 8192]
            T = vU[s:s + 8192] @ Cn.T + Ur @ vCn.T
            g[s:s + 8192] = self.k * (self.noise_p[None, :] * torch.sigmoid(Ur @ Cn.T) * T).sum(1)
        return h.cpu().numpy(), g.cpu().numpy()
