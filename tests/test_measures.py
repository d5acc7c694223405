"""The word-vector measures beyond WEAT (biasaudit.measures.embedding, .suite): each equals WEFE 1.0.1's value on
the same vectors and word sets (to 1e-6), and a value computed by hand on 2-dimensional vectors; invariances
(swapping targets flips the signed measures and leaves the unsigned ones); torch twins equal the float64
references and have correct gradients; one bias test drives them all; `biasaudit measure`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from biasaudit.errors import BiasAuditError, ConfigError
from biasaudit.measures import embedding as E
from biasaudit.measures.suite import ALL_MEASURES, measure_all
from biasaudit.wordsets import BiasTest, WordSet, from_wefe_query, to_wefe_query

from conftest import run_cli

try:
    from gensim.models import KeyedVectors
    from wefe.metrics import ECT, MAC, RIPA, RND, RNSB
    from wefe.query import Query
    from wefe.word_embedding_model import WordEmbeddingModel
    WEFE_MISSING = None
except ImportError as e:          # .ci/run installs wefe==1.0.1 with --no-deps (its numpy pin breaks the rest)
    WEFE_MISSING = f"WEFE 1.0.1 not importable ({e}); install: pip install --no-deps wefe==1.0.1"
try:
    from wefe.debias.hard_debias import HardDebias     # imports wefe.utils, hence plotly
    HARD_DEBIAS_MISSING = None
except ImportError as e:
    HARD_DEBIAS_MISSING = f"WEFE's HardDebias not importable ({e})"

needs_wefe = pytest.mark.skipif(WEFE_MISSING is not None, reason=WEFE_MISSING or "")
needs_hard_debias = pytest.mark.skipif(HARD_DEBIAS_MISSING is not None, reason=HARD_DEBIAS_MISSING or "")


def make_test(x, y, a, b, name="t") -> BiasTest:
    return BiasTest(name, WordSet("X", tuple(x)), WordSet("Y", tuple(y)), WordSet("A", tuple(a)),
                    WordSet("B", tuple(b)))


@pytest.fixture(scope="module")
def rand():
    """Random float64 vectors for 5 X-Y pairs, 6 A and 7 B words (unequal attribute sets on purpose)."""
    rng = np.random.default_rng(0)
    test = make_test([f"x{i}" for i in range(5)], [f"y{i}" for i in range(5)], [f"a{i}" for i in range(6)],
                     [f"b{i}" for i in range(7)])
    words = list(test.words)
    V = rng.normal(size=(len(words), 12))
    vecs = {w: V[i] for i, w in enumerate(words)}
    X, Y, A, B = (np.stack([vecs[w] for w in s.words]) for s in test.sets)
    return test, vecs, (X, Y, A, B)


@pytest.fixture(scope="module")
def wefe_model(rand):
    test, vecs, _ = rand
    kv = KeyedVectors(12, dtype=np.float64)     # float64, so WEFE computes in float64 too
    kv.add_vectors(list(vecs), np.stack(list(vecs.values())))
    return WordEmbeddingModel(kv)


# ---------------------------------------------------------------- WEFE 1.0.1 as the oracle
def wefe(metric, query, model, **kw) -> float:
    return float(metric.run_query(query, model, **kw)["result"])


@needs_wefe
def test_ripa_equals_wefe(rand, wefe_model):
    test, vecs, (X, Y, A, B) = rand
    # WEFE's RIPA is (2, 1): X-Y pairs against one attribute set; ours is A's minus B's
    ripa_a = wefe(RIPA(), to_wefe_query(test, "a"), wefe_model)
    ripa_b = wefe(RIPA(), to_wefe_query(test, "b"), wefe_model)
    assert E.ripa_scores(X, Y, A).mean() == pytest.approx(ripa_a, abs=1e-6)
    assert E.measure("ripa", vecs, test, n_bootstrap=100).effect_size == pytest.approx(ripa_a - ripa_b, abs=1e-6)


@needs_wefe
def test_rnd_equals_wefe(rand, wefe_model):
    test, vecs, (X, Y, A, B) = rand
    rnd_a = wefe(RND(), to_wefe_query(test, "a"), wefe_model)    # distance "norm", raw vectors, mean over A
    rnd_b = wefe(RND(), to_wefe_query(test, "b"), wefe_model)
    assert E.rnd_scores(X, Y, A).mean() == pytest.approx(rnd_a, abs=1e-6)
    assert E.measure("rnd", vecs, test, n_bootstrap=100).effect_size == pytest.approx(rnd_b - rnd_a, abs=1e-6)


@needs_wefe
def test_mac_equals_wefe(rand, wefe_model):
    test, vecs, _ = rand
    ours = E.measure("mac", vecs, test, n_bootstrap=100).effect_size
    assert ours == pytest.approx(wefe(MAC(), to_wefe_query(test), wefe_model), abs=1e-6)


@needs_wefe
def test_ect_equals_wefe(rand, wefe_model):
    test, vecs, _ = rand
    ours = E.measure("ect", vecs, test, n_bootstrap=100).effect_size
    assert ours == pytest.approx(wefe(ECT(), to_wefe_query(test, "union"), wefe_model), abs=1e-6)


@needs_wefe
def test_rnsb_equals_wefe(rand, wefe_model):
    """WEFE's liblinear classifier on all attribute words (holdout=False), solved to a tight tolerance (at its
    default 1e-4 liblinear stops ~1e-5 short of the optimum our Newton solve reaches)."""
    test, vecs, _ = rand
    theirs = wefe(RNSB(), to_wefe_query(test), wefe_model, holdout=False, random_state=0,
                  estimator_params={"solver": "liblinear", "max_iter": 10000, "tol": 1e-12})
    ours = E.measure("rnsb", vecs, test, n_bootstrap=100).effect_size
    assert ours == pytest.approx(theirs, abs=1e-6)


@needs_wefe
@needs_hard_debias
def test_direct_bias_equals_wefe_direction(rand, wefe_model):
    """WEFE 1.0.1 has no Direct Bias metric; its HardDebias finds Bolukbasi et al.'s direction (PCA of the centred
    unit definitional pairs): Direct Bias from that direction equals ours."""
    test, vecs, (X, Y, A, B) = rand
    hd = HardDebias(pca_args={"n_components": 1}).fit(wefe_model, definitional_pairs=[
        [x, y] for x, y in zip(test.target_x.words, test.target_y.words)])
    g = hd.bias_direction_ / np.linalg.norm(hd.bias_direction_)
    assert abs(E.bias_direction(X, Y) @ g) == pytest.approx(1.0, abs=1e-9)
    W = np.concatenate([A, B])
    theirs = np.mean(np.abs(W @ g) / np.linalg.norm(W, axis=1))
    assert E.measure("direct-bias", vecs, test, n_bootstrap=100).effect_size == pytest.approx(theirs, abs=1e-6)


@needs_wefe
def test_wefe_query_converts_both_ways(rand):
    test = rand[0]
    q = to_wefe_query(test)
    back = from_wefe_query(q, name="t")
    assert [s.words for s in back.sets] == [s.words for s in test.sets]
    assert [s.name for s in back.sets] == ["X", "Y", "A", "B"]
    with pytest.raises(ConfigError, match=r"\(2, 1\)"):
        from_wefe_query(Query([["he", "him"], ["she", "her"]], [["doctor", "nurse"]]))


def test_from_wefe_query_without_wefe():
    """The conversion reads the query's fields only: any object shaped like a WEFE Query converts."""
    class Q:
        target_sets = [["He", "man"], ["she", "woman"]]
        attribute_sets = [["career", "salary"], ["home", "family"]]
        target_sets_names = ["male", "female"]
        attribute_sets_names = ["career", "family"]
        query_name = "male and female wrt career and family"
    t = from_wefe_query(Q())
    assert t.target_x.words == ("he", "man") and t.attribute_b.name == "family"
    assert t.name == Q.query_name
    Q.attribute_sets = [["career", "he"], ["home", "family"]]
    with pytest.raises(ConfigError, match="each word may be in one set only"):
        from_wefe_query(Q())


# ---------------------------------------------------------------- hand-computed oracles (2 dimensions)
# x1=(1,0) y1=(0,1), x2=(2,1) y2=(1,2): both relation vectors are (1,-1)/sqrt(2)
# A: (3,1), (1,0)   B: (0,2), (1,1)
HX, HY = np.array([[1., 0.], [2., 1.]]), np.array([[0., 1.], [1., 2.]])
HA, HB = np.array([[3., 1.], [1., 0.]]), np.array([[0., 2.], [1., 1.]])
s2, s5, s10 = math.sqrt(2), math.sqrt(5), math.sqrt(10)


def test_ripa_by_hand():
    # r(w) = <w, (1,-1)/sqrt2>: A: 2/sqrt2, 1/sqrt2 (mean 3/(2 sqrt2)); B: -2/sqrt2, 0 (mean -1/sqrt2)
    assert E.ripa(HX, HY, HA, HB) == pytest.approx(3 / (2 * s2) + 1 / s2, abs=1e-12)


def test_direct_bias_by_hand():
    # unit pairs differ along (1,-1): g = (1,-1)/sqrt2; |cos|: (3,1): 2/sqrt20, (1,0): 1/sqrt2, (0,2): 1/sqrt2, (1,1): 0
    assert abs(E.bias_direction(HX, HY) @ np.array([1, -1]) / s2) == pytest.approx(1.0, abs=1e-12)
    assert E.direct_bias(HX, HY, np.concatenate([HA, HB])) == pytest.approx((1 / s5 + 2 / s2) / 4, abs=1e-12)
    assert E.direct_bias(HX, HY, np.concatenate([HA, HB]), c=2) == pytest.approx((1 / 5 + 1) / 4, abs=1e-12)


def test_rnd_by_hand():
    # mean X = (1.5, 0.5), mean Y = (0.5, 1.5); r(w) = ||w - mX|| - ||w - mY||
    r_a = [math.sqrt(2.5) - math.sqrt(6.5), math.sqrt(0.5) - math.sqrt(2.5)]
    r_b = [math.sqrt(4.5) - math.sqrt(0.5), 0.0]
    assert E.rnd(HX, HY, HA, HB) == pytest.approx(np.mean(r_b) - np.mean(r_a), abs=1e-12)
    assert E.rnd(HX, HY, HA, HB) > 0          # A nearer X, B nearer Y


def test_mac_by_hand():
    cos = [3 / s10, 1, 0, 1 / s2,                       # t = (1,0) with (3,1), (1,0), (0,2), (1,1)
           7 / math.sqrt(50), 2 / s5, 1 / s5, 3 / s10,  # t = (2,1)
           1 / s10, 0, 1, 1 / s2,                       # t = (0,1)
           1 / s2, 1 / s5, 2 / s5, 3 / s10]             # t = (1,2)
    assert E.mac(HX, HY, HA, HB) == pytest.approx(1 - sum(cos) / 16, abs=1e-12)


def test_ect_by_hand():
    # cos with mean X ~ (3,1): (3,1) 1, (1,0) .949, (0,2) .316, (1,1) .894 -> ranks 4 3 1 2
    # cos with mean Y ~ (1,3): (3,1) .6, (1,0) .316, (0,2) .949, (1,1) .894 -> ranks 2 1 4 3
    # Spearman: 1 - 6 * (4 + 4 + 9 + 1) / (4 * 15) = -0.8
    assert E.ect(HX, HY, np.concatenate([HA, HB])) == pytest.approx(-0.8, abs=1e-12)


def test_rnsb_by_hand():
    # A = (1, +-1), B = (-1, +-1): by symmetry the classifier is w = (w1, 0), intercept 0, where the gradient of
    # 0.5 w1^2 + sum log(1 + exp(-w1)) vanishes: w1 = 4 sigma(-w1)
    A, B = np.array([[1., 1.], [1., -1.]]), np.array([[-1., 1.], [-1., -1.]])
    lo, hi = 0.0, 4.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid < 4 / (1 + math.exp(mid)) else (lo, mid)
    w1 = lo
    np.testing.assert_allclose(E.attribute_classifier(A, B), [w1, 0, 0], atol=1e-10)
    sig = lambda z: 1 / (1 + math.exp(-z))
    # targets (1,0), (0,1) | (-1,0), (0,-1): P(B | t) = sigma(-w1), 1/2, sigma(w1), 1/2, summing to 2
    p = np.array([sig(-w1), 0.5, sig(w1), 0.5]) / 2
    X, Y = np.array([[1., 0.], [0., 1.]]), np.array([[-1., 0.], [0., -1.]])
    assert E.rnsb(X, Y, A, B) == pytest.approx(float(np.sum(p * np.log(4 * p))), abs=1e-10)
    # every target equally B-like (on the axis the classifier ignores): no bias
    assert E.rnsb(np.array([[0., 1.], [0., 2.]]), np.array([[0., -1.], [0., -3.]]), A, B) == pytest.approx(0, abs=1e-12)


# ---------------------------------------------------------------- invariances
@pytest.mark.parametrize("name", E.EMBEDDING_MEASURES)
def test_swapping_targets(rand, name):
    """Swapping X and Y negates the signed measures (RIPA, RND) and leaves the unsigned ones unchanged."""
    test, vecs, _ = rand
    a = E.measure(name, vecs, test, n_bootstrap=100)
    b = E.measure(name, vecs, test.swapped(), n_bootstrap=100)
    assert b.effect_size == pytest.approx(-a.effect_size if name in E.SIGNED else a.effect_size, abs=1e-10)
    if name in E.SIGNED:      # the one-sided p becomes its complement (no ties); paired: the same resamples
        if name in E.PAIRED:
            assert b.ci_low == pytest.approx(-a.ci_high, abs=1e-10)
        assert a.p_value + b.p_value == pytest.approx(1 + 1 / a.n_permutations, abs=1e-12)


@pytest.mark.parametrize("name", E.SIGNED)
def test_swapping_attributes_negates(rand, name):
    from dataclasses import replace
    test, vecs, _ = rand
    swapped = replace(test, attribute_a=test.attribute_b, attribute_b=test.attribute_a)
    assert (E.measure(name, vecs, swapped, n_bootstrap=100).effect_size
            == pytest.approx(-E.measure(name, vecs, test, n_bootstrap=100).effect_size, abs=1e-10))


@pytest.mark.parametrize("name,power", [("ripa", 1), ("rnd", 1), ("direct-bias", 0), ("mac", 0), ("ect", 0)])
def test_scaling_the_vectors(rand, name, power):
    """Cosine measures ignore a common scale; RIPA and RND (raw vectors, as published) scale with it."""
    test, vecs, (X, Y, A, B) = rand
    m = E.MEASURES[name]
    assert m.value(3 * X, 3 * Y, 3 * A, 3 * B) == pytest.approx(3 ** power * m.value(X, Y, A, B), rel=1e-10)


# ---------------------------------------------------------------- torch twins
@pytest.mark.parametrize("name", E.DIFFERENTIABLE)
def test_torch_twin_equals_reference(rand, name):
    _, _, sets = rand
    m = E.MEASURES[name]
    got = m.torch_fn(*(torch.tensor(s) for s in sets))
    assert float(got) == pytest.approx(m.value(*sets), abs=1e-12)


@pytest.mark.parametrize("name", E.DIFFERENTIABLE)
def test_torch_twin_gradient(rand, name):
    _, _, (X, Y, A, B) = rand
    m = E.MEASURES[name]
    sets = tuple(torch.tensor(s[:3, :4].copy(), requires_grad=True) for s in (X, Y, A, B))
    assert torch.autograd.gradcheck(m.torch_fn, sets, eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------- uncertainty and verdicts
def planted_vectors(dim=6, n=6, seed=1):
    """X and A lean along e1, Y and B against it."""
    rng = np.random.default_rng(seed)
    e1 = np.eye(dim)[0]
    test = make_test([f"x{i}" for i in range(n)], [f"y{i}" for i in range(n)], [f"a{i}" for i in range(n)],
                     [f"b{i}" for i in range(n)])
    vecs = {}
    for s, sign in zip(test.sets, (1, -1, 1, -1)):
        for w in s.words:
            vecs[w] = sign * 2 * e1 + 0.3 * rng.normal(size=dim)
    return test, vecs


def test_planted_bias_verdicts():
    test, vecs = planted_vectors()
    rows, skipped, not_run = measure_all(vecs, [test], n_bootstrap=200)
    assert not skipped and not not_run
    by = {r["measure"]: r for r in rows}
    assert list(by) == list(ALL_MEASURES)
    for name in ("weat", "ripa", "rnd"):
        r = by[name]
        assert r["effect_size"] > 0 and r["exact"] and r["p_value"] == pytest.approx(1 / math.comb(12, 6))
        assert r["significant"] and "association of X with A and Y with B" in r["verdict"], r["verdict"]
    assert "strong association" in by["weat"]["verdict"]
    for name in ("direct-bias", "mac", "ect", "rnsb"):
        assert by[name]["p_value"] is None and by[name]["significant"] is None
        assert "no significance test" in by[name]["verdict"]
        assert by[name]["ci_low"] <= by[name]["effect_size"] <= by[name]["ci_high"]
    assert by["direct-bias"]["effect_size"] > 0.9 and by["ect"]["effect_size"] < 0
    # the swapped test: the p is one-sided toward "X with A", as WEAT's is (Caliskan et al.), so the reversed
    # association reads as WEAT's does
    rows, _, _ = measure_all(vecs, [test.swapped()], measures=["weat", "ripa", "rnd"], n_bootstrap=200)
    for r in rows:
        assert r["effect_size"] < 0 and r["p_value"] == 1.0 and r["significant"] is False
        assert r["verdict"].endswith("not distinguishable from no association on these words."), r["verdict"]
    assert rows[1]["verdict"].startswith("RIPA = -")


def test_noise_is_not_significant(rand):
    test, vecs, _ = rand
    rows, _, _ = measure_all(vecs, [test], measures=["ripa", "rnd"], n_bootstrap=200)
    for r in rows:
        assert "not distinguishable from no association" in r["verdict"]


def test_seed_spread_reaches_the_verdict():
    test, vecs = planted_vectors()
    flipped = {w: (-v if w in test.target_x.words + test.target_y.words else v) for w, v in vecs.items()}
    from biasaudit.measures.suite import measure_models
    rows, _, _ = measure_models([vecs, flipped], [test], measures=["rnd"], model_seeds=[1, 2], n_bootstrap=100)
    assert [r["seed"] for r in rows] == [1, 2]
    assert all(r["seed_noise"] and "within training-seed noise" in r["verdict"] for r in rows)


def test_missing_words_break_pairs_not_tests(rand):
    """A missing X word drops its Y partner from the paired measures only; X and Y of unequal size cannot pair:
    RIPA and Direct Bias are skipped for that test with the reason, the others run."""
    test, vecs, _ = rand
    some = {w: v for w, v in vecs.items() if w != "x2"}
    rows, skipped, not_run = measure_all(some, [test], n_bootstrap=100)
    by = {r["measure"]: r for r in rows}
    assert by["ripa"]["sizes"]["pairs"] == 4 and by["ripa"]["unpaired_words"] == ["y2"]
    assert by["rnd"]["sizes"]["y"] == 5 and by["rnd"]["dropped_words"] == {"target_x": ["x2"]}
    uneven = make_test(["x0", "x1", "x2"], ["y0", "y1"], test.attribute_a.words, test.attribute_b.words, "uneven")
    rows, _, not_run = measure_all(vecs, [uneven], n_bootstrap=100)
    assert {r["measure"] for r in not_run} == {"ripa", "direct-bias"}
    assert all("pair X and Y word by word" in r["reason"] for r in not_run)
    assert {r["measure"] for r in rows} == set(ALL_MEASURES) - {"ripa", "direct-bias"}


def test_unknown_measure_names_the_choices():
    with pytest.raises(ConfigError, match="one of weat, ripa, direct-bias"):
        measure_all({}, [], measures=["ripa", "weet"])


def test_identical_pair_is_an_error_not_nan():
    with pytest.raises(BiasAuditError, match="identical vectors"):
        E.ripa(HX, HX, HA, HB)


# ---------------------------------------------------------------- the command
def test_measure_command(tmp_path):
    test, vecs = planted_vectors()
    path = tmp_path / "vecs.txt"
    path.write_text(f"{len(vecs)} 6\n" + "".join(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n"
                                                  for w, v in vecs.items()))
    tfile = tmp_path / "test.json"
    tfile.write_text(json.dumps(test.to_dict() | {"name": "planted"}))
    r = run_cli("measure", str(path), "--test", str(tfile), "--bootstrap", "100", "--json")
    assert r.returncode == 0, r
    d = json.loads(r.stdout)
    assert [m["measure"] for m in d["measures"]] == list(ALL_MEASURES) and d["skipped"] == []
    r = run_cli("measure", str(path), "--test", str(tfile), "--bootstrap", "100", "--measure", "ripa,rnsb")
    assert r.returncode == 0, r
    assert "planted / ripa: RIPA = +" in r.stdout and "planted / rnsb" in r.stdout and "weat" not in r.stdout
    r = run_cli("measure", str(path), "--test", str(tfile), "--measure", "nope")
    assert r.returncode == 1 and "unknown measure 'nope'" in r.stderr, r


# ---------------------------------------------------------------- influence targets (library level)
@pytest.mark.parametrize("name", E.DIFFERENTIABLE)
def test_measure_target_value_and_gradient(rand, name):
    """The target reads only its words' rows; its value is the float64 reference and its gradient the twin's."""
    from biasaudit.measures.targets import measure_target, resample_target
    from biasaudit.vocab import Vocab

    test, vecs, sets = rand
    words = ["pad0", *vecs, "pad1"]
    vocab = Vocab(tuple(words), np.ones(len(words), dtype=np.int64), 1)
    U = torch.tensor(np.stack([np.ones(12), *vecs.values(), np.ones(12)]))
    t = measure_target(name, test, vocab)
    assert t.kind == name and t.value(U) == pytest.approx(E.MEASURES[name].value(*sets), abs=1e-12)
    g = t.gradient(U)
    assert torch.all(g[0] == 0) and torch.all(g[-1] == 0)
    leaves = tuple(torch.tensor(s, requires_grad=True) for s in sets)
    E.MEASURES[name].torch_fn(*leaves).backward()
    rows = {w: i for i, w in enumerate(words)}
    for s, leaf in zip(test.sets, leaves):
        np.testing.assert_allclose(g[[rows[w] for w in s.words]].numpy(), leaf.grad.numpy(), atol=1e-12)
    r = resample_target(t, np.random.default_rng(0))
    assert np.isfinite(r.value(U)) and r.sets == t.sets


@pytest.mark.parametrize("name", ["ect", "rnsb"])
def test_non_differentiable_measures_are_not_targets(rand, name):
    from biasaudit.measures.targets import measure_target
    from biasaudit.vocab import Vocab

    test, vecs, _ = rand
    with pytest.raises(ConfigError, match="cannot be an influence target"):
        measure_target(name, test, Vocab(tuple(vecs), np.ones(len(vecs), dtype=np.int64), 1))
