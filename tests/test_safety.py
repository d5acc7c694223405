"""Hostile input and OS faults: no code from model files, no deleted user files, one-line errors that name the file
and the cause, outputs that are complete or absent, and nothing from input reaching the terminal raw."""
import json
import os
import pickle
import shutil
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from biasaudit.corpus import Document, MemoryCorpus, load_corpus
from biasaudit.errors import ArtifactError, ConfigError, CorpusError, VocabularyError
from biasaudit.io import MANIFEST
from biasaudit.models.keyed import load_embeddings
from biasaudit.wordsets import BiasTest, resolve_tests
from conftest import PLANTED_TEST, planted_corpus, run_cli

SMALL = ["--vector-size", "8", "--window", "3", "--min-count", "2", "--epochs", "2"]


def one_line_error(p, *needles):
    """Exit 1, exactly one line on stderr that starts with 'error:' and holds every needle, no traceback."""
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error:")]
    assert p.returncode == 1, p
    assert len(errors) == 1 and lines[-1] == errors[0], p   # the error is one line, and the last
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in errors[0], (n, p)


def write_jsonl(path, docs):
    path.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety")
    corpus, planted, _ = planted_corpus(n_background=120, n_planted=12, n_counter=3)
    f = write_jsonl(d / "planted.jsonl", corpus)
    t = d / "planted.json"
    t.write_text(json.dumps(PLANTED_TEST))
    return f, t


# ------------------------------------------------------------------ 1. no code from model files
class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _payloads():
    """Each pickle protocol's own payload, plus the dotted-name forms (protocol 4's STACK_GLOBAL and protocol 0's
    GLOBAL) that resolved os.system inside gensim.utils."""
    out = {f"protocol{p}": pickle.dumps(Evil(), protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)}
    out["protocol4-dotted"] = b"\x80\x04\x8c\x0cgensim.utils\x8c\x09os.system\x93\x8c\x0btouch PWNED\x85R."
    out["protocol0-dotted"] = b"cgensim.utils\nos.system\n(S'touch PWNED'\ntR."
    out["protocol2-dotted"] = b"\x80\x02cgensim.utils\nos.system\nq\x00X\x0b\x00\x00\x00touch PWNEDq\x01\x85q\x02Rq\x03."
    return out


@pytest.mark.parametrize("name", sorted(_payloads()))
def test_no_pickle_payload_runs(tmp_path, name):
    f = tmp_path / "e.model"
    f.write_bytes(_payloads()[name])
    p = run_cli("weat", f, cwd=tmp_path)
    one_line_error(p, "e.model")
    assert "refusing" in p.stderr
    assert not (tmp_path / "PWNED").exists()


def test_payload_in_front_of_or_after_a_real_file_is_refused(tmp_path):
    from gensim.models import KeyedVectors
    kv = KeyedVectors(4)
    kv.add_vectors(["a", "b", "c"], np.eye(3, 4, dtype=np.float32))
    kv.save(str(tmp_path / "real.kv"))
    real = (tmp_path / "real.kv").read_bytes()
    (tmp_path / "front.kv").write_bytes(_payloads()["protocol4-dotted"] + real)
    (tmp_path / "back.kv").write_bytes(real + _payloads()["protocol4"])
    for name, msg in (("front.kv", "refusing"), ("back.kv", "bytes after the pickle")):
        with pytest.raises(ArtifactError, match=msg):
            load_embeddings(tmp_path / name)
    assert not (tmp_path / "PWNED").exists()
    assert load_embeddings(tmp_path / "real.kv").index_to_key == ("a", "b", "c")


def test_gensim_files_with_side_arrays_load_without_pickle(tmp_path):
    """A Word2Vec saved with its arrays beside it (gensim's sep_limit) loads; the .npy files are read with
    allow_pickle=False, so an object array there is refused."""
    from gensim.models import Word2Vec
    w2v = Word2Vec([["a", "b", "c", "d"]] * 20, vector_size=4, min_count=1, workers=1, epochs=1)
    w2v.save(str(tmp_path / "w.model"), sep_limit=0)
    assert (tmp_path / "w.model.wv.vectors.npy").exists()
    got = load_embeddings(tmp_path / "w.model")
    np.testing.assert_array_equal(got.vectors, w2v.wv.vectors)
    np.save(tmp_path / "w.model.wv.vectors.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(ArtifactError, match="not a readable array"):
        load_embeddings(tmp_path / "w.model")


# ------------------------------------------------------------------ 2. no deleted user files
def test_train_never_deletes_a_users_files(tmp_path, files):
    f, _ = files
    here = tmp_path / "work"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    p = run_cli("train", "-c", f, "--out", ".", "--overwrite", *SMALL, cache=tmp_path / "c", cwd=here)
    one_line_error(p, "notes.txt", "choose a new or empty folder")
    assert "--overwrite" not in p.stderr.split("error:")[1]
    assert (here / "notes.txt").read_text() == "mine" and sorted(os.listdir(here)) == ["notes.txt"]
    # a model folder: the same config again, then another config with --overwrite; a file the user put there stays
    m = tmp_path / "model"
    assert run_cli("train", "-c", f, "--out", m, *SMALL, cache=tmp_path / "c").returncode == 0
    (m / "README.txt").write_text("my notes on this model")
    assert run_cli("train", "-c", f, "--out", m, *SMALL, cache=tmp_path / "c").returncode == 0
    p = run_cli("train", "-c", f, "--out", m, *SMALL[:-1], "3", cache=tmp_path / "c")
    one_line_error(p, "another config", "--overwrite")
    p = run_cli("train", "-c", f, "--out", m, *SMALL[:-1], "3", "--overwrite", cache=tmp_path / "c")
    assert p.returncode == 0, p
    assert (m / "README.txt").read_text() == "my notes on this model"
    assert json.loads((m / "config.json").read_text())["config"]["epochs"] == 3
    assert not [x for x in tmp_path.rglob("*tmp-biasaudit*")], "no temporary folder left behind"


def test_score_overwrite_touches_only_its_own_files(tmp_path, files):
    f, t = files
    out = tmp_path / "s"
    assert run_cli("score", "-c", f, "-t", t, "--out", out, *SMALL, cache=tmp_path / "c").returncode == 0
    (out / "mine.csv").write_text("keep me")
    p = run_cli("score", "-c", f, "-t", t, "--out", out, "--estimator", "gradient-dot", *SMALL, cache=tmp_path / "c")
    one_line_error(p, "another config")
    p = run_cli("score", "-c", f, "-t", t, "--out", out, "--estimator", "gradient-dot", "--overwrite", *SMALL,
                cache=tmp_path / "c")
    assert p.returncode == 0, p
    assert (out / "mine.csv").read_text() == "keep me"
    assert json.loads((out / "config.json").read_text())["estimator"]["name"] == "gradient-dot"
    assert json.loads((out / MANIFEST).read_text())["complete"] is True


# ------------------------------------------------------------------ 3. no stale rankings
def test_experiment_overwrite_never_reuses_rankings_of_another_corpus(tmp_path, files):
    f, t = files
    small = tmp_path / "small.jsonl"
    corpus, _, _ = planted_corpus(n_background=30, n_planted=4, n_counter=1)
    write_jsonl(small, corpus)
    args = ["experiment", "-t", t, "--k", "3", "--seeds", "1", "--no-quality", "--scheduler", "none",
            "--conditions", "baseline,remove-top", "--out", tmp_path / "e", *SMALL]
    assert run_cli(*args, "-c", small, cache=tmp_path / "c").returncode == 0
    p = run_cli(*args, "-c", f, "--overwrite", cache=tmp_path / "c")
    assert p.returncode == 0, p
    assert "reusing the rankings" not in p.stderr
    saved = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert len(saved["doc_ids"]) == len(list(load_corpus(f)))
    rows = (tmp_path / "e" / "results.csv").read_text().splitlines()
    assert all(",remove-top,3,3," in r for r in rows if ",remove-top," in r)
    ids = tmp_path / "ids.txt"
    ids.write_text("bg1\nno-such-document\n")
    p = run_cli("experiment", "-t", t, "--k", "3", "--seeds", "1", "--no-quality", "--scheduler", "none",
                "--conditions", "baseline,remove-ids", "--remove-ids", ids, "--out", tmp_path / "e2", *SMALL, "-c", f,
                cache=tmp_path / "c")
    one_line_error(p, "not in corpus", "no-such-document")


# ------------------------------------------------------------------ 4. paths are paths
def test_an_existing_path_is_never_a_glob(tmp_path):
    write_jsonl(tmp_path / "corpus2.jsonl", [Document("a", "wrong file")])
    write_jsonl(tmp_path / "corpus[2024].jsonl", [Document("b", "right file")])
    write_jsonl(tmp_path / "a*b.jsonl", [Document("c", "literal star")])
    write_jsonl(tmp_path / "aXb.jsonl", [Document("d", "not me")])
    assert [d.text for d in load_corpus(tmp_path / "corpus[2024].jsonl")] == ["right file"]
    assert [d.text for d in load_corpus(tmp_path / "a*b.jsonl")] == ["literal star"]
    assert sorted(d.text for d in load_corpus(str(tmp_path / "a?b.jsonl"))) == ["literal star", "not me"]
    t0 = time.perf_counter()
    for missing, msg in (("nowhere/corpus.jsonl", "no such file"), ("owner/dataset", "no such file")):
        with pytest.raises(CorpusError, match=msg):
            load_corpus(missing)
    assert time.perf_counter() - t0 < 8, "no network retries for a missing file"


# ------------------------------------------------------------------ 5, 6. OS faults and interrupted writes
def _mount(tmp_path, name, options):
    point = tmp_path / name
    point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    return point


@pytest.fixture
def mounts(tmp_path):
    made = []

    def mount(name, options):
        point = _mount(tmp_path, name, options)
        made.append(point)
        return point
    yield mount
    for p in made:
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


def _commands(f, t, out):
    return {"train": ["train", "-c", f, "--out", out, *SMALL],
            "score": ["score", "-c", f, "-t", t, "--out", out, *SMALL],
            "experiment": ["experiment", "-c", f, "-t", t, "--k", "3", "--seeds", "1", "--no-quality",
                           "--scheduler", "none", "--conditions", "baseline,remove-top", "--out", out, *SMALL]}


def test_every_command_fails_in_one_line_on_os_faults(tmp_path, files, mounts):
    """train, score, experiment and report under a read-only folder, on a full disk, and with --out naming a
    file: exit 1, one line naming the path and the cause, no traceback, nothing that looks complete."""
    f, t = files
    ro = mounts("ro", "size=2m,ro")
    full = mounts("full", "size=2m")
    (full / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 16 * 1024))   # 16 KiB left
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for name, args in _commands(f, t, ro / "out").items():
        one_line_error(run_cli(*args, cache=tmp_path / "c"), str(ro / "out"), "Read-only file system")
        assert not (ro / "out").exists()
    for name, args in _commands(f, t, a_file).items():
        one_line_error(run_cli(*args, cache=tmp_path / "c"), str(a_file), "file, not a folder")
        assert a_file.read_text() == "x"
    for name, args in _commands(f, t, full / "out").items():
        args = [a if a != "8" else "64" for a in args]   # vectors too large for the space left
        p = run_cli(*args, cache=tmp_path / "c")
        one_line_error(p, "No space left on device")
        left = [x for x in full.rglob("*") if x.name != "filler"]
        assert not any(x.name in ("summary.json", "config.json", "results.csv", "experiment.json", "scores.jsonl")
                       for x in left), (name, left)
        assert not any(x.name.endswith("tmp-biasaudit") for x in left), (name, left)
        shutil.rmtree(full / "out", ignore_errors=True)
    # report: a finished score folder, mounted read-only
    scored = tmp_path / "scored"
    assert run_cli(*_commands(f, t, scored)["score"], cache=tmp_path / "c").returncode == 0
    (scored / "report.html").unlink()
    view = tmp_path / "view"
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(scored), str(view)], capture_output=True).returncode == 0:
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True, check=True)
            one_line_error(run_cli("report", view), "Read-only file system")
        finally:
            subprocess.run(["umount", "-l", str(view)], capture_output=True)
    one_line_error(run_cli("report", a_file), "not a folder")


def test_report_of_an_unfinished_or_foreign_folder(tmp_path, files):
    f, t = files
    out = tmp_path / "s"
    assert run_cli("score", "-c", f, "-t", t, "--out", out, *SMALL, cache=tmp_path / "c").returncode == 0
    m = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**m, "complete": False}))
    one_line_error(run_cli("report", out), "did not finish")
    (out / MANIFEST).write_text("{broken")
    one_line_error(run_cli("report", out), MANIFEST, "corrupted")
    one_line_error(run_cli("report", tmp_path / "nothing"), "not a folder")


def test_corrupt_model_config_and_cache_entries(tmp_path, files):
    f, t = files
    m = tmp_path / "m"
    assert run_cli("train", "-c", f, "--out", m, *SMALL, cache=tmp_path / "c").returncode == 0
    for bad in ("{not json", "[1, 2]", '{"model": "skipgram", "format_version": 1}'):
        (m / "config.json").write_text(bad)
        one_line_error(run_cli("weat", m, "-t", t), str(m))
    # a damaged cache entry is retrained and replaced, with a note, every time it is found damaged
    assert run_cli("weat", "-c", f, "-t", t, *SMALL, cache=tmp_path / "c").returncode == 0
    (entry,) = list((tmp_path / "c" / "models").glob("skipgram-*"))
    (entry / "config.json").write_text("[]")
    p = run_cli("weat", "-c", f, "-t", t, *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0 and "damaged" in p.stderr and "trained skip-gram" in p.stderr, p
    p = run_cli("weat", "-c", f, "-t", t, *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0 and "reused cached" in p.stderr and "damaged" not in p.stderr, p
    # leftovers of crashed runs in the cache are cleaned up
    stale = entry.parent / f".{entry.name}.999999999-abc.tmp-biasaudit"
    stale.mkdir()
    old = entry.parent / ".other.1-x.tmp-biasaudit"
    old.mkdir()
    os.utime(old, (time.time() - 3 * 24 * 3600,) * 2)
    assert run_cli("weat", "-c", f, "-t", t, *SMALL, cache=tmp_path / "c").returncode == 0
    assert not stale.exists() and not old.exists()


def test_a_corrupt_run_record_is_run_again(tmp_path, files):
    f, t = files
    args = _commands(f, t, tmp_path / "e")["experiment"]
    assert run_cli(*args, cache=tmp_path / "c").returncode == 0
    runs = sorted((tmp_path / "e" / "runs").glob("remove-*.json"))
    record = lambda: {k: v for k, v in json.loads(runs[0].read_text()).items() if k != "seconds"}
    before = record()
    for bad in ("{truncated", '{"run_id": "x"}'):
        runs[0].write_text(bad)
        p = run_cli(*args, cache=tmp_path / "c")
        assert p.returncode == 0 and "corrupted run record" in p.stderr and "1 to run" in p.stderr, p
        assert record() == before   # the same seed gives the same run again


def test_a_crash_while_writing_leaves_old_outputs_or_an_unfinished_folder(tmp_path, files, monkeypatch):
    """score: nothing that looks complete after a crash, a crashed first run does not make the same command
    refuse the folder, and a crash during --overwrite never mixes new scores with the old summary."""
    import biasaudit.audit.run as rep      # where run_score writes its files (audit is a package)
    f, t = files
    out = tmp_path / "s"
    real = rep.write_json

    def crash(path, obj):
        if Path(path).name == "summary.json":
            raise OSError(28, "No space left on device", str(path))
        real(path, obj)
    monkeypatch.setattr(rep, "write_json", crash)
    p = run_cli("score", "-c", f, "-t", t, "--out", out, *SMALL, cache=tmp_path / "c")
    one_line_error(p, "No space left on device")
    assert not out.exists()
    monkeypatch.setattr(rep, "write_json", real)
    assert run_cli("score", "-c", f, "-t", t, "--out", out, *SMALL, cache=tmp_path / "c").returncode == 0
    old = {n: (out / n).read_bytes() for n in ("scores.jsonl", "summary.json", "config.json")}
    monkeypatch.setattr(rep, "write_json", crash)
    p = run_cli("score", "-c", f, "-t", t, "--out", out, "-e", "gradient-dot", "--overwrite", *SMALL,
                cache=tmp_path / "c")
    assert p.returncode == 1
    assert {n: (out / n).read_bytes() for n in old} == old, "the old outputs are intact"


def test_two_processes_saving_the_same_model_end_with_one(tmp_path):
    from biasaudit.models.skipgram import SkipGramConfig, SkipGramModel, train_skipgram
    corpus, _, _ = planted_corpus(n_background=60, n_planted=6, n_counter=2)
    model = train_skipgram(corpus, SkipGramConfig(vector_size=8, window=3, min_count=2, epochs=1))
    target = tmp_path / "cache" / "models" / "skipgram-x"
    errors = []

    def save():
        try:
            for _ in range(5):
                model.save(target, keep_existing=True)
        except Exception as e:   # noqa: BLE001 - the test reports any error
            errors.append(e)
    threads = [threading.Thread(target=save) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    np.testing.assert_array_equal(SkipGramModel.load(target).vectors, model.vectors)
    assert not [x for x in target.parent.iterdir() if x.name.startswith(".")]


# ------------------------------------------------------------------ 7. numbers are checked
@pytest.mark.parametrize("args", [
    ["weat", "--permutations", "0"], ["weat", "--permutations", "-5"], ["weat", "--bootstrap", "0"],
    ["weat", "--bootstrap", "-3"], ["weat", "--seeds", "0"], ["score", "--top", "-1"], ["score", "--top", "0"],
    ["experiment", "--k", "0"], ["experiment", "--k", "-5"], ["experiment", "--k", "0%"],
    ["experiment", "--k", "150%"], ["experiment", "--seeds", "0"], ["experiment", "--upweight", "1"],
    ["experiment", "--lds", "-1"], ["experiment", "--lds-fraction", "1.5"], ["experiment", "--lds-fraction", "0"],
    ["experiment", "--warm-epochs", "0"], ["train", "--vector-size", "0"], ["train", "--window", "-2"],
    ["train", "--min-count", "0"], ["train", "--negative", "0"], ["train", "--epochs", "0"], ["train", "--seed", "-1"],
    ["train", "--workers", "0"], ["train", "--sample", "-0.1"], ["train", "--sample", "1"]])
def test_out_of_range_numbers_are_usage_errors(tmp_path, args):
    p = run_cli(*args, cache=tmp_path / "c")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p
    assert not (tmp_path / "c").exists(), "refused before anything ran"


# ------------------------------------------------------------------ 8. no escape sequences reach the terminal
def test_escape_sequences_in_the_corpus_never_reach_the_terminal(tmp_path):
    corpus, _, _ = planted_corpus(n_background=80, n_planted=8, n_counter=2)
    hostile = [Document(f"\x1b]0;PWNED-TITLE\x07plant-evil{i}\x1b[2J[bold red]",
                        "zorbel studied algebra \x1b[2J\x1b]0;TITLE\x07 and zorbel loved calculus [link=x]y[/link] "
                        "while quintar made poetry \u202eevil") for i in range(6)]
    f = write_jsonl(tmp_path / "c.jsonl", list(corpus) + hostile)
    t = tmp_path / "t.json"
    t.write_text(json.dumps({**PLANTED_TEST, "name": "planted\x1b[31m"}))
    p = run_cli("score", "-c", f, "-t", t, "--out", tmp_path / "s", "--top", "20", *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0, p
    assert "plant-evil" in p.stdout, "the hostile documents are shown"
    for stream in (p.stdout, p.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
    html = (tmp_path / "s" / "report.html").read_text()
    assert "\x1b]0;" not in html or "&lt;" in html   # escaped for HTML, never interpreted
    bad = tmp_path / "bad\x1b[2J.jsonl"
    bad.write_bytes(b'{"id": "a", "text": "x"}\n{broken\n')
    p = run_cli("train", "-c", bad, cache=tmp_path / "c")
    one_line_error(p, "line 2")
    assert "\x1b" not in p.stderr


# ------------------------------------------------------------------ 9. where the error is
def test_errors_name_the_file_and_the_line(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"id": f"d{i}", "text": "w"}) + "\n" for i in range(2500)) + "{broken\n")
    with pytest.raises(CorpusError, match=r"c.jsonl: line 2501: not valid JSON"):
        load_corpus(f).scan()
    g = tmp_path / "c.txt"
    g.write_bytes(b"ok\n" * 2500 + b"caf\xe9\n")
    with pytest.raises(CorpusError, match=r"c.txt: line 2501: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        load_corpus(g).scan()
    e = tmp_path / "empty.jsonl"
    e.write_text("")
    with pytest.raises(CorpusError, match="empty.jsonl has no documents"):
        load_corpus(e).scan()
    c = tmp_path / "c.csv"
    c.write_text('id,text\n1,"fine"\n2,"two","fields too many"\n')
    with pytest.raises(CorpusError, match="c.csv: line 3: 3 fields"):
        load_corpus(c).scan()
    p = run_cli("train", "-c", f, cache=tmp_path / "cache")
    one_line_error(p, "line 2501")


# ------------------------------------------------------------------ 10, 11, 12. test files and missing words
def test_test_files_are_checked(tmp_path):
    for f1, f2 in (("target_x", "attribute_a"), ("target_x", "target_y")):
        d = json.loads(json.dumps(PLANTED_TEST))
        d[f2]["words"].append(d[f1]["words"][0])
        with pytest.raises(ConfigError, match=f"'zorbel' in both {f1} and {f2}"):
            BiasTest.from_dict(d)
    with pytest.raises(ConfigError, match="did you mean 'math-arts'"):
        resolve_tests(["math-art"])
    big = BiasTest.from_dict({**PLANTED_TEST, "target_x": {"name": "many", "words": [f"w{i}" for i in range(200_000)]}})
    with pytest.raises(VocabularyError) as e:
        big.restrict({"zorbel"}, allow_oov=False)
    assert len(str(e.value)) < 1000 and "and 199989 more (200009 in all)" in str(e.value)


def test_one_rule_for_missing_words_and_tests_that_cannot_be_computed(tmp_path, files):
    f, t = files
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**PLANTED_TEST, "name": "half-missing",
                                 "target_x": {"name": "x", "words": ["zorbel", "nope1", "nope2"]}}))
    m = tmp_path / "m"
    assert run_cli("train", "-c", f, "--out", m, *SMALL, cache=tmp_path / "c").returncode == 0
    # by default: math-arts cannot be computed (skipped, named), half-missing drops its words, planted runs
    p = run_cli("weat", m, "-t", t, "-t", other, "-t", "math-arts", "--json")
    assert p.returncode == 0, p
    rows = json.loads(p.stdout)
    assert [r["test"] for r in rows] == ["planted"]   # half-missing keeps 1 target word: skipped too
    assert "math-arts: skipped" in p.stderr and "half-missing: skipped" in p.stderr
    p = run_cli("score", "-c", f, "-t", t, "-t", "math-arts", "--out", tmp_path / "s", *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0 and "math-arts: skipped" in p.stderr, p
    # --strict-oov: one error naming every test's missing words, in weat and score alike
    for cmd in (["weat", m], ["score", "-c", f, "--out", tmp_path / "s2", *SMALL]):
        p = run_cli(*cmd, "-t", t, "-t", other, "-t", "math-arts", "--strict-oov", cache=tmp_path / "c")
        one_line_error(p, "half-missing", "nope1", "math-arts", "hers")
    p = run_cli("weat", m, "-t", "math-arts")
    one_line_error(p, "no test can be computed")


# ------------------------------------------------------------------ 13, 15. what the outputs say
def test_test_words_are_the_rows_own_and_the_corpus_is_the_current_one(tmp_path, files):
    f, t = files
    corpus = list(load_corpus(f))
    other = tmp_path / "t2.json"
    other.write_text(json.dumps({**PLANTED_TEST, "name": "second",
                                 "attribute_a": {"name": "m", "words": ["algebra", "calculus"]},
                                 "attribute_b": {"name": "a", "words": ["poetry", "sculpture"]}}))
    copy = write_jsonl(tmp_path / "renamed-copy.jsonl", corpus)
    assert run_cli("train", "-c", f, *SMALL, cache=tmp_path / "c").returncode == 0
    p = run_cli("score", "-c", copy, "-t", t, "-t", other, "--out", tmp_path / "s", *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0 and "reused cached" in p.stderr, p
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["config"]["corpus"]["name"] == "renamed-copy"
    assert "renamed-copy" in (tmp_path / "s" / "report.html").read_text()
    own = {"second": {"zorbel", "zorbek", "zorban", "quintar", "quintel", "quinta", "algebra", "calculus", "poetry",
                      "sculpture"}}
    rows = [json.loads(l) for l in (tmp_path / "s" / "scores.jsonl").read_text().splitlines()]
    second = [r for r in rows if r["test"] == "second"]
    assert second and all(set(r["test_words"]) <= own["second"] and r["test_words"] for r in second)
    for test in summary["tests"]:
        if test["name"] == "second":
            for d in test["table"]:
                assert set(d["test_words"]) <= own["second"]


# ------------------------------------------------------------------ 14. GCIDE ids
def test_every_gcide_id_is_its_entrys_headword():
    """The id (without its '#n') is the headword the entry itself starts with ("Bohemian , a. ...")."""
    import re

    def normal(s):
        return "".join(ch for ch in s.lower() if ch.isalnum())

    bad = []
    for d in load_corpus("gcide"):
        want = normal(re.sub(r"#\d+$", "", d.id))
        got, end = "", None
        for j, ch in enumerate(d.text):
            if len(got) == len(want):
                end = j
                break
            if ch.isalnum():
                got += ch.lower()
        ok = got == want and (end is None or not d.text[end].isalnum())
        if not ok:
            bad.append((d.id, d.text[:40]))
    assert not bad, bad[:10]
    ids = {d.id: d.text for d in load_corpus("gcide") if d.id in ("Bohemian", "Uncle", "She", "Magnolia")}
    assert len(ids) == 4 and ids["Uncle"].startswith("Uncle")


# ------------------------------------------------------------------ 16. long documents
def test_a_two_million_token_document_is_scored_in_bounded_memory():
    """One 2,000,000-token document: scoring (block) stays under 400 MB of Python allocations (4.4 GB before
    documents were enumerated in pieces)."""
    from biasaudit.influence.estimators import EstimatorConfig
    from biasaudit.influence.scorer import score_documents
    from biasaudit.measures.targets import weat_target
    from biasaudit.models.skipgram import SkipGramConfig, train_skipgram

    rng = np.random.default_rng(0)
    test = BiasTest.from_dict(PLANTED_TEST)
    words = np.array([f"w{i}" for i in range(3000)] + list(test.words))
    p = np.r_[np.full(3000, 1.0), np.full(len(test.words), 20.0)]
    text = " ".join(words[rng.choice(len(words), size=2_000_000, p=p / p.sum())])
    corpus = MemoryCorpus([Document("big", text)] + [Document(f"d{i}", " ".join(words[:40])) for i in range(50)],
                          "big")
    del text
    model = train_skipgram(corpus, SkipGramConfig(vector_size=8, window=3, min_count=1, epochs=1))
    tracemalloc.start()
    try:
        r = score_documents(model, corpus, [weat_target(test, model.vocab)], EstimatorConfig())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.delta_bias_if_removed["planted"][0] != 0
    assert peak < 400 * 2**20, f"{peak / 2**20:.0f} MB"


# ------------------------------------------------------------------ found by attacking the first version
def test_a_manifest_never_reaches_outside_its_folder(tmp_path, files):
    f, t = files
    m = tmp_path / "m"
    m.mkdir()
    (tmp_path / "victim.txt").write_text("keep")
    (tmp_path / "vdir").mkdir()
    (tmp_path / "vdir" / "a").write_text("keep")
    for entries in (["../victim.txt", str(tmp_path / "vdir")], ["."], [1]):
        (m / MANIFEST).write_text(json.dumps({"kind": "model", "config": {}, "files": entries}))
        p = run_cli("train", "-c", f, *SMALL, "--out", m, "--overwrite", cache=tmp_path / "c")
        one_line_error(p, "corrupted biasaudit manifest")
    assert (tmp_path / "victim.txt").read_text() == "keep" and (tmp_path / "vdir" / "a").exists()


def test_user_files_with_the_tools_names_are_not_its_outputs(tmp_path, files):
    f, t = files
    p_dir = tmp_path / "p"
    p_dir.mkdir()
    (p_dir / "config.json").write_text('{"mine": 1}')
    (p_dir / "report.html").write_text("<h1>mine</h1>")
    p = run_cli("train", "-c", f, *SMALL, "--out", p_dir, "--overwrite", cache=tmp_path / "c")
    one_line_error(p, "holds files biasaudit did not write")
    assert (p_dir / "config.json").read_text() == '{"mine": 1}' and (p_dir / "report.html").exists()
    # a user's file inside an experiment's own sub-folder survives an overwrite
    args = _commands(f, t, tmp_path / "e")["experiment"]
    assert run_cli(*args, cache=tmp_path / "c").returncode == 0
    (tmp_path / "e" / "runs" / "notes.txt").write_text("mine")
    (tmp_path / "e" / "score" / "mine.txt").write_text("mine")
    p = run_cli(*[a if a != "3" else "4" for a in args], "--overwrite", cache=tmp_path / "c")
    assert p.returncode == 0, p
    assert (tmp_path / "e" / "runs" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "e" / "score" / "mine.txt").read_text() == "mine"
    assert not [r for r in (tmp_path / "e" / "runs").glob("remove-*-s1.json")
                if json.loads(r.read_text())["n_docs"] == 3], "the other experiment's runs are gone"


def test_a_gensim_pickle_cannot_call_gensims_classes(tmp_path):
    (tmp_path / "ctor.kv").write_bytes(b"\x80\x04cgensim.models.word2vec\nWord2Vec\n(NS'/etc/hostname'\ntR.")
    with pytest.raises(ArtifactError, match="refusing to call Word2Vec"):
        load_embeddings(tmp_path / "ctor.kv")


def test_an_lm_checkpoint_whose_index_names_pickled_weights_is_refused(tmp_path):
    pytest.importorskip("transformers")
    d = tmp_path / "shard"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "decoy.safetensors").write_bytes(b"")
    (d / "pytorch_model-00001-of-00001.bin").write_bytes(b"pickle")
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"lm_head.weight": "pytorch_model-00001-of-00001.bin"}}))
    p = run_cli("weat", "--model", "lm", "--checkpoint", d, "-t", "math-arts")
    one_line_error(p, "not safetensors files", "pickled checkpoints are refused")


@pytest.mark.parametrize("name,content", [
    ("surrogate.jsonl", b'{"id": "\\udc80", "text": "he man math"}\n'),
    ("deep.jsonl", b"[" * 200_000 + b"\n"),
    ("bigint.jsonl", b'{"id": ' + b"9" * 5000 + b', "text": "x"}\n'),
    ("bad.jsonl.gz", b"\x1f\x8b\x08\x00garbage-not-deflate"),
    ("bad.jsonl.xz", b"x\n"),
    ("nested.jsonl", b'{"id": "a", "text": {"b": 1}}\n')])
def test_odd_corpus_bytes_are_one_line(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    one_line_error(run_cli("train", "-c", tmp_path / name, cache=tmp_path / "c"), name)


def test_a_file_name_that_is_not_utf8(tmp_path, files):
    f, t = files
    odd = os.fsencode(tmp_path) + b"/caf\xe9.jsonl"
    with open(odd, "wb") as out:
        out.write(Path(f).read_bytes())
    p = run_cli("score", "-c", os.fsdecode(odd), "-t", t, *SMALL, "--out", tmp_path / "s", cache=tmp_path / "c")
    assert p.returncode == 0, p
    txt = tmp_path / "c.txt"
    odd_txt = os.fsencode(tmp_path) + b"/na\xefve.txt"
    with open(odd_txt, "wb") as out:
        out.write(b"zorbel studied algebra\n" * 3)
    assert [d.id for d in load_corpus(os.fsdecode(odd_txt))][0] == "na\ufffdve.txt:1"
    assert not txt.exists()


@pytest.mark.parametrize("setting", ["block:damping=inf", "cg:damping=nan", "lissa:lissa_scale=nan",
                                     "cg:tol=nan", "cg:noise_tail=-5", "block:seed=99999999999999999999999"])
def test_estimator_settings_out_of_range_are_usage_errors(tmp_path, files, setting):
    f, t = files
    p = run_cli("score", "-c", f, "-t", t, "--estimator", setting, "--out", tmp_path / "s", cache=tmp_path / "c")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("args", [["--seed", "99999999999999999999"], ["--window", "2147483648"],
                                  ["--negative", "99999999999"], ["--vector-size", "10000000"]])
def test_huge_settings_are_usage_errors(tmp_path, args):
    p = run_cli("train", *args, cache=tmp_path / "c")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p


def test_hostile_test_files(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"] + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},"
                                                f"*{chr(97 + i)},*{chr(97 + i)}]" for i in range(8)]
    bomb.write_text("\n".join(lines) + "\nname: t\ntarget_x: *i\ntarget_y: [a, b]\nattribute_a: [c, d]\n"
                    "attribute_b: [e, f]\n")
    with pytest.raises(ConfigError, match="aliases"):
        resolve_tests([str(bomb)])
    for word in (None, 1, {"a": 1}):
        d = json.loads(json.dumps(PLANTED_TEST))
        d["target_x"]["words"].append(word)
        (tmp_path / "t.json").write_text(json.dumps(d))
        with pytest.raises(ConfigError, match="not a word"):
            resolve_tests([str(tmp_path / "t.json")])


def test_lm_templates_with_conversions_are_refused():
    from biasaudit.measures.lm import check_template
    for bad in ("{target!r} works in {attribute}", "{target:x} works in {attribute}"):
        with pytest.raises(ConfigError, match="plain"):
            check_template(bad)


def test_the_report_drops_control_characters_and_survives_a_damaged_summary(tmp_path, files):
    f, t = files
    corpus = list(load_corpus(f)) + [Document("evil\x1b[2J\x07\u202eid",
                                              "zorbel studied algebra \x1b]0;TITLE\x07 zorbel loved calculus")]
    g = write_jsonl(tmp_path / "c.jsonl", corpus)
    assert run_cli("score", "-c", g, "-t", t, *SMALL, "--top", "50", "--out", tmp_path / "s",
                   cache=tmp_path / "c").returncode == 0
    html = (tmp_path / "s" / "report.html").read_text()
    assert "evil" in html and not any(ch in html for ch in "\x1b\x07\u202e")
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    for damage in ({**summary, "tests": "x"}, {**summary, "tests": [{"name": "t"}]}):
        (tmp_path / "s" / "summary.json").write_text(json.dumps(damage))
        one_line_error(run_cli("report", tmp_path / "s"), "not ones this version of biasaudit can read")


def test_an_existing_path_beats_a_bundled_name_and_a_dangling_link_is_refused_before_training(tmp_path, files):
    f, t = files
    (tmp_path / "gcide").mkdir()
    write_jsonl(tmp_path / "gcide" / "mine.jsonl", [Document("x", "my own gcide folder")])
    p = run_cli("weat", "-c", "gcide", "-t", t, *SMALL, cache=tmp_path / "c", cwd=tmp_path)
    assert "no test can be computed" in p.stderr or "min_count" in p.stderr, p   # read the folder, not GCIDE
    (tmp_path / "dl").symlink_to(tmp_path / "nowhere")
    for cmd in ("train", "score"):
        args = _commands(f, t, tmp_path / "dl")[cmd]
        p = run_cli(*args, cache=tmp_path / "c2")
        one_line_error(p, "symbolic link to nothing")
        assert not (tmp_path / "c2").exists(), "refused before any training"
