"""Bounded memory on large corpora: when the first pass would keep too many test-word pair instances, scoring
takes a second pass and the stability basis keeps only the candidate documents; the results are the same."""
from __future__ import annotations

import numpy as np
import pytest

import biasaudit.influence.scorer as scorer
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.stability import stability
from biasaudit.measures.targets import weat_target
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

TEST = BiasTest.from_dict(PLANTED_TEST)


def test_two_pass_scoring_and_a_candidate_basis_give_the_one_pass_results(monkeypatch):
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1))
    targets = [weat_target(TEST, model.vocab)]
    one = scorer.score_documents(model, corpus, targets, EstimatorConfig())
    assert one.predictor.instances is not None
    monkeypatch.setattr(scorer, "MAX_INSTANCES", 50)
    monkeypatch.setattr(scorer, "BASIS_CANDIDATES", 40)
    two = scorer.score_documents(model, corpus, targets, EstimatorConfig())
    assert two.predictor.instances is None                         # nothing kept beyond the cap
    assert np.allclose(one.delta_bias_if_removed["planted"], two.delta_bias_if_removed["planted"], rtol=1e-12,
                       atol=1e-15)
    s = one.delta_bias_if_removed["planted"]
    top = np.argsort(s)[:30]
    assert one.predictor.predict([("planted", top, 0)]) == pytest.approx(two.predictor.predict([("planted", top, 0)]),
                                                                         abs=1e-10)
    assert len(np.unique(two.basis.doc)) <= 80 < len(np.unique(one.basis.doc))
    a = stability([one.basis], [targets], one.delta_bias_if_removed, 50)["planted"]
    b = stability([two.basis], [targets], two.delta_bias_if_removed, 50)["planted"]
    # the documents that matter (the top 20 both ways) keep their stability
    shown = np.r_[np.argsort(s)[:20], np.argsort(-s)[:20]]
    assert np.abs(a["stability"][shown] - b["stability"][shown]).max() <= 0.1
