"""Model families are rows of one registry (biasaudit/models/base.py): each declares what it is (its config, its
objective kind, its modes) and implements what its declarations require. A new family is one file plus its
registry line (tests/toy_family.py: ``cooc``, document co-occurrence vectors with no training loss), trained here
through ``biasaudit.api``, measured and scored against oracles: WEAT by hand on its vectors, the lexical floor's
support (its only estimator), the planted documents."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from biasaudit import api
from biasaudit.errors import ConfigError
from biasaudit.influence.estimators import estimators_for
from biasaudit.influence.lexical import cooccurrence_support
from biasaudit.models.base import FAMILIES
from biasaudit.planted import PLANTED_TEST, planted_corpus
from biasaudit.wordsets import BiasTest


@pytest.fixture
def toy():
    """The toy family registered (its file's last line), and removed from the registry afterwards."""
    from toy_family import FAMILY, CoocModel

    FAMILIES[FAMILY.name] = FAMILY
    yield CoocModel
    FAMILIES.pop(FAMILY.name, None)


def _weat(model, test: dict) -> float:
    """WEAT's d from its formula, in float64: s(w) = mean cos(w, A) - mean cos(w, B), d = (mean_X s - mean_Y s) /
    sd(s over X u Y, ddof=1)."""
    unit = {w: v / np.linalg.norm(v) for w, v in zip(model.index_to_key, np.asarray(model.vectors, np.float64))}
    X, Y, A, B = ([unit[w] for w in test[f]["words"]] for f in ("target_x", "target_y", "attribute_a", "attribute_b"))
    s = [np.mean([w @ a for a in A]) - np.mean([w @ b for b in B]) for w in X + Y]
    return (np.mean(s[:len(X)]) - np.mean(s[len(X):])) / np.std(s, ddof=1)


def test_a_toy_family_in_one_file_is_trained_measured_and_scored_through_the_api(toy, tmp_path):
    from test_layers import test_every_family_implements_what_it_declares

    test_every_family_implements_what_it_declares()     # with the toy registered: it implements what it declares
    corpus, planted, counter = planted_corpus()
    config = api.model_config("cooc", vector_size=24, min_count=2)
    with pytest.raises(ConfigError, match=r"window is not an option of model='cooc' \(its options: min_count, seed, "
                                          r"vector_size\)"):
        api.model_config("cooc", window=3)
    with pytest.raises(ConfigError, match="CoocConfig.vector_size must be a whole number from 1 to 100,000, got 0"):
        api.model_config("cooc", vector_size=0)
    model, other = api.train_seeds(corpus, config, 2, cache=tmp_path / "cache")
    assert isinstance(model, toy) and model.vectors.shape == (len(model.vocab), 24) == other.vectors.shape
    assert {"zorbel", "algebra", "painting"} <= set(model.key_to_index) and other.config.seed == 2
    # the vectors are the documents' counts C (V, n_docs), counted here by hand, times the seeded projection
    docs = [corpus.tokenizer(doc) for doc in corpus]
    C = np.array([[toks.count(w) for toks in docs] for w in model.index_to_key], dtype=np.float64)
    for m in (model, other):
        R = np.random.default_rng(m.config.seed).standard_normal((len(docs), 24)) / np.sqrt(24)
        assert np.allclose(m.vectors, C @ R, rtol=1e-5, atol=1e-4)
    assert not np.array_equal(model.vectors, other.vectors)
    again = api.train(corpus, config, cache=tmp_path / "cache")      # the cache: the same model
    assert np.array_equal(again.vectors, model.vectors)
    model.save(tmp_path / "model")
    loaded = api.load_model(tmp_path / "model")                       # the family recognises its folder
    assert isinstance(loaded, toy) and np.array_equal(loaded.vectors, model.vectors)
    assert loaded.config == model.config and loaded.index_to_key == model.index_to_key

    d = _weat(model, PLANTED_TEST)
    (row,) = api.measure(model, PLANTED_TEST, n_bootstrap=100).rows
    assert row["effect_size"] == pytest.approx(d, abs=1e-6) and row["sizes"] == {"x": 3, "y": 3, "a": 3, "b": 3}

    res = api.score(model, corpus, PLANTED_TEST, estimator="lexical", resamples=0, out=tmp_path / "s", report=False)
    rows = [json.loads(line) for line in (tmp_path / "s" / "scores.jsonl").read_text().splitlines()]
    (t,) = res["tests"]
    assert t["weat"]["effect_size"] == pytest.approx(d, abs=1e-6) and t["bias_value"] == pytest.approx(d, abs=1e-5)
    # the lexical ranking: -|d| s(doc) / sum |s|, s each document's target-then-attribute support; scores.jsonl
    # holds one row per (document, test) with a non-zero score (docs/outputs.md)
    measure = SimpleNamespace(name="planted", test=BiasTest.from_dict(PLANTED_TEST))
    ids, support = cooccurrence_support(corpus, [measure])
    s = support["planted"]
    want = {i: -abs(t["bias_value"]) * v / np.abs(s).sum() for i, v in zip(ids, s) if v != 0}
    got = {r["doc_id"]: r["delta_bias_if_removed"] for r in rows}
    assert {r["test"] for r in rows} == {"planted"} and len(rows) == len(got) == len(want) > len(planted)
    assert got == pytest.approx(want, rel=1e-9, abs=0)
    order = sorted(got, key=got.get)
    assert set(order[:len(planted)]) == planted and set(order[-len(counter):]) == counter
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["config"]["estimator"]["name"] == "lexical"

    # its declarations decide which estimators fit: no loss, so only the corpus-only ones
    assert estimators_for(FAMILIES["cooc"]) == ["lexical"]
    for spec, fits in (("block", "model='skipgram' and model='glove'"), ("ekfac", "model='lm'")):
        with pytest.raises(ConfigError) as e:
            api.score(model, corpus, PLANTED_TEST, estimator=spec, out=tmp_path / spec)
        assert str(e.value) == f"estimator {spec!r} is for {fits}; model='cooc' takes lexical"
        assert not (tmp_path / spec).exists()

