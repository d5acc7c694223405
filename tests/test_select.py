"""Edit sets chosen as sets and debias aiming at |d| -> 0 (issue 24): greedy selection against top-k on the block
re-solve's group predictions, the toward-zero direction on a negative bias, the significance refusal, the
stopping rule against an exhaustive prefix scan, --verify, other estimators, and experiment's remove-selected."""
from __future__ import annotations

import json

import numpy as np
import pytest

from biasaudit.audit import bias_measures
from biasaudit.debias import run_debias
from biasaudit.errors import ConfigError
from biasaudit.influence import score_model
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.influence.select import (greedy_select, group_measure, scan_prefixes, smallest_inside,
                                        toward_zero_order)
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.planted import PLANTED_CHECK_SKIPGRAM
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus, run_cli

CFG = SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1)
TEST = BiasTest.from_dict(PLANTED_TEST)
# the same words with the targets exchanged: d is negative
FLIPPED = BiasTest.from_dict({**PLANTED_TEST, "name": "flipped", "target_x": PLANTED_TEST["target_y"],
                              "target_y": PLANTED_TEST["target_x"]})


@pytest.fixture(scope="module")
def trained():
    corpus, planted, _ = planted_corpus()
    model = train_skipgram(corpus, CFG)
    targets, kept, _, _ = bias_measures(model, [TEST, FLIPPED], corpus=corpus)
    res = score_model(model, corpus, targets, EstimatorConfig())
    return corpus, planted, model, res


def test_greedy_is_predicted_at_least_as_close_to_zero_as_top_k_at_equal_size(trained):
    corpus, planted, _, res = trained
    d = res.bias_value["planted"]
    order = toward_zero_order(res.delta_bias_if_removed["planted"], d)
    measure = group_measure(res.predictor, "planted")         # the block re-solve of the test words
    n = 8
    top = measure([order[:n]])[0]
    for goal in (0.0, None):
        sel = greedy_select(measure, order, n, d, goal=goal, rounds=4)
        assert len(sel.order) == n and len(set(sel.order.tolist())) == n
        assert sel.predicted == pytest.approx(measure([sel.order])[0])     # the value is the set's re-measure
        if goal is None:        # the move toward 0: at least top-k's, and here the greedy set itself is better
            assert sel.predicted <= top + 1e-12 and not sel.fallback
        assert abs(sel.predicted - (goal or 0)) <= abs(top - (goal or 0)) + 1e-12 or goal is None
        assert sel.n_predictions <= 4 * 3 * n + 1 + 4


def test_memoised_re_solves_equal_fresh_ones_and_skip_untouched_words(trained, monkeypatch):
    """The block predictor re-solves a test word once per distinct set of its edited pairs: a candidate added to
    a chosen set re-solves only the words it touches, and every prediction equals a fresh predictor's."""
    import copy

    corpus, _, _, res = trained
    d = res.bias_value["planted"]
    order = toward_zero_order(res.delta_bias_if_removed["planted"], d)
    pred = res.predictor
    calls = []
    real = pred.objective.resolve_word
    monkeypatch.setattr(pred.objective, "resolve_word", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    pred._cache.clear()
    chosen = [int(i) for i in order[:6]]
    sets = [np.asarray(chosen + [int(c)]) for c in order[6:30]]
    vals = group_measure(pred, "planted")(sets)
    fresh = copy.copy(pred)
    fresh._cache = {}
    monkeypatch.setattr(fresh.objective, "resolve_word", real)
    for s_, v in zip(sets, vals):
        fresh._cache.clear()
        assert v == group_measure(fresh, "planted")([s_])[0]          # bit for bit
    w, _, x, dd = pred._instances(np.asarray(order[:30]))
    own = {int(r) for r in pred.targets["planted"].rows}
    touched = {int(c): {int(a) for a in np.unique(w[(dd == c) & (x != 0)]) if int(a) in own} for c in order[6:30]}
    base_words = {int(a) for a in np.unique(w[np.isin(dd, chosen) & (x != 0)]) if int(a) in own}
    # at most: the first request's words, then per candidate the words it touches
    assert len(calls) <= len(base_words | touched[int(order[6])]) + sum(len(t) for t in touched.values())
    assert len(calls) < len(sets) * len(base_words)


def test_a_negative_bias_is_edited_up_toward_zero(trained, tmp_path):
    corpus, _, model, res = trained
    assert res.bias_value["flipped"] < -0.5
    _, m = run_debias(model, corpus, [FLIPPED], EstimatorConfig(), "6", "remove", out_dir=tmp_path / "d",
                      force=True, target=0.0)
    p = m["predicted"]["flipped"]
    assert p["effect_size_before"] < p["predicted_effect_size"]
    assert all(e["tests"]["flipped"]["delta_bias_if_removed"] > 0 for e in m["edited"])   # each removal raises d
    # target 0: no prefix is exactly there, so the prefix predicted nearest 0, at most the whole --k
    assert 0 < m["n_edited"] <= 6 and p["stopping"]["reached"] is False and "nearest 0" in p["stopping"]["note"]


def test_an_insignificant_test_is_refused_with_its_evidence_unless_forced(trained, tmp_path):
    corpus, _, _, _ = trained
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus))
    (tmp_path / "t.json").write_text(json.dumps(PLANTED_TEST))
    common = ["debias", "-c", f, "-t", tmp_path / "t.json", "--k", "3", "--method", "remove", "--vector-size", "16",
              "--window", "3", "--min-count", "2", "--epochs", "20", "--select", "top-k"]
    p = run_cli(*common, "--out", tmp_path / "refused", cache=tmp_path / "cache")
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 1 and "Traceback" not in p.stderr, p
    # 3 + 3 target words: 20 exact permutations, so p is at least 0.05
    assert "planted: d +" in lines[-1] and "p 0.050" in lines[-1] and "95% CI [" in lines[-1]
    assert "--force" in lines[-1] and not (tmp_path / "refused" / "manifest.json").exists()
    p = run_cli(*common, "--force", "--out", tmp_path / "forced", cache=tmp_path / "cache")
    assert p.returncode == 0, p
    m = json.loads((tmp_path / "forced" / "manifest.json").read_text())
    assert m["predicted"]["planted"]["significant"] is False and "not distinguishable" in p.stdout


def test_the_stopping_rule_stops_at_the_smallest_prefix_inside_the_band(trained, tmp_path):
    corpus, _, model, res = trained
    d = res.bias_value["planted"]
    order = toward_zero_order(res.delta_bias_if_removed["planted"], d)
    measure = group_measure(res.predictor, "planted")
    n_max = 10
    scan = measure([order[:n] for n in range(1, n_max + 1)])               # every prefix (the oracle)
    band = sorted(abs(v) for v in scan)[3] + 1e-9                           # a band some prefixes reach
    want = next(n for n, v in zip(range(1, n_max + 1), scan) if abs(v) <= band)
    for step in (1, 3, 10):
        n, v, count = smallest_inside(measure, order, band, n_max=n_max, step=step)
        assert n == want and v == pytest.approx(scan[want - 1]) and count <= want + step - 1
    assert smallest_inside(measure, order, 0.0, n_max=n_max)[0] is None
    # debias with --target: the same prefix of its (top-k) order
    _, m = run_debias(model, corpus, [TEST], EstimatorConfig(), str(n_max), "remove", out_dir=tmp_path / "d",
                      force=True, select="top-k", target=band)
    assert m["n_edited"] == want and m["predicted"]["planted"]["stopping"]["reached"]
    assert m["predicted"]["planted"]["predicted_effect_size"] == pytest.approx(scan[want - 1])
    assert [e["id"] for e in m["edited"]] == [res.doc_ids[i] for i in order[:want]]


def test_when_no_prefix_is_inside_the_band_the_one_predicted_nearest_zero_is_edited(trained, tmp_path):
    """A band no prefix reaches (here |d| <= 1e-9): the edit is the prefix whose prediction is nearest 0 in an
    exhaustive scan (the oracle), not the whole --k, whichever way the predictions cross 0."""
    corpus, _, model, res = trained
    d = res.bias_value["planted"]
    order = toward_zero_order(res.delta_bias_if_removed["planted"], d)
    measure = group_measure(res.predictor, "planted")
    n_max = 40
    scan = measure([order[:n] for n in range(1, n_max + 1)])
    want = min(range(1, n_max + 1), key=lambda n: (abs(scan[n - 1]), n))
    n, _, _, close = scan_prefixes(measure, order, 1e-9, n_max=n_max, step=7)
    assert n is None and close == (want, pytest.approx(scan[want - 1]))
    _, m = run_debias(model, corpus, [TEST], EstimatorConfig(), str(n_max), "remove", out_dir=tmp_path / "d",
                      force=True, select="top-k", target=1e-9)
    rule = m["predicted"]["planted"]["stopping"]
    assert not rule["reached"] and m["n_edited"] == want < n_max and "nearest 0" in rule["note"]
    assert m["predicted"]["planted"]["predicted_effect_size"] == pytest.approx(scan[want - 1])
    _, g = run_debias(model, corpus, [TEST], EstimatorConfig(), str(n_max), "remove", out_dir=tmp_path / "g",
                      force=True, select="greedy", target=1e-9, rounds=4)
    pg = g["predicted"]["planted"]
    assert not pg["stopping"]["reached"] and abs(pg["predicted_effect_size"]) <= abs(scan[want - 1]) + 1e-12


def test_the_default_band_is_the_seed_noise_or_the_ci_half_width(trained, tmp_path):
    corpus, _, model, _ = trained
    _, m = run_debias(model, corpus, [TEST], EstimatorConfig(), "10", "remove", out_dir=tmp_path / "one",
                      force=True)
    rule = m["predicted"]["planted"]["stopping"]
    p = m["predicted"]["planted"]
    assert rule["band"] == pytest.approx((p["ci_high"] - p["ci_low"]) / 2) and "CI half-width" in rule["band_source"]
    assert rule["reached"] and abs(p["predicted_effect_size"]) <= rule["band"]
    assert m["n_edited"] == p["n_edited"] < 10 and rule["selection"]["method"] == "greedy"
    other = train_skipgram(corpus, SkipGramConfig(**{**CFG.to_dict(), "seed": 2}))
    _, m2 = run_debias(model, corpus, [TEST], EstimatorConfig(), "10", "remove", out_dir=tmp_path / "two",
                       force=True, noise_models=(other,))
    assert "sd of d over 2 training seeds" in m2["predicted"]["planted"]["stopping"]["band_source"]


def test_verify_retrains_and_writes_actual_against_predicted(trained, tmp_path):
    from biasaudit.report import write_report

    corpus, _, model, _ = trained
    held = BiasTest.from_dict({**PLANTED_TEST, "name": "planted-heldout",
                               "attribute_a": {"name": "m", "words": ["algebra", "calculus"]},
                               "attribute_b": {"name": "a", "words": ["poetry", "sculpture"]}})
    folder, m = run_debias(model, corpus, [TEST], EstimatorConfig(), "6", "remove", out_dir=tmp_path / "v",
                           force=True, target=0.0, select="top-k", verify=1, heldout={"planted": held})
    v = m["verify"]["tests"]["planted"]
    assert m["verify"]["seeds"] == [1] and len(v["per_seed"]) == 1
    pred = m["predicted"]["planted"]
    assert v["predicted_change"] == pytest.approx(pred["predicted_effect_size"] - pred["effect_size_before"])
    row = v["per_seed"][0]            # paired: seed 1's baseline is the audited model itself
    assert row["baseline"] == pytest.approx(pred["effect_size_before"])
    assert v["actual_change_mean"] == pytest.approx(row["actual"] - row["baseline"])
    assert v["actual_over_predicted"] == pytest.approx(v["actual_change_mean"] / v["predicted_change"])
    assert v["heldout_change_mean"] is not None and "wordsim353_mean" in v
    assert json.loads((folder / "manifest.json").read_text())["verify"]["tests"]["planted"] == v
    assert "Verified" in write_report(folder).read_text()


@pytest.mark.parametrize("how", ["cg", "gradient-dot", "ensemble"])
def test_debias_works_with_other_estimators_and_ensembles(trained, tmp_path, how):
    corpus, _, model, _ = trained
    est = EstimatorConfig(name="block" if how == "ensemble" else how)
    seeds = (train_skipgram(corpus, SkipGramConfig(**{**CFG.to_dict(), "seed": 2})),) if how == "ensemble" else ()
    _, m = run_debias(model, corpus, [TEST], est, "4", "remove", out_dir=tmp_path / how, force=True,
                      seed_models=seeds, rounds=2)
    p = m["predicted"]["planted"]
    assert 0 < m["n_edited"] <= 4
    if how == "gradient-dot":       # no scale, no prediction: the first --k toward zero
        assert m["n_edited"] == 4 and p["predicted_effect_size"] is None and p["stopping"]["reached"] is None
    else:
        assert abs(p["predicted_effect_size"]) < abs(p["effect_size_before"])


def test_experiment_select_greedy_gives_remove_selected_rows_beside_top_k(tmp_path):
    from biasaudit.experiments import ExperimentSpec, run_experiment

    corpus, _, _ = planted_corpus()
    spec = ExperimentSpec(corpus=corpus, model=CFG, tests=[TEST], heldout={}, estimators=[EstimatorConfig()],
                          ks="6", seeds=1, conditions=("baseline", "remove-top", "remove-random"), quality=False,
                          select="greedy")
    assert "remove-selected" in spec.conditions and spec.to_config()["select"] == "greedy"
    s = run_experiment(spec, tmp_path / "e", cache=tmp_path / "cache").summary
    by = {d["condition"]: d for d in s["conditions"]}
    sel, top = by["remove-selected"], by["remove-top"]
    assert sel["n_docs"] == top["n_docs"] == 6 and sel["k"] == top["k"]
    assert sel["verdict"] and sel["difference_from_random"] is not None
    assert sel["predicted_change_mean"] <= top["predicted_change_mean"] + 1e-9     # moves at least as far
    saved = json.loads((tmp_path / "e" / "scores.json").read_text())["selected"]
    assert len(saved[f"{EstimatorConfig().label}|planted|6"]) == 6
    again = run_experiment(spec, tmp_path / "e", cache=tmp_path / "cache").summary     # resumes: same sets
    assert again["conditions"] == s["conditions"]


def test_optimum_anchor_re_solves_between_exact_optima_and_refuses_other_estimators(trained):
    """``anchor=optimum``: the word's optimum with the context vectors fixed has zero gradient; an edit moves the
    trained vector by exactly the change between the unedited and the edited optimum (each solved here by plain
    Newton over the word's whole loss, the oracle); no edit leaves it where it was."""
    import torch

    from biasaudit.models.skipgram_objective import SkipGramObjective

    corpus, planted, model, res = trained
    obj = SkipGramObjective(model, corpus)
    word = int(res.predictor.targets["planted"].rows[0])
    c0, n0 = obj.word_pairs(word)
    ustar = obj.word_optimum(word, c0, n0, float(n0.sum()))
    g, _ = obj._word_terms(ustar, c0, n0, float(n0.sum()))
    g_trained, _ = obj._word_terms(obj.U[word], c0, n0, float(n0.sum()))
    assert float(g.norm()) < 1e-8 < float(g_trained.norm())        # SGD stopped short of it
    # remove every planted document's pairs of this word
    ids = [doc.id for doc in corpus]
    pidx = np.asarray([i for i, t in enumerate(ids) if t in planted])
    w, c, x, d = res.predictor._instances(pidx)
    sel = w == word
    assert sel.any()
    u = obj.resolve_word(word, c[sel], -x[sel], 0.0, anchor="optimum")
    dn = torch.zeros(obj.V, dtype=obj.dtype).index_add_(0, torch.as_tensor(c[sel]),
                                                         torch.as_tensor(-x[sel], dtype=obj.dtype))
    n1 = torch.zeros(obj.V, dtype=obj.dtype).index_add_(0, c0, n0) + dn
    n1 = torch.clamp(n1, min=0.0)
    every = torch.arange(obj.V)
    v = torch.zeros(obj.dim, dtype=obj.dtype)
    for _ in range(60):                                   # Newton from 0 over the edited loss: the oracle
        g1, H1 = obj._word_terms(v, every, n1, float(n1.sum()))
        v = v - torch.linalg.solve(H1, g1)
    assert torch.allclose(u, obj.U[word] + (v - ustar), atol=1e-7)
    none = obj.resolve_word(word, np.zeros(0, np.int64), np.zeros(0), 0.0, anchor="optimum")
    assert torch.allclose(none, obj.U[word], atol=1e-9)
    for spec in ("cg:anchor=optimum", "gradient-dot:anchor=optimum", "block:anchor=nearest"):
        with pytest.raises(ConfigError):
            EstimatorConfig.parse(spec)
    assert EstimatorConfig.parse("block:anchor=optimum").label == "block:damping=0.1,anchor=optimum"


def test_optimum_anchor_sees_the_planted_set_that_the_trained_anchor_under_predicts():
    """Against retraining: removing the planted documents, the optimum-anchored group prediction (damping 0.01)
    is closer to the retrained change than the trained anchor's, which holds each word near its trained vector."""
    from biasaudit.corpus import MemoryCorpus

    import torch

    from biasaudit.corpus import MemoryCorpus

    # the plain-gensim planted check's model (CFG's d sits at the measure's bound, where no removal moves it)
    cfg = SkipGramConfig(**PLANTED_CHECK_SKIPGRAM, seed=1)
    corpus, planted, _ = planted_corpus()
    model = train_skipgram(corpus, cfg)
    targets, _, _, _ = bias_measures(model, [TEST], corpus=corpus)
    ids = [doc.id for doc in corpus]
    pidx = np.asarray([i for i, t in enumerate(ids) if t in planted])
    kept = MemoryCorpus([doc for doc in corpus if doc.id not in planted], "kept")
    retrained = train_skipgram(kept, cfg)
    t_after, _, _, _ = bias_measures(retrained, [TEST], corpus=kept)
    d0 = targets[0].value(torch.as_tensor(model.vectors, dtype=torch.float64))
    actual = t_after[0].value(torch.as_tensor(retrained.vectors, dtype=torch.float64)) - d0
    preds = {}
    for spec in ("block", "block:damping=0.01,anchor=optimum"):
        res = score_model(model, corpus, targets, EstimatorConfig.parse(spec))
        preds[spec] = group_measure(res.predictor, "planted")([pidx])[0] - d0
    pred_trained, pred_opt = preds["block"], preds["block:damping=0.01,anchor=optimum"]
    print(f"actual {actual:+.3f}, optimum anchor {pred_opt:+.3f}, trained anchor {pred_trained:+.3f}")
    assert actual < 0 and pred_opt < 0
    assert abs(pred_opt - actual) < abs(pred_trained - actual)


def test_greedy_in_debias_searches_within_the_top_k_prefix_that_reaches_the_band(trained, tmp_path):
    """The greedy search is bounded by the top-k prefix inside the band (its candidates: pool x that prefix, not
    pool x --k), and the edit is never larger than that prefix."""
    corpus, _, model, _ = trained
    band = 0.5
    _, top = run_debias(model, corpus, [TEST], EstimatorConfig(), "60", "remove", out_dir=tmp_path / "t",
                        force=True, select="top-k", target=band)
    _, greedy = run_debias(model, corpus, [TEST], EstimatorConfig(), "60", "remove", out_dir=tmp_path / "g",
                           force=True, select="greedy", target=band, rounds=4)
    n_top = top["predicted"]["planted"]["n_edited"]
    rule = greedy["predicted"]["planted"]["stopping"]
    assert top["predicted"]["planted"]["stopping"]["reached"] and rule["reached"]
    assert rule["selection"]["top_k_reaches_at"] == n_top == rule["selection"]["size_bound"]
    assert greedy["predicted"]["planted"]["n_edited"] <= n_top
    assert rule["selection"]["n_predictions"] <= 4 * 3 * n_top + 4 + 1
    assert abs(greedy["predicted"]["planted"]["predicted_effect_size"]) <= band


def test_verify_after_an_ensemble_retrains_seeds_outside_it(trained, tmp_path):
    """An ensemble's predictions are for a seed it did not use (influence.ensemble), so --verify retrains the
    seeds after the ensemble's: with seeds 1 and 2 ranking, seed 3."""
    corpus, _, model, _ = trained
    other = train_skipgram(corpus, SkipGramConfig(**{**CFG.to_dict(), "seed": 2}))
    _, m = run_debias(model, corpus, [TEST], EstimatorConfig(), "6", "remove", out_dir=tmp_path / "e", force=True,
                      target=0.0, select="top-k", verify=1, seed_models=(other,))
    assert m["verify"]["seeds"] == [3]
    v = m["verify"]["tests"]["planted"]
    pred = m["predicted"]["planted"]
    assert v["predicted_change"] == pytest.approx(pred["predicted_effect_size"] - pred["effect_size_before"])
