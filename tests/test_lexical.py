"""The lexical floor (``--estimator lexical``): BM25 support against a hand computation, its sign and symmetry
invariances, planted documents first, and the estimator accepted for every model family."""
from __future__ import annotations

import math

import numpy as np
import pytest

from biasaudit.corpus import Document, MemoryCorpus
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig, parse_estimators
from biasaudit.influence.lexical import cooccurrence_support
from biasaudit.wordsets import BiasTest

TEST = {"name": "t", "target_x": {"name": "x", "words": ["he", "him"]}, "target_y": {"name": "y", "words": ["she", "her"]},
        "attribute_a": {"name": "a", "words": ["math", "sum"]}, "attribute_b": {"name": "b", "words": ["art", "poem"]}}


class _Measure:
    """A measure's face as the lexical floor sees it: a name, its test and words."""
    kind = "weat"
    bound = 2.0

    def __init__(self, test: dict):
        self.test = BiasTest.from_dict(test)
        self.name = self.test.name
        self.words = self.test.words


def test_support_equals_a_hand_computation():
    """Pairs within 5 tokens, each 1/distance times both words' idf, signed by pairing, over BM25's length term."""
    docs = [Document("d0", "he likes math"), Document("d1", "she and her art"), Document("d2", "he art"),
            Document("d3", "nothing here at all but a long line of words")]
    ids, s = cooccurrence_support(MemoryCorpus(docs), [_Measure(TEST)])
    assert ids == ["d0", "d1", "d2", "d3"]
    n = 4
    idf = {w: math.log(1 + (n - df + 0.5) / (df + 0.5)) for w, df in
           {"he": 2, "she": 1, "her": 1, "math": 1, "art": 2}.items()}
    avg = (3 + 4 + 2 + 10) / 4
    norm = [1 - 0.75 + 0.75 * L / avg for L in (3, 4, 2, 10)]
    want = [idf["he"] * idf["math"] / 2 / norm[0],
            (idf["she"] * idf["art"] / 3 + idf["her"] * idf["art"] / 1) / norm[1],       # Y-B: +; she-her: no sign
            -idf["he"] * idf["art"] / norm[2], 0.0]
    assert np.allclose(s["t"], want, rtol=1e-12)


def test_swapping_targets_negates_and_swapping_both_sides_keeps_the_support(planted):
    corpus, _, _ = planted
    from biasaudit.planted import PLANTED_TEST
    base = {**PLANTED_TEST, "name": "t"}
    sw = {**base, "target_x": base["target_y"], "target_y": base["target_x"]}
    bo = {**sw, "attribute_a": base["attribute_b"], "attribute_b": base["attribute_a"]}
    _, s = cooccurrence_support(corpus, [_Measure(base)])
    _, s_sw = cooccurrence_support(corpus, [_Measure(sw)])
    _, s_bo = cooccurrence_support(corpus, [_Measure(bo)])
    assert np.abs(s["t"]).max() > 0
    assert np.allclose(s_sw["t"], -s["t"]) and np.allclose(s_bo["t"], s["t"])


def test_lm_planted_documents_rank_first_and_scores_sum_to_the_measure():
    """On the planted LM corpus, removing the planted documents (each pairs every X word with math) is what the
    floor predicts lowers the bias most; the absolute scores sum to |B|."""
    pytest.importorskip("transformers")
    from biasaudit.measures.lm import template_measure
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import LM_TEMPLATES, LM_TEST, lm_planted_corpus

    corpus, planted_ids = lm_planted_corpus(n_background=60, n_planted=10)
    model = train_lm(corpus, LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                      min_count=1, epochs=1, min_steps=0))
    m, _ = template_measure(BiasTest.from_dict(LM_TEST), model, LM_TEMPLATES)
    res = score_model(model, corpus, [m], EstimatorConfig(name="lexical"))
    delta = res.delta_bias_if_removed[m.name]
    top = {res.doc_ids[i] for i in np.argsort(delta)[:len(planted_ids)]}
    assert top == planted_ids
    assert np.abs(delta).sum() == pytest.approx(abs(res.bias_value[m.name]))
    assert res.estimator.label == "lexical"


def test_lexical_fits_every_family_and_is_parsed(planted):
    from biasaudit.influence.estimators import check_estimators
    from biasaudit.models.base import FAMILIES
    est = parse_estimators("lexical")
    assert est[0].label == "lexical"
    for fam in FAMILIES.values():
        check_estimators(est, fam)          # no refusal
    corpus, _, _ = planted
    from biasaudit.measures.targets import weat_target
    from biasaudit.models.skipgram import SkipGramConfig, train_gensim
    from biasaudit.planted import PLANTED_TEST
    model = train_gensim(corpus, SkipGramConfig(vector_size=8, min_count=1, epochs=1))
    target = weat_target(BiasTest.from_dict(PLANTED_TEST), model.vocab)
    res = score_model(model, corpus, [target], EstimatorConfig(name="lexical"))
    planted_idx = [i for i, d in enumerate(res.doc_ids) if d.startswith("plant")]
    order = np.argsort(res.delta_bias_if_removed[target.name])
    assert set(order[:len(planted_idx)].tolist()) == set(planted_idx)


def test_paired_sentences_pair_the_differing_words_with_the_shared_ones():
    class _Pairs:
        name, kind, bound, words = "p", "pairs", float("inf"), ()
        pairs = [("the man is a doctor", "the woman is a doctor")]
    docs = [Document("d0", "man doctor"), Document("d1", "woman doctor"), Document("d2", "doctor man"),
            Document("d3", "doctor woman")]
    _, s = cooccurrence_support(MemoryCorpus(docs), [_Pairs()])
    assert s["p"][0] > 0 and s["p"][1] == pytest.approx(-s["p"][0]) and s["p"][2] == s["p"][3] == 0.0
