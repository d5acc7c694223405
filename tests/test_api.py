"""The Python API: the same results as the command line, in-memory models, result folders that round-trip, names
that are documented, escaped notebook views, and an ``import biasaudit`` that loads no heavy library."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import biasaudit as ba
from biasaudit.errors import ArtifactError, ConfigError, CorpusError
from conftest import LM_TEMPLATES, LM_TEST, PLANTED_TEST, lm_planted_corpus, planted_corpus, run_cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
SMALL = dict(vector_size=16, window=3, min_count=2, epochs=2)
SMALL_ARGS = ["--vector-size", "16", "--window", "3", "--min-count", "2", "--epochs", "2"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The planted corpus and its test as files, and a model cache of the module's own."""
    d = tmp_path_factory.mktemp("api")
    corpus, _, _ = planted_corpus()
    f = d / "planted.jsonl"
    f.write_text("".join(json.dumps({"id": x.id, "text": x.text}) + "\n" for x in corpus), encoding="utf-8")
    t = d / "planted.json"
    t.write_text(json.dumps(PLANTED_TEST))
    return f, t, d / "cache"


@pytest.fixture(scope="module")
def scored(files, tmp_path_factory):
    """The same score run through the command line and through the API."""
    f, t, cache = files
    d = tmp_path_factory.mktemp("scored")
    p = run_cli("score", "--corpus", f, "--test", t, "--out", d / "cli", *SMALL_ARGS, cache=cache)
    assert p.returncode == 0, p
    corpus = ba.load_corpus(f)
    model = ba.train(corpus, cache=cache, **SMALL)
    return d / "cli", ba.score(model, corpus, [t], out=d / "api"), model, corpus


def _rows(folder):
    return [json.loads(line) for line in (Path(folder) / "scores.jsonl").read_text().splitlines()]


def test_import_loads_no_heavy_library():
    code = ("import sys, biasaudit; heavy = [m for m in ('torch', 'transformers', 'gensim', 'pandas', 'wefe', "
            "'dask', 'jinja2') if m in sys.modules]; print(','.join(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout + p.stderr


def test_every_public_name_has_a_docstring_and_a_line_in_the_docs():
    import biasaudit.debias  # noqa: F401  (a submodule's import must not hide an API name)
    import biasaudit.report  # noqa: F401

    doc = DOCS.read_text(encoding="utf-8")
    missing_doc = [n for n in ba.__all__ if not (getattr(ba, n).__doc__ or "").strip()]
    missing_line = [n for n in ba.__all__ if not re.search(rf"`{n}\b", doc)]
    assert not missing_doc, f"no docstring: {missing_doc}"
    assert not missing_line, f"not in docs/api.md: {missing_line}"
    assert callable(ba.debias_corpus) and callable(ba.write_report)
    assert sorted(ba.__all__) == sorted(ba.api.__all__)


def test_api_scores_equal_the_command_lines(scored):
    cli, res, _, _ = scored
    assert isinstance(res, ba.ScoreResult) and res.report_path.exists()
    assert _rows(res.folder) == _rows(cli)
    want = json.loads((cli / "summary.json").read_text())
    assert [t["top"] for t in res["tests"]] == [t["top"] for t in want["tests"]]
    assert res["check_command"] == want["check_command"]
    # the result object over the same rows
    assert res.tests == ["planted"] and len(res.scores) == len(_rows(cli))
    assert res.to_dict() == json.loads((res.folder / "summary.json").read_text())
    top = res.top(3)
    assert [r["rank"] for r in top] == [1, 2, 3]
    ups = sorted(r["delta_bias_if_removed"] for r in _rows(cli) if r["delta_bias_if_removed"] < 0)
    assert [r["delta_bias_if_removed"] for r in top] == ups[:3]
    assert all(r["delta_bias_if_removed"] > 0 for r in res.top(3, direction="down"))
    frame = res.to_pandas()
    assert len(frame) == len(res.scores) and frame.columns[0] == "doc_id"


def test_result_save_and_load_round_trip(scored, tmp_path):
    _, res, _, _ = scored
    copy = res.save(tmp_path / "copy")
    assert isinstance(copy, ba.ScoreResult) and copy.folder == tmp_path / "copy"
    back = ba.load_result(tmp_path / "copy")
    assert type(back) is ba.ScoreResult and back.summary == res.summary and list(back.scores) == list(res.scores)
    assert back.report().exists()
    again = ba.ScoreResult.load(tmp_path / "copy").save(tmp_path / "copy")     # saving onto itself: nothing to do
    assert again.folder == tmp_path / "copy"
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="did not write"):
        res.save(tmp_path / "theirs")
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "mine"


def test_notebook_view_escapes_a_hostile_document_id(scored, tmp_path):
    _, res, _, _ = scored
    folder = res.save(tmp_path / "hostile").folder
    summary = json.loads((folder / "summary.json").read_text())
    doc = summary["tests"][0]["top"]["increase_bias"][0]
    doc["doc_id"] = "<script>alert(1)</script>"
    doc["snippet"] = "zorbel <img src=x onerror=alert(2)> algebra"
    (folder / "summary.json").write_text(json.dumps(summary))
    page = ba.load_result(folder)._repr_html_()
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<svg" in page and "planted" in page          # the charts and the tests table
    rows = ba.api.Rows([{"doc_id": "<script>x</script>"}])
    assert "<script>" not in rows._repr_html_() and "&lt;script&gt;" in rows._repr_html_()


def test_in_memory_gensim_word2vec_is_scored(files, tmp_path):
    from gensim.models import Word2Vec

    f, _, cache = files
    corpus = ba.load_corpus(f)
    w2v = Word2Vec([d.text.split() for d in corpus], vector_size=16, window=3, min_count=2, sg=1, negative=5,
                   epochs=5, workers=1, seed=1)
    model = ba.from_gensim(w2v, corpus)
    assert model.config.vector_size == 16 and model.config.epochs == 5
    res = ba.score(model, corpus, PLANTED_TEST, out=tmp_path / "w2v", resamples=10)
    assert res["model_origin"]["kind"] == "gensim Word2Vec (in memory)" and res["check_command"] is None
    assert res.tests == ["planted"] and len(res.top(5)) == 5
    # the same vectors as KeyedVectors: measured (not scored), the same effect size
    kv = ba.measure(ba.from_gensim(w2v.wv), PLANTED_TEST, n_permutations=100, n_bootstrap=100)
    full = ba.measure(model, PLANTED_TEST, n_permutations=100, n_bootstrap=100)
    assert kv[0]["effect_size"] == pytest.approx(full[0]["effect_size"], abs=1e-12)
    assert kv.to_pandas()["test"].tolist() == ["planted"]
    # a corpus the model was not trained on: one clear error
    other = ba.load_corpus([("a", "zorbel algebra quintar poetry")] * 3, name="other")
    with pytest.raises(CorpusError, match="vocabulary does not match"):
        ba.from_gensim(w2v, other)


def test_ensemble_trains_the_missing_seeds(scored, files, tmp_path):
    _, _, model, corpus = scored
    seen = []
    res = ba.score(model, corpus, PLANTED_TEST, ensemble=2, resamples=0, out=tmp_path / "ens", report=False,
                   cache=files[2], on_model=lambda m, cfg, cached: seen.append(cfg.seed))
    assert seen == [2] and res["tests"][0]["ensemble"]["seeds"] == [1, 2]
    assert all("sign_agreement" in r for r in res.scores) and not res.report_path.exists()


def test_debias_through_the_api(scored, tmp_path):
    _, _, model, corpus = scored
    res = ba.debias_corpus(model, corpus, PLANTED_TEST, k="3", method="remove", out=tmp_path / "d", force=True,
                           select="top-k", target=0.0)     # 3 + 3 names: p >= 0.05; the whole k edited
    assert isinstance(res, ba.DebiasResult) and res.corpus_file.exists() and res.report_path.exists()
    assert sum(1 for _ in ba.load_corpus(res.corpus_file)) == sum(1 for _ in corpus) - 3
    assert [r["rank"] for r in res.top(10)] == [1, 2, 3] and len(res.to_pandas()) == 3
    back = ba.load_result(res.save(tmp_path / "d2").folder)
    assert type(back) is ba.DebiasResult and back.summary == res.summary
    assert "<svg" not in back._repr_html_() and "remove of the top 3" in back._repr_html_()


def test_bias_tests_from_names_dicts_and_wefe_queries():
    Query = pytest.importorskip("wefe.query").Query
    q = Query([["he", "man"], ["she", "woman"]], [["math", "algebra"], ["art", "poetry"]],
                         ["Male", "Female"], ["Math", "Arts"])
    tests = ba.bias_tests("math-arts", PLANTED_TEST, q)
    assert [t.name for t in tests] == ["math-arts", "planted", "Male and Female wrt Math and Arts"]
    assert tests[2].target_y.words == ("she", "woman") and tests[2].attribute_a.name == "Math"
    bad = Query([["he", "man"]], [["math", "algebra"], ["art", "poetry"]])
    with pytest.raises(ConfigError, match="2 target and 2 attribute sets"):
        ba.bias_tests(bad)
    assert [t.name for t in ba.bias_tests()] == ["math-arts", "science-arts", "career-family"]


def test_in_memory_hf_model_is_measured():
    pytest.importorskip("transformers")
    from biasaudit.models.lm import LMConfig, build_net, word_encoder

    corpus, _ = lm_planted_corpus(n_background=40, n_planted=10)
    enc = word_encoder(corpus, 1)
    net = build_net(LMConfig(hidden_size=16, num_layers=1, num_heads=2, max_len=16), len(enc))
    model = ba.from_hf(net, enc.hf_tokenizer())
    res = ba.measure(model, LM_TEST, templates=LM_TEMPLATES, n_permutations=50, n_bootstrap=100)
    assert res[0]["test"] == "planted" and abs(res[0]["effect_size"]) < 2.1


def test_wrong_inputs_are_one_clear_error(scored):
    _, _, model, corpus = scored
    with pytest.raises(ConfigError, match="either tests or query"):
        ba.score(model, corpus, PLANTED_TEST, query="zorbel")
    with pytest.raises(ConfigError, match="not a test name"):
        ba.bias_tests(3.5)
    with pytest.raises(ConfigError, match="from_gensim takes"):
        ba.from_gensim(object())
    with pytest.raises(ConfigError, match="not both"):
        ba.train(corpus, ba.model_config("skipgram"), vector_size=8)
