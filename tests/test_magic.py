"""Exact metagradients (``--estimator magic``) against their oracle: the finite difference of two same-seed
retrains with one document's weight at 1 +- eps, in float64, for each optimizer a family trains with (AdamW for
LMs, SGD for torch skip-gram, AdaGrad for GloVe); and the replay reproduces the saved weights bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from conftest import LM_TEMPLATES, LM_TEST, lm_planted_corpus  # noqa: E402
from biasaudit.corpus import MemoryCorpus  # noqa: E402
from biasaudit.errors import ConfigError  # noqa: E402
from biasaudit.influence import score_model  # noqa: E402
from biasaudit.influence.estimators import EstimatorConfig  # noqa: E402
from biasaudit.influence.magic import metagradients  # noqa: E402
from biasaudit.measures.lm import template_measure  # noqa: E402
from biasaudit.models.lm import LMConfig, train_lm  # noqa: E402
from biasaudit.models.lm_replay import LMReplay  # noqa: E402
from biasaudit.wordsets import BiasTest  # noqa: E402

TINY64 = LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1, epochs=3, min_steps=0,
                  batch_size=8, dtype="float64", learning_rate=1e-2, weight_decay=0.01)


def _fd(retrain, measure, n_docs: int, d: int, eps: float = 1e-7) -> float:
    """(B(w_d = 1 + eps) - B(w_d = 1 - eps)) / 2 eps over two same-seed retrains (float64: a short Adam run is
    far from linear in w at eps 1e-4, and rounding stays near 1e-9 at 1e-7)."""
    out = []
    for sign in (1, -1):
        w = np.ones(n_docs)
        w[d] += sign * eps
        out.append(measure(retrain(w)))
    return (out[0] - out[1]) / (2 * eps)


@pytest.fixture(scope="module")
def tiny_lm():
    corpus, planted = lm_planted_corpus()
    docs = list(corpus)[:48]
    corpus = MemoryCorpus(docs, "tiny")
    model = train_lm(corpus, TINY64)
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    return corpus, model, m


def test_lm_replay_is_bit_for_bit_and_adamw_metagradient_equals_finite_difference(tiny_lm):
    corpus, model, m = tiny_lm
    replay = LMReplay(model, corpus)
    values, grads, info = metagradients(replay, [m])
    assert info["replay_relative_difference"] == 0.0          # the replayed run ends on the saved weights exactly
    assert values[0] == pytest.approx(float(m.fn(model.net).detach()), abs=1e-12)
    order = np.argsort(-np.abs(grads[0]))
    for d in (int(order[0]), int(order[len(order) // 2])):    # the largest and a middling document
        fd = _fd(lambda w: train_lm(corpus, TINY64, encoder=model.encoder, doc_weights=w),
                 lambda mm: float(m.fn(mm.net).detach()), replay.n_docs, d)
        assert grads[0][d] == pytest.approx(fd, rel=1e-3), (d, grads[0][d], fd)


def test_magic_scores_follow_the_sign_convention(tiny_lm):
    corpus, model, m = tiny_lm
    res = score_model(model, corpus, [m], EstimatorConfig(name="magic"))
    _, grads, _ = metagradients(LMReplay(model, corpus), [m])
    assert np.allclose(res.delta_bias_if_removed[m.name], -grads[0])
    assert np.allclose(res.delta_bias_if_upweighted(m.name), grads[0])
    assert res.estimator.label == "magic"


def test_a_model_without_its_run_is_refused_in_one_line(tiny_lm):
    corpus, model, m = tiny_lm
    from dataclasses import replace as dc_replace
    old = dc_replace(model, meta={k: v for k, v in model.meta.items() if k != "run"})
    with pytest.raises(ConfigError, match="without the record of its training run"):
        LMReplay(old, corpus)
    foreign = dc_replace(model, config=None)
    with pytest.raises(ConfigError, match="--finetune"):
        LMReplay(foreign, corpus)
    other = MemoryCorpus(list(corpus)[:40], "other")
    with pytest.raises(ConfigError, match="cannot be replayed"):
        LMReplay(model, other)
