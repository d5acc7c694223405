"""WEAT statistics against hand-computed values, the float64 reference, gradcheck and invariances."""
import math

import numpy as np
import pytest
import torch

from biasaudit.errors import VocabularyError
from biasaudit.measures.weat import (associations, bootstrap_effect_sizes, effect_size, permutation_p_value, weat,
                               weat_effect_size_torch)
from biasaudit.wordsets import BiasTest, WordSet

R3 = math.sqrt(3) / 2


def unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# X at 0 and 60 degrees, Y at 90 and 30; A at 0, B at 90 (each duplicated with a scaled copy: same direction)
VEC = {"x1": unit(0), "x2": unit(60), "y1": unit(90), "y2": unit(30),
       "a1": unit(0), "a2": [2 * v for v in unit(0)], "b1": unit(90), "b2": [3 * v for v in unit(90)]}
TEST = BiasTest("hand", WordSet("X", ("x1", "x2")), WordSet("Y", ("y1", "y2")),
                WordSet("A", ("a1", "a2")), WordSet("B", ("b1", "b2")))


def test_hand_computed_values():
    # s(x1) = 1 - 0, s(x2) = 0.5 - sqrt3/2, s(y1) = 0 - 1, s(y2) = sqrt3/2 - 0.5
    s = np.array([1.0, 0.5 - R3, -1.0, R3 - 0.5])
    r = weat({k: np.array(v) for k, v in VEC.items()}, TEST)
    assert r.statistic == pytest.approx((1 + 0.5 - R3) - (-1 + R3 - 0.5), abs=1e-12)
    sd = np.std(s, ddof=1)  # sample std over X u Y
    assert r.effect_size == pytest.approx(((1 + 0.5 - R3) / 2 - (-1 + R3 - 0.5) / 2) / sd, abs=1e-12)
    # 6 partitions of 4 words into 2+2: statistics 2*sum(Xi) - 0; observed 2*(1.5 - R3) = 1.268;
    # only {x1, y2} (2.732) and the observed one reach it -> p = 2/6
    assert r.exact and r.n_permutations == 6
    assert r.p_value == pytest.approx(2 / 6)


def test_torch_matches_float64_reference():
    rng = np.random.default_rng(0)
    X, Y, A, B = (rng.normal(size=(n, 7)) for n in (5, 6, 4, 3))
    sx, sy = associations(X, A, B), associations(Y, A, B)
    ref = effect_size(sx, sy)
    got = weat_effect_size_torch(*(torch.tensor(m) for m in (X, Y, A, B))).item()
    assert got == pytest.approx(ref, abs=1e-12)


def test_gradcheck_of_effect_size():
    rng = np.random.default_rng(1)
    mats = [torch.tensor(rng.normal(size=(n, 4)), dtype=torch.float64, requires_grad=True) for n in (3, 3, 2, 2)]
    assert torch.autograd.gradcheck(weat_effect_size_torch, mats)


def test_swap_negates_and_scaling_changes_nothing():
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(16)]
    vec = {w: rng.normal(size=10) for w in words}
    t = BiasTest("r", WordSet("X", tuple(words[:4])), WordSet("Y", tuple(words[4:8])),
                 WordSet("A", tuple(words[8:12])), WordSet("B", tuple(words[12:])))
    r = weat(vec, t)
    assert weat(vec, t.swapped()).effect_size == pytest.approx(-r.effect_size, abs=1e-12)
    scaled = {w: v * rng.uniform(0.1, 10) for w, v in vec.items()}
    assert weat(scaled, t).effect_size == pytest.approx(r.effect_size, abs=1e-12)
    assert weat(scaled, t).p_value == pytest.approx(r.p_value, abs=1e-12)


def test_exact_and_monte_carlo_p_values_agree():
    rng = np.random.default_rng(3)
    s = rng.normal(size=16) + np.r_[np.full(8, 0.4), np.zeros(8)]
    p_exact, exact, n, se = permutation_p_value(s, 8)
    assert exact and n == math.comb(16, 8) and se == 0
    p_mc, exact_mc, n_mc, se_mc = permutation_p_value(s, 8, n_samples=40_000, seed=1, exact_limit=10)
    assert not exact_mc and n_mc == 40_000 and se_mc > 0
    assert abs(p_mc - p_exact) < 4 * se_mc + 1e-4


def test_unequal_sets_are_not_truncated():
    rng = np.random.default_rng(4)
    vec = {f"w{i}": rng.normal(size=5) for i in range(12)}
    t = BiasTest("u", WordSet("X", ("w0", "w1", "w2", "w3", "w4")), WordSet("Y", ("w5", "w6")),
                 WordSet("A", ("w7", "w8", "w9")), WordSet("B", ("w10", "w11")))
    r = weat(vec, t)
    assert r.sizes == {"x": 5, "y": 2, "a": 3, "b": 2}
    assert r.n_permutations == math.comb(7, 5)
    X = np.stack([vec[w] for w in t.target_x.words])
    Y = np.stack([vec[w] for w in t.target_y.words])
    A = np.stack([vec[w] for w in t.attribute_a.words])
    B = np.stack([vec[w] for w in t.attribute_b.words])
    assert r.effect_size == pytest.approx(effect_size(associations(X, A, B), associations(Y, A, B)))


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(5)
    X, Y, A, B = (rng.normal(size=(8, 6)) + d for d in (0.5, -0.5, 0.5, -0.5))
    b1 = bootstrap_effect_sizes(X, Y, A, B, 500, seed=3)
    b2 = bootstrap_effect_sizes(X, Y, A, B, 500, seed=3)
    np.testing.assert_array_equal(b1, b2)
    es = effect_size(associations(X, A, B), associations(Y, A, B))
    lo, hi = np.quantile(b1, [0.025, 0.975])
    assert lo < es < hi


def test_oov_words_are_named_or_dropped():
    vec = {k: np.array(v) for k, v in VEC.items()}
    t = BiasTest("oov", WordSet("X", ("x1", "x2", "nope")), WordSet("Y", ("y1", "y2")),
                 WordSet("A", ("a1", "a2")), WordSet("B", ("b1", "b2", "gone")))
    with pytest.raises(VocabularyError) as e:
        weat(vec, t)
    assert "nope" in str(e.value) and "gone" in str(e.value) and "target_x" in str(e.value)
    r = weat(vec, t, allow_oov=True)
    assert r.dropped_words == {"target_x": ["nope"], "attribute_b": ["gone"]}
    assert r.effect_size == pytest.approx(weat(vec, TEST).effect_size)
    t2 = BiasTest("oov2", WordSet("X", ("x1", "zz", "qq")), WordSet("Y", ("y1", "y2")),
                  WordSet("A", ("a1", "a2")), WordSet("B", ("b1", "b2")))
    with pytest.raises(VocabularyError, match="at least 2"):
        weat(vec, t2, allow_oov=True)
