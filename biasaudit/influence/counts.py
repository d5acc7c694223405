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
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class _TestRows:
    """The test words' rows of the count matrix X: their vocabulary ids, a mask over the vocabulary, and each
    one's position among them (-1 for every other word)."""
    ids: np.ndarray     # (R,) sorted vocabulary ids
    mask: np.ndarray    # (V,) bool
    pos: np.ndarray     # (V,) int64

    @classmethod
    def of(cls, ids: np.ndarray, V: int) -> "_TestRows":
        mask = np.zeros(V, dtype=bool)
        mask[ids] = True
        pos = np.full(V, -1, dtype=np.int64)
        pos[ids] = np.arange(len(ids))
        return cls(ids, mask, pos)

    def add_counts(self, X: np.ndarray, batch, window: int) -> None:
        """Add one batch's co-occurrences in the test rows to ``X`` ((R * V,); the same counting as training)."""
        V = len(self.mask)
        for part in batch.parts():
            i, j, x, _ = batch_cooccurrence(part.tokens, part.chunk, part.doc, window, self.mask)
            X += np.bincount(self.pos[i] * V + j, weights=x, minlength=X.size)


def _doc_pairs(batch, window: int, V: int, rows: _TestRows | None = None):
    """Per (document, row, column) co-occurrence weight of one batch, aggregated: (keys (d * R + row) * V + column,
    weights); the rows are the test rows (R of them, by position) or, without ``rows``, every word (R = V)."""
    R = V if rows is None else len(rows.ids)
    keys, vals = [], []
    for part in batch.parts():
        i, j, x, d = batch_cooccurrence(part.tokens, part.chunk, part.doc, window, None if rows is None else rows.mask)
        k, v = merge_pairs((d * R + (i if rows is None else rows.pos[i])) * V + j, x)
        keys.append(k)
        vals.append(v)
    return merge_pairs(np.concatenate(keys), np.concatenate(vals))


def _held_words(batch, mask: np.ndarray, off: int, V: int) -> np.ndarray:
    """(document position * V + word) of each test word a batch's documents hold, ``off`` the batch's first."""
    has = mask[batch.tokens]
    return np.unique((batch.doc[has] + off) * V + batch.tokens[has])


def _doc_words(held: list, V: int) -> dict[int, list]:
    """Document position -> the test words it holds, from ``_held_words``' batches."""
    held = np.concatenate(held) if held else np.zeros(0, np.int64)
    doc_words: dict[int, list] = {}
    for d, w in zip((held // V).tolist(), (held % V).tolist()):
        doc_words.setdefault(d, []).append(w)
    return doc_words


def _require_curvature(mus: dict, corpus: Corpus) -> None:
    if not all(mu > 0 for mu in mus.values()):
        raise CorpusError(f"corpus {corpus.name!r}: the test words co-occur with nothing; nothing to score")


def _count_change(X0, xd, base, term0, cfg) -> dict[str, np.ndarray]:
    """Each pair's exact gradient coefficient change, dg_i = coef * w~_j, when a document's counts ``xd`` are
    removed (``removed``) or added once more (``upweighted``): X' = X0 -/+ xd, f and log not linearised, a pair
    whose count falls to 0 leaving the loss. ``base``: w_i . w~_j + b_i + b~_j; ``term0``: f(X)(base - log X)."""
    coef = {}
    for sign, label in ((-1.0, "removed"), (1.0, "upweighted")):
        X1 = X0 + sign * xd
        alive = X1 > ZERO * X0
        X1s = np.where(alive, X1, 1.0)
        coef[label] = 2 * (np.where(alive, weighting(X1s, cfg.x_max, cfg.alpha) * (base - np.log(X1s)), 0.0)
                           - term0)
    return coef


@dataclass
class _DocScores:
    """Each test's scores, batch by batch: the documents' removal and upweighting predictions and each word's
    share of the removals."""
    names: list
    V: int
    removed: dict = field(default_factory=dict)      # test -> [per batch: (n,)]
    upweighted: dict = field(default_factory=dict)
    word_tot: dict = field(default_factory=dict)     # test -> (V,)

    def __post_init__(self):
        for n in self.names:
            self.removed[n], self.upweighted[n], self.word_tot[n] = [], [], np.zeros(self.V)

    def add(self, name: str, d, coef: dict, along, words, n: int) -> None:
        """One batch's pairs for test ``name``: ``d`` each pair's document (of ``n``), ``along`` the pair's
        direction s . dtheta/dcoef, ``words`` the word whose vector it moves."""
        rem = -coef["removed"] * along
        self.removed[name].append(np.bincount(d, weights=rem, minlength=n))
        self.upweighted[name].append(np.bincount(d, weights=-coef["upweighted"] * along, minlength=n))
        self.word_tot[name] += np.bincount(words, weights=rem, minlength=self.V)

    def totals(self) -> tuple[dict, dict]:
        """(removed, upweighted): each test's scores over every document, in order."""
        return ({n: np.concatenate(v) for n, v in self.removed.items()},
                {n: np.concatenate(v) for n, v in self.upweighted.items()})


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
        test_rows = _TestRows.of(self.rows, V)
        XS = np.zeros(R * V)
        batches = (encode_batches(MemoryCorpus(list(added), "added"), self.model.vocab) if added is not None else
                   (b for _, b in selected_batches(self.corpus, self.model.vocab, docs)))
        for batch in batches:
            test_rows.add_counts(XS, batch, self.model.config.window)
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
    vocab = model.vocab
    test_rows = _TestRows.of(np.unique(np.concatenate([t.rows for t in targets])), len(vocab))
    Xr, doc_ids, doc_words = _read_test_rows(model, corpus, test_rows, batch_size, progress)     # pass 1
    timings = {"pass_1": time.perf_counter() - t0}
    t1 = time.perf_counter()
    fit = _fit_blocks(model, corpus, targets, config, test_rows, Xr)
    timings["statistics"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    scores, basis = _score_pass(model, corpus, targets, fit, len(doc_ids), batch_size, progress)    # pass 2
    timings["scoring"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    contributions = {}
    for t in targets:
        own = set(t.rows.tolist())
        contributions[t.name] = {vocab.index_to_key[i]: float(scores.word_tot[t.name][i]) for i in test_rows.ids
                                 if i in own}
    predictor = (CountBlockPredictor(model, corpus, test_rows.ids, Xr, fit.base, fit.term0, fit.lams, targets)
                 if "counts" in config.group_predictions else None)
    if basis is not None:
        solve = word_solver(config, fit.blocks, fit.mus, fit.C.shape[1])
        basis = DocWordBasis(*basis, len(doc_ids), fit.E, solve)
    removed, upweighted = scores.totals()
    return ScoreResult(doc_ids, removed, fit.biases, contributions, {d: tuple(w) for d, w in doc_words.items()},
                       config, fit.infos, timings, upweighted=upweighted, predictor=predictor, basis=basis)


def _read_test_rows(model, corpus: Corpus, test_rows: _TestRows, batch_size: int, progress):
    """Pass 1: the test rows of X ((R, V), the same counting as training), every document's id, and the test words
    each document holds."""
    V, R = len(model.vocab), len(test_rows.ids)
    Xr = np.zeros(R * V)
    doc_ids: list[str] = []
    holds = []
    for batch in encode_batches(corpus, model.vocab, batch_size):
        holds.append(_held_words(batch, test_rows.mask, len(doc_ids), V))
        doc_ids.extend(batch.ids)
        test_rows.add_counts(Xr, batch, model.config.window)
        if progress:
            progress("reading documents", len(doc_ids), corpus.n_documents_known)
    doc_words = _doc_words(holds, V)
    if not doc_words:
        raise CorpusError(f"corpus {corpus.name!r}: no document contains a test word; nothing to score")
    return Xr.reshape(R, V), doc_ids, doc_words


@dataclass(frozen=True)
class _BlockFit:
    """The statistics pass 2 and the group predictions read (``block``, ``gradient-dot``)."""
    rows: _TestRows
    C: torch.Tensor         # (V, dim) the context vectors W~
    E: torch.Tensor         # (V, dim) the embedding the tests read
    base: np.ndarray        # (R, V) w_i . w~_j + b_i + b~_j
    term0: np.ndarray       # (R, V) f(X)(base - log X), 0 where X is 0
    Xr: np.ndarray          # (R, V) the test rows of X
    blocks: dict            # test word -> H_i (dim, dim)
    mus: dict               # test -> the mean curvature of its own words' blocks
    lams: dict              # test -> its absolute damping
    T: dict                 # test -> (R * V,) s_i . w~_j, dense over (test row, column)
    infos: dict
    biases: dict


def _fit_blocks(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig, test_rows: _TestRows,
                Xr: np.ndarray) -> _BlockFit:
    """The test words' blocks H_i, each test's damping, the loss's residual terms, and each test's direction
    s_i = (H_i + damping * mu * I)^-1 dB/dw_i (``gradient-dot``: dB/dw_i)."""
    cfg, rows = model.config, test_rows.ids
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
    _require_curvature(mus, corpus)
    lams = {n: getattr(config, "damping", 0.0) * mu for n, mu in mus.items()}   # gradient-dot: no damping, no solve
    base = (W[rows] @ C.T).numpy() + model.b[rows][:, None] + model.bc[None, :]   # w_i . w~_j + b_i + b~_j
    with np.errstate(divide="ignore"):
        logX = np.where(Xr > 0, np.log(np.where(Xr > 0, Xr, 1.0)), 0.0)
    term0 = np.where(Xr > 0, fX * (base - logX), 0.0)                            # f(X)(... - log X)
    T, infos, biases = _block_directions(targets, config, E, C, rows, blocks, lams, mus)
    return _BlockFit(test_rows, C, E, base, term0, Xr, blocks, mus, lams, T, infos, biases)


def _block_directions(targets, config, E, C, rows, blocks, lams, mus) -> tuple[dict, dict, dict]:
    """Per test: T = s_i . w~_j over (test row, column), the solve's condition numbers, the test's value."""
    eye = torch.eye(C.shape[1], dtype=torch.float64)
    T, infos, biases = {}, {}, {}
    for tgt in targets:
        g = tgt.gradient(E)
        s = torch.zeros(len(rows), C.shape[1], dtype=torch.float64)
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
    return T, infos, biases


def _score_pass(model, corpus: Corpus, targets: list[BiasTarget], fit: _BlockFit, n_docs: int, batch_size: int,
                progress):
    """Pass 2: each document's exact change of the test words' gradients, scored along each test's direction;
    and the per (document, test row) rows -sum_j coef_removed w~_j of the word basis (None without any)."""
    cfg, V, rows = model.config, len(model.vocab), fit.rows.ids
    R = len(rows)
    Xf, base_f, term0_f = fit.Xr.reshape(-1), fit.base.reshape(-1), fit.term0.reshape(-1)
    scores = _DocScores([t.name for t in targets], V)
    basis_parts = []       # per (document, test row): -sum_j coef_removed w~_j, so that score = sum_i s_i . row
    C64 = fit.C.numpy()
    off = 0
    for batch in encode_batches(corpus, model.vocab, batch_size):
        k, xd = _doc_pairs(batch, cfg.window, V, fit.rows)
        d, cell = k // (R * V), k % (R * V)
        coef = _count_change(Xf[cell], xd, base_f[cell], term0_f[cell], cfg)
        for t in targets:
            scores.add(t.name, d, coef, fit.T[t.name][cell], rows[cell // V], len(batch.ids))
        if len(d):
            dr, row_of = np.unique((d + off) * R + cell // V, return_inverse=True)
            M = csr_matrix((-coef["removed"], (row_of, cell % V)), shape=(len(dr), V))
            basis_parts.append((dr // R, rows[dr % R], (M @ C64).astype(np.float32)))
        off += len(batch.ids)
        if progress:
            progress("scoring documents", off, n_docs)
    if off != n_docs:
        raise CorpusError(f"corpus {corpus.name!r} changed between the two passes over it")
    basis = (tuple(np.concatenate([p[i] for p in basis_parts]) for i in range(3)) if basis_parts else None)
    return scores, basis


def score_glove_cg(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig,
                   progress=None, batch_size: int = 2000) -> ScoreResult:
    """``cg`` for GloVe: s = (H + damping * mu * I)^-1 dB/dtheta over all parameters (W, W~, b, b~), and each
    document's exact gradient change over every pair it holds; meant for small vocabularies (one HVP touches
    every non-zero count)."""
    t0 = time.perf_counter()
    cfg, vocab = model.config, model.vocab
    V = len(vocab)
    rows_all, cols_all, x_all = cooccurrence_matrix(corpus, vocab, cfg.window)
    obj = GloVeObjective(model, rows_all, cols_all, x_all)
    rows = np.unique(np.concatenate([t.rows for t in targets]))
    f_all = weighting(x_all, cfg.x_max, cfg.alpha)
    mus = _cg_curvatures(model, targets, rows, rows_all, cols_all, f_all)
    _require_curvature(mus, corpus)
    diag0 = obj.diagonal()
    base_all = ((obj.W[obj.I] * obj.C[obj.J]).sum(1)).numpy() + model.b[rows_all] + model.bc[cols_all]
    pairs = (rows_all * V + cols_all, x_all, base_all, f_all * (base_all - np.log(x_all)))   # keys, X, base, term0
    timings = {"statistics": time.perf_counter() - t0}
    t1 = time.perf_counter()
    dirs, infos, biases = _cg_directions(model, obj, targets, config, mus, diag0, progress)
    timings["solve"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    doc_ids, scores, doc_words = _cg_score_pass(model, corpus, targets, obj, dirs, pairs,
                                                _TestRows.of(rows, V).mask, batch_size, progress)
    timings["scoring"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    contributions = {}
    for t in targets:
        wt = scores.word_tot[t.name]
        contributions[t.name] = {vocab.index_to_key[i]: float(wt[i]) for i in t.rows}
        contributions[t.name]["(other words, through context vectors and biases)"] = float(wt.sum() - wt[t.rows].sum())
    removed, upweighted = scores.totals()
    return ScoreResult(doc_ids, removed, biases, contributions, {d: tuple(w) for d, w in doc_words.items()},
                       config, infos, timings, upweighted=upweighted)


def _cg_curvatures(model, targets: list[BiasTarget], rows, rows_all, cols_all, f_all) -> dict:
    """Each test's mean curvature: the trace of its own words' blocks per dimension (damping is relative to it,
    as everywhere)."""
    traces = {int(w): 2 * float((f_all[rows_all == w][:, None]
                                 * model.C[cols_all[rows_all == w]].astype(np.float64) ** 2).sum()) for w in rows}
    return {t.name: float(np.mean([traces[int(w)] for w in np.unique(t.rows)])) / model.W.shape[1] for t in targets}


def _cg_directions(model, obj: GloVeObjective, targets: list[BiasTarget], config: EstimatorConfig, mus: dict,
                   diag0, progress) -> tuple[dict, dict, dict]:
    """Per test: s = (H + damping * mu * I)^-1 dB/dtheta by Jacobi-preconditioned CG, split into (W, W~, b, b~);
    the solve's report; the test's value."""
    V = len(model.vocab)
    E = torch.as_tensor(model.vectors, dtype=torch.float64)
    dirs, infos, biases = {}, {}, {}
    for tgt in targets:
        g = tgt.gradient(E)
        gC = g if model.config.embedding == "w+c" else torch.zeros_like(g)
        b = torch.cat([g.flatten(), gC.flatten(), torch.zeros(2 * V, dtype=torch.float64)])
        mu = mus[tgt.name]
        lam = config.damping * mu
        sol, info = jacobi_pcg(lambda v: obj.hvp(v) + lam * v, b, diag0 + lam, config.tol, config.max_iter)
        dirs[tgt.name] = obj.split(sol)
        infos[tgt.name] = {"damping_absolute": lam, "mean_curvature": mu, **info}
        biases[tgt.name] = tgt.value(E)
        if progress:
            progress("cg", len(dirs), len(targets))
    return dirs, infos, biases


def _cg_score_pass(model, corpus: Corpus, targets: list[BiasTarget], obj: GloVeObjective, dirs: dict, pairs: tuple,
                   mask: np.ndarray, batch_size: int, progress):
    """The one pass of ``cg``: each document's exact gradient change over every pair it holds, along each test's
    direction over all parameters; every document's id and the test words (``mask``) it holds."""
    cfg, V = model.config, len(model.vocab)
    keys, x_all, base_all, term0_all = pairs
    doc_ids: list[str] = []
    held = []
    scores = _DocScores([t.name for t in targets], V)
    W64, C64 = obj.W.numpy(), obj.C.numpy()
    for batch in encode_batches(corpus, model.vocab, batch_size):
        held.append(_held_words(batch, mask, len(doc_ids), V))
        doc_ids.extend(batch.ids)
        k, xd = _doc_pairs(batch, cfg.window, V)
        d, ij = k // (V * V), k % (V * V)
        pos = np.searchsorted(keys, ij)
        ii, jj = ij // V, ij % V
        coef = _count_change(x_all[pos], xd, base_all[pos], term0_all[pos], cfg)
        for t in targets:
            sW, sC, sb, sbc = (a.numpy() for a in dirs[t.name])
            dot = (sW[ii] * C64[jj]).sum(1) + (W64[ii] * sC[jj]).sum(1) + sb[ii] + sbc[jj]
            scores.add(t.name, d, coef, dot, ii, len(batch.ids))
        if progress:
            progress("scoring documents", len(doc_ids), corpus.n_documents_known)
    return doc_ids, scores, _doc_words(held, V)
