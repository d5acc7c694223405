"""Bias measures are rows of one registry (biasaudit/measures/registry.py), WEAT among them: each row declares what
it needs (word vectors or any model, paired sets, a derivative to rank documents by, a significance test) and
``check_request`` checks a request against it once. A new measure is one file plus its registry line
(tests/toy_measure.py), run here through ``biasaudit measure`` and ``biasaudit.api.score`` as an influence target,
against independent oracles (its formula in NumPy, the exact permutation p, retraining)."""
import ast
import json
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from biasaudit import api
from biasaudit.errors import ConfigError
from biasaudit.measures.registry import MEASURES, check_request, get_measure, register
from biasaudit.planted import PLANTED_TEST
from biasaudit.wordsets import BiasTest
from conftest import run_cli

SMALL = dict(vector_size=16, window=3, min_count=2, epochs=20)
ROOT = Path(__file__).resolve().parent.parent / "biasaudit"


@pytest.fixture
def toy():
    """The toy measure registered (its file's last line), and removed from the registry afterwards."""
    from toy_measure import COS_GAP

    register(COS_GAP)
    yield COS_GAP
    MEASURES.pop(COS_GAP.name, None)
    MEASURES.pop("cos-gap-frozen", None)


@pytest.fixture(scope="module")
def planted_model(planted):
    corpus, _, _ = planted
    return corpus, api.train(corpus, api.model_config("skipgram", **SMALL))


def _oracle(model, test: dict):
    """cos-gap and its exact one-sided permutation p over A u B, from the formula, in float64."""
    vec = {w: np.asarray(model.vectors[model.key_to_index[w]], dtype=np.float64) for w in model.key_to_index}
    X, Y, A, B = ([vec[w] / np.linalg.norm(vec[w]) for w in test[f]["words"]]
                  for f in ("target_x", "target_y", "attribute_a", "attribute_b"))
    p = [np.mean([w @ x for x in X]) - np.mean([w @ y for y in Y]) for w in A + B]
    value = np.mean(p[:len(A)]) - np.mean(p[len(A):])
    splits = [np.mean([p[i] for i in c]) - np.mean([p[i] for i in range(len(p)) if i not in c])
              for c in combinations(range(len(p)), len(A))]
    return value, np.mean([s >= value - 1e-12 for s in splits])


def test_weat_is_a_row_that_declares_what_it_needs():
    weat, ripa, ect = get_measure("WEAT"), get_measure("ripa"), get_measure("ect")
    assert list(MEASURES)[:7] == ["weat", "ripa", "direct-bias", "rnd", "mac", "ect", "rnsb"]
    assert weat.symbol == "d" and weat.signed and weat.differentiable and weat.significance_test
    assert weat.bound_for(4, 4) == pytest.approx(np.sqrt(8 * 7 / 16)) and weat.strength(0.9) == "strong "
    assert not weat.word_vectors_only and ripa.word_vectors_only and ripa.paired and not weat.paired
    assert not ect.differentiable and not ect.significance_test
    lm = SimpleNamespace(word_vectors=False, label="GPT-2")
    assert check_request("weat", lm, target=True) is weat        # every family reads WEAT its own way
    with pytest.raises(ConfigError, match="--measure ripa, which reads word vectors; GPT-2 models"):
        check_request("ripa", lm, what="--measure ripa")
    with pytest.raises(ConfigError, match="ECT cannot be an influence target .*rank correlation"):
        check_request("ect", SimpleNamespace(word_vectors=True, label="x"), target=True)
    with pytest.raises(ConfigError, match="unknown measure 'nope': one of weat, ripa"):
        check_request("nope")


def test_no_branch_on_the_measure_name_outside_the_registry():
    """No ``== "weat"`` / ``!= "weat"`` / ``in ("weat", ...)`` in the library: the rows say what differs (the
    default measure is ``wordsets.DEFAULT_MEASURE``). The CLI's own option check is left to its split (issue 30)."""
    found = []
    for path in ROOT.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                consts = [c for c in [node.left, *node.comparators] for c in ast.walk(c)
                          if isinstance(c, ast.Constant) and c.value == "weat"]
                if consts:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_a_toy_measure_in_one_file_is_measured_like_the_built_in_ones(toy, planted_model, tmp_path):
    """``biasaudit measure --measure cos-gap``: the toy's value and exact p are the oracle's, with its label,
    convention and verdict; asked for every measure, it is one of them."""
    _, model = planted_model
    value, p = _oracle(model, PLANTED_TEST)
    vecs, test = tmp_path / "vecs.txt", tmp_path / "planted.json"
    words = list(model.key_to_index)
    vecs.write_text(f"{len(words)} {model.vectors.shape[1]}\n" + "".join(
        w + " " + " ".join(repr(float(v)) for v in model.vectors[model.key_to_index[w]]) + "\n" for w in words))
    test.write_text(json.dumps(PLANTED_TEST))
    r = run_cli("measure", vecs, "--test", test, "--measure", "cos-gap", "--json")
    assert r.returncode == 0, r
    (row,) = json.loads(r.stdout)["measures"]
    assert row["measure"] == row["metric"] == "cos-gap" and row["label"] == "Cosine gap"
    assert row["effect_size"] == pytest.approx(value, abs=1e-6) and abs(value) > 0.01
    assert row["p_value"] == pytest.approx(p) and row["exact"] and row["n_permutations"] == 20
    assert row["effect_size_convention"] == toy.convention and row["ci_low"] <= row["effect_size"] <= row["ci_high"]
    assert row["verdict"].startswith(f"Cosine gap = {value:+.3f} (")
    r = run_cli("measure", vecs, "--test", test, "--json")
    assert [m["measure"] for m in json.loads(r.stdout)["measures"]][-1] == "cos-gap", r


def test_a_toy_measure_ranks_documents_through_api_score(toy, planted_model, tmp_path):
    """``api.score(measure="cos-gap")``: the test's statistics are the toy's (the oracle), documents are ranked by
    its torch twin, and removing the ten that raise it most, retrained, lowers it (the oracle: retraining); a row
    without a torch twin is refused before any work."""
    corpus, model = planted_model
    value, p = _oracle(model, PLANTED_TEST)
    res = api.score(model, corpus, [PLANTED_TEST], measure="cos-gap", out=tmp_path / "s", resamples=0, report=False)
    (t,) = res["tests"]
    assert t["weat"]["metric"] == "cos-gap" and t["weat"]["effect_size"] == pytest.approx(value, abs=1e-6)
    assert t["bias_value"] == pytest.approx(value, abs=1e-5) and t["weat"]["p_value"] == pytest.approx(p)
    assert t["evidence"]["verdict"].startswith("Cosine gap = ") and res.summary["config"]["measure"] == "cos-gap"
    df = res.to_pandas()
    top = df.assign(toward_zero=np.sign(value) * df.delta_bias_if_removed).sort_values("toward_zero").doc_id[:10]
    after = api.train(corpus.without(top.tolist()), api.model_config("skipgram", **SMALL))
    moved = _oracle(after, PLANTED_TEST)[0] - value
    assert np.sign(moved) == -np.sign(value)

    register(replace(toy, name="cos-gap-frozen", torch_fn=None, no_derivative="a toy without a twin"))
    with pytest.raises(ConfigError, match="--measure cos-gap-frozen: Cosine gap cannot be an influence target "
                                          r"\(no useful derivative: a toy without a twin\)"):
        api.score(model, corpus, [PLANTED_TEST], measure="cos-gap-frozen", out=tmp_path / "f", resamples=0)
    assert not (tmp_path / "f").exists()


def test_measure_reads_weat_through_its_row(planted_model):
    """``measures.embedding.measure("weat", ...)`` is ``weat(...)``: WEAT's row carries its own statistics."""
    from biasaudit.measures.embedding import measure
    from biasaudit.measures.weat import weat

    _, model = planted_model
    t = BiasTest.from_dict(PLANTED_TEST)
    assert measure("weat", model, t, n_bootstrap=200).to_dict() == weat(model, t, n_bootstrap=200).to_dict()


def test_the_api_verb_of_biasaudit_measure(planted_model):
    """``api.measures`` (``biasaudit measure``'s verb) gives the measures asked for, its WEAT row equal to
    ``api.measure``'s (WEAT alone, ``biasaudit weat``), and ``measures_request`` refuses a family without word
    vectors before any training, in the API's words and the command line's."""
    _, model = planted_model
    res = api.measures(model, PLANTED_TEST, names="weat,ripa", n_bootstrap=100)
    assert {r["measure"] for r in res.rows} == {"weat", "ripa"} and res.skipped == {} and res.not_run == []
    weat = next(r for r in res.rows if r["measure"] == "weat")
    assert weat["effect_size"] == pytest.approx(api.measure(model, PLANTED_TEST, n_bootstrap=100).rows[0]
                                                ["effect_size"])
    names, tests = api.measures_request("skipgram", PLANTED_TEST, ["rnd", "mac"])
    assert list(names) == ["rnd", "mac"] and [t.name for t in tests] == [PLANTED_TEST["name"]]
    with pytest.raises(ConfigError, match="model='lm' has none") as e:
        api.measures_request("lm", PLANTED_TEST)
    assert "--model lm has none" in e.value.for_cli()
