"""The command line as a user runs it: exit codes, JSON output, one-line errors."""
import json
import subprocess
import sys

import pytest

from conftest import PLANTED_TEST, planted_corpus, run_cli

SMALL = ["--vector-size", "16", "--window", "3", "--min-count", "2", "--epochs", "2"]


def run(*args, cache=None):
    return run_cli(*args, cache=cache)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    corpus, _, _ = planted_corpus()
    f = d / "planted.jsonl"
    f.write_text("".join(json.dumps({"id": x.id, "text": x.text}) + "\n" for x in corpus), encoding="utf-8")
    t = d / "planted.json"
    t.write_text(json.dumps(PLANTED_TEST))
    return f, t


def test_entry_point_runs_as_a_program():
    p = subprocess.run([sys.executable, "-m", "biasaudit", "wordsets", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)) == 14


def test_wordsets_json():
    p = run("wordsets", "--json")
    assert p.returncode == 0, p.stderr
    names = [t["name"] for t in json.loads(p.stdout)]
    assert {"math-arts", "science-arts", "career-family", "race-names"} <= set(names)
    assert sum(n.startswith("weat") for n in names) == 10


def test_train_weat_and_errors(tmp_path, corpus_file):
    f, t = corpus_file
    model_dir = tmp_path / "model"
    p = run("train", "--corpus", f, "--out", model_dir, *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    p = run("weat", model_dir, "--test", t, "--json")
    assert p.returncode == 0, p.stderr
    (row,) = json.loads(p.stdout)
    assert {"test", "effect_size", "statistic", "p_value", "exact", "n_permutations"} <= set(row)
    assert row["test"] == "planted" and row["exact"] is True and row["n_permutations"] == 20
    assert row["effect_size"] > 0.5, "the planted association is found"
    # same folder, other config: refused, nothing changed
    before = (model_dir / "vectors.safetensors").read_bytes()
    p = run("train", "--corpus", f, "--out", model_dir, *SMALL[:-1], "3", cache=tmp_path / "c")
    assert p.returncode == 1 and "another config" in p.stderr and "Traceback" not in p.stderr
    assert (model_dir / "vectors.safetensors").read_bytes() == before
    # out-of-vocabulary words are named, exit 1: with --strict-oov every missing word is an error; by default they
    # are dropped, and a test with no set left to compute is skipped (here: no test left)
    p = run("weat", model_dir, "--test", "math-arts", "--strict-oov")
    assert p.returncode == 1 and "algebra" not in p.stderr and "calculus" not in p.stderr
    assert "words not in the vocabulary" in p.stderr and "hers" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run("weat", model_dir, "--test", "math-arts")
    assert p.returncode == 1 and "no test can be computed" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    # unknown test, usage error
    assert run("weat", model_dir, "--test", "no-such-test").returncode == 1
    assert run("weat", model_dir, "--no-such-flag").returncode == 2


def test_weat_trains_several_seeds(tmp_path, corpus_file):
    f, t = corpus_file
    p = run("weat", "--corpus", f, "--test", t, "--seeds", "2", "--json", *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["seed"] for r in rows] == [1, 2]
    assert rows[0]["seed_spread"]["n_seeds"] == 2 and rows[0]["seed_spread"]["sd"] > 0
    # the second run reuses the cached models
    p = run("weat", "--corpus", f, "--test", t, "--seeds", "2", "--json", *SMALL, cache=tmp_path / "c")
    assert "reused cached" in p.stderr
    assert json.loads(p.stdout) == rows


def test_bad_corpus_is_one_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    p = run("train", "--corpus", bad, "--out", tmp_path / "m", cache=tmp_path / "c")
    assert p.returncode == 1 and "UTF-8" in p.stderr and not (tmp_path / "m").exists()


def test_score_command(tmp_path, corpus_file):
    f, t = corpus_file
    out = tmp_path / "scores"
    p = run("score", "--corpus", f, "--test", t, "--out", out, "--top", "3", *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    assert "drive the bias UP" in p.stdout and (out / "scores.jsonl").exists() and (out / "summary.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"][0]["top"]["increase_bias"][0]["doc_id"].startswith(("plant", "bg"))
    p = run("score", "--corpus", f, "--query", "zorbel", "--toward", "algebra,calculus", "--out", tmp_path / "q",
            *SMALL, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    p = run("score", "--corpus", f, "--test", "no-such-test", "--out", tmp_path / "x", *SMALL, cache=tmp_path / "c")
    assert p.returncode == 1 and not (tmp_path / "x").exists()
    p = run("score", "--corpus", f, "--test", t, "--estimator", "newton", "--out", tmp_path / "y", *SMALL,
            cache=tmp_path / "c")
    assert p.returncode == 1 and "unknown estimator" in p.stderr


def test_experiment_command_on_dask(tmp_path, corpus_file):
    """The experiment as a user runs it, retrains on a local Dask cluster; a rerun resumes; bad input is one line."""
    f, t = corpus_file
    out = tmp_path / "exp"
    args = ["experiment", "--corpus", f, "--test", t, "--k", "20", "--seeds", "2", "--no-quality",
            "--conditions", "baseline,remove-top,upweight-top,remove-random", "--estimator", "block,gradient-dot",
            "--out", out, "--vector-size", "16", "--window", "3", "--min-count", "2", "--epochs", "20"]
    p = run(*args, "--scheduler", "local", cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    assert "remove-top" in p.stdout and "Spearman" not in p.stderr
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 4   # header + estimators x seeds x (baseline + 3 conditions)
    summary = json.loads((out / "experiment.json").read_text())
    assert summary["estimators"] == ["block:damping=0.1", "gradient-dot"]
    n_runs = len(list((out / "runs").glob("*.json")))
    p = run(*args, "--scheduler", "none", cache=tmp_path / "c")
    assert p.returncode == 0 and "0 to run" in p.stderr, p.stderr
    assert len(list((out / "runs").glob("*.json"))) == n_runs
    p = run(*args[:-1], "30", "--scheduler", "none", cache=tmp_path / "c")
    assert p.returncode == 1 and "another config" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run("experiment", "--corpus", f, "--test", t, "--conditions", "remove-all", "--out", tmp_path / "bad")
    assert p.returncode == 1 and "unknown remove-all" in p.stderr and not (tmp_path / "bad").exists()


def test_experiment_prints_its_plan_and_dry_run_stops_there(tmp_path, corpus_file):
    """experiment opens with its plan (trainings, the time of one from the cached baseline's measured training,
    workers); --dry-run stops there: exit 0, nothing trained, no folder written."""
    import os

    from biasaudit.terminal import seconds

    f, t = corpus_file
    cache, out = tmp_path / "c", tmp_path / "exp"
    settings = ["--vector-size", "16", "--window", "3", "--min-count", "2", "--epochs", "20"]
    args = ["experiment", "--corpus", f, "--test", t, "--k", "10,20", "--seeds", "2", "--no-quality",
            "--conditions", "baseline,remove-top,upweight-top,remove-random", "--out", out, "--dry-run", *settings]
    # (baseline + 2 sizes x (remove-top, upweight-top) + 2 random removals) x 2 seeds
    p = run(*args, "--scheduler", "none", cache=cache)
    assert p.returncode == 0, p
    assert p.stdout.startswith("plan: at most 14 trainings; time not estimated"), p
    assert "dry run: nothing trained" in p.stdout and not out.exists()
    assert not list(cache.glob("models/*")), "a dry run trained a model"
    p = run("train", "--corpus", f, *settings, cache=cache)           # the baseline, cached and timed
    assert p.returncode == 0, p
    (model,) = cache.glob("models/*")
    secs = json.loads((model / "config.json").read_text())["meta"]["train_seconds"]
    p = run(*args, "--scheduler", "local", cache=cache)
    assert p.returncode == 0, p
    n = max(1, os.cpu_count() or 1)
    assert p.stdout.startswith(f"plan: at most 14 trainings of about {seconds(secs)} each: about "
                               f"{seconds(14 * secs / n)} on {n} worker"), p
    assert "measured on the cached baseline's training" in p.stdout and str(out) in p.stdout
    assert not out.exists() and len(list(cache.glob("models/*"))) == 1 and "Traceback" not in p.stderr


_INTERRUPTED = r"""
import pathlib, sys, time
import biasaudit.experiments as experiments

marker = pathlib.Path(sys.argv.pop())


def run_experiment(spec, out, client=None, **kw):      # a retrain running on a worker when Ctrl-C comes
    running = client.submit(time.sleep, 120, pure=False)
    time.sleep(0.5)
    marker.write_text("running")
    running.result()


experiments.run_experiment = run_experiment
from biasaudit.cli import main
main()
"""


def test_ctrl_c_during_an_experiment_on_the_local_cluster_is_one_line(tmp_path, corpus_file):
    """Ctrl-C reaches the whole process group, Dask's worker processes too: the user sees the one friendly line
    (exit 130), not each worker's KeyboardInterrupt traceback and the cluster's shutdown warnings."""
    import os
    import signal
    import time

    f, t = corpus_file
    marker = tmp_path / "running"
    p = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, "experiment", "--corpus", str(f), "--test", str(t),
                          "--scheduler", "local", *SMALL, "--out", str(tmp_path / "exp"), str(marker)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "BIASAUDIT_CACHE": str(tmp_path / "c")})
    deadline = time.monotonic() + 120
    while not marker.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        os.killpg(p.pid, signal.SIGINT)            # what a terminal's Ctrl-C does
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert marker.exists(), (out, err)
    assert p.returncode == 130 and err.strip().splitlines() == [
        "interrupted: finished outputs are kept; rerun the same command to resume"], err


def test_glove_end_to_end(tmp_path, corpus_file):
    """--model glove through train, weat, score and experiment, each writing what the skip-gram path writes."""
    f, t = corpus_file
    small = ["--model", "glove", "--vector-size", "16", "--window", "5", "--min-count", "2", "--epochs", "30"]
    p = run("train", "--corpus", f, "--out", tmp_path / "g", *small, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "g" / "config.json").read_text())["model"] == "glove"
    p = run("weat", tmp_path / "g", "--test", t, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["effect_size"] > 0.5
    out = tmp_path / "s"
    p = run("score", "--corpus", f, "--test", t, "--out", out, *small, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["model"] == "glove" and (out / "report.html").exists()
    rows = [json.loads(l) for l in (out / "scores.jsonl").read_text().splitlines()]
    assert any(r["delta_bias_if_upweighted"] != -r["delta_bias_if_removed"] for r in rows)
    p = run("experiment", "--corpus", f, "--test", t, "--k", "20", "--seeds", "1", "--no-quality",
            "--conditions", "baseline,remove-top,remove-random", "--scheduler", "none", "--out", tmp_path / "e",
            *small, cache=tmp_path / "c")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "e" / "report.html").exists()
    p = run("score", "--corpus", f, "--test", t, "--estimator", "lissa", "--out", tmp_path / "x", *small,
            cache=tmp_path / "c")
    assert p.returncode == 1 and "--model glove takes block, cg, gradient-dot, magic and lexical" in p.stderr
    p = run("train", "--corpus", f, "--model", "glove", "--negative", "10", "--out", tmp_path / "y")
    assert p.returncode == 1 and "does not apply to --model glove" in p.stderr
