"""The scorer of families whose loss is a sum over weighted word pairs (``objective_kind = "pairs"``: skip-gram),
for every estimator: the predicted change of each bias measure if each document is removed.

For every document d and bias measure B: ``delta_bias_if_removed(d) = grad B^T H^-1 grad L_d`` (negative: d drives
B up) and ``delta_bias_if_upweighted(d) = -delta_bias_if_removed(d)`` (one more copy of d).

grad L_d . v is a sum over d's training pairs of weight * (h[w, c] + g[w]) (the objective's ``pair_values``),
so all documents are scored in vectorised passes. ``block`` and ``gradient-dot`` read only pairs whose input word
is a test word: one pass over the corpus collects them and documents with no test word score exactly 0.
``cg`` and ``lissa`` carry effects through all output vectors: one pass builds the co-occurrence statistics,
a second scores every pair of every document.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..batches import PairSums, encode_batches, merge_pairs
from ..corpus import Corpus
from ..errors import CorpusError
from ..measures.targets import BiasTarget
from .block import mean_curvature, own_curvature, solve_block, solve_gradient_dot, word_solver
from .cg import solve_cg
from .estimators import EstimatorConfig
from .instances import _pair_sums, _score_instances, _score_spill, _Spill
from .lissa import solve_lissa
from .predict import PairBlockPredictor, PairSolvePredictor
from .result import DocWords, ScoreResult
from .stability import DocWordBasis

SOLVERS = {"block": solve_block, "gradient-dot": solve_gradient_dot, "cg": solve_cg, "lissa": solve_lissa}
MAX_INSTANCES = 4_000_000   # test-word pair instances kept in memory (~100 MB); beyond, they go to a spill file
DENSE_FLUSH = 1 << 20       # pair instances summed into the dense (test rows x V) weights at a time
BASIS_CANDIDATES = 2_000    # documents per test and direction whose per-word gradients stability resamples,
                            # when the corpus has more (a document ranked lower never reaches a resample's top 100)


@dataclass
class _Setup:
    """What each pass over documents needs (picklable: shipped to Dask workers without the vectors)."""
    pairs: object          # the family's pair enumerator: .vocab, .pairs(batch, inputs_mask), .objective(...)
    rows: np.ndarray       # sorted test-word rows
    full: bool             # cg / lissa: all pairs of all documents; else only pairs with a test input word
    batch_size: int

    @property
    def vocab(self):
        return self.pairs.vocab

    @property
    def test_mask(self) -> np.ndarray:
        m = np.zeros(len(self.vocab), dtype=bool)
        m[self.rows] = True
        return m


def _pass_1(corpus: Corpus, st: _Setup, keep_instances: bool, progress=None, spill: bool = False) -> dict:
    """One pass over ``corpus``: document ids, the test words each holds, the summed pair weights (dense over
    test rows x V for block / gradient-dot; unique (input, output) keys for cg / lissa) and, when asked, every
    test-word pair instance (key, weight, document) for scoring without a second pass: in memory up to
    ``MAX_INSTANCES``, beyond that in a spill file when ``spill`` (else dropped: the caller reads again)."""
    V, R = len(st.vocab), len(st.rows)
    mask = st.test_mask
    row_pos = np.full(V, -1, dtype=np.int64)
    row_pos[st.rows] = np.arange(R)
    n_dense = None if st.full else np.zeros(R * V)
    sums = PairSums() if st.full else None
    doc_ids: list[str] = []
    inst_k, inst_x, inst_d, holds = [], [], [], []
    n_inst, spilled = 0, None
    pend_k, pend_x, n_pend = [], [], 0
    if progress:
        progress("reading documents", 0, corpus.n_documents_known)
    try:
        for batch in encode_batches(corpus, st.vocab, st.batch_size):
            off = len(doc_ids)
            doc_ids.extend(batch.ids)
            has = mask[batch.tokens]
            holds.append(np.unique((batch.doc[has] + off) * V + batch.tokens[has]))
            for part in batch.parts():
                if st.full:
                    w, c, x, _ = st.pairs.pairs(part)
                    sums.add(w * V + c, x)
                else:
                    w, c, x, d = st.pairs.pairs(part, mask)
                    k = row_pos[w] * V + c
                    pend_k.append(k); pend_x.append(x)
                    n_pend += len(k)
                    if n_pend > DENSE_FLUSH:   # one (R x V) bincount per million pairs, not per part
                        n_dense += np.bincount(np.concatenate(pend_k), weights=np.concatenate(pend_x),
                                               minlength=R * V)
                        pend_k, pend_x, n_pend = [], [], 0
                    if spilled is not None:
                        spilled.write((k, x, d + off))
                    elif keep_instances:
                        inst_k.append(k); inst_x.append(x); inst_d.append(d + off)
                        n_inst += len(k)
                        if n_inst > MAX_INSTANCES:     # memory would grow with the corpus: to disk, or read again
                            if spill:
                                spilled = _Spill()
                                spilled.write(tuple(np.concatenate(a) for a in (inst_k, inst_x, inst_d)))
                            else:
                                keep_instances = False
                            inst_k, inst_x, inst_d = [], [], []
            if progress:
                progress("reading documents", len(doc_ids), corpus.n_documents_known)
    except BaseException:
        if spilled is not None:
            spilled.close()
        raise
    if pend_k:
        n_dense += np.bincount(np.concatenate(pend_k), weights=np.concatenate(pend_x), minlength=R * V)
    held = np.concatenate(holds) if holds else np.zeros(0, np.int64)
    out = {"doc_ids": doc_ids, "held": held}
    if st.full:
        out["pairs"] = sums.result()
    else:
        out["n_dense"] = n_dense
        if spilled is not None:
            out["spill"] = spilled
        elif keep_instances:
            out["instances"] = tuple(np.concatenate(a) if a else np.zeros(0, t) for a, t in
                                     ((inst_k, np.int64), (inst_x, np.float64), (inst_d, np.int64)))
    return out


def _without_instances(first: dict) -> dict:
    """What the client needs of a shard's first pass (the instances stay on the worker)."""
    return {k: v for k, v in first.items() if k != "instances"}


def _score_shard(first: dict, shard: Corpus, st: _Setup, values: dict, keys) -> tuple[dict, dict]:
    """A Dask worker's scores of one shard: from the instances its first pass kept, else a second pass."""
    if "instances" in first:
        return _score_instances(*first["instances"], len(first["doc_ids"]), st, values)
    return _pass_2(shard, st, values, keys)


def _pass_2(corpus: Corpus, st: _Setup, values: dict, keys: np.ndarray | None, progress=None,
            n_total: int | None = None) -> tuple[dict, dict]:
    """Second pass: score every document of ``corpus`` with the solved directions (``values``: per measure
    (h, g); h dense over test rows x V, or aligned with the sorted ``keys`` for cg / lissa)."""
    V = len(st.vocab)
    if not st.full:                    # block / gradient-dot: a batch's test-word pairs at a time
        mask = st.test_mask
        row_pos = np.full(V, -1, dtype=np.int64)
        row_pos[st.rows] = np.arange(len(st.rows))

        def score_part(part, n: int) -> tuple[dict, dict]:
            w, c, x, d = st.pairs.pairs(part, mask)
            return _score_instances(row_pos[w] * V + c, x, d, n, st, values)
    else:
        def score_part(part, n: int) -> tuple[dict, dict]:
            w, c, x, d = st.pairs.pairs(part)
            q = w * V + c
            order = np.argsort(q, kind="stable")   # sorted queries: a cache-friendly search, ~10x faster
            pos = np.empty(len(q), dtype=np.int64)
            pos[order] = np.searchsorted(keys, q[order])
            return _pair_sums(values, pos, w, x, d, n, V)

    parts = {name: [] for name in values}
    word_tot = {name: np.zeros(V) for name in values}
    off = 0
    for batch in encode_batches(corpus, st.vocab, st.batch_size):
        per_doc = {name: np.zeros(len(batch.ids)) for name in values}
        for part in batch.parts():
            sc, wt = score_part(part, len(batch.ids))
            for name in values:
                per_doc[name] += sc[name]
                word_tot[name] += wt[name]
        for name in values:
            parts[name].append(per_doc[name])
        off += len(batch.ids)
        if progress:
            progress("scoring documents", off, n_total)
    return {n: np.concatenate(p) if p else np.zeros(0) for n, p in parts.items()}, word_tot


@dataclass(frozen=True)
class _FirstPass:
    """What the first pass left, and where: each shard's results (one, without Dask), the spill file of a large
    corpus's instances and, on Dask, the client, the shards and the futures of the setup and of each shard's
    first pass (the instances stay on the workers)."""
    firsts: list
    spill: _Spill | None = None
    client: object = None
    shards: list = field(default_factory=list)
    futures: tuple | None = None       # (setup, [each shard's first pass]) on Dask

    @property
    def doc_ids(self) -> list[str]:
        return [i for f in self.firsts for i in f["doc_ids"]]

    @property
    def offsets(self) -> np.ndarray:
        """Each shard's first document among all of them (and, last, their number)."""
        return np.cumsum([0] + [len(f["doc_ids"]) for f in self.firsts])

    def doc_words(self, V: int) -> DocWords:
        held = [(f["held"] // V + off, f["held"] % V) for f, off in zip(self.firsts, self.offsets)]
        return DocWords(np.concatenate([h[0] for h in held]), np.concatenate([h[1] for h in held]))


@dataclass(frozen=True)
class _Fit:
    """The objective over the corpus's pairs and the test words' curvature: what the solves, the group
    predictors and the stability basis read."""
    objective: object
    blocks: dict                # test word -> its Hessian block
    mus: dict                   # test -> the mean curvature of its own words' blocks
    nz: np.ndarray | None       # block / gradient-dot: the non-zero cells of the dense (test rows x V) weights


def score_documents(model, corpus: Corpus, targets: list[BiasTarget],
                    config: EstimatorConfig = EstimatorConfig(), progress=None, dtype=torch.float64,
                    device: str = "cpu", batch_size: int = 2000, client=None) -> ScoreResult:
    """Score every document of ``corpus`` (the one ``model`` was trained on) for every target.

    ``client``: a ``dask.distributed.Client``; each of the corpus's shards (its files) is then read and scored
    by a worker (two passes: statistics, then scores), and the solve runs here. Without it everything runs in
    this process (``block`` and ``gradient-dot`` in a single pass)."""
    from ..models.base import family_of

    t0 = time.perf_counter()
    rows = np.unique(np.concatenate([t.rows for t in targets]))
    st = _Setup(family_of(model).objective(model), rows, config.solve == "iterative", batch_size)
    if client is not None:
        shards = corpus.shards()
        st_f = client.scatter(st, broadcast=True)
        # block / gradient-dot: each worker keeps its shard's test-word instances (up to the cap) where it read
        # them, and later scores that shard from them: the text is read once, and only small arrays travel
        shard_f = client.map(_pass_1, shards, st=st_f, keep_instances=not st.full, pure=False)
        firsts = client.gather(client.map(_without_instances, shard_f, pure=False))
        read = _FirstPass(firsts, firsts[0].get("spill"), client, shards, (st_f, shard_f))
    else:
        firsts = [_pass_1(corpus, st, keep_instances=not st.full, progress=progress, spill=True)]
        read = _FirstPass(firsts, firsts[0].get("spill"))
    try:
        return _solve_and_score(model, corpus, targets, config, st, read, progress, dtype, device, t0)
    finally:
        if read.spill is not None:
            read.spill.close()


def _solve_and_score(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig, st: _Setup,
                     read: _FirstPass, progress, dtype, device: str, t0: float) -> ScoreResult:
    """``score_documents`` after its first pass: the statistics, one solve per test, every document's scores,
    and the group predictor and stability basis the estimator provides."""
    V = len(model.vocab)
    timings: dict[str, float] = {}
    doc_ids, doc_words = read.doc_ids, read.doc_words(V)
    n_docs = len(doc_ids)
    timings["pass_1"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    # the solve is a phase of its own (statistics, then one solve per test); cg and lissa report their iterations
    phase = "solving" if not st.full else "curvature"
    if progress:
        progress(phase, 0, len(targets) if not st.full else 1)
    fit = _fit(model, corpus, targets, config, st, read.firsts, doc_words, dtype, device)
    timings["statistics"] = time.perf_counter() - t1
    if progress and st.full:
        progress(phase, 1, 1)

    t2 = time.perf_counter()
    values, infos, biases = _solve(fit, targets, config, st, V, progress)
    timings["solve"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    scores, word_tot = _second_pass(corpus, st, read, fit.objective, values, n_docs, progress)
    timings["scoring"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    contributions = {}
    for t in targets:
        wt = word_tot[t.name]
        own = set(t.rows.tolist())
        contributions[t.name] = {model.vocab.index_to_key[i]: float(wt[i]) for i in st.rows if i in own}
        if st.full:
            contributions[t.name]["(other words, through output vectors)"] = float(wt.sum() - wt[t.rows].sum())
    kept = None if read.client is not None or st.full else read.firsts[0].get("instances")
    predictor = _predictor(model, corpus, targets, config, st, fit, kept)
    basis = (_stability_basis(corpus, st, read, config, fit, kept, scores, progress)
             if config.solve in ("blocks", "identity") else None)
    return ScoreResult(doc_ids, scores, biases, contributions, doc_words, config, infos, timings, predictor=predictor,
                       basis=basis)


def _fit(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig, st: _Setup, firsts: list,
         doc_words: DocWords, dtype, device: str) -> _Fit:
    """The family's objective over the first pass's pair sums, and the test words' curvature blocks."""
    V, rows, nz = len(model.vocab), st.rows, None
    if st.full:
        keys, n = merge_pairs(np.concatenate([f["pairs"][0] for f in firsts]),
                              np.concatenate([f["pairs"][1] for f in firsts]))
        objective = st.pairs.objective(model, pairs=(keys // V, keys % V, n), dtype=dtype, device=device,
                                       noise_top=config.noise_top, noise_tail=config.noise_tail, seed=config.seed)
    else:
        n_dense = sum(f["n_dense"] for f in firsts)
        nz = np.flatnonzero(n_dense)
        objective = st.pairs.objective(model, pairs=(rows[nz // V], nz % V, n_dense[nz]), dtype=dtype,
                                       device=device)
    if not doc_words:
        raise CorpusError(f"corpus {corpus.name!r}: no document contains a test word; nothing to score")
    _, blocks = mean_curvature(objective, rows)
    # each test's damping is relative to its own words' curvature: its result does not depend on the others
    mus = {t.name: own_curvature(blocks, t.rows, objective.dim) for t in targets}
    if not all(mu > 0 for mu in mus.values()):
        raise CorpusError(f"corpus {corpus.name!r}: the test words occur in no training pair; nothing to score")
    return _Fit(objective, blocks, mus, nz)


def _solve(fit: _Fit, targets: list[BiasTarget], config: EstimatorConfig, st: _Setup, V: int,
           progress) -> tuple[dict, dict, dict]:
    """One solve per test: its direction's pair values (h, g) (h dense over test rows x V for block and
    gradient-dot, else aligned with the objective's keys), the solver's report, the test's value."""
    solver = SOLVERS[config.name]
    objective = fit.objective
    values, infos, biases = {}, {}, {}
    for tgt in targets:
        g = tgt.gradient(objective.U)
        kw = {"progress": progress} if st.full else {}
        vU, vC, info = solver(objective, g, np.unique(tgt.rows), config, fit.blocks, fit.mus[tgt.name], **kw)
        infos[tgt.name] = info
        biases[tgt.name] = tgt.value(objective.U)
        h, gw = objective.pair_values(vU, vC)
        if not st.full:
            h_dense = np.zeros(len(st.rows) * V)
            h_dense[fit.nz] = h
            h = h_dense
        values[tgt.name] = (h, gw)
        if progress and not st.full:
            progress("solving", len(values), len(targets))
    return values, infos, biases


def _second_pass(corpus: Corpus, st: _Setup, read: _FirstPass, objective, values: dict, n_docs: int,
                 progress) -> tuple[dict, dict]:
    """Every document's scores and each word's share of them, per test: from the instances the first pass kept
    (in memory, in the spill file, on the Dask workers), else by a second pass over the corpus."""
    own_count = read.client is not None or read.spill is not None or not (st.full or "instances" not in read.firsts[0])
    if progress and own_count:         # _pass_2 reports its own count
        progress("scoring documents", 0, n_docs)
    if read.client is not None:
        client, (st_f, shard_f) = read.client, read.futures
        vals_f = client.scatter(values, broadcast=True)
        keys_f = client.scatter(objective.keys if st.full else None, broadcast=True)
        seconds = client.gather(client.map(_score_shard, shard_f, read.shards, st=st_f, values=vals_f, keys=keys_f,
                                           pure=False))
    elif read.spill is not None:
        seconds = [_score_spill(read.spill, n_docs, st, values)]
    elif st.full or "instances" not in read.firsts[0]:
        seconds = [_pass_2(corpus, st, values, objective.keys if st.full else None, progress, n_docs)]
    else:
        seconds = [_score_instances(*read.firsts[0]["instances"], n_docs, st, values)]
    scores = {name: np.concatenate([sc[name] for sc, _ in seconds]) for name in values}
    word_tot = {name: sum(wt[name] for _, wt in seconds) for name in values}
    if any(len(v) != n_docs for v in scores.values()):
        raise CorpusError(f"corpus {corpus.name!r} changed between the two passes over it")
    if progress and own_count:
        progress("scoring documents", n_docs, n_docs)
    return scores, word_tot


def _predictor(model, corpus: Corpus, targets: list[BiasTarget], config: EstimatorConfig, st: _Setup, fit: _Fit,
               kept):
    """The group predictor the estimator declares for pair objectives (``kept``: the instances in memory), or
    None."""
    if "pairs" in config.group_predictions and config.solve == "blocks":
        return PairBlockPredictor(fit.objective, st.pairs, st.rows, fit.blocks,
                                  {n: config.damping * mu for n, mu in fit.mus.items()}, targets, corpus, kept,
                                  anchor=config.anchor)
    if "pairs" in config.group_predictions:        # cg, lissa: the same solve over the edited objective
        return PairSolvePredictor(model, fit.objective, st.pairs, st.rows, config, fit.blocks, fit.mus, targets,
                                  corpus)
    return None


def _stability_basis(corpus: Corpus, st: _Setup, read: _FirstPass, config: EstimatorConfig, fit: _Fit, kept,
                     scores: dict, progress) -> DocWordBasis:
    """Per-word directions (block, gradient-dot): the basis of document-word gradients stability resamples."""
    if progress:
        progress("stability basis", 0, 1)
    V, n_docs = len(st.vocab), len(next(iter(scores.values())))
    remote = (read.client, read.futures[1], read.offsets) if read.client is not None else None
    d_rows, w_rows, G = _basis_gradients(fit.objective, st.rows, V, _basis_instances(corpus, st, kept, scores, n_docs,
                                                                                    read.spill, remote))
    basis = DocWordBasis(d_rows, w_rows, G, n_docs, fit.objective.U, _word_solver(config, fit.blocks, fit.mus,
                                                                                   fit.objective),
                         candidates={name: _candidates(s) for name, s in scores.items()})
    if progress:
        progress("stability basis", 1, 1)
    return basis


def _shard_candidates(first: dict, off: int, cand: np.ndarray):
    """On a Dask worker: the kept instances of a shard's candidate documents (global document indices), or None
    where the shard kept none."""
    if "instances" not in first:
        return None
    K, X, D = first["instances"]
    m = np.isin(D + off, cand)
    return K[m], X[m], D[m] + off


def _candidates(s: np.ndarray) -> np.ndarray:
    """One test's documents whose per-word gradients stability resamples: its ``BASIS_CANDIDATES`` top documents
    each way (all of them on a corpus with fewer)."""
    return np.unique(np.r_[np.argsort(s, kind="stable")[:BASIS_CANDIDATES],
                           np.argsort(-s, kind="stable")[:BASIS_CANDIDATES]])


def _basis_instances(corpus: Corpus, st: _Setup, kept, scores: dict, n_docs: int, spill: _Spill | None = None,
                     remote=None):
    """The test-word pair instances the stability basis is built from, as chunks (K, X, D): all of them on a
    corpus where they were kept, else (or when documents with test words are many) those of the
    ``BASIS_CANDIDATES`` top documents per test and direction, from the spill file or read again."""
    cand = np.unique(np.concatenate([_candidates(s) for s in scores.values()]))
    if spill is not None:
        return (tuple(a[np.isin(D, cand)] for a in (K, X, D)) for K, X, D in spill.chunks())
    if remote is not None:        # sharded on Dask: the workers hold the instances
        client, shard_f, offsets = remote
        got = client.gather(client.map(_shard_candidates, shard_f, [int(o) for o in offsets[:-1]], cand=cand,
                                       pure=False))
        if all(g is not None for g in got):
            return [tuple(np.concatenate([g[i] for g in got]) for i in range(3))]
    if kept is not None:
        K, X, D = kept
        if len(np.unique(D)) <= len(cand):
            return [(K, X, D)]
        m = np.isin(D, cand)
        return [(K[m], X[m], D[m])]
    from .predict import selected_batches

    V = len(st.vocab)
    mask = st.test_mask
    row_pos = np.full(V, -1, dtype=np.int64)
    row_pos[st.rows] = np.arange(len(st.rows))
    out = [[], [], []]
    for off, batch in selected_batches(corpus, st.vocab, cand):
        for part in batch.parts():
            w, c, x, d = st.pairs.pairs(part, mask)
            for lst, arr in zip(out, (row_pos[w] * V + c, x, d + off)):
                lst.append(arr)
    return [tuple(np.concatenate(a) if a else np.zeros(0, t) for a, t in zip(out, (np.int64, np.float64, np.int64)))]


def _basis_gradients(objective, rows: np.ndarray, V: int, chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (document, test word)'s loss gradient from instance chunks (sums: one chunk's instances in memory at
    a time; a document spread over several chunks gets its parts added)."""
    parts = [objective.doc_word_gradients(rows[K // V], K % V, X, D) for K, X, D in chunks]
    if len(parts) == 1:
        return parts[0]
    d = np.concatenate([p[0] for p in parts])
    w = np.concatenate([p[1] for p in parts])
    key, inv = np.unique(d * V + w, return_inverse=True)
    G = np.zeros((len(key), objective.dim))
    np.add.at(G, inv, np.concatenate([p[2] for p in parts]).astype(np.float64))
    return key // V, key % V, G.astype(np.float32)


def _word_solver(config: EstimatorConfig, blocks: dict, mus: dict, objective):
    """The estimator's per-word direction for a measure gradient: (H_w + lambda_test I)^-1 g (block) or g."""
    return word_solver(config, blocks, mus, objective.dim, objective.dtype, objective.device)


