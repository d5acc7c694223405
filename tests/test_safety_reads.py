"""Issue 33, holes 4, 5, 7 and 8 and two rough edges: every file this tool reads goes through one regular-file check
(``biasaudit.io.open_regular``: no FIFO or device hangs a command or an API call, nothing is read past what the file
can be), nothing is followed out of an output folder, one run at a time writes a folder and a run record is reused
only by its own config, deep JSON is one line, and a full disk names the output asked for. A regression fails in
seconds instead of hanging the suite (each call runs in a thread bounded in time)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from biasaudit.errors import ArtifactError, ConfigError
from biasaudit.io import MANIFEST, claim_folder, lock_path
from conftest import PLANTED_TEST, planted_corpus, run_cli

SMALL = ["--vector-size", "8", "--window", "3", "--min-count", "2", "--epochs", "2"]
DEEP = "[" * 100_000


# ------------------------------------------------------------------ helpers
def bounded(call, seconds=5.0):
    """(hung, exception or None, return value) of ``call()`` run in a thread for at most ``seconds``."""
    box = {}

    def run():
        try:
            box["value"] = call()
        except BaseException as e:   # noqa: BLE001 - the test inspects it
            box["e"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    return th.is_alive(), box.get("e"), box.get("value")


def unblock(fifo):
    try:                                     # a reader blocked on the FIFO returns (at end of file)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def make_fifo(path: Path) -> Path:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def refused_at_once(call, fifo, error=ArtifactError, needle="FIFO", seconds=5.0):
    hung, e, _ = bounded(call, seconds)
    if hung:
        unblock(fifo)
    assert not hung, f"reading {fifo} hangs"
    assert isinstance(e, error), repr(e)
    assert needle in str(e) and str(fifo) in str(e) and "\n" not in str(e), e


def one_line_error(p, *needles):
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error:")]
    assert p.returncode == 1, p
    assert len(errors) == 1 and lines[-1] == errors[0], p
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in errors[0], (n, p)


def cli_bounded(*args, seconds=60.0, fifo=None, **kw):
    hung, e, p = bounded(lambda: run_cli(*args, **kw), seconds)
    if hung and fifo is not None:
        unblock(fifo)
    assert not hung, f"biasaudit {args[0]} hangs"
    assert e is None, repr(e)
    return p


# ------------------------------------------------------------------ fixtures: one of each folder, copied per test
@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("reads")
    corpus, _, _ = planted_corpus(n_background=120, n_planted=12, n_counter=3)
    (d / "c.jsonl").write_text("".join(json.dumps({"id": x.id, "text": x.text}) + "\n" for x in corpus))
    (d / "t.json").write_text(json.dumps(PLANTED_TEST))
    return d


def experiment_args(root, out, *extra):
    return ["experiment", "-c", root / "c.jsonl", "-t", root / "t.json", "--k", "3", "--seeds", "1", "--no-quality",
            "--scheduler", "none", "--conditions", "baseline,remove-top", "--out", out, *SMALL, *extra]


@pytest.fixture(scope="module")
def experiment(root):
    out = root / "e"
    p = run_cli(*experiment_args(root, out), cache=root / "cache")
    assert p.returncode == 0, p
    return out


@pytest.fixture(scope="module")
def scored(root):
    out = root / "s"
    p = run_cli("score", "-c", root / "c.jsonl", "-t", root / "t.json", "--out", out, *SMALL, cache=root / "cache")
    assert p.returncode == 0, p
    return out


@pytest.fixture(scope="module")
def lm_folders(root):
    pytest.importorskip("transformers")
    from biasaudit.models.lm import LMConfig, train_lm
    from biasaudit.planted import lm_planted_corpus, tiny_checkpoint

    corpus, _ = lm_planted_corpus(n_background=30, n_planted=4)
    ours = train_lm(corpus, LMConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, min_count=1,
                                     epochs=1, min_steps=0, batch_size=16)).save(root / "lm")
    foreign = tiny_checkpoint(root / "gpt2", "gpt2", [d.text for d in corpus], width=16)
    return {"ours": Path(ours), "foreign": Path(foreign)}


def copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest, symlinks=True)
    return dest


def load_lm(folder):
    from biasaudit.models.base import load_model
    return load_model(folder)


# ------------------------------------------------------------------ hole 4: FIFOs
@pytest.mark.parametrize("kind,name", [("ours", "biasaudit.json"), ("ours", "model.safetensors"),
                                       ("foreign", "model.safetensors"),
                                       ("foreign", "model.safetensors.index.json")])
def test_a_fifo_in_an_lm_folder_is_refused_at_once(lm_folders, tmp_path, kind, name):
    folder = copy(lm_folders[kind], tmp_path / kind)
    assert load_lm(folder) is not None
    fifo = make_fifo(folder / name)
    refused_at_once(lambda: load_lm(folder), fifo)


@pytest.mark.parametrize("how", ["report", "ScoreResult", "write_report"])
def test_a_fifo_summary_json_is_refused_at_once(scored, tmp_path, how):
    import biasaudit as ba
    from biasaudit.report import write_report
    folder = copy(scored, tmp_path / "s")
    fifo = make_fifo(folder / "summary.json")
    if how == "report":
        one_line_error(cli_bounded("report", folder, fifo=fifo, seconds=10), str(fifo), "FIFO")
        return
    call = {"ScoreResult": lambda: ba.ScoreResult(folder), "write_report": lambda: write_report(folder)}[how]
    refused_at_once(call, fifo)


def test_a_linked_summary_json_is_refused_not_followed(scored, tmp_path):
    """A summary.json that links to another run's made report and load_result show that run's results (found by an
    attack); a link inside a result folder is refused, as for every file an output folder holds."""
    import biasaudit as ba
    other = copy(scored, tmp_path / "other")
    folder = copy(scored, tmp_path / "s")
    (folder / "summary.json").unlink()
    (folder / "summary.json").symlink_to(other / "summary.json")
    one_line_error(run_cli("report", folder), "summary.json", "link")
    with pytest.raises(ArtifactError, match="link"):
        ba.load_result(folder)


def test_a_fifo_manifest_in_out_is_refused_at_once(root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fifo = make_fifo(out / MANIFEST)
    refused_at_once(lambda: claim_folder(out, "score", {"a": 1}), fifo)
    p = cli_bounded("score", "-c", root / "c.jsonl", "-t", root / "t.json", "--out", out, *SMALL,
                    cache=root / "cache", fifo=fifo)
    one_line_error(p, str(fifo), "FIFO")


@pytest.mark.parametrize("name", ["scores.json", "runs/baseline-s1.json"])
def test_a_fifo_in_an_experiment_folder_is_not_read_on_resume(root, experiment, tmp_path, name):
    """The rankings are recomputed and the run is done again (a file not to be trusted), within seconds."""
    out = copy(experiment, tmp_path / "e")
    fifo = make_fifo(out / name)
    p = cli_bounded(*experiment_args(root, out), cache=root / "cache", fifo=fifo)
    assert p.returncode == 0, p
    assert (out / name).is_file() and not (out / name).is_symlink()
    if name.startswith("runs"):
        assert "FIFO" in p.stderr and "1 to run" in p.stderr, p


# ------------------------------------------------------------------ hole 5: /dev/zero, memory bounded
MEASURE = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    import biasaudit as ba
    from biasaudit.errors import BiasAuditError
    from biasaudit.models.base import load_model
    from biasaudit.report import write_report
    what, folder = sys.argv[1], Path(sys.argv[2])
    call = {"lm": lambda: load_model(folder), "report": lambda: write_report(folder),
            "ScoreResult": lambda: ba.ScoreResult(folder)}[what]
    vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), vm + (1 << 30)))   # the old reads fail fast
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        call()
        msg = None
    except BiasAuditError as e:
        msg = str(e)
    except MemoryError:
        msg = "MemoryError"
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"error": msg, "peak_growth_kib": after - before}))
""")


@pytest.mark.parametrize("what,name", [("lm", "model.safetensors"), ("report", "summary.json"),
                                       ("ScoreResult", "summary.json")])
def test_a_link_to_dev_zero_is_not_read(lm_folders, scored, tmp_path, what, name):
    """In a child process (address space capped 1 GiB above what it holds after its imports): refused in one line
    naming the device (or, inside a result folder, the link), the peak resident memory growing by less than 64 MiB."""
    folder = copy(lm_folders["ours"] if what == "lm" else scored, tmp_path / "f")
    (folder / name).unlink()
    (folder / name).symlink_to("/dev/zero")
    p = subprocess.run([sys.executable, "-c", MEASURE, what, str(folder)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(what, name, r)
    # a result folder's summary.json is read without following links (f993664): the link itself is refused there
    why = "character device" if what == "lm" else "symbolic link"
    assert r["error"] is not None and why in r["error"] and name in r["error"], r
    assert r["peak_growth_kib"] < 64 * 1024, r


# ------------------------------------------------------------------ hole 7: no link followed out of an output folder
def test_a_linked_runs_folder_is_refused_and_the_users_file_kept(root, experiment, tmp_path):
    out = copy(experiment, tmp_path / "e")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "baseline-s1.json").write_text("my own notes, not a run record")
    shutil.rmtree(out / "runs")
    (out / "runs").symlink_to(mine)
    p = run_cli(*experiment_args(root, out), cache=root / "cache")
    one_line_error(p, str(out / "runs"), "symbolic link")
    assert sorted(x.name for x in mine.iterdir()) == ["baseline-s1.json"]
    assert (mine / "baseline-s1.json").read_text() == "my own notes, not a run record"
    p = run_cli(*experiment_args(root, out), "--overwrite", cache=root / "cache")     # --overwrite: the same
    one_line_error(p, str(out / "runs"), "symbolic link")
    assert (mine / "baseline-s1.json").read_text() == "my own notes, not a run record"


def test_a_linked_run_record_is_never_followed(root, experiment, tmp_path):
    """A record that is a link (to a user's file) is not read: the link alone is replaced, the file is kept."""
    out = copy(experiment, tmp_path / "e")
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(json.loads((out / "runs" / "baseline-s1.json").read_text())))
    before = mine.read_text()
    (out / "runs" / "baseline-s1.json").unlink()
    (out / "runs" / "baseline-s1.json").symlink_to(mine)
    p = run_cli(*experiment_args(root, out), cache=root / "cache")
    assert p.returncode == 0 and "symbolic link" in p.stderr and "1 to run" in p.stderr, p
    assert mine.read_text() == before
    assert not (out / "runs" / "baseline-s1.json").is_symlink()


# ------------------------------------------------------------------ hole 8: one run at a time, records carry config
HOLD = textwrap.dedent("""
    import sys
    from biasaudit.io import claim_folder
    held = claim_folder(sys.argv[1], sys.argv[2], None, overwrite=True, check_config=False)
    print("held", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def held():
    procs = []

    def hold(folder, kind):
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), kind], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p
    yield hold
    for p in procs:
        p.stdin.close()
        p.wait(30)


def test_a_folder_another_run_writes_is_refused_at_once(root, tmp_path, held):
    out = tmp_path / "out"
    holder = held(out, "score")
    t0 = time.perf_counter()
    p = run_cli("score", "-c", root / "c.jsonl", "-t", root / "t.json", "--out", out, *SMALL,
                cache=tmp_path / "cache")
    one_line_error(p, str(out), "another biasaudit run", f"process {holder.pid}")
    assert time.perf_counter() - t0 < 5
    assert not (tmp_path / "cache").exists(), "refused before any training"
    with pytest.raises(ArtifactError, match="another biasaudit run"):
        claim_folder(out, "score", {"x": 1})
    holder.stdin.close()
    holder.wait(30)
    p = run_cli("score", "-c", root / "c.jsonl", "-t", root / "t.json", "--out", out, *SMALL,
                cache=tmp_path / "cache")
    assert p.returncode == 0, p
    assert not lock_path(out).exists(), "the lock file goes with the run"
    eout = tmp_path / "e"
    held(eout, "experiment")
    one_line_error(run_cli(*experiment_args(root, eout), cache=tmp_path / "cache"), str(eout),
                   "another biasaudit run")


def test_claims_of_one_process_nest_and_release():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o"
        a = claim_folder(out, "score", None)
        b = claim_folder(out, "score", None)          # the same process: nested (a run's early check, then its claim)
        assert lock_path(out).exists()
        b.release()
        assert lock_path(out).exists()
        del a                                          # a claim dropped unstaged lets go too
        assert not lock_path(out).exists()


def test_a_link_to_a_folder_shares_the_folders_lock(tmp_path):
    """Two runs, one writing ``out`` and one writing it through a link, take the same lock: the second is refused
    (the lock was named after the name as typed, so both wrote the folder at once)."""
    out, link = tmp_path / "out", tmp_path / "link"
    out.mkdir()
    link.symlink_to(out)
    assert lock_path(link) == lock_path(out)
    a = claim_folder(out, "score", None)
    refused = subprocess.run([sys.executable, "-c", "import sys; from biasaudit.io import claim_folder\n"
                              "try:\n    claim_folder(sys.argv[1], 'score', None)\n"
                              "except Exception as e:\n    print(type(e).__name__, e)", str(link)],
                             capture_output=True, text=True, timeout=60)
    assert "another biasaudit run" in refused.stdout, refused
    a.release()


def test_a_planted_lock_file_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    linked, piped = tmp_path / "a", tmp_path / "b"
    lock_path(linked).symlink_to(victim)
    os.mkfifo(lock_path(piped))
    with pytest.raises(ArtifactError, match="symbolic link"):
        claim_folder(linked, "score", None)
    refused_at_once(lambda: claim_folder(piped, "score", None), lock_path(piped))
    assert victim.read_text() == "mine"


def test_a_run_record_of_another_config_is_done_again(root, experiment, tmp_path):
    """Another run (here --epochs 1) wrote its baseline record into this experiment's folder: the resume redoes it,
    and the results are this config's own."""
    out = copy(experiment, tmp_path / "e")
    other = tmp_path / "other"
    args = [a if a != "2" else "1" for a in experiment_args(root, other)]        # --epochs 1
    assert run_cli(*args, cache=root / "cache").returncode == 0
    record = lambda f: {k: v for k, v in json.loads(f.read_text()).items() if k != "seconds"}
    ours, theirs = record(out / "runs" / "baseline-s1.json"), record(other / "runs" / "baseline-s1.json")
    assert ours["effects"] != theirs["effects"] and ours["config_sha256"] != theirs["config_sha256"]
    shutil.copy(other / "runs" / "baseline-s1.json", out / "runs" / "baseline-s1.json")
    p = run_cli(*experiment_args(root, out), cache=root / "cache")
    assert p.returncode == 0 and "another config" in p.stderr and "1 to run" in p.stderr, p
    assert record(out / "runs" / "baseline-s1.json") == ours
    assert (out / "results.csv").read_text() == (experiment / "results.csv").read_text()


# ------------------------------------------------------------------ rough edges: deep JSON, a full disk
def test_deep_json_is_one_line(root, scored, lm_folders, tmp_path):
    from biasaudit.measures.lm import load_pairs, load_templates
    from biasaudit.report import write_report
    (tmp_path / "p.jsonl").write_text(DEEP + "\n")
    (tmp_path / "tpl.json").write_text(DEEP)
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(DEEP)
    s = copy(scored, tmp_path / "s")
    (s / "summary.json").write_text(DEEP)
    lm = copy(lm_folders["ours"], tmp_path / "lm")
    (lm / "biasaudit.json").write_text(DEEP)
    cases = [(lambda: load_pairs(tmp_path / "p.jsonl"), ConfigError, "p.jsonl"),
             (lambda: load_templates(tmp_path / "tpl.json"), ConfigError, "tpl.json"),
             (lambda: claim_folder(out, "score", None), ArtifactError, MANIFEST),
             (lambda: write_report(s), ArtifactError, "summary.json"),
             (lambda: load_lm(lm), ArtifactError, "biasaudit.json")]
    for call, error, name in cases:
        with pytest.raises(error) as e:
            call()
        assert name in str(e.value) and "\n" not in str(e.value), e.value
    one_line_error(run_cli("report", s), "summary.json", "nested deeper")
    one_line_error(run_cli("score", "-c", root / "c.jsonl", "-t", root / "t.json", "--out", out, *SMALL,
                           cache=root / "cache"), MANIFEST, "nested deeper")


def _mount_tmpfs(tmp_path, name, options):
    point = tmp_path / name
    point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    return point


def test_a_full_disk_names_the_output_asked_for(root, tmp_path):
    full = _mount_tmpfs(tmp_path, "full", "size=2m")
    try:
        (full / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 16 * 1024))   # 16 KiB left
        big = [a if a != "8" else "64" for a in SMALL]          # vectors too large for the space left
        for args in (["score", "-c", root / "c.jsonl", "-t", root / "t.json", "--out", full / "out", *big],
                     [a if a != "8" else "64" for a in experiment_args(root, full / "out")]):
            p = run_cli(*args, cache=tmp_path / "cache")
            one_line_error(p, "No space left on device", str(full / "out"))
            assert "tmp-biasaudit" not in p.stderr, p
            shutil.rmtree(full / "out", ignore_errors=True)
    finally:
        subprocess.run(["umount", "-l", str(full)], capture_output=True)

