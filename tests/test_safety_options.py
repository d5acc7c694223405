"""Issue 33, the options a caller gives (holes 2 and 9 and their rough edges): counts bounded once for the API and
the command line, every measure of a run under its own name, a test file's measure field checked before any
training, and API arguments of the wrong kind refused in one line naming the argument."""
import json
from pathlib import Path

import numpy as np
import pytest

import biasaudit as ba
from biasaudit.errors import BiasAuditError, ConfigError
from biasaudit.wordsets import BiasTest
from conftest import LM_TEMPLATES, LM_TEST, PLANTED_TEST, lm_planted_corpus, planted_corpus, run_cli

SMALL = ["--vector-size", "8", "--window", "3", "--min-count", "2", "--epochs", "2"]


@pytest.fixture(scope="module")
def vectors():
    """Word vectors for the planted test's words (no training): an X-with-A lean plus noise."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(0)
    words = [w for f in ("target_x", "target_y", "attribute_a", "attribute_b") for w in PLANTED_TEST[f]["words"]]
    kv = KeyedVectors(16)
    kv.add_vectors(words, rng.normal(size=(len(words), 16)).astype(np.float32))
    return ba.from_gensim(kv)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small skip-gram model trained here and its corpus (seconds)."""
    corpus, _, _ = planted_corpus(n_background=60, n_planted=6, n_counter=2)
    corpus = ba.load_corpus([(d.id, d.text) for d in corpus])
    return ba.train(corpus, vector_size=8, window=3, min_count=2, epochs=2,
                    cache=tmp_path_factory.mktemp("cache")), corpus


@pytest.fixture(scope="module")
def lm():
    """A tiny language model held in memory (from_hf: no training config, one model) and its corpus."""
    pytest.importorskip("transformers")
    from biasaudit.models.lm import LMConfig, build_net, word_encoder

    corpus, _ = lm_planted_corpus(n_background=40, n_planted=10)
    enc = word_encoder(corpus, 1)
    net = build_net(LMConfig(hidden_size=16, num_layers=1, num_heads=2, max_len=16), len(enc))
    return ba.from_hf(net, enc.hf_tokenizer()), corpus


def small_corpus(path: Path) -> Path:
    corpus, _, _ = planted_corpus(n_background=60, n_planted=6, n_counter=2)
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    return path


def refused_before_training(p, cache: Path, *needles, code: int = 1):
    """The command exits ``code`` with one line holding every needle, and trained nothing (no model cache)."""
    assert p.returncode == code and "Traceback" not in p.stderr, p
    for n in needles:
        assert n in p.stderr, (n, p)
    assert not cache.exists(), "refused before any training"


# ------------------------------------------------------------------ hole 9: the API's counts are bounded
@pytest.mark.parametrize("kw, name", [
    ({"n_permutations": -5}, "n_permutations"), ({"n_permutations": 0}, "n_permutations"),
    ({"n_permutations": -1}, "n_permutations"), ({"n_bootstrap": 0}, "n_bootstrap"),
    ({"n_bootstrap": 99}, "n_bootstrap"), ({"n_bootstrap": 10 ** 9}, "n_bootstrap"),
    ({"n_permutations": 10 ** 12}, "n_permutations"), ({"n_bootstrap": 500.5}, "n_bootstrap"),
    ({"n_permutations": True}, "n_permutations"), ({"min_word_count": 0}, "min_word_count"),
    ({"min_word_count": -5}, "min_word_count")])     # score refused these; measure ran (found by an attack)
def test_measure_refuses_counts_out_of_range_naming_them(vectors, kw, name):
    with pytest.raises(ConfigError, match=rf"^{name} must be a whole number"):
        ba.measure(vectors, PLANTED_TEST, **kw)


def test_measure_within_the_bounds_keeps_its_numbers(vectors):
    """The bounds change nothing inside them: the smallest counts allowed run, and the default CI is a CI."""
    r = ba.measure(vectors, PLANTED_TEST, n_permutations=1, n_bootstrap=100)[0]
    full = ba.measure(vectors, PLANTED_TEST)[0]
    assert r["effect_size"] == full["effect_size"] and 0 < full["p_value"] <= 1
    assert full["ci_low"] < full["effect_size"] < full["ci_high"]


def test_bootstrap_in_chunks_is_bit_identical(monkeypatch):
    """The bootstraps run in chunks of resamples (memory flat in n_bootstrap): every resample's number is the one
    the whole block gave (WEAT's and ECT's vectorised paths)."""
    import biasaudit.measures.embedding as E
    import biasaudit.measures.weat as W

    rng = np.random.default_rng(3)
    blocks = [rng.normal(size=s) for s in ((9, 11), (9, 7), (12, 11), (12, 7))]
    X, Y, A, B = (rng.normal(size=(n, 6)) for n in (8, 8, 10, 9))
    whole = W.bootstrap_from_blocks(*blocks, n_boot=700), E.bootstrap(E.MEASURES["ect"], X, Y, A, B, 700)
    monkeypatch.setattr(W, "BOOTSTRAP_CHUNK", 500)
    monkeypatch.setattr(E, "BOOTSTRAP_CHUNK", 500)
    chunked = W.bootstrap_from_blocks(*blocks, n_boot=700), E.bootstrap(E.MEASURES["ect"], X, Y, A, B, 700)
    for a, b in zip(whole, chunked):
        assert len(a) == 700 and np.array_equal(a, b)


@pytest.mark.parametrize("args", [
    ["weat", "--bootstrap", "1000000"], ["weat", "--permutations", "100000000"], ["weat", "--seeds", "101"],
    ["measure", "--bootstrap", "1000000"], ["measure", "--permutations", "100000000"],
    ["score", "--ensemble", "1000000"], ["score", "--ensemble", "0"], ["score", "--seeds", "101"],
    ["score", "--resamples", "1000000"], ["experiment", "--ensemble", "101"], ["experiment", "--seeds", "1000"],
    ["debias", "--ensemble", "101"], ["debias", "--seeds", "101"]])
def test_counts_past_their_upper_bound_are_usage_errors(tmp_path, args):
    p = run_cli(*args, cache=tmp_path / "c", cwd=tmp_path)
    flag = next(a for a in args if a.startswith("--"))
    refused_before_training(p, tmp_path / "c", f"{flag} must be a whole number from", code=2)


@pytest.mark.parametrize("ensemble", [0, -1, 101])
def test_score_refuses_an_ensemble_out_of_range_as_experiment_does(trained, tmp_path, ensemble):
    """score(ensemble=0 or -1) ran one model quietly while experiment refused: both refuse, with one message."""
    model, corpus = trained
    messages = []
    for call in (lambda: ba.score(model, corpus, PLANTED_TEST, ensemble=ensemble, out=tmp_path / "s"),
                 lambda: ba.experiment(ba.model_config("skipgram"), corpus, PLANTED_TEST, ensemble=ensemble,
                                       dry_run=True)):
        with pytest.raises(ConfigError, match=r"^ensemble must be a whole number from 1 to 100") as e:
            call()
        messages.append(str(e.value))
    assert messages[0] == messages[1]


# ------------------------------------------------------------------ API arguments of the wrong kind
def test_wrong_kinds_of_api_arguments_are_one_error_naming_them(trained, tmp_path):
    model, corpus = trained
    cases = [
        (lambda: ba.measure(None, PLANTED_TEST), "model"),
        (lambda: ba.measure([], PLANTED_TEST), "model"),
        (lambda: ba.score(model, corpus, PLANTED_TEST, estimator=123), "estimator"),
        (lambda: ba.score(model, corpus, PLANTED_TEST, measure=None), "measure"),
        (lambda: ba.score(None, corpus, PLANTED_TEST), "model"),
        (lambda: ba.experiment(ba.model_config("skipgram"), corpus, PLANTED_TEST, k=5, dry_run=True), "k"),
        (lambda: ba.experiment(None, corpus, PLANTED_TEST, dry_run=True), "model"),
        (lambda: ba.debias_corpus(model, corpus, PLANTED_TEST, k=5, out=tmp_path / "d"), "k"),
        (lambda: ba.train_seeds(corpus, model.config, 10 ** 6), "n_seeds"),
        (lambda: ba.train_seeds(corpus, model.config, 0), "n_seeds"),
    ]
    for call, name in cases:
        with pytest.raises(BiasAuditError, match=rf"^{name}\b"):
            call()


def test_from_gensim_copies_the_callers_arrays_and_refuses_non_finite_settings():
    from gensim.models import Word2Vec

    sentences = [["zorbel", "studied", "algebra"], ["quintar", "loved", "poetry"]] * 20
    w2v = Word2Vec(sentences, vector_size=8, window=2, min_count=1, negative=2, sg=1, epochs=1, seed=1, workers=1)
    model = ba.from_gensim(w2v)
    kv_model = ba.from_gensim(w2v.wv)
    before = (model.vectors.copy(), model.output_vectors.copy(), kv_model.vectors.copy())
    w2v.wv.vectors[:] = 0          # the caller goes on using (or training) its model
    w2v.syn1neg[:] = 0
    assert np.array_equal(model.vectors, before[0]) and np.array_equal(model.output_vectors, before[1])
    assert np.array_equal(kv_model.vectors, before[2])
    for bad in (float("nan"), float("inf"), -float("inf")):
        w2v.ns_exponent = bad
        with pytest.raises(BiasAuditError, match="ns_exponent"):
            ba.from_gensim(w2v)


def test_no_next_command_retrains_a_fresh_model_for_a_checkpoint(lm):
    """The "next:" experiment command of a model without a training config (from_hf, --checkpoint) would rank
    with another model (a fresh LM): none is suggested."""
    from biasaudit.audit import check_command
    from biasaudit.influence.estimators import EstimatorConfig

    model, corpus = lm
    assert check_command(ba.load_corpus(corpus), [Path("t.json")], model, EstimatorConfig("ekfac")) is None


# ------------------------------------------------------------------ hole 2: every measure under its own name
def write_pairs(path: Path) -> Path:
    rows = [{"more": "zorbel studied algebra", "less": "quintar studied algebra"},
            {"more": "quintar loved poetry", "less": "zorbel loved poetry"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_pairs_file_named_like_a_test_is_refused_naming_both(lm, tmp_path):
    model, corpus = lm
    test = tmp_path / "t.json"
    test.write_text(json.dumps(LM_TEST))                       # the test is named "planted"
    pairs = write_pairs(tmp_path / "planted.jsonl")            # and so is the pair set (the file's stem)
    with pytest.raises(ConfigError, match=r"'planted' is named by test file .*t\.json and by pairs "
                                          r".*planted\.jsonl") as e:
        ba.score(model, corpus, [test], pairs=pairs, templates=LM_TEMPLATES, out=tmp_path / "s")
    assert "\n" not in str(e.value) and not (tmp_path / "s" / "scores.jsonl").exists()
    crows = tmp_path / "crows.json"
    crows.write_text(json.dumps({**LM_TEST, "name": "crows-pairs:gender"}))
    with pytest.raises(ConfigError, match=r"'crows-pairs:gender' is named by test file .*crows\.json and by "
                                          r"pairs crows-pairs \(crows-pairs:gender\)"):
        ba.score(model, corpus, [crows], pairs="crows-pairs", templates=LM_TEMPLATES, out=tmp_path / "s")
    other = tmp_path / "b"
    other.mkdir()
    with pytest.raises(ConfigError, match="named by pairs .*planted.jsonl .* and by pairs"):
        ba.score(model, corpus, None, pairs=[pairs, write_pairs(other / "planted.jsonl")], out=tmp_path / "s")


def test_the_command_line_refuses_a_shared_name_before_training(tmp_path):
    corpus, _ = lm_planted_corpus(n_background=20, n_planted=4)
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in corpus), encoding="utf-8")
    t = tmp_path / "t.json"
    t.write_text(json.dumps(LM_TEST))
    pairs = write_pairs(tmp_path / "planted.jsonl")
    p = run_cli("score", "--model", "lm", "-c", f, "-t", t, "--pairs", pairs, "--out", tmp_path / "s",
                cache=tmp_path / "c", cwd=tmp_path)
    refused_before_training(p, tmp_path / "c", "'planted' is named by test file", "and by pairs")
    assert len(p.stderr.strip().splitlines()) == 1, p


def test_test_names_given_twice_name_both_sources(tmp_path):
    from biasaudit.wordsets import resolve_tests

    f = tmp_path / "mine.json"
    f.write_text(json.dumps({**PLANTED_TEST, "name": "math-arts"}))
    with pytest.raises(ConfigError, match=r"'math-arts' is named by bundled test math-arts and by test file "
                                          r".*mine\.json"):
        resolve_tests(["math-arts", str(f)])


# ------------------------------------------------------------------ a test file's measure field
def carrying_file(tmp_path: Path, name: str, **fields) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**PLANTED_TEST, "name": name, **fields}))
    return path


@pytest.mark.parametrize("command", ["score", "debias"])
@pytest.mark.parametrize("measure", ["ect", "rnsb"])
def test_a_carried_measure_that_cannot_rank_is_refused_before_training(tmp_path, command, measure):
    t = carrying_file(tmp_path, "carried", measure=measure)
    p = run_cli(command, "-c", small_corpus(tmp_path / "c.jsonl"), "-t", t, "--out", tmp_path / "o", *SMALL,
                cache=tmp_path / "c", cwd=tmp_path)
    refused_before_training(p, tmp_path / "c", "'carried' carries measure", "cannot be an influence target")


def test_a_carried_measure_that_cannot_rank_is_refused_by_the_api_before_training(trained, tmp_path):
    t = carrying_file(tmp_path, "carried", measure="ect")
    model, corpus = trained
    with pytest.raises(ConfigError, match="cannot be an influence target"):
        ba.experiment(ba.model_config("skipgram"), corpus, [t], dry_run=True)
    trainings = []
    for call in (lambda: ba.score(model, corpus, [t], seeds=2, out=tmp_path / "s",
                                  on_model=lambda *a: trainings.append(a)),
                 lambda: ba.debias_corpus(model, corpus, [t], ensemble=2, out=tmp_path / "d",
                                          on_model=lambda *a: trainings.append(a))):
        with pytest.raises(ConfigError, match="cannot be an influence target"):
            call()
    assert trainings == [], "refused before any other seed was trained"


def test_bad_templates_are_refused_before_training(lm, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("no slots here\n")
    p = run_cli("weat", "--model", "lm", "-c", small_corpus(tmp_path / "c.jsonl"), "-t",
                carrying_file(tmp_path, "lm", **{k: LM_TEST[k] for k in LM_TEST if k != "name"}), "--templates", bad,
                cache=tmp_path / "c", cwd=tmp_path)
    refused_before_training(p, tmp_path / "c", "must hold {target} and {attribute}")
    model, _ = lm
    for bad_list in (["no slots here"], [3], "{target} {attribute}".split()):
        with pytest.raises(ConfigError, match="template"):
            ba.measure(model, LM_TEST, templates=bad_list)


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_paired_must_be_a_json_boolean(value):
    with pytest.raises(ConfigError, match="field paired must be true or false"):
        BiasTest.from_dict({**PLANTED_TEST, "measure": "ripa", "paired": value}, "t.json")
    assert BiasTest.from_dict({**PLANTED_TEST, "measure": "ripa", "paired": False}, "t.json").paired is False


def test_a_misspelt_carried_measure_is_refused_by_every_command(vectors, tmp_path):
    t = carrying_file(tmp_path, "typo", measure="ripaa")
    with pytest.raises(ConfigError, match="test 'typo': unknown measure 'ripaa'"):
        ba.measure(vectors, [t])
    for command in ("weat", "measure", "score"):
        p = run_cli(command, "-c", small_corpus(tmp_path / "c.jsonl"), "-t", t, *SMALL, cache=tmp_path / "c",
                    cwd=tmp_path)
        refused_before_training(p, tmp_path / "c", "unknown measure 'ripaa'")
