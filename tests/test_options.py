"""Options objects (issue 30 item 2): ``ScoreOptions`` and ``DebiasOptions`` are frozen, refuse a bad field with one
ConfigError naming it, and a run given one writes what the former keyword call wrote."""
import dataclasses
import json

import pytest

from biasaudit.audit import ScoreOptions, run_score
from biasaudit.debias import DebiasOptions, run_debias
from biasaudit.errors import ConfigError
from biasaudit.influence.estimators import EstimatorConfig
from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
from biasaudit.wordsets import BiasTest
from conftest import PLANTED_TEST, planted_corpus

TEST = BiasTest.from_dict(PLANTED_TEST)


@pytest.fixture(scope="module")
def trained():
    corpus, _, _ = planted_corpus()
    return corpus, train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=20, seed=1))


@pytest.mark.parametrize("cls, field, value", [
    (ScoreOptions, "ensemble", 0), (ScoreOptions, "n_resamples", -1), (ScoreOptions, "top", 0),
    (ScoreOptions, "min_word_count", 0), (ScoreOptions, "estimator", "block"), (ScoreOptions, "query", "word"),
    (DebiasOptions, "method", "delete"), (DebiasOptions, "select", "best"), (DebiasOptions, "target", -1.0),
    (DebiasOptions, "verify", -1), (DebiasOptions, "estimator", 3)])
def test_a_bad_field_is_one_config_error_naming_it(cls, field, value):
    with pytest.raises(ConfigError, match=rf"^(--)?{field}\b"):
        cls(**{field: value})


def test_options_are_frozen_and_a_query_takes_one_model():
    o = ScoreOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.top = 3
    with pytest.raises(ConfigError, match="^ensemble ranks by bias tests"):
        ScoreOptions(query=("math", ("he",), ("she",)), ensemble=2)
    with pytest.raises(ConfigError, match="not both"):
        run_score(None, None, [], ScoreOptions(), top=3)
    with pytest.raises(ConfigError, match="unknown tops"):
        ScoreOptions.from_keywords(tops=3)


def test_score_and_debias_with_options_write_what_the_keyword_calls_wrote(trained, tmp_path):
    import biasaudit as ba

    corpus, model = trained
    run_score(model, corpus, [TEST], EstimatorConfig(), out_dir=tmp_path / "kw", top=4, n_resamples=0)
    run_score(model, corpus, [TEST], ScoreOptions(EstimatorConfig(), out_dir=tmp_path / "opt", top=4, n_resamples=0))
    ba.score(model, corpus, TEST, options=ScoreOptions(EstimatorConfig(), out_dir=tmp_path / "api", top=4,
                                                       n_resamples=0), report=False)
    kw = (tmp_path / "kw" / "scores.jsonl").read_bytes()
    assert kw and kw == (tmp_path / "opt" / "scores.jsonl").read_bytes()
    assert kw == (tmp_path / "api" / "scores.jsonl").read_bytes()
    top = lambda p: [{k: [d["doc_id"] for d in v] for k, v in t["top"].items()} for t in
                     json.loads((p / "summary.json").read_text())["tests"]]
    assert top(tmp_path / "kw") == top(tmp_path / "opt") == top(tmp_path / "api")
    with pytest.raises(ConfigError, match="^options: give the settings"):
        ba.score(model, corpus, TEST, options=ScoreOptions(), top=3)

    _, a = run_debias(model, corpus, [TEST], EstimatorConfig(), "6", "remove", out_dir=tmp_path / "d1", force=True)
    _, b = run_debias(model, corpus, [TEST], DebiasOptions(EstimatorConfig(), k="6", method="remove",
                                                           out_dir=tmp_path / "d2", force=True))
    assert a["predicted"] == b["predicted"] and a["edited"] == b["edited"] and a["edited"]


def test_debias_corpus_takes_options_or_keywords_not_both(trained, tmp_path):
    import biasaudit as ba

    corpus, model = trained
    kw = ba.debias_corpus(model, corpus, TEST, k="6", method="remove", force=True, out=tmp_path / "kw", report=False)
    opt = ba.debias_corpus(model, corpus, TEST, options=DebiasOptions(EstimatorConfig(), k="6", method="remove",
                                                                       force=True, out_dir=tmp_path / "opt"),
                           report=False)
    assert (tmp_path / "kw" / "corpus.jsonl").read_bytes() == (tmp_path / "opt" / "corpus.jsonl").read_bytes()
    assert kw["predicted"] == opt["predicted"]
    with pytest.raises(ConfigError, match="^options: give the settings"):
        ba.debias_corpus(model, corpus, TEST, options=DebiasOptions(), k="6")
    with pytest.raises(ConfigError, match="^overwrite"):
        ba.debias_corpus(model, corpus, TEST, overwrite="no", out=tmp_path / "x")


def test_experiment_takes_an_experiment_spec_or_keywords_not_both(trained, tmp_path):
    import biasaudit as ba
    from biasaudit.experiments import ExperimentSpec

    corpus, model = trained
    kw = ba.experiment(model, corpus, TEST, k="1%", seeds=2, conditions="baseline,remove-top", out=tmp_path / "e",
                       dry_run=True)
    spec = ExperimentSpec(corpus=corpus, model=model.config, tests=[TEST], heldout={}, estimators=[EstimatorConfig()],
                          ks="1%",
                          seeds=2, conditions=("baseline", "remove-top"))
    opt = ba.experiment(model, None, options=spec, out=tmp_path / "e", dry_run=True)
    assert kw.trainings == opt.trainings > 0
    with pytest.raises(ConfigError, match=r"^options: .*\(seeds, corpus\)"):
        ba.experiment(model, corpus, options=spec, seeds=3, dry_run=True)
    with pytest.raises(ConfigError, match="^upweight"):
        ba.experiment(model, corpus, TEST, upweight="5", dry_run=True)
