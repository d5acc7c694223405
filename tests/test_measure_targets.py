"""Measures beyond WEAT as influence targets (``score --measure``, ``experiment --measure``): the test carries its
measure through scoring, re-measured predictions and retraining; paired measures drop a pair with either word;
every retrained model reports WEAT, RIPA, Direct Bias and RND (the cross-measure transfer columns)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from biasaudit import api
from biasaudit.errors import ConfigError, VocabularyError
from biasaudit.measures.embedding import measure, read_with, value_on_vectors, values_on_vectors
from biasaudit.planted import PLANTED_TEST
from biasaudit.wordsets import BiasTest

SMALL = dict(vector_size=16, window=3, min_count=2, epochs=20)


def _test(x, y, a, b, name="t") -> BiasTest:
    return BiasTest.from_dict({"name": name, "target_x": x, "target_y": y, "attribute_a": a, "attribute_b": b})


def test_paired_measure_drops_the_partner():
    t = read_with(_test(["he", "man", "boy"], ["she", "woman", "girl"], ["a1", "a2"], ["b1", "b2"]), "ripa")
    assert t.measure == "ripa" and t.paired
    vocab = {"he", "man", "boy", "she", "girl", "a1", "a2", "b1", "b2"}          # "woman" missing
    kept, dropped = t.restrict(vocab, allow_oov=True)
    assert kept.target_x.words == ("he", "boy") and kept.target_y.words == ("she", "girl")
    assert dropped == {"target_y": ["woman"], "target_x": ["man"]}
    # WEAT reads sets, not pairs: only the missing word goes
    kept_w, _ = read_with(t, "weat").restrict(vocab, allow_oov=True)
    assert kept_w.target_x.words == ("he", "man", "boy")
    with pytest.raises(VocabularyError, match="woman"):
        t.restrict(vocab)


def test_measure_travels_in_the_test_file():
    t = read_with(_test(["he", "man"], ["she", "woman"], ["a1", "a2"], ["b1", "b2"]), "direct-bias")
    back = BiasTest.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t
    with pytest.raises(ConfigError, match="pairs X and Y"):
        read_with(_test(["he", "man", "boy"], ["she", "woman"], ["a1", "a2"], ["b1", "b2"]), "ripa")
    with pytest.raises(ConfigError, match="unknown measure"):
        read_with(t, "cosine-magic")
    with pytest.raises(ConfigError, match="measure"):
        BiasTest.from_dict({**t.to_dict(), "measure": "../etc"})


def test_values_on_vectors_equal_the_reference():
    rng = np.random.default_rng(3)
    words = ["he", "man", "boy", "she", "woman", "girl", "a1", "a2", "a3", "b1", "b2", "b3"]
    M = rng.normal(size=(len(words), 5))
    k2i = {w: i for i, w in enumerate(words)}
    t = _test(["he", "man", "boy"], ["she", "woman", "girl"], ["a1", "a2", "a3"], ["b1", "b2", "b3"])
    vals = values_on_vectors(k2i, M, t)
    vecs = {w: M[i] for w, i in k2i.items()}
    for name in ("ripa", "direct-bias", "rnd"):
        assert vals[name] == pytest.approx(measure(name, vecs, t, n_permutations=10, n_bootstrap=0).effect_size,
                                           abs=1e-12)
    from biasaudit.measures.weat import weat
    assert vals["weat"] == pytest.approx(weat(vecs, t, n_permutations=10, n_bootstrap=0).effect_size, abs=1e-12)
    # a missing word: the paired measures lose its pair, WEAT only the word
    del k2i["woman"]
    got = value_on_vectors(k2i, M, read_with(t, "ripa"))
    sub = {w: v for w, v in vecs.items() if w not in ("woman", "man")}
    ref = _test(["he", "boy"], ["she", "girl"], ["a1", "a2", "a3"], ["b1", "b2", "b3"])
    assert got == pytest.approx(measure("ripa", sub, ref, n_permutations=10, n_bootstrap=0).effect_size, abs=1e-12)


def test_language_models_refuse_a_word_vector_measure():
    from biasaudit.audit import read_tests_with
    from biasaudit.models import family_of

    fam = family_of(api.model_config("lm"))
    with pytest.raises(ConfigError, match="reads word vectors"):
        read_tests_with(fam, [BiasTest.from_dict(PLANTED_TEST)], "ripa")


@pytest.fixture(scope="module")
def planted_model(planted):
    corpus, _, _ = planted
    return corpus, api.train(corpus, api.model_config("skipgram", **SMALL))


@pytest.mark.parametrize("name", ["ripa", "rnd"])
def test_score_ranks_by_the_measure(planted_model, tmp_path, name):
    """score --measure: the reported statistic is the measure's (equal to ``measure``), the re-measured
    prediction of a removal moves the measure, and removing the documents that raise it most, retrained, lowers
    it (the oracle: retraining)."""
    corpus, model = planted_model
    res = api.score(model, corpus, [PLANTED_TEST], measure=name, out=tmp_path / "s", resamples=0, report=False)
    (t,) = res["tests"]
    ref = measure(name, model, BiasTest.from_dict(PLANTED_TEST))
    stats = t["weat"]                                  # the test's statistics, whatever its measure
    assert stats["metric"] == name and stats["effect_size"] == pytest.approx(ref.effect_size, abs=1e-9)
    assert t["bias_value"] == pytest.approx(ref.effect_size, abs=1e-9)
    assert stats["p_value"] == pytest.approx(ref.p_value)
    assert res.summary["config"]["measure"] == name
    weat = api.score(model, corpus, [PLANTED_TEST], out=tmp_path / "w", resamples=0, report=False)
    assert weat["tests"][0]["bias_value"] != pytest.approx(t["bias_value"])
    df = res.to_pandas()
    df = df[df.test == PLANTED_TEST["name"]]
    df = df.assign(toward_zero=np.sign(ref.effect_size) * df.delta_bias_if_removed)
    top = df.sort_values("toward_zero").doc_id.tolist()[:10]
    kept = corpus.without(top)
    after = api.train(kept, api.model_config("skipgram", **SMALL))
    moved = measure(name, after, BiasTest.from_dict(PLANTED_TEST)).effect_size - ref.effect_size
    assert np.sign(moved) == -np.sign(ref.effect_size)


def test_experiment_measures_every_retrain_with_every_measure(planted_model, tmp_path):
    corpus, _ = planted_model
    res = api.experiment(api.model_config("skipgram", **SMALL), corpus, [PLANTED_TEST], measure="ripa", k="5",
                         seeds=1, conditions="baseline,remove-top", quality=False, scheduler=None,
                         out=tmp_path / "e", report=False)
    import pandas as pd
    rows = pd.read_csv(res.folder / "results.csv")
    base = rows[rows.condition == "baseline"].iloc[0]
    assert base.effect_size == pytest.approx(base.ripa)          # the audited measure is RIPA
    assert np.isfinite(base.weat) and np.isfinite(base.direct_bias) and np.isfinite(base.rnd)
    assert base.weat != pytest.approx(base.ripa)
    assert json.loads((res.folder / "experiment-config.json").read_text())["tests"][0]["measure"] == "ripa"
    from biasaudit import cli                              # the terminal names the measure, not WEAT's d
    with cli.out.capture() as printed:
        cli._print_experiment(res)
    assert "baseline RIPA +" in printed.get() and "baseline d" not in printed.get(), printed.get()


def test_cli_refuses_a_measure_that_cannot_be_a_target(tmp_path, planted):
    from conftest import run_cli

    corpus, _, _ = planted
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus))
    test = tmp_path / "t.json"
    test.write_text(json.dumps(PLANTED_TEST))
    r = run_cli("score", "--corpus", path, "--test", test, "--measure", "ect", "--epochs", "5", "--out",
                tmp_path / "o", cache=tmp_path / "cache")
    assert r.returncode == 2, r                         # a usage error, before any training
    assert "ECT cannot be an influence target" in r.stderr and "training" not in r.stderr, r
    r = run_cli("score", "--corpus", path, "--test", test, "--measure", "cosine", "--epochs", "5", "--out",
                tmp_path / "o", cache=tmp_path / "cache")
    assert r.returncode == 2 and "unknown measure" in r.stderr, r


def test_a_measure_carried_by_a_test_file_is_read_as_measure_would_read_it(planted_model, tmp_path):
    """A test file's own "measure" field: its name checked (and bounded), its pairing the measure's (not a
    separate "paired" field), a language model refused in one line, and `biasaudit weat` still WEAT's d."""
    from biasaudit.audit import read_tests_with
    from biasaudit.models import family_of

    corpus, model = planted_model
    fam = family_of(model)
    (t,) = read_tests_with(fam, [BiasTest.from_dict({**PLANTED_TEST, "measure": "RIPA"})])
    assert t.measure == "ripa" and t.paired
    (w,) = read_tests_with(fam, [BiasTest.from_dict({**PLANTED_TEST, "measure": "weat", "paired": True})])
    assert w.measure == "weat" and not w.paired
    with pytest.raises(ConfigError, match="field paired must be true or false"):    # issue 33: "false" is true
        BiasTest.from_dict({**PLANTED_TEST, "measure": "weat", "paired": "false"})
    with pytest.raises(ConfigError, match="unknown measure"):
        read_tests_with(fam, [BiasTest.from_dict({**PLANTED_TEST, "measure": "foobar"})])
    with pytest.raises(ConfigError, match="field measure"):
        BiasTest.from_dict({**PLANTED_TEST, "measure": "a" * 100_000})
    with pytest.raises(ConfigError, match="carries measure ripa, which reads word vectors"):
        read_tests_with(family_of(api.model_config("lm")), [t])
    # "measure": "ripa" without "paired": a word missing from the model drops its pair, as --measure ripa does
    x, y = PLANTED_TEST["target_x"]["words"], PLANTED_TEST["target_y"]["words"]
    d = {**PLANTED_TEST, "target_x": {"name": "x", "words": x + ["nosuchword"]},
         "target_y": {"name": "y", "words": ["nosuchword2"] + y}}
    from_file = api.score(model, corpus, [{**d, "measure": "ripa"}], out=tmp_path / "f", resamples=0, report=False)
    flag = api.score(model, corpus, [d], measure="ripa", out=tmp_path / "m", resamples=0, report=False)
    assert from_file["tests"][0]["bias_value"] == pytest.approx(flag["tests"][0]["bias_value"], abs=1e-12)
    # `biasaudit weat` measures WEAT whatever measure the file carries
    (row,) = api.measure(model, [{**PLANTED_TEST, "measure": "ripa"}]).rows
    (ref,) = api.measure(model, [PLANTED_TEST]).rows
    assert row["effect_size"] == pytest.approx(ref["effect_size"]) and row.get("metric", "weat") == "weat"


def test_words_dropped_with_their_pair_are_named_so_and_the_report_says_ripa(planted_model, tmp_path):
    """A word in the model dropped because its X-Y partner is missing is not reported as missing; the HTML
    report of a --measure run labels its numbers by the measure, not as WEAT's d."""
    from biasaudit.report.html import build_context, render

    corpus, model = planted_model
    x, y = PLANTED_TEST["target_x"]["words"], PLANTED_TEST["target_y"]["words"]
    d = {**PLANTED_TEST, "target_x": {"name": "x", "words": x + ["nosuchword"]},
         "target_y": {"name": "y", "words": y[:2] + ["nosuchword2", y[2]]}}
    res = api.score(model, corpus, [d], measure="ripa", out=tmp_path / "s", resamples=0, report=False)
    sets = {s["field"]: s for s in res["tests"][0]["evidence"]["sets"]}
    reasons = {r["word"]: r["reason"] for f in ("target_x", "target_y") for r in sets[f]["dropped"]}
    assert reasons[x[2]].startswith("in the model, dropped with its X-Y pair's other word"), reasons
    assert reasons[y[2]].startswith("in the model, dropped with its X-Y pair's other word"), reasons
    assert reasons["nosuchword"] == reasons["nosuchword2"] == "not in the model's vocabulary"
    assert f"planted: dropped words in the model whose X-Y pair lost its other word target_x: {x[2]}; " \
           f"target_y: {y[2]}" in res["notes"], res["notes"]
    ctx = build_context(res.folder)
    assert ctx["value_label"] == "RIPA" and ctx["ci_over"] == "words"
    page = render(res.folder)
    assert '<th class="num">RIPA</th>' in page and "effect size d" not in page and "d = " not in page


def test_measure_with_a_query_is_a_usage_error(tmp_path, planted):
    from conftest import run_cli

    corpus, _, _ = planted
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus))
    r = run_cli("score", "--corpus", path, "--query", "zorbel", "--toward", "algebra", "--measure", "ripa",
                "--epochs", "5", "--out", tmp_path / "o", cache=tmp_path / "cache")
    assert r.returncode == 2 and "--measure reads bias tests" in r.stderr and "training" not in r.stderr, r


def test_debias_reads_a_test_files_measure_as_score_does(planted_model, tmp_path):
    """A test file carrying "measure": "ripa" is read paired in debias too (its evidence is RIPA's)."""
    from biasaudit.debias import run_debias
    from biasaudit.influence.estimators import EstimatorConfig

    corpus, model = planted_model
    x, y = PLANTED_TEST["target_x"]["words"], PLANTED_TEST["target_y"]["words"]
    # missing words at different places: read as pairs, (qqq, y0) and (x2, rrr) go and x0-y1, x1-y2 stay
    spec = {**PLANTED_TEST, "target_x": ["qqq"] + x, "target_y": y + ["rrr"]}
    carried = BiasTest.from_dict({**spec, "measure": "ripa"})
    _, m = run_debias(model, corpus, [carried], EstimatorConfig(), "4", "remove", out_dir=tmp_path / "d",
                      force=True, rounds=2, target=0.0)
    ref = measure("ripa", model, read_with(BiasTest.from_dict(spec), "ripa"), allow_oov=True)
    assert ref.sizes["pairs"] == 2
    assert m["predicted"]["planted"]["effect_size_before"] == pytest.approx(ref.effect_size, abs=1e-9)
