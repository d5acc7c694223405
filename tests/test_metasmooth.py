"""Metasmoothness (Def. 2 of arXiv 2503.13751): 1 for a response linear in the document weights, near 0 for one
whose finite differences flip sign, unchanged by scaling; the smooth LM recipe scores near 1."""
from __future__ import annotations

import numpy as np
import pytest

from biasaudit.influence.metasmooth import metasmoothness, metasmoothness_score


def test_a_linear_response_scores_one_and_scaling_changes_nothing():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((50, 20))
    res = metasmoothness(lambda w: A @ w, lambda th: th, 20, {"sum": lambda th: float(th.sum())}, h=0.1)
    assert res["metasmoothness"] == pytest.approx(1.0) and res["trainings"] == 5 and res["smooth"]
    assert all(r["measures"]["sum"]["difference_ratio"] == pytest.approx(1.0) for r in res["directions"])
    res10 = metasmoothness(lambda w: 10 * A @ w + 3, lambda th: th, 20, h=0.1)
    assert res10["scores"] == pytest.approx(res["scores"])


def test_a_chaotic_response_scores_near_zero():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((400, 20))
    res = metasmoothness(lambda w: np.sin(1e4 * (A @ w)), lambda th: th, 20, h=0.1)
    assert abs(res["metasmoothness"]) < 0.3 and not res["smooth"]


def test_score_by_hand():
    t0, th, t2 = np.zeros(3), np.array([1.0, -1.0, 1.0]), np.array([2.0, 1.0, 0.5])
    # weights |t2 - t0| = (2, 1, 0.5)/3.5; signs (t_h - t_0) = (+, -, +), (t_2h - t_h) = (+, +, -)
    assert metasmoothness_score(t0, th, t2) == pytest.approx((2 - 1 - 0.5) / 3.5)


def test_the_smooth_lm_recipe_is_metasmooth():
    pytest.importorskip("transformers")
    from biasaudit.corpus import MemoryCorpus
    from biasaudit.influence.metasmooth import lm_metasmoothness
    from biasaudit.measures.lm import template_measure
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus
    from biasaudit.wordsets import BiasTest

    corpus, _ = lm_planted_corpus()
    corpus = MemoryCorpus(list(corpus)[:48], "tiny")
    cfg = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=2,
                   min_steps=0, batch_size=16, dtype="float64", learning_rate=1e-2, eps_root=1e-6, dropout=0)
    model = train_lm(corpus, cfg)
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    res = lm_metasmoothness(model, corpus, [m])
    assert res["metasmoothness"] >= 0.95, res["scores"]
    # the switch is epsilon inside the root: torch's AdamW (eps outside) on the same run is far from smooth
    from dataclasses import replace
    rough = lm_metasmoothness(train_lm(corpus, replace(cfg, eps_root=0.0)), corpus)
    assert rough["metasmoothness"] < 0.7, rough["scores"]
