"""biasaudit experiment: retraining confirms the ranking on a planted corpus; resume, refusal, outputs."""
import csv

import numpy as np
import pytest

import biasaudit.experiments.run as ex
from biasaudit.errors import ArtifactError, ConfigError
from biasaudit.experiments.baselines import hard_debias
from biasaudit.experiments import ExperimentSpec, parse_ks, run_experiment
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.measures.weat import associations, effect_size
from biasaudit.models.skipgram import SkipGramConfig, SkipGramModel
from biasaudit.vocab import Vocab
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

CFG = SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1)
TEST = BiasTest.from_dict(PLANTED_TEST)
HELD = BiasTest.from_dict({**PLANTED_TEST, "name": "planted-heldout",
                           "attribute_a": {"name": "m", "words": ["algebra", "calculus"]},
                           "attribute_b": {"name": "a", "words": ["poetry", "sculpture"]}})


def spec(corpus, **kw):
    base = dict(corpus=corpus, model=CFG, tests=[TEST], heldout={}, estimators=[EstimatorConfig()], ks="10,20",
                seeds=2, conditions=("baseline", "remove-top", "remove-bottom", "upweight-top", "remove-random"),
                upweight=3, quality=False)
    base.update(kw)
    return ExperimentSpec(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    corpus, planted, counter = planted_corpus()
    out = tmp_path_factory.mktemp("exp")
    cache = tmp_path_factory.mktemp("cache")
    import biasaudit.audit.run as score_run
    real, calls = score_run.rank, []
    score_run.rank = lambda *a, **k: calls.append(a[3]) or real(*a, **k)     # the score folder's own ranking
    try:
        summary = run_experiment(spec(corpus), out, cache=cache)
    finally:
        score_run.rank = real
    assert calls == []        # the report's score folder reuses the experiment's ranking: scored once, not twice
    return corpus, out, cache, summary


def test_the_score_folder_reuses_the_ranking_and_equals_a_score_run_of_the_same_model(finished, tmp_path):
    from biasaudit.audit import ScoreOptions, run_score
    corpus, out, cache, _ = finished
    base_model = ex.ranking_targets(spec(corpus), corpus, [1, 2], cache, lambda m: None)[0]
    run_score(base_model, corpus, [TEST], ScoreOptions(EstimatorConfig(), out_dir=tmp_path / "s", metasmoothness=0))
    assert (out / "score" / "scores.jsonl").read_bytes() == (tmp_path / "s" / "scores.jsonl").read_bytes()


def test_bias_moves_as_predicted(finished):
    _, out, _, summary = finished
    by = {(d["condition"], d["k"]): d for d in summary["conditions"]}
    for k in ("10", "20"):
        top, rand = by[("remove-top", k)], by[("remove-random", k)]
        assert top["change_mean"] < -0.3 and top["change_mean"] < rand["change_mean"] - 0.3
        assert abs(rand["change_mean"]) < abs(top["change_mean"]) / 2
        # the planted effect size (about 1.5) is near WEAT's ceiling of 2, so upweighting and removing the
        # counter-stereotype documents can add little: they must at least not act like removing the top
        assert by[("upweight-top", k)]["change_mean"] > top["change_mean"] + 0.5
        assert by[("remove-bottom", k)]["change_mean"] > top["change_mean"] + 0.5
        assert top["difference_from_random"] < 0
        assert np.sign(top["predicted_change_mean"]) == np.sign(top["change_mean"])
    # the first-order scores rank the edits as retraining does; the re-measured group predictions stay in the
    # measure's range (a saturated planted bias: their sizes are checked on GCIDE, README)
    corr = next(c for c in summary["predicted_vs_actual"] if c["prediction"] == "linear")
    assert corr["spearman"] > 0.5
    # seeds are paired: the baseline of seed s is the model the cache holds for seed s
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * (1 + 4 * 2)   # seeds x (baseline + conditions x ks)
    keys = {(r["test"], r["condition"], r["k"], r["seed"]) for r in rows}
    assert len(keys) == len(rows)
    assert set(rows[0]) >= {"test", "condition", "k", "seed", "effect_size", "predicted_effect_size",
                            "wordsim353", "simlex999", "analogy"}
    bound = (6 * 5 / 9) ** 0.5     # the largest |d| with 3 + 3 target words
    for r in rows:
        if r["condition"] == "remove-top":
            assert float(r["predicted_effect_size"]) < float(r["baseline_effect_size"])
            assert float(r["predicted_effect_size_linear"]) < float(r["baseline_effect_size"])
        if r["predicted_effect_size"]:
            assert abs(float(r["predicted_effect_size"])) <= bound + 1e-12


def test_resume_redoes_nothing_finished(finished, monkeypatch):
    corpus, out, cache, summary = finished
    runs = sorted((out / "runs").glob("*.json"))
    victim = [r for r in runs if r.name.startswith("remove-")][0]
    victim.unlink()   # as if interrupted while this run was in flight
    trained = []
    real = ex.retrain_model
    monkeypatch.setattr(ex, "retrain_model", lambda c, cfg, full: trained.append(cfg.seed) or real(c, cfg, full))
    again = run_experiment(spec(corpus), out, cache=cache)
    assert len(trained) == 1 and victim.exists()
    assert again["conditions"] == summary["conditions"]


def test_mismatched_config_is_refused(finished):
    corpus, out, cache, _ = finished
    with pytest.raises(ArtifactError, match="another config"):
        run_experiment(spec(corpus, upweight=4), out, cache=cache)
    with pytest.raises(ConfigError, match="conditions"):
        run_experiment(spec(corpus, conditions=("remove-everything",)), out, cache=cache)


def test_warm_start_and_undo_modes_and_lds(tmp_path):
    corpus, planted, _ = planted_corpus()
    for mode in ("warm-start", "undo"):
        s = run_experiment(spec(corpus, mode=mode, seeds=1, ks="20", warm_epochs=3,
                                conditions=("baseline", "remove-top", "remove-random"), lds=4),
                           tmp_path / mode, cache=tmp_path / "cache")
        by = {d["condition"]: d for d in s["conditions"]}
        assert by["remove-top"]["change_mean"] < by["remove-random"]["change_mean"]
        assert s["lds"] and s["lds"][0]["n_subsets"] == 4


def test_parse_ks():
    assert parse_ks("0.1%,1%,7", 10_000) == [("0.1%", 10), ("1%", 100), ("7", 7)]
    with pytest.raises(ConfigError):
        parse_ks("100%", 50)
    with pytest.raises(ConfigError):
        parse_ks("lots", 50)


def test_hard_debias_removes_the_gender_direction():
    """Attribute words that differ only along the gender direction lose their association; gendered words stay."""
    rng = np.random.default_rng(0)
    words = ["she", "he", "woman", "man", "girl", "boy", "her", "his", "mother", "father", "nurse", "engineer",
             "poetry", "math"]
    g = np.zeros(20)
    g[0] = 1.0
    vecs = {w: rng.normal(size=20) * 0.1 for w in words}
    for f, m in (("she", "he"), ("woman", "man"), ("girl", "boy"), ("her", "his"), ("mother", "father")):
        base = rng.normal(size=20)
        vecs[f], vecs[m] = base + 2 * g, base - 2 * g
    for w, sgn in (("nurse", 1), ("poetry", 1), ("engineer", -1), ("math", -1)):
        vecs[w] = rng.normal(size=20) * 0.1 + sgn * g
    model = SkipGramModel(Vocab(tuple(words), np.ones(len(words), np.int64), 1),
                          np.array([vecs[w] for w in words], np.float32), np.zeros((len(words), 20), np.float32),
                          CFG)
    out = hard_debias(model, {"she", "he"})
    k = {w: i for i, w in enumerate(words)}
    direction = out[k["she"]] - out[k["he"]]
    for w in ("nurse", "engineer", "poetry", "math"):
        assert abs(out[k[w]] @ direction) < 0.05 * np.linalg.norm(direction)
    X, Y = out[[k["she"], k["woman"]]], out[[k["he"], k["man"]]]
    A, B = out[[k["nurse"], k["poetry"]]], out[[k["engineer"], k["math"]]]
    before = effect_size(associations(model.vectors[[k["she"], k["woman"]]], model.vectors[[k["nurse"], k["poetry"]]],
                                      model.vectors[[k["engineer"], k["math"]]]),
                         associations(model.vectors[[k["he"], k["man"]]], model.vectors[[k["nurse"], k["poetry"]]],
                                      model.vectors[[k["engineer"], k["math"]]]))
    assert before > 1.0
    sx, sy = associations(X, A, B), associations(Y, A, B)
    assert abs(sx.mean() - sy.mean()) < 0.2 * abs(before)


def test_remove_ids_and_heldout_words(tmp_path):
    """A user-named set (the planted documents) is removed and predicted like a ranked one; held-out words are
    measured beside the audit words."""
    corpus, planted, _ = planted_corpus()
    with pytest.raises(ConfigError, match="1 id.s. are not in corpus 'planted': 'no-such-doc'"):
        run_experiment(spec(corpus, seeds=1, conditions=("baseline", "remove-ids"),
                            remove_ids=tuple(sorted(planted)) + ("no-such-doc",)), tmp_path / "bad", cache=tmp_path / "c")
    assert not (tmp_path / "bad").exists(), "refused before anything was written"
    s = run_experiment(spec(corpus, seeds=1, conditions=("baseline", "remove-ids"),
                            remove_ids=tuple(sorted(planted)), heldout={"planted": HELD}),
                       tmp_path / "o", cache=tmp_path / "c")
    d = next(d for d in s["conditions"] if d["condition"] == "remove-ids")
    assert d["n_docs"] == len(planted)
    assert d["change_mean"] < -0.3 and d["predicted_change_linear_mean"] < 0
    assert d["heldout_change_mean"] is not None and d["heldout_change_mean"] < 0
