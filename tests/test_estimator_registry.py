"""Estimators are registered config classes (influence/estimators.py): each has its own settings and refuses
others naming its own; whether it fits a family is decided once from what it declares; ``score_model`` calls the
scorer it registers. A new estimator is one file plus its registry line (tests/toy_estimator.py), run here through
``biasaudit.api.score`` end to end; the dicts written into result files are those of the one flat config before."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

import biasaudit as ba
from biasaudit.errors import ConfigError
from biasaudit.influence.estimators import (ESTIMATORS, EstimatorConfig, check_estimators, estimators_for,
                                            parse_estimators)
from conftest import PLANTED_TEST, planted_corpus

SMALL = dict(vector_size=16, window=3, min_count=2, epochs=2)
ROOT = Path(__file__).resolve().parent.parent / "biasaudit"


@pytest.fixture
def toy():
    """The toy estimator registered (its file's decorator), and removed from the registry afterwards."""
    from toy_estimator import ScaledGradientDotConfig

    ESTIMATORS[ScaledGradientDotConfig.name] = ScaledGradientDotConfig
    yield ScaledGradientDotConfig
    ESTIMATORS.pop(ScaledGradientDotConfig.name, None)


def _rows(folder):
    return [json.loads(line) for line in (Path(folder) / "scores.jsonl").read_text().splitlines()]


def test_a_toy_estimator_in_one_file_runs_through_the_api_score(toy, tmp_path):
    corpus, _, _ = planted_corpus()
    model = ba.train(corpus, cache=tmp_path / "cache", **SMALL)
    ref = ba.score(model, corpus, PLANTED_TEST, estimator="gradient-dot", resamples=0, out=tmp_path / "gd",
                   report=False)
    res = ba.score(model, corpus, PLANTED_TEST, estimator="scaled-gradient-dot:scale=2.5", resamples=0,
                   out=tmp_path / "toy", report=False)
    a, b = _rows(tmp_path / "gd"), _rows(tmp_path / "toy")
    assert [(r["doc_id"], r["test"]) for r in a] == [(r["doc_id"], r["test"]) for r in b] and len(a) > 100
    got = np.array([r["delta_bias_if_removed"] for r in b])
    want = 2.5 * np.array([r["delta_bias_if_removed"] for r in a])
    assert np.any(want != 0) and np.allclose(got, want, rtol=1e-12, atol=0)
    summary = json.loads((tmp_path / "toy" / "summary.json").read_text())
    assert summary["config"]["estimator"] == {"name": "scaled-gradient-dot", "scale": 2.5}
    assert res.tests == ref.tests == ["planted"]
    # its declarations decide where it fits: word-vector objectives, not a language model's task
    from biasaudit.models import FAMILIES

    assert estimators_for(FAMILIES["glove"])[-1] == "scaled-gradient-dot"
    with pytest.raises(ConfigError, match="'scaled-gradient-dot' is for embeddings; model='lm' takes ekfac, "
                                          "gradient-dot, magic and lexical"):
        check_estimators([toy(scale=2.0)], FAMILIES["lm"])
    with pytest.raises(ConfigError, match=r"damping is a setting of block, cg, lissa and ekfac, not of "
                                          r"scaled-gradient-dot \(scaled-gradient-dot's settings: scale\)"):
        EstimatorConfig(name="scaled-gradient-dot", damping=1.0)
    with pytest.raises(ConfigError, match="scale must be > 0"):
        parse_estimators("scaled-gradient-dot:scale=-1")


@pytest.mark.parametrize("spec, own", [("block:max_iter=9", "block's settings: damping, anchor"),
                                       ("gradient-dot:damping=0.5", "gradient-dot takes no settings"),
                                       ("ekfac:tol=0.1", "ekfac's settings: damping"),
                                       ("magic:seed=2", "magic's settings: metasmoothness"),
                                       ("lexical:damping=1", "lexical takes no settings"),
                                       ("cg:lissa_depth=10", "cg's settings: damping, params, hessian, max_iter, "
                                                             "tol, seed, noise_top, noise_tail")])
def test_a_setting_of_another_estimator_is_refused_naming_the_estimators_own(spec, own):
    """The one flat config took every setting and each estimator ignored most (block:max_iter=9 ran as block)."""
    with pytest.raises(ConfigError) as e:
        parse_estimators(spec)
    assert own in str(e.value) and "\n" not in str(e.value)
    name, _, setting = spec.partition(":")
    k, _, v = setting.partition("=")
    with pytest.raises(ConfigError, match=re.escape(own)):
        EstimatorConfig(name=name, **{k: float(v)})


def test_the_dicts_written_into_result_files_are_the_flat_ones_of_before():
    """summary.json, experiment.json, manifests, ranking-cache keys and resume checks hold to_dict(): byte for byte
    what the one flat EstimatorConfig wrote (its 16 settings in its order, metasmoothness only when set)."""
    flat = ('{"name": "%s", "damping": %s, "params": "test-inputs", "hessian": "gauss-newton", "max_iter": %s, '
            '"tol": 0.001, "lissa_scale": 25.0, "lissa_depth": 5000, "lissa_repeats": 10, "lissa_batch": 4096, '
            '"lissa_rows": 256, "seed": 0, "noise_top": 4000, "noise_tail": 1000, %s"anchor": "%s"}')
    cases = {"block": flat % ("block", "0.1", 100, "", "trained"),
             "block:damping=0.01,anchor=optimum": flat % ("block", "0.01", 100, "", "optimum"),
             "cg:damping=0.5,max_iter=7": flat % ("cg", "0.5", 7, "", "trained"),
             "gradient-dot": flat % ("gradient-dot", "0.1", 100, "", "trained"),
             "ekfac:damping=1": flat % ("ekfac", "1.0", 100, "", "trained"),
             "magic:metasmoothness=2": flat % ("magic", "0.1", 100, '"metasmoothness": 2, ', "trained"),
             "lexical": flat % ("lexical", "0.1", 100, "", "trained")}
    for spec, want in cases.items():
        (est,) = parse_estimators(spec)
        assert json.dumps(est.to_dict()) == want, spec
    labels = [e.label for e in parse_estimators("block,cg:damping=0.5,lissa,gradient-dot,ekfac,magic,lexical,"
                                                "block:anchor=optimum")]
    assert labels == ["block:damping=0.1", "cg:damping=0.5", "lissa:damping=0.1", "gradient-dot", "ekfac:damping=0.1",
                      "magic", "lexical", "block:damping=0.1,anchor=optimum"]
    assert type(EstimatorConfig()).__name__ == "BlockConfig" and EstimatorConfig(name="cg", max_iter=7) == \
        parse_estimators("cg:max_iter=7")[0]


def test_which_estimators_fit_a_family_follows_from_their_declarations():
    from biasaudit.models import FAMILIES

    assert {n: estimators_for(f) for n, f in FAMILIES.items()} == {
        "skipgram": ["block", "cg", "lissa", "gradient-dot", "magic", "lexical"],
        "glove": ["block", "cg", "gradient-dot", "magic", "lexical"],
        "lm": ["ekfac", "gradient-dot", "magic", "lexical"], "vectors": ["lexical"]}
    with pytest.raises(ConfigError, match="'lissa' is for model='skipgram'; model='glove' takes block, cg, "
                                          "gradient-dot, magic and lexical") as e:
        check_estimators(parse_estimators("lissa"), FAMILIES["glove"])
    # the API's words above; the command line prints its own (issue 32: Python errors name the API's arguments)
    assert e.value.for_cli() == ("estimator 'lissa' is for --model skipgram; --model glove takes block, cg, "
                                 "gradient-dot, magic and lexical")


def test_no_code_branches_on_an_estimator_name():
    """What an estimator does is read from its declarations (serves, solve, group_predictions), not its name."""
    branch = re.compile(r"\b(?:estimator|est|config|cfg|e)\.name\s*(?:==|!=)\s*[\"']|"
                        r"\b(?:estimator|est|config|cfg|e)\.name\s+(?:not\s+)?in\s+\(")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in ROOT.rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if branch.search(line)]
    assert not hits, hits
