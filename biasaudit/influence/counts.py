"""The scorer of families whose loss is GloVe's weighted least squares over co-occurrence counts
(``objective_kind = "counts"``): cross-loss influence after Brunet et al. 2019, "Understanding the Origins of Bias in
Word Embeddings".

The bias B reads the test words' rows of the embedding. With the context vectors W~ and the biases held fixed,
the loss is separable per word vector: the Hessian of J in w_i is H_i = 2 sum_j f(X_ij) w~_j w~_j^T. Removing
document d changes the counts X_ij by its own co-occurrences X^d_ij; the gradient of the new loss at the trained
vectors is

    dg_i = 2 sum_j [ f(X'_ij) (w_i . w~_j + b_i + b~_j - log X'_ij) - f(X_ij) (... - log X_ij) ] w~_j

computed exactly from X' = X - X^d (f and log are not linearised; a pair whose count drops to 0 leaves the loss),
and the retrained vectors move by -H_i^-1 dg_i, so

    delta_bias_if_removed(d) = - sum_i s_i . dg_i,   s_i = (H_i + damping * mu * I)^-1 dB/dw_i

(``gradient-dot``: s_i = dB/dw_i). ``delta_bias_if_upweighted`` uses X' = X + X^d the same way: the two are not
each other's negatives. Negative ``delta_bias_if_removed``: the document drives the bias up. With
``embedding="w+c"`` the test reads W + W~ but only W is moved (W~ held fixed), as in Brunet et al.

Two passes over the corpus: the test words' rows of X, then each document's co-occurrences with the test words.
Documents without a test word score exactly 0.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from scipy.sparse import csr_matrix

from ..batches import encode_batches, merge_pairs
from ..corpus import Corpus
from ..errors import ConfigError, CorpusError
from ..measures.targets import BiasTarget
from ..models.glove import GloVeObjective, batch_cooccurrence, cooccurrence_matrix, weighting
from .block import own_curvature, word_solver
from .cg import jacobi_pcg
from .estimators import EstimatorConfig
from .result import ScoreResult
from .stability import DocWordBasis

ZERO = 1e-9   # relative: a count that falls below ZERO * X after removal has left the loss


def _doc_pairs(batch, window, mask, row_pos, V, R):
    """Per (document, test row, column) co-occurrence weight of one batch, aggregated."""
    keys, vals = [], []
    for part in batch.parts():
        i, j, x, d = batch_cooccurrence(part.tokens, part.chunk, part.doc, window, mask)
        k, v = merge_pairs((d * R + row_pos[i]) * V + j, x)
        keys.append(k)
        vals.append(v)
    return merge_pairs(np.concatenate(keys), np.concatenate(vals))


class CountBlockPredictor:
    """``block`` group predictions for GloVe (Brunet et al.'s scheme for a set of documents): each test word's
    vector moves by -(H_i' + lambda I)^-1 dg_i, with the counts X' of the edited corpus (the set's co-occurrences
    removed, or added e times), H_i' = 2 sum_j f(X'_ij) w~_j w~_j^T re-solved on them, and dg_i the exact change of
    the gradient (f and log not linearised); then the measure is computed on the moved vectors. With the context
    vectors and biases fixed each word's loss is quadratic, so this is the exact re-solve (at damping 0)."""

    def __init__(self, model, corpus, rows, Xr, base, term0, lam, targets):
        self.model, self.corpus, self.rows = model, corpus, rows
        self.Xr, self.base, self.term0, self.lam = Xr, base, term0, lam     # lam: {test name: damping}
        self.targets = {t.name: t for t in targets}
        self.C = torch.as_tensor(model.C, dtype=torch.float64)
        self.W = torch.as_tensor(model.W, dtype=torch.float64)

    def _counts(self, docs, added=None) -> np.ndarray:
        """X^S over the test rows: (R, V), of corpus documents (positions ``docs``) or of ``added`` documents."""
        from ..batches import encode_batches
        from ..corpus import MemoryCorpus
        from .predict import selected_batches

        V, R = len(self.model.vocab), len(self.rows)
        mask = np.zeros(V, dtype=bool)
        mask[self.rows] = True
        row_pos = np.full(V, -1, dtype=np.int64)
        row_pos[self.rows] = np.arange(R)
        XS = np.zeros(R * V)
        batches = (encode_batches(MemoryCorpus(list(added), "added"), self.model.vocab) if added is not None else
                   (b for _, b in selected_batches(self.corpus, self.model.vocab, docs)))
        for batch in batches:
            for part in batch.parts():
                i, j, x, _ = batch_cooccurrence(part.tokens, part.chunk, part.doc, self.model.config.window, mask)
                XS += np.bincount(row_pos[i] * V + j, weights=x, minlength=R * V)
        return XS.reshape(R, V)

    def predict(self, requests, progress=None):
        cfg = self.model.config
        eye = torch.eye(self.C.shape[1], dtype=torch.float64)
        out = []
        for req in requests:
            name, docs, times = req[:3]
            added = req[3] if len(req) > 3 else None
            XS = self._counts(docs)
            X1 = self.Xr - XS if times == 0 else self.Xr + (times - 1) * XS
            XA = self._counts(None, added) if added else np.zeros_like(XS)
            X1 = X1 + XA
            W = self.W.clone()
            for r in np.flatnonzero((XS != 0).any(axis=1) | (XA != 0).any(axis=1)):
                x0, x1 = self.Xr[r], X1[r]
                alive = x1 > ZERO * x0
                x1s = np.where(alive, x1, 1.0)
                f1 = np.where(alive, weighting(x1s, cfg.x_max, cfg.alpha), 0.0)
                term1 = np.where(alive, f1 * (self.base[r] - np.log(x1s)), 0.0)
                dg = 2 * torch.as_tensor(term1 - self.term0[r]) @ self.C                  # (d,)
                nz = np.flatnonzero(f1)
                Cj = self.C[nz]
                H1 = 2 * (Cj * torch.as_tensor(f1[nz])[:, None]).T @ Cj
                W[self.rows[r]] -= torch.linalg.solve(H1 + self.lam[name] * eye, dg)
            E = W if cfg.embedding == "w" else W + self.C
            out.append(self.targets[name].value(E))
            if progress:
                progress("removal predictions", len(out), len(requests))
        return out


def score_glove(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig = EstimatorConfig(),
                progress=None, batch_size: int = 2000, **_) -> ScoreResult:
    """Every document's predicted change of each target, by ``block``, ``gradient-dot`` or ``cg``."""
    if getattr(config, "anchor", "trained") != "trained":     # block's setting, for skip-gram
        raise ConfigError(f"estimator {config.label}: anchor=optimum is a setting of skip-gram's block predictions; "
                          "GloVe's re-solves are exact least squares already")
    if config.solve == "iterative":
        return score_glove_cg(model, corpus, targets, config, progress, batch_size)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    cfg, vocab = model.config, model.vocab
    V = len(vocab)
    rows = np.unique(np.concatenate([t.rows for t in targets]))
    R = len(rows)
    mask = np.zeros(V, dtype=bool)
    mask[rows] = True
    row_pos = np.full(V, -1, dtype=np.int64)
    row_pos[rows] = np.arange(R)

    # pass 1: the test rows of X (the same counting as training)
    Xr = np.zeros(R * V)
    doc_ids: list[str] = []
    holds = []
    for batch in encode_batches(corpus, vocab, batch_size):
        off = len(doc_ids)
        doc_ids.extend(batch.ids)
        has = mask[batch.tokens]
        holds.append(np.unique((batch.doc[has] + off) * V + batch.tokens[has]))
        for part in batch.parts():
            i, j, x, _ = batch_cooccurrence(part.tokens, part.chunk, part.doc, cfg.window, mask)
            Xr += np.bincount(row_pos[i] * V + j, weights=x, minlength=R * V)
        if progress:
            progress("reading documents", len(doc_ids), corpus.n_documents_known)
    n_docs = len(doc_ids)
    held = np.concatenate(holds) if holds else np.zeros(0, np.int64)
    doc_words: dict[int, list] = {}
    for d, w in zip((held // V).tolist(), (held % V).tolist()):
        doc_words.setdefault(d, []).append(w)
    if not doc_words:
        raise CorpusError(f"corpus {corpus.name!r}: no document contains a test word; nothing to score")
    Xr = Xr.reshape(R, V)
    timings["pass_1"] = time.perf_counter() - t0

    # blocks and directions
    t1 = time.perf_counter()
    C = torch.as_tensor(model.C, dtype=torch.float64)
    E = torch.as_tensor(model.vectors, dtype=torch.float64)
    W = torch.as_tensor(model.W, dtype=torch.float64)
    fX = weighting(Xr, cfg.x_max, cfg.alpha)
    blocks = {}
    for r, w in enumerate(rows):
        nz = np.flatnonzero(Xr[r])
        Cj = C[nz]
        blocks[int(w)] = 2 * (Cj * torch.as_tensor(fX[r, nz])[:, None]).T @ Cj
    # each test's damping is relative to its own words' curvature: its result does not depend on the others
    mus = {t.name: own_curvature(blocks, t.rows, C.shape[1]) for t in targets}
    if not all(mu > 0 for mu in mus.values()):
        raise CorpusError(f"corpus {corpus.name!r}: the test words co-occur with nothing; nothing to score")
    lams = {n: getattr(config, "damping", 0.0) * mu for n, mu in mus.items()}   # gradient-dot: no damping, no solve
    eye = torch.eye(C.shape[1], dtype=torch.float64)
    base = (W[rows] @ C.T).numpy() + model.b[rows][:, None] + model.bc[None, :]   # w_i . w~_j + b_i + b~_j
    with np.errstate(divide="ignore"):
        logX = np.where(Xr > 0, np.log(np.where(Xr > 0, Xr, 1.0)), 0.0)
    term0 = np.where(Xr > 0, fX * (base - logX), 0.0)                            # f(X)(... - log X)
    T, infos, biases = {}, {}, {}
    for tgt in targets:
        g = tgt.gradient(E)
        s = torch.zeros(R, C.shape[1], dtype=torch.float64)
        lam, mu = lams[tgt.name], mus[tgt.name]
        conds = []
        for r, w in enumerate(rows):
            if w not in set(tgt.rows.tolist()):
                continue
            if config.solve == "blocks":
                Hd = blocks[int(w)] + lam * eye
                s[r] = torch.linalg.solve(Hd, g[w])
                ev = torch.linalg.eigvalsh(Hd)
                conds.append(float(ev[-1] / ev[0]))
            else:
                s[r] = g[w]
        T[tgt.name] = (s @ C.T).numpy().reshape(-1)     # s_i . w~_j, dense over (test row, column)
        infos[tgt.name] = ({"damping_absolute": lam, "mean_curvature": mu, "max_condition_number": max(conds)}
                           if conds else {})
        biases[tgt.name] = tgt.value(E)
    timings["statistics"] = time.perf_counter() - t1

    # pass 2: each document's exact change of the test words' gradients
    t2 = time.perf_counter()
    Xf, base_f, term0_f = Xr.reshape(-1), base.reshape(-1), term0.reshape(-1)
    removed = {t.name: np.zeros(n_docs) for t in targets}
    upweighted = {t.name: np.zeros(n_docs) for t in targets}
    word_tot = {t.name: np.zeros(V) for t in targets}
    basis_parts = []       # per (document, test row): -sum_j coef_removed w~_j, so that score = sum_i s_i . row
    C64 = C.numpy()
    off = 0
    for batch in encode_batches(corpus, vocab, batch_size):
        k, xd = _doc_pairs(batch, cfg.window, mask, row_pos, V, R)
        d, cell = k // (R * V), k % (R * V)
        X0 = Xf[cell]
        coef = {}
        for sign, label in ((-1.0, "removed"), (1.0, "upweighted")):
            X1 = X0 + sign * xd
            alive = X1 > ZERO * X0
            X1s = np.where(alive, X1, 1.0)
            term1 = np.where(alive, weighting(X1s, cfg.x_max, cfg.alpha) * (base_f[cell] - np.log(X1s)), 0.0)
            coef[label] = 2 * (term1 - term0_f[cell])                                # dg_i = coef * w~_j
        for t in targets:
            tv = T[t.name][cell]
            rem = -coef["removed"] * tv
            removed[t.name][off:off + len(batch.ids)] = np.bincount(d, weights=rem, minlength=len(batch.ids))
            upweighted[t.name][off:off + len(batch.ids)] = np.bincount(d, weights=-coef["upweighted"] * tv,
                                                                       minlength=len(batch.ids))
            word_tot[t.name] += np.bincount(rows[cell // V], weights=rem, minlength=V)
        if len(d):
            dr, row_of = np.unique((d + off) * R + cell // V, return_inverse=True)
            M = csr_matrix((-coef["removed"], (row_of, cell % V)), shape=(len(dr), V))
            basis_parts.append((dr // R, rows[dr % R], (M @ C64).astype(np.float32)))
        off += len(batch.ids)
        if progress:
            progress("scoring documents", off, n_docs)
    if off != n_docs:
        raise CorpusError(f"corpus {corpus.name!r} changed between the two passes over it")
    timings["scoring"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    contributions = {}
    for t in targets:
        own = set(t.rows.tolist())
        contributions[t.name] = {vocab.index_to_key[i]: float(word_tot[t.name][i]) for i in rows if i in own}
    predictor = (CountBlockPredictor(model, corpus, rows, Xr, base, term0, lams, targets)
                 if "counts" in config.group_predictions else None)
    basis = None
    if basis_parts:
        solve = word_solver(config, blocks, mus, C.shape[1])
        basis = DocWordBasis(np.concatenate([p[0] for p in basis_parts]), np.concatenate([p[1] for p in basis_parts]),
                             np.concatenate([p[2] for p in basis_parts]), n_docs, E, solve)
    return ScoreResult(doc_ids, removed, biases, contributions, {d: tuple(w) for d, w in doc_words.items()},
                       config, infos, timings, upweighted=upweighted, predictor=predictor, basis=basis)


def score_glove_cg(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig,
                   progress=None, batch_size: int = 2000) -> ScoreResult:
    """``cg`` for GloVe: s = (H + damping * mu * I)^-1 dB/dtheta over all parameters (W, W~, b, b~), and each
    document's exact gradient change over every pair it holds; meant for small vocabularies (one HVP touches
    every non-zero count)."""
    t0 = time.perf_counter()
    cfg, vocab = model.config, model.vocab
    V, dim = len(vocab), model.W.shape[1]
    rows_all, cols_all, x_all = cooccurrence_matrix(corpus, vocab, cfg.window)
    keys = rows_all * V + cols_all
    obj = GloVeObjective(model, rows_all, cols_all, x_all)
    rows = np.unique(np.concatenate([t.rows for t in targets]))
    # damping relative to the mean curvature of each test's own words' blocks, as everywhere
    f_all = weighting(x_all, cfg.x_max, cfg.alpha)
    C64 = obj.C
    traces = {int(w): 2 * float((f_all[rows_all == w][:, None]
                                 * model.C[cols_all[rows_all == w]].astype(np.float64) ** 2).sum()) for w in rows}
    mus = {t.name: float(np.mean([traces[int(w)] for w in np.unique(t.rows)])) / dim for t in targets}
    if not all(mu > 0 for mu in mus.values()):
        raise CorpusError(f"corpus {corpus.name!r}: the test words co-occur with nothing; nothing to score")
    diag0 = obj.diagonal()
    E = torch.as_tensor(model.vectors, dtype=torch.float64)
    base_all = ((obj.W[obj.I] * C64[obj.J]).sum(1)).numpy() + model.b[rows_all] + model.bc[cols_all]
    term0_all = f_all * (base_all - np.log(x_all))
    timings = {"statistics": time.perf_counter() - t0}
    dirs, infos, biases = {}, {}, {}
    t1 = time.perf_counter()
    for tgt in targets:
        g = tgt.gradient(E)
        gC = g if cfg.embedding == "w+c" else torch.zeros_like(g)
        b = torch.cat([g.flatten(), gC.flatten(), torch.zeros(2 * V, dtype=torch.float64)])
        mu = mus[tgt.name]
        lam = config.damping * mu
        sol, info = jacobi_pcg(lambda v: obj.hvp(v) + lam * v, b, diag0 + lam, config.tol, config.max_iter)
        dirs[tgt.name] = obj.split(sol)
        infos[tgt.name] = {"damping_absolute": lam, "mean_curvature": mu, **info}
        biases[tgt.name] = tgt.value(E)
        if progress:
            progress("cg", len(dirs), len(targets))
    timings["solve"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    doc_ids: list[str] = []
    removed = {t.name: [] for t in targets}
    upweighted = {t.name: [] for t in targets}
    word_tot = {t.name: np.zeros(V) for t in targets}
    held = []
    mask = np.zeros(V, dtype=bool)
    mask[rows] = True
    W64 = obj.W.numpy()
    for batch in encode_batches(corpus, vocab, batch_size):
        off = len(doc_ids)
        doc_ids.extend(batch.ids)
        has = mask[batch.tokens]
        held.append(np.unique((batch.doc[has] + off) * V + batch.tokens[has]))
        ks, xs = [], []
        for part in batch.parts():
            i, j, x, d = batch_cooccurrence(part.tokens, part.chunk, part.doc, cfg.window)
            k, v = merge_pairs((d * V + i) * V + j, x)
            ks.append(k)
            xs.append(v)
        k, xd = merge_pairs(np.concatenate(ks), np.concatenate(xs))
        d, ij = k // (V * V), k % (V * V)
        pos = np.searchsorted(keys, ij)
        X0, term0, base = x_all[pos], term0_all[pos], base_all[pos]
        ii, jj = ij // V, ij % V
        coef = {}
        for sign, label in ((-1.0, "removed"), (1.0, "upweighted")):
            X1 = X0 + sign * xd
            alive = X1 > ZERO * X0
            X1s = np.where(alive, X1, 1.0)
            coef[label] = 2 * (np.where(alive, weighting(X1s, cfg.x_max, cfg.alpha) * (base - np.log(X1s)), 0.0)
                               - term0)
        for t in targets:
            sW, sC, sb, sbc = (a.numpy() for a in dirs[t.name])
            dot = (sW[ii] * C64.numpy()[jj]).sum(1) + (W64[ii] * sC[jj]).sum(1) + sb[ii] + sbc[jj]
            rem = -coef["removed"] * dot
            removed[t.name].append(np.bincount(d, weights=rem, minlength=len(batch.ids)))
            upweighted[t.name].append(np.bincount(d, weights=-coef["upweighted"] * dot, minlength=len(batch.ids)))
            word_tot[t.name] += np.bincount(ii, weights=rem, minlength=V)
        if progress:
            progress("scoring documents", len(doc_ids), corpus.n_documents_known)
    timings["scoring"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    hv = np.concatenate(held) if held else np.zeros(0, np.int64)
    doc_words: dict[int, list] = {}
    for dd, w in zip((hv // V).tolist(), (hv % V).tolist()):
        doc_words.setdefault(dd, []).append(w)
    rem_all = {n: np.concatenate(v) for n, v in removed.items()}
    up_all = {n: np.concatenate(v) for n, v in upweighted.items()}
    contributions = {}
    for t in targets:
        wt = word_tot[t.name]
        contributions[t.name] = {vocab.index_to_key[i]: float(wt[i]) for i in t.rows}
        contributions[t.name]["(other words, through context vectors and biases)"] = float(wt.sum() - wt[t.rows].sum())
    return ScoreResult(doc_ids, rem_all, biases, contributions, {d: tuple(w) for d, w in doc_words.items()},
                       config, infos, timings, upweighted=up_all)
