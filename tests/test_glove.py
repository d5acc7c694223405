"""GloVe: co-occurrence counts against a brute-force loop, training, and Brunet-style influence against exact
re-solves with the context vectors fixed and a planted corpus."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from biasaudit.corpus import MemoryCorpus
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.counts import score_glove
from biasaudit.measures.targets import weat_target
from biasaudit.models.glove import GloVeConfig, GloVeModel, cooccurrence_matrix, train_glove, weighting
from biasaudit.vocab import build_vocab, tokenize
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

TEST = BiasTest.from_dict(PLANTED_TEST)
CFG = GloVeConfig(vector_size=16, window=5, min_count=2, epochs=60, batch_size=256, seed=1)


def brute_force(corpus, vocab, window):
    X = {}
    for doc in corpus:
        toks = [vocab.key_to_index[t] for t in tokenize(doc.text) if t in vocab.key_to_index]
        for p, a in enumerate(toks):
            for q in range(p + 1, min(len(toks), p + window + 1)):
                b = toks[q]
                X[(a, b)] = X.get((a, b), 0.0) + 1.0 / (q - p)
                X[(b, a)] = X.get((b, a), 0.0) + 1.0 / (q - p)
    return X


def test_cooccurrence_matches_a_brute_force_loop():
    corpus, _, _ = planted_corpus(n_background=40, n_planted=5, n_counter=2)
    corpus = MemoryCorpus(list(corpus) + [("oov", "zzz-unknown zorbel qqq algebra")], "c")
    vocab = build_vocab((tokenize(d.text) for d in corpus), 2)
    i, j, x = cooccurrence_matrix(corpus, vocab, 4, merge_every=50)   # several merges on the way
    got = {(a, b): v for a, b, v in zip(i.tolist(), j.tolist(), x.tolist())}
    want = brute_force(corpus, vocab, 4)
    assert got.keys() == want.keys()
    assert all(abs(got[k] - want[k]) < 1e-12 for k in want)
    assert list(i * len(vocab) + j) == sorted(i * len(vocab) + j)


@pytest.fixture(scope="module")
def trained():
    corpus, planted, counter = planted_corpus(mention_every=10)
    model = train_glove(corpus, CFG)
    return corpus, planted, counter, model


def test_training_fits_and_is_deterministic(trained, tmp_path):
    corpus, _, _, model = trained
    losses = model.meta["loss_per_epoch"]
    assert losses[-1] < 0.2 * losses[0] and losses[-1] <= min(losses[-5:]) + 1e-9
    again = train_glove(corpus, CFG)
    np.testing.assert_array_equal(model.W, again.W)
    model.save(tmp_path / "g")
    back = GloVeModel.load(tmp_path / "g")
    np.testing.assert_array_equal(back.vectors, model.vectors)
    assert back.config == model.config
    wc = GloVeModel(model.vocab, model.W, model.C, model.b, model.bc, GloVeConfig(**{**CFG.to_dict(), "embedding": "w+c"}))
    np.testing.assert_allclose(wc.vectors, model.W + model.C)


def exact_resolve(model, corpus, drop_id, rows):
    """Re-solve each test word's vector by weighted least squares on the counts without ``drop_id``, with the
    context vectors and biases fixed: the retraining the block estimator approximates."""
    cfg = model.config
    keep = MemoryCorpus([d for d in corpus if d.id != drop_id], "k")
    i, j, x = cooccurrence_matrix(keep, model.vocab, cfg.window)
    W = model.W.astype(np.float64).copy()
    for w in rows:
        m = i == w
        jj, xx = j[m], x[m]
        f = weighting(xx, cfg.x_max, cfg.alpha)
        A = model.C[jj].astype(np.float64)
        y = np.log(xx) - model.b[w] - model.bc[jj]
        W[w] = np.linalg.solve((A * f[:, None]).T @ A, (A * f[:, None]).T @ y)
    return W


def test_block_matches_exact_resolves_without_each_document(trained):
    """Brunet's setting: the test words' vectors at their optimum given the context vectors; the prediction for
    each document against re-solving those vectors on the counts without it (f and log X exact)."""
    from dataclasses import replace
    corpus, planted, _, model = trained
    tgt = weat_target(TEST, model.vocab)
    model = replace(model, W=exact_resolve(model, corpus, None, tgt.rows).astype(np.float32))
    r = score_glove(model, corpus, [tgt], EstimatorConfig(damping=0.0))
    base = tgt.value(torch.as_tensor(model.W, dtype=torch.float64))
    order = np.argsort(np.abs(r.delta_bias_if_removed["planted"]))[::-1][:12]
    pred = r.delta_bias_if_removed["planted"][order]
    act = np.array([tgt.value(torch.as_tensor(exact_resolve(model, corpus, r.doc_ids[k], tgt.rows))) - base
                    for k in order])
    assert spearmanr(pred, act)[0] > 0.8
    assert np.all(np.sign(pred) == np.sign(act))
    assert 0.67 < np.median(act / pred) < 1.5


def test_planted_documents_rank_first_and_upweighting_is_computed(trained):
    """A word query (does `zorbel` sit nearer math than art words?) on the planted corpus: the documents that
    plant zorbel with math fill the top of the ranking. (The WEAT effect size saturates near its ceiling on this
    tiny corpus, where every planted document adds little; the query does not.)"""
    from biasaudit.measures.targets import query_target
    corpus, planted, counter, model = trained
    tgt = query_target("zorbel", ["algebra", "calculus", "geometry"], ["poetry", "sculpture", "painting"],
                       model.vocab)
    zorbel_planted = {d.id for d in corpus if d.id in planted and "zorbel" in d.text.split()}
    r = score_glove(model, corpus, [tgt])
    s = r.delta_bias_if_removed[tgt.name]
    top = {r.doc_ids[k] for k in np.argsort(s)[:len(zorbel_planted)]}
    assert len(top & zorbel_planted) / len(zorbel_planted) >= 0.75
    g = score_glove(model, corpus, [tgt], EstimatorConfig(name="gradient-dot")).delta_bias_if_removed[tgt.name]
    top_g = {r.doc_ids[k] for k in np.argsort(g)[:len(zorbel_planted)]}
    assert len(top & zorbel_planted) > len(top_g & zorbel_planted)   # the Hessian matters here
    up = r.delta_bias_if_upweighted(tgt.name)
    nz = s != 0
    # mostly opposite signs among the documents that matter, not always: a removal can take a pair out of the
    # loss (X' = 0) while a copy only doubles it
    big = np.argsort(-np.abs(s))[:30]
    assert np.mean((up[big] > 0) == (s[big] < 0)) >= 0.75 and np.corrcoef(up[nz], -s[nz])[0, 1] > 0.6
    assert not np.allclose(up[nz], -s[nz])              # but computed from the changed counts, not negated
    for k, doc_id in enumerate(r.doc_ids):
        if k not in r.doc_words:
            assert s[k] == 0.0 and up[k] == 0.0


def test_cg_over_all_parameters_agrees_with_a_dense_solve(trained):
    """GloVe cg: the preconditioned CG solution equals a dense solve of the Gauss-Newton system over (W, W~, b,
    b~) built entry by entry, and the scores follow from it."""
    from biasaudit.influence.cg import jacobi_pcg as _pcg
    from biasaudit.models.glove import GloVeObjective
    corpus, planted, _, model = trained
    i, j, x = cooccurrence_matrix(corpus, model.vocab, model.config.window)
    obj = GloVeObjective(model, i, j, x)
    V, d = obj.V, obj.dim
    P = 2 * V * d + 2 * V
    Jm = torch.zeros(len(x), P, dtype=torch.float64)
    e = torch.arange(len(x))
    for k in range(d):
        Jm[e, torch.as_tensor(i) * d + k] = obj.C[j, k]
        Jm[e, V * d + torch.as_tensor(j) * d + k] = obj.W[i, k]
    Jm[e, 2 * V * d + torch.as_tensor(i)] = 1.0
    Jm[e, 2 * V * d + V + torch.as_tensor(j)] = 1.0
    H = 2 * (Jm * obj.f[:, None]).T @ Jm
    v = torch.randn(P, dtype=torch.float64)
    torch.testing.assert_close(obj.hvp(v), H @ v, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(obj.diagonal(), torch.diagonal(H), rtol=1e-10, atol=1e-10)
    lam = 0.5
    b = torch.randn(P, dtype=torch.float64)
    sol, info = _pcg(lambda u: obj.hvp(u) + lam * u, b, obj.diagonal() + lam, 1e-10, 5000)
    assert info["converged"]
    torch.testing.assert_close(sol, torch.linalg.solve(H + lam * torch.eye(P, dtype=torch.float64), b),
                               rtol=1e-6, atol=1e-8)
    tgt = weat_target(TEST, model.vocab)
    r = score_glove(model, corpus, [tgt], EstimatorConfig(name="cg", tol=1e-8, max_iter=2000))
    assert r.solver_info["planted"]["converged"]
    s = r.delta_bias_if_removed["planted"]
    blk = score_glove(model, corpus, [tgt]).delta_bias_if_removed["planted"]
    nz = blk != 0
    assert spearmanr(s[nz], blk[nz])[0] > 0.5   # related rankings, not equal: cg also moves W~ and biases
