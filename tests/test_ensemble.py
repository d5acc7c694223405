"""Seed ensembles (``--ensemble N``) and the LDS verdict (``experiment --lds N``): the ensemble's scores are the
mean of its seeds' scores (oracle: each seed scored alone), sign agreement counts the seeds, group predictions stay
in the measure's range, and an experiment reports same-seed and cross-seed LDS with CIs in one leaderboard."""
from __future__ import annotations

import json

import numpy as np
import pytest

from biasaudit.audit import run_score
from biasaudit.experiments import ExperimentSpec, run_experiment
from biasaudit.experiments.summary import spearman_ci
from biasaudit.influence import score_model
from biasaudit.influence.ensemble import LinearPredictor, ensemble_result
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.targets import weat_target
from biasaudit.models.base import train_or_load
from biasaudit.models.skipgram import SkipGramConfig
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

CFG = SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1)
TEST = BiasTest.from_dict(PLANTED_TEST)


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    corpus, planted, _ = planted_corpus()
    cache = tmp_path_factory.mktemp("cache")
    from dataclasses import replace
    models = [train_or_load(corpus, replace(CFG, seed=s), cache=cache)[0] for s in (1, 2, 3)]
    return corpus, planted, models


def test_ensemble_scores_are_the_mean_of_each_seeds_scores(three_seeds, tmp_path):
    corpus, _, models = three_seeds
    run = run_score(models[0], corpus, [TEST], EstimatorConfig(), out_dir=tmp_path / "s", seed_models=tuple(models[1:]),
                    n_resamples=0, ensemble=3)
    singles = [score_model(m, corpus, [weat_target(TEST, m.vocab)], EstimatorConfig()) for m in models]
    name = TEST.name
    want = np.mean([r.delta_bias_if_removed[name] for r in singles], axis=0)
    rows = [json.loads(l) for l in (tmp_path / "s" / "scores.jsonl").read_text().splitlines()]
    got = {r["doc_id"]: r for r in rows if r["test"] == name}
    ids = singles[0].doc_ids
    for i in np.flatnonzero(want)[:200]:
        assert got[ids[i]]["delta_bias_if_removed"] == pytest.approx(want[i], rel=1e-9, abs=1e-15)
        signs = [np.sign(r.delta_bias_if_removed[name][i]) for r in singles]
        assert got[ids[i]]["sign_agreement"] == pytest.approx(np.mean([s == np.sign(want[i]) for s in signs]), abs=1e-4)
    t = run.summary["tests"][0]
    assert t["ensemble"]["seeds"] == [1, 2, 3]
    assert 1 / 3 <= t["ensemble"]["mean_sign_agreement"] <= 1
    stack = np.stack([r.delta_bias_if_removed[name] for r in singles])
    from biasaudit.influence.ensemble import seed_reliability
    assert t["ensemble"]["seed_reliability"] == pytest.approx(seed_reliability(stack))
    assert 0 <= t["ensemble"]["seed_reliability"] <= 1
    assert "--ensemble 3 --fresh-seeds" in run.summary["check_command"]      # the check ranks the same way
    from biasaudit.report import write_report
    page = write_report(tmp_path / "s").read_text()
    assert f"the scores' overall: {t['ensemble']['seed_reliability']:.2f}" in page     # beside its predictions
    # predictions of the removal of the top documents: the linear sum, inside the measure's range, each shrunk by
    # its own set's reliability (three seeds: leave one out), which the page shows beside it
    from biasaudit.influence.ensemble import group_reliability
    for p in t["removal_predictions"]:
        assert abs(p["predicted_effect_size"]) <= weat_target(TEST, models[0].vocab).bound
        mean = stack.mean(0)
        top = np.argsort(mean, kind="stable")[:p["n_docs"]]
        assert p["shrunk_by"] == pytest.approx(group_reliability(stack, top))
        assert f"by this set's seed reliability, {p['shrunk_by']:.2f}" in page


def test_linear_predictions_never_leave_the_measures_range(three_seeds):
    corpus, _, models = three_seeds
    target = weat_target(TEST, models[0].vocab)
    r = score_model(models[0], corpus, [target], EstimatorConfig())
    res, agreement = ensemble_result([r], [1], {target.name: target.bound})
    assert np.all(agreement[target.name][r.delta_bias_if_removed[target.name] != 0] == 1.0)
    pred = LinearPredictor(res, {target.name: target.bound})
    worst = np.argsort(r.delta_bias_if_removed[target.name])[:50]
    (removed, upweighted) = pred.predict([(target.name, worst, 0), (target.name, worst, 100)])
    assert -target.bound <= removed <= target.bound and -target.bound <= upweighted <= target.bound
    assert removed == pytest.approx(np.clip(r.bias_value[target.name]
                                            + r.delta_bias_if_removed[target.name][worst].sum(),
                                            -target.bound, target.bound))


def test_spearman_ci_brackets_rho_and_refuses_too_few_subsets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    rho, lo, hi = spearman_ci(x, x + 0.5 * rng.normal(size=40))
    assert lo <= rho <= hi and rho > 0.6
    assert spearman_ci([1, 2], [2, 1]) == (None, None, None)
    assert spearman_ci([1, 1, 1], [1, 2, 3]) == (None, None, None)


def test_experiment_with_ensemble_fresh_seeds_and_lds(tmp_path):
    corpus, _, _ = planted_corpus()
    spec = ExperimentSpec(corpus=corpus, model=CFG, tests=[TEST], heldout={}, estimators=[EstimatorConfig()],
                          ks="20", seeds=2, conditions=("baseline", "remove-top", "remove-random"), quality=False,
                          ensemble=2, fresh_seeds=True, lds=5, lds_fraction=0.1)
    assert spec.ranking_seeds == [1, 2] and spec.seed_list == [3, 4]
    assert spec.lds_seeds == {"same-seed": 1, "cross-seed": 3}
    s = run_experiment(spec, tmp_path / "exp", cache=tmp_path / "cache")
    assert s["seeds"] == [3, 4]                       # retrained on seeds the ranking did not use
    kinds = {d["kind"]: d for d in s["lds"]}
    assert set(kinds) == {"same-seed", "cross-seed"}
    for d in kinds.values():
        assert d["n_subsets"] == 5 and d["fraction_removed"] == 0.1
        if d["spearman"] is not None:
            assert d["ci95"][0] <= d["spearman"] <= d["ci95"][1]
    row, floor = s["leaderboard"]
    assert row["estimator"] == "block:damping=0.1" and "lds_same_seed" in row and "lds_cross_seed" in row
    # the lexical floor beside it, on the same subsets (no retraining of its own: LDS only)
    assert floor["estimator"] == "lexical (floor)" and "lds_same_seed" in floor and "top_vs_random" not in floor
    assert {d["kind"]: d["n_subsets"] for d in s["lds"] if d["estimator"] == "lexical (floor)"} == {
        "same-seed": 5, "cross-seed": 5}
    assert "lexical (floor)" not in s["estimators"]
    assert row["top_vs_random"] < 0                    # the planted bias: the ensemble's top 20 lower d
    assert row["cost_in_trainings"] is not None and row["cost_in_trainings"] > 0
    runs = {p.name for p in (tmp_path / "exp" / "runs").iterdir()}
    assert "baseline-s1.json" in runs and "baseline-s3.json" in runs      # the LDS seeds' baselines
    lam = s["solver_info"]["block:damping=0.1"][TEST.name]["seed_reliability"]
    from biasaudit.report import write_report
    assert f"seed reliability (block:damping=0.1 / {TEST.name} {lam:.2f})" in write_report(tmp_path / "exp").read_text()
    # cost counts trainings as the models' recorded training times, also where the cache supplied the baselines
    # (a second experiment read them from the cache in a fraction of their training time: cost had been 10-fold)
    again = run_experiment(spec, tmp_path / "exp2", cache=tmp_path / "cache")
    def recorded(folder):
        return {p.name: json.loads(p.read_text())["train_seconds"] for p in (folder / "runs").glob("baseline-*")}
    assert recorded(tmp_path / "exp2") == recorded(tmp_path / "exp") and all(
        t > 0 for t in recorded(tmp_path / "exp").values())
    assert again["leaderboard"][0]["cost_in_trainings"] == pytest.approx(
        again["scoring_seconds"]["block:damping=0.1"] / np.mean(list(recorded(tmp_path / "exp2").values())),
        abs=0.006)                                                  # the leaderboard rounds it to 2 decimals


def test_masked_retrains_are_the_same_run_and_magic_predicts_them(tmp_path):
    """--mode masked: a removal is the baseline's run with the documents' weights at 0 (bergson's same-seed
    protocol). The metagradient is the derivative of exactly that run, so its same-seed LDS is high; a fresh
    retrain on the edited corpus reshuffles everything, and 1% removals drown in that noise."""
    from biasaudit.models.glove import GloVeConfig, train_glove
    corpus, _, _ = planted_corpus()
    cfg = GloVeConfig(vector_size=8, window=3, min_count=2, epochs=10, seed=1)
    spec = ExperimentSpec(corpus=corpus, model=cfg, tests=[TEST], heldout={}, ks="5", seeds=1,
                          estimators=[EstimatorConfig(name="magic")], conditions=("baseline", "remove-top"),
                          quality=False, mode="masked", lds=12, lds_fraction=0.01)
    s = run_experiment(spec, tmp_path / "exp", cache=tmp_path / "cache")
    same = next(d for d in s["lds"] if d["kind"] == "same-seed")
    assert same["spearman"] > 0.5, s["lds"]
    # the oracle: a masked removal is train_glove on the full corpus with those documents weighed 0
    rec = json.loads(next((tmp_path / "exp" / "runs").glob("remove-*-s1.json")).read_text())
    scores = json.loads((tmp_path / "exp" / "scores.json").read_text())
    top = np.argsort(scores["scores"]["magic"][TEST.name])[:5]
    w = np.ones(len(scores["doc_ids"]))
    w[top] = 0.0
    m = train_glove(corpus, cfg, doc_weights=w)
    from biasaudit.models.base import family_of
    eff = family_of(m).evaluate(m, [TEST], {}, quality=False)["effects"][TEST.name]
    top_run = [r for r in (tmp_path / "exp" / "runs").glob("remove-*-s1.json")
               if json.loads(r.read_text())["n_docs"] == 5]
    assert any(json.loads(r.read_text())["effects"][TEST.name] == pytest.approx(eff, abs=1e-9) for r in top_run)
    assert rec["mode"] == "masked"


def _synthetic(stack: np.ndarray) -> list:
    """One DocumentScores per seed row of ``stack`` (scores of a measure 'm' with bias value 0)."""
    from biasaudit.influence.result import DocumentScores
    ids = [f"d{i}" for i in range(stack.shape[1])]
    return [DocumentScores(ids, {"m": row}, {"m": 0.0}, {"m": {}}, {}, EstimatorConfig(), {"m": {}}) for row in stack]


def test_seed_reliability_is_the_hand_computed_lambda_and_shrinks_sums_toward_the_mean():
    """Hand computation: scores [[1, 3], [3, 5]] (2 seeds, 2 documents): means [2, 4], their variance 2, each
    document's variance across seeds 2, so sigma^2 / N = 1 and lambda = (2 - 1) / 2 = 0.5; document 1's shrunk
    score 0.5 * 4 + 0.5 * 3 = 3.5. One seed: no lambda, the plain sum."""
    from biasaudit.influence.ensemble import seed_reliability, shrunk_sum
    stack = np.array([[1.0, 3.0], [3.0, 5.0]])
    assert seed_reliability(stack) == pytest.approx(0.5)
    assert shrunk_sum(stack.mean(0), np.array([1]), 0.5) == pytest.approx(3.5)
    assert seed_reliability(stack[:1]) is None and seed_reliability(np.ones((3, 4))) is None
    res, _ = ensemble_result(_synthetic(stack), [1, 2], {"m": 10.0})
    assert res.solver_info["m"]["seed_reliability"] == pytest.approx(0.5)
    assert res.predictor.predict([("m", [1], 0)]) == [pytest.approx(3.5)]
    assert res.delta_bias_if_removed["m"] == pytest.approx([2.0, 4.0])      # the scores written: unshrunk
    one, _ = ensemble_result(_synthetic(stack[:1]), [1], {"m": 10.0})
    assert one.predictor.predict([("m", [1], 0)]) == [pytest.approx(3.0)]


def test_shrunk_ensemble_predictions_match_a_fresh_seeds_effect_where_the_plain_sum_overstates_it():
    """Oracle by simulation: each document's effect at a seed = its expected effect (spread tau) + the seed's own
    response (spread sigma = 2 tau, independent across seeds). Ranking by the mean of 3 seeds and predicting the
    top 400's removal (of 20,000), the plain sum overstates a fresh seed's change (selection on the seeds' own noise); the
    shrunk prediction matches the expected change within 10%, and lambda matches tau^2 / (tau^2 + sigma^2 / 3)."""
    rng = np.random.default_rng(0)
    n, tau, sigma = 20000, 1.0, 2.0
    mu = rng.normal(0.0, tau, n)
    stack = mu + rng.normal(0.0, sigma, (3, n))
    res, _ = ensemble_result(_synthetic(stack), [1, 2, 3], {"m": 1e9})
    lam = res.solver_info["m"]["seed_reliability"]
    assert lam == pytest.approx(tau ** 2 / (tau ** 2 + sigma ** 2 / 3), abs=0.03)
    top = np.argsort(stack.mean(0))[:400]
    fresh = mu[top].sum()                                      # a fresh seed's expected change
    plain = stack.mean(0)[top].sum()
    shrunk = res.predictor.predict([("m", top, 0)])[0]
    assert plain / fresh > 1.5
    assert shrunk / fresh == pytest.approx(1.0, abs=0.1)


def test_an_experiment_shrinks_the_sets_its_ranking_chose_and_sums_the_others_plainly():
    """Oracle: the predictions of ``experiments.run._predict``: on fresh seeds a remove-top row gets the shrunk sum
    (lambda 0.5 of the hand-computed stack above), a remove-random or remove-ids row the plain sum, in the rows'
    order; on the ensemble's own seeds every row the plain sum."""
    from types import SimpleNamespace

    from biasaudit.experiments.run import _predict
    stack = np.array([[1.0, 3.0], [3.0, 5.0]])
    res, _ = ensemble_result(_synthetic(stack), [1, 2], {"m": 10.0})
    rows = [SimpleNamespace(condition=c) for c in ("remove-ids", "remove-top", "remove-random")]
    reqs = [("m", np.array([1]), 0)] * 3
    assert _predict(res.predictor, rows, reqs) == [pytest.approx(4.0), pytest.approx(3.5), pytest.approx(4.0)]
    # retrained on the ensemble's own seeds (no --fresh-seeds): each seed repeats its own response, plain sums
    assert _predict(res.predictor, rows, reqs, fresh=False) == [pytest.approx(4.0)] * 3


def test_a_sets_own_shrinkage_leaves_one_seed_out_and_steps_up_to_the_ensemble():
    """Hand computation: 3 seeds x 4 documents (each seed's mean score 0), the top 1 (lowest mean) is document 0.
    Leaving seed 0 out the others' means are [-1.75, -1, 1, 1.75]: they choose document 0, where seed 0 scores -2
    against their -1.75; leaving seed 1 out they choose document 1 (0 against -1); leaving seed 2 out document 0
    (+0.5 against -3). lambda' = 1.5 / 5.75 = 6/23, and for 3 seeds 1/lambda - 1 = (2/3)(23/6 - 1): lambda = 9/26.
    A set that is no end of the ranking, or two seeds, has no lambda of its own: every document's is used."""
    from biasaudit.influence.ensemble import group_reliability, ranking_end
    stack = np.array([[-2.0, 0.0, 0.0, 2.0], [-4.0, 0.0, 2.0, 2.0], [0.5, -2.0, 0.0, 1.5]])
    assert ranking_end(stack.mean(0), np.array([0])) == "low" and ranking_end(stack.mean(0), [3]) == "high"
    assert group_reliability(stack, np.array([0])) == pytest.approx(9 / 26)
    assert group_reliability(stack, np.array([1])) is None and group_reliability(stack[:2], np.array([0])) is None
    res, _ = ensemble_result(_synthetic(stack), [1, 2, 3], {"m": 10.0})
    mean = stack.mean(0)
    assert res.predictor.predict([("m", [0], 0)]) == [pytest.approx(9 / 26 * mean[0])]   # toward the mean, 0
    lam = res.solver_info["m"]["seed_reliability"]
    assert res.predictor.predict([("m", [1], 0)]) == [pytest.approx(lam * mean[1])]
    assert res.predictor.shrinkage("m", [0])[0] == pytest.approx(9 / 26)              # what each was shrunk by
    assert res.predictor.shrinkage("m", [1])[0] == pytest.approx(lam)


def test_a_planted_sets_prediction_is_shrunk_by_its_own_reliability_where_one_lambda_over_shrinks_it():
    """Oracle by simulation: 1,000 documents with no effect and seed noise 1, 60 planted with effect -3 and seed
    noise 0.3. The top 100 by the mean of 3 seeds hold the 60 and 40 noisy winners, so the plain sum overstates a
    fresh seed's expected change by a quarter; every document's lambda (dominated by the noisy ones) under-predicts
    it by about a fifth; the set's own lambda predicts it within 10%. Where every document is alike (the Gaussian
    oracle above) both lambdas agree."""
    rng = np.random.default_rng(0)
    mu, sd = np.zeros(1060), np.ones(1060)
    mu[:60], sd[:60] = -3.0, 0.3
    stack = mu + rng.normal(0.0, 1.0, (3, 1060)) * sd
    res, _ = ensemble_result(_synthetic(stack), [1, 2, 3], {"m": 1e9})
    top = np.argsort(stack.mean(0), kind="stable")[:100]
    fresh, plain = mu[top].sum(), stack.mean(0)[top].sum()
    lam = res.solver_info["m"]["seed_reliability"]
    one = lam * plain + (1 - lam) * 100 * stack.mean()
    assert plain / fresh > 1.2 and one / fresh < 0.85
    assert res.predictor.predict([("m", top, 0)])[0] / fresh == pytest.approx(1.0, abs=0.1)
    rng = np.random.default_rng(0)
    gauss = rng.normal(0.0, 1.0, 20000) + rng.normal(0.0, 2.0, (3, 20000))
    from biasaudit.influence.ensemble import group_reliability, seed_reliability
    assert group_reliability(gauss, np.argsort(gauss.mean(0))[:400]) == pytest.approx(seed_reliability(gauss),
                                                                                       abs=0.03)
