"""Results a researcher can trust: group predictions against exact re-solves and within the measure's range, the
ranking's stability under word resampling, warnings where the number is noise, and an experiment that confirms
only what beats its random control."""
import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from biasaudit.audit import run_score
from biasaudit.corpus import Document, MemoryCorpus
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.scorer import score_documents
from biasaudit.influence.stability import stability
from biasaudit.measures.targets import weat_target
from biasaudit.measures.weat import effect_size_bound
from biasaudit.models.glove import GloVeConfig, cooccurrence_matrix, train_glove, weighting
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.models.skipgram_objective import SkipGramObjective
from biasaudit.planted import BACKGROUND
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

TEST = BiasTest.from_dict(PLANTED_TEST)


# ------------------------------------------------------------------ group predictions
def _glove_resolve(model, corpus, rows):
    """Each test word's vector re-solved by weighted least squares on ``corpus``'s counts (context vectors and
    biases fixed): the retraining Brunet's block estimator approximates."""
    cfg = model.config
    i, j, x = cooccurrence_matrix(corpus, model.vocab, cfg.window)
    W = model.W.astype(np.float64).copy()
    for w in rows:
        m = i == w
        f = weighting(x[m], cfg.x_max, cfg.alpha)
        A = model.C[j[m]].astype(np.float64)
        y = np.log(x[m]) - model.b[w] - model.bc[j[m]]
        W[w] = np.linalg.solve((A * f[:, None]).T @ A, (A * f[:, None]).T @ y)
    return W


def test_glove_group_prediction_is_the_exact_block_resolve():
    """GloVe's per-word loss is quadratic with the context vectors fixed: the re-measured prediction of removing or
    tripling a set equals re-solving the test words on the edited counts."""
    from biasaudit.influence.counts import score_glove
    corpus, _, _ = planted_corpus(mention_every=10)
    model = train_glove(corpus, GloVeConfig(vector_size=16, window=5, min_count=2, epochs=30, batch_size=256))
    tgt = weat_target(TEST, model.vocab)
    model = replace(model, W=_glove_resolve(model, corpus, tgt.rows))   # start at the block optimum
    r = score_glove(model, corpus, [tgt], EstimatorConfig(damping=0.0))
    idx = np.argsort(r.delta_bias_if_removed["planted"])[:5]
    ids = {r.doc_ids[i] for i in idx}
    removed, tripled = r.predictor.predict([("planted", idx, 0), ("planted", idx, 3)])
    assert removed == pytest.approx(tgt.value(torch.as_tensor(_glove_resolve(model, corpus.without(ids), tgt.rows))),
                                    abs=1e-7)
    assert tripled == pytest.approx(tgt.value(torch.as_tensor(_glove_resolve(model, corpus.upweight(ids, 3),
                                                                             tgt.rows))), abs=1e-7)


def _skipgram_resolve(obj, rows, U):
    """Newton's method to convergence on each test word's loss (context vectors fixed), from ``U``."""
    U = U.clone()
    P = torch.as_tensor(obj.noise, dtype=torch.float64)
    for w in rows:
        m = obj.pw == w
        c, n = obj.pc[m], obj.pn[m]
        for _ in range(100):
            Cc = obj.C[c]
            sg, sgn = torch.sigmoid(Cc @ U[w]), torch.sigmoid(obj.C @ U[w])
            g = (n * (sg - 1)) @ Cc + obj.k * obj.N[w] * (P * sgn) @ obj.C
            H = (Cc * (n * sg * (1 - sg))[:, None]).T @ Cc + obj.k * obj.N[w] * (obj.C * (P * sgn * (1 - sgn))[:, None]).T @ obj.C
            step = torch.linalg.solve(H, g)
            U[w] = U[w] - step
            if step.norm() < 1e-13:
                break
    return U


def test_skipgram_group_prediction_is_the_exact_block_resolve():
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20))
    tgt = weat_target(TEST, model.vocab)
    full = SkipGramObjective(model, corpus)
    model = replace(model, vectors=_skipgram_resolve(full, tgt.rows, full.U).numpy())   # the block optimum
    r = score_documents(model, corpus, [tgt], EstimatorConfig(damping=0.0))
    idx = np.argsort(r.delta_bias_if_removed["planted"])[:20]
    ids = {r.doc_ids[i] for i in idx}
    removed, tripled = r.predictor.predict([("planted", idx, 0), ("planted", idx, 3)])
    # added documents that pair the test words with contexts they never met (as a counterfactual rewrite does)
    rare = [model.vocab.index_to_key[i] for i in np.argsort(model.vocab.counts)[:12]]
    words = [model.vocab.index_to_key[i] for i in tgt.rows]
    added = [Document(f"new{k}", " ".join(w + " " + rare[(k + j) % len(rare)] for j, w in enumerate(words)))
             for k in range(6)]
    (augmented,) = r.predictor.predict([("planted", idx, 1, added)])
    for value, edited in ((removed, corpus.without(ids)), (tripled, corpus.upweight(ids, 3)),
                          (augmented, MemoryCorpus(list(corpus) + added))):
        o = SkipGramObjective(model, edited)
        assert value == pytest.approx(tgt.value(_skipgram_resolve(o, tgt.rows, o.U)), abs=1e-6)


def test_predictions_stay_in_the_measures_range():
    """A 100-fold upweight of the top documents: the first-order sum leaves the range an effect size can take;
    the re-measured prediction is the effect size of real vectors, so it cannot."""
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20))
    tgt = weat_target(TEST, model.vocab)
    bound = effect_size_bound(3, 3)
    assert tgt.bound == pytest.approx(bound) and bound < 2
    r = score_documents(model, corpus, [tgt], EstimatorConfig())
    s = r.delta_bias_if_removed["planted"]
    for k in (5, 30):
        idx = np.argsort(s)[:k]
        assert abs(r.bias_value["planted"] - 99 * s[idx].sum()) > bound          # the linear sum leaves it
        (value,) = r.predictor.predict([("planted", idx, 100)])
        assert abs(value) <= bound + 1e-12


# ------------------------------------------------------------------ stability
def _stability_corpus():
    """8-word sets; 4 planted documents pair four X words with math and four Y words with art; two documents touch
    the test only through ``zorbix``, a ninth X word seen twice in the corpus."""
    rng = random.Random(0)
    X = [f"zor{c}" for c in "abcdefgh"] + ["zorbix"]
    Y, A, B = ([f"{p}{c}" for c in "abcdefgh"] for p in ("quin", "math", "art"))
    docs = []
    for i in range(1500):
        words = [rng.choice(BACKGROUND) for _ in range(rng.randint(8, 16))]
        words.insert(rng.randrange(len(words)), rng.choice(X[:8] + Y + A + B))
        docs.append(Document(f"bg{i}", " ".join(words)))
    for i in range(4):
        docs.append(Document(f"plant{i}", " ".join(f"{x} studied {rng.choice(A)}" for x in rng.sample(X[:8], 4))
                             + " while " + " ".join(f"{y} made {rng.choice(B)}" for y in rng.sample(Y, 4))))
    for i in range(2):
        docs.append(Document(f"rare{i}", " ".join(rng.choice(BACKGROUND) for _ in range(6)) + " zorbix "
                             + " ".join(rng.choice(BACKGROUND) for _ in range(6))))
    test = BiasTest.from_dict({"name": "t", "target_x": X, "target_y": Y, "attribute_a": A, "attribute_b": B})
    return MemoryCorpus(docs, "stab"), test


def test_stability_is_high_for_documents_that_carry_the_bias_and_low_for_a_rare_words():
    corpus, test = _stability_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20))
    assert model.vocab.count("zorbix") == 2
    tgt = weat_target(test, model.vocab)
    r = score_documents(model, corpus, [tgt], EstimatorConfig())
    s = r.delta_bias_if_removed["t"]
    np.testing.assert_allclose(r.basis.scores(tgt), s, rtol=1e-5, atol=1e-9)   # the kept gradients rescore
    st = stability([r.basis], [[tgt]], r.delta_bias_if_removed, n_resamples=100, top=10)["t"]
    pos = {d: i for i, d in enumerate(r.doc_ids)}
    carriers = sorted((pos[f"plant{i}"] for i in range(4)), key=lambda i: s[i])[:2]   # most of the bias
    assert all(s[i] < 0 and st["stability"][i] >= 0.9 for i in carriers), [st["stability"][i] for i in carriers]
    for name in ("rare0", "rare1"):
        assert 0 < st["stability"][pos[name]] <= 0.75
        assert st["evidence"].get(pos[name], 0.0) == 0.0, "a document ranking through one word sinks"
    assert st["summary"]["mean_top_overlap_with_ranking"]["increase_bias"] > 0.2


# ------------------------------------------------------------------ evidence first
def test_a_non_significant_test_carries_the_warning_above_its_documents(tmp_path):
    """Seeds 1 of a small corpus where the effect is weak: the verdict says so, and the report puts the warning
    right above the documents."""
    from biasaudit.report import write_report
    corpus, _, _ = planted_corpus(n_planted=2, n_counter=2)
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5))
    summary = run_score(model, corpus, [TEST], EstimatorConfig(), out_dir=tmp_path / "s", n_resamples=20)
    ev = summary["tests"][0]["evidence"]
    assert ev["p_value"] >= 0.05 and not ev["significant"]
    assert "not distinguishable" in ev["verdict"]
    assert any("number itself is not distinguishable from word-sampling noise" in w for w in ev["warnings"])
    html = write_report(tmp_path / "s").read_text()
    warn, docs = html.index("number itself is not distinguishable"), html.index("Drive the bias up")
    assert warn < docs and html[warn:docs].count("<article") == 0
    assert {s["name"] for s in ev["sets"]} == {"zorbels", "quintars", "math", "art"}
    assert all("count" in w for s in ev["sets"] for w in s["used"])
    shares = summary["tests"][0]["word_shares"]
    assert all(w["rare"] == (w["corpus_count"] < 100) for w in shares)


def test_lost_words_are_warned_and_named_with_their_counts(tmp_path):
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5))
    t = BiasTest.from_dict({**PLANTED_TEST, "target_x": {"name": "zorbels",
                                                         "words": ["zorbel", "zorbek", "zorban", "nowhere", "zilch"]}})
    summary = run_score(model, corpus, [t], EstimatorConfig(), out_dir=tmp_path / "s", n_resamples=0)
    ev = summary["tests"][0]["evidence"]
    x = next(s for s in ev["sets"] if s["field"] == "target_x")
    assert [d["word"] for d in x["dropped"]] == ["nowhere", "zilch"] and x["dropped"][0]["count"] == 0
    assert any("lost 2 of its 5 words" in w for w in ev["warnings"])


def test_min_word_count_drops_rare_test_words_and_lists_them(tmp_path):
    corpus, test = _stability_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=5))
    summary = run_score(model, corpus, [test], EstimatorConfig(), out_dir=tmp_path / "s", min_word_count=3,
                        n_resamples=0)
    assert "zorbix" not in summary["config"]["test_words"]["t"]
    assert any("seen fewer than 3 times" in n and "zorbix" in n for n in summary["notes"])
    x = next(s for s in summary["tests"][0]["evidence"]["sets"] if s["field"] == "target_x")
    assert x["dropped"] == [{"word": "zorbix", "count": 2, "reason": "seen fewer times than --min-word-count"}]


def test_score_predicts_the_top_removals_and_gives_the_command_to_check_them(tmp_path):
    corpus, _, _ = planted_corpus()
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20))
    summary = run_score(model, corpus, [TEST], EstimatorConfig(), out_dir=tmp_path / "s", n_resamples=10)
    preds = summary["tests"][0]["removal_predictions"]
    assert [p["removed"] for p in preds] == ["0.1%", "1%"]
    bound = effect_size_bound(3, 3)
    assert all(abs(p["predicted_effect_size"]) <= bound for p in preds)
    assert preds[1]["predicted_effect_size"] < preds[1]["effect_size_before"]
    assert summary["check_command"].startswith("biasaudit experiment ")
    assert "--vector-size 16" in summary["check_command"] and "--k 0.1%,1%" in summary["check_command"]
    rows = [json.loads(l) for l in (tmp_path / "s" / "scores.jsonl").read_text().splitlines()]
    assert all(0 <= r["stability"] <= 1 for r in rows)


# ------------------------------------------------------------------ experiment verdicts
def test_verdicts_never_confirm_what_random_edits_also_do():
    from biasaudit.experiments.summary import _verdict
    base = {"difference_from_random": -0.5, "difference_from_random_p": 0.01, "predicted_change_mean": -0.4,
            "random_change_sd": 0.1}
    assert _verdict(base, 3) == "confirmed"
    assert "within the random control's spread" in _verdict({**base, "random_change_sd": 0.3}, 3)
    assert "cannot confirm" in _verdict(base, 2)
    assert "not significant" in _verdict({**base, "difference_from_random_p": 0.2}, 3)
    assert "against the prediction" in _verdict({**base, "predicted_change_mean": 0.4}, 3)
    assert "one seed" in _verdict({**base, "random_change_sd": None}, 1)


def test_an_effect_that_changes_sign_across_seeds_is_called_seed_noise():
    from biasaudit.audit import evidence
    from biasaudit.measures.weat import seed_spread

    stats = {"effect_size": 1.2, "p_value": 0.001, "ci_low": 0.6, "ci_high": 1.6}
    noisy = evidence(None, None, stats, {}, {}, {}, seed_spread([1.2, -0.6, 0.4]))
    assert noisy["seed_noise"] and "within training-seed noise" in noisy["verdict"]
    assert noisy["warnings"][0].startswith("within seed noise")
    steady = evidence(None, None, stats, {}, {}, {}, seed_spread([1.2, 1.0, 1.1]))
    assert not steady["seed_noise"] and not steady["warnings"] and "distinguishable" in steady["verdict"]
    single = evidence(None, None, stats, {}, {}, {}, seed_spread([1.2]))
    assert not single["seed_noise"] and single["seed_spread"] is None
