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


def _enumerator(model):
    from biasaudit.models.base import family_of
    return family_of(model).objective(model)


def test_two_pass_scoring_and_a_candidate_basis_give_the_one_pass_results(monkeypatch):
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1))
    targets = [weat_target(TEST, model.vocab)]
    one = scorer.score_documents(model, corpus, targets, EstimatorConfig())
    assert one.predictor.instances is not None
    monkeypatch.setattr(scorer, "MAX_INSTANCES", 50)
    monkeypatch.setattr(scorer, "BASIS_CANDIDATES", 40)
    spills = []
    real = scorer._Spill
    monkeypatch.setattr(scorer, "_Spill", lambda: spills.append(real()) or spills[-1])
    two = scorer.score_documents(model, corpus, targets, EstimatorConfig())
    assert two.predictor.instances is None                         # nothing kept in memory beyond the cap
    assert len(spills) == 1 and spills[0].n == len(one.predictor.instances[0])
    assert not spills[0].folder.exists()                           # the spill file is gone afterwards
    # without a spill file (as on a Dask worker) the scores come from a second pass over the text
    monkeypatch.setattr(scorer, "_Spill", None)
    first = scorer._pass_1(corpus, scorer._Setup(_enumerator(model), np.unique(targets[0].rows), False, 2000),
                           keep_instances=True, spill=False)
    assert "instances" not in first and "spill" not in first
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


def test_a_shard_scores_the_same_from_kept_instances_and_from_a_second_pass():
    """A Dask worker scores its shard from the instances its first pass kept, or (over the cap) reads it again."""
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5, seed=1))
    rows = np.unique(weat_target(TEST, model.vocab).rows)
    st = scorer._Setup(_enumerator(model), rows, False, 2000)
    first = scorer._pass_1(corpus, st, keep_instances=True)
    rng = np.random.default_rng(0)
    V = len(model.vocab)
    values = {"t": (rng.normal(size=len(rows) * V), rng.normal(size=V))}
    a, wa = scorer._score_shard(first, corpus, st, values, None)
    b, wb = scorer._score_shard(scorer._without_instances(first), corpus, st, values, None)
    assert "instances" in first and np.abs(a["t"]).max() > 0
    np.testing.assert_allclose(a["t"], b["t"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wa["t"], wb["t"], rtol=1e-12, atol=1e-12)
