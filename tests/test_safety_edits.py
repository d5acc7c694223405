"""Issue 21, the edited-corpus, report, swap-file and cluster cases: debias writes ids no document holds, in the
input's own format, into a folder claimed before training and outside the corpus; `report` never replaces a
user's report.html; swap files that are deep, huge or start with a BOM; a silent or foreign Dask peer is one line
within a bounded time, and the local dashboard listens on 127.0.0.1 only."""
from __future__ import annotations

import csv
import json
import re
import socket
import threading
import time

import pytest

from biasaudit.corpus import load_corpus
from biasaudit.errors import ConfigError
from biasaudit.planted import planted_corpus
from conftest import PLANTED_TEST, run_cli

SMALL = ["--vector-size", "16", "--window", "3", "--min-count", "2", "--epochs", "2"]
PAIRS = "zorbel\tquintar\nzorbek\tquintel\nzorban\tquinta\n"


def _docs():
    corpus, _, _ = planted_corpus(n_background=60, n_planted=12, n_counter=2)
    return list(corpus)


def _inputs(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(PLANTED_TEST))
    (tmp_path / "pairs.tsv").write_text(PAIRS)
    return ["-t", tmp_path / "t.json", "--swap-pairs", tmp_path / "pairs.tsv", *SMALL]


def _debias(tmp_path, corpus_file, *extra, out=None, method="augment", k="80%"):
    out = out or tmp_path / "out"
    p = run_cli("debias", "-c", corpus_file, *_inputs(tmp_path), "--method", method, "--k", k, "--out", out,
                "--force", "--select", "top-k", "--target", "0", *extra, cache=tmp_path / "cache")
    return p, out


def _one_line(p) -> str:
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode != 0 and lines and lines[-1].startswith("error:") and "Traceback" not in p.stderr, p
    return lines[-1]


# ------------------------------------------------------------------ 1. augment ids
def test_augment_gives_each_copy_an_id_no_document_holds_and_the_output_reloads(tmp_path):
    docs = _docs()
    rows = [{"id": d.id, "text": d.text} for d in docs]
    rows += [{"id": f"{d.id}#cda", "text": "stone river hill"} for d in docs]      # every <id>#cda is taken
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p, out = _debias(tmp_path, f)
    assert p.returncode == 0, p
    m = json.loads((out / "manifest.json").read_text())
    ids = [d.id for d in load_corpus(out / "corpus.jsonl")]
    load_corpus(out / "corpus.jsonl").scan()                  # the tool reads its own output (ids unique)
    assert len(ids) == len(set(ids)) == m["corpus_out"]["n_documents"]
    taken = {r["id"] for r in rows}
    assert m["added_ids"] and not taken & set(m["added_ids"])
    assert all(i.rsplit("#", 1)[1] == "cda2" for i in m["added_ids"])


# ------------------------------------------------------------------ 2. report.html of the user's
@pytest.fixture(scope="module")
def summary_file(tmp_path_factory):
    from biasaudit.audit import run_score
    from biasaudit.corpus import MemoryCorpus
    from biasaudit.influence.estimators import EstimatorConfig
    from biasaudit.models.skipgram import SkipGramConfig, train_skipgram
    from biasaudit.wordsets import BiasTest

    corpus = MemoryCorpus(_docs(), name="planted")
    model = train_skipgram(corpus, SkipGramConfig(vector_size=16, window=3, min_count=2, epochs=2, seed=1))
    out = tmp_path_factory.mktemp("score") / "score"
    run_score(model, corpus, [BiasTest.from_dict(PLANTED_TEST)], EstimatorConfig(), out_dir=out, top=5)
    return out


def test_report_never_replaces_a_report_html_this_tool_did_not_write(tmp_path, summary_file):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_bytes((summary_file / "summary.json").read_bytes())   # a copied summary
    (mine / "report.html").write_bytes(b"<p>my own notes</p>\n")
    p = run_cli("report", mine)
    line = _one_line(p)
    assert p.returncode == 1 and "report.html" in line and str(mine) in line
    assert (mine / "report.html").read_bytes() == b"<p>my own notes</p>\n"
    # without a report.html of anyone's, the page is written; in our own folder it is rewritten, and listed
    (mine / "report.html").unlink()
    assert run_cli("report", mine).returncode == 0 and (mine / "report.html").exists()
    for _ in range(2):
        p = run_cli("report", summary_file)
        assert p.returncode == 0, p
    assert "report.html" in json.loads((summary_file / ".biasaudit.json").read_text())["files"]


# ------------------------------------------------------------------ 3. Dask peers
class _Peer:
    """A listener on 127.0.0.1 that accepts connections and then says nothing (or ``reply``)."""

    def __init__(self, reply: bytes | None = None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.reply, self.conns = reply, []
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.reply:
                try:
                    c.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def _bounded(fn, limit: float):
    """Run ``fn`` in a thread; (finished, exception, seconds). A hang is a finished=False, not a hung test."""
    box = {}

    def target():
        try:
            fn()
        except BaseException as e:       # noqa: BLE001 - handed back to the test
            box["error"] = e

    t0 = time.monotonic()
    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(limit)
    return not th.is_alive(), box.get("error"), time.monotonic() - t0


def _connect(address):
    from biasaudit.distributed import dask_client

    with dask_client(address):
        pass


def test_a_silent_scheduler_is_one_line_within_the_timeout(monkeypatch):
    monkeypatch.setenv("BIASAUDIT_DASK_TIMEOUT", "2")
    peer = _Peer()
    try:
        finished, error, seconds = _bounded(lambda: _connect(peer.address), 25)
    finally:
        peer.close()
    assert finished, "the connection to a silent peer is not bounded in time"
    assert isinstance(error, ConfigError) and seconds < 15, (error, seconds)
    msg = str(error)
    assert "\n" not in msg and peer.address in msg and "timed out" in msg and "BIASAUDIT_DASK_TIMEOUT" in msg


def test_a_peer_speaking_garbage_and_bad_timeouts_are_one_line(monkeypatch):
    peer = _Peer(reply=b"\xff" * 64 + b"HTTP/1.1 200 OK\r\n\r\n" * 20)
    try:
        monkeypatch.setenv("BIASAUDIT_DASK_TIMEOUT", "3")
        finished, error, _ = _bounded(lambda: _connect(peer.address), 25)
        assert finished and isinstance(error, ConfigError) and peer.address in str(error), error
        monkeypatch.setenv("BIASAUDIT_DASK_TIMEOUT", "soon")
        with pytest.raises(ConfigError, match="BIASAUDIT_DASK_TIMEOUT"):
            _connect(peer.address)
    finally:
        peer.close()


@pytest.mark.parametrize("address, cause", [("tls://127.0.0.1:8786", "tls:// is not supported"),
                                            ("ucx://127.0.0.1:8786", "ucx:// is not supported"),
                                            ("tcp://127.0.0.1", "tcp://HOST:PORT"),
                                            ("tcp://127.0.0.1:notaport", "tcp://HOST:PORT"),
                                            ("tcp://127.0.0.1:99999", "tcp://HOST:PORT"),
                                            ("tcp://:8786/x", "tcp://HOST:PORT")])
def test_scheduler_addresses_other_than_tcp_host_port_are_one_line(address, cause, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(cause)):
        _connect(address)
    p = run_cli("score", "-c", tmp_path / "none.jsonl", "--scheduler", address)     # before the corpus is read
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--scheduler" in p.stderr, p


def test_the_local_dashboard_listens_on_127_0_0_1_only(monkeypatch):
    import dask.distributed

    from biasaudit.distributed import dask_client

    seen = {}

    class FakeCluster:
        def __init__(self, **kw):
            seen.update(kw)

        def close(self):
            pass

    class FakeClient:
        def __init__(self, cluster, **kw):
            pass

        def close(self):
            pass

    monkeypatch.setattr(dask.distributed, "LocalCluster", FakeCluster)
    monkeypatch.setattr(dask.distributed, "Client", FakeClient)
    with dask_client("local", n_workers=1) as client:
        assert isinstance(client, FakeClient)
    dash = seen.get("dashboard_address", ":8787")
    assert dash is None or str(dash).startswith("127.0.0.1:"), seen
    assert seen.get("host") in ("127.0.0.1", "localhost"), seen


# ------------------------------------------------------------------ 4. swap files
@pytest.mark.parametrize("content, cause", [("[" * 100_000 + "]" * 100_000, "nested"),
                                            ('[["he", "she"], [' + "7" * 5000 + ', "x"]]', "number")])
def test_a_deep_or_huge_swap_file_is_one_line_naming_it(tmp_path, content, cause):
    from biasaudit.swaps import load_swaps

    f = tmp_path / "pairs.json"
    f.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_swaps(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value) and cause in str(e.value)


def test_a_swap_file_starting_with_a_bom_is_read(tmp_path):
    from biasaudit.swaps import load_swaps

    for name, text in (("p.json", '[["Lord", "Lady"]]'), ("p.tsv", "lord\tlady\n")):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert load_swaps(tmp_path / name).swap("my lord") == "my lady"


# ------------------------------------------------------------------ 5. debias's --out
def test_debias_checks_out_before_training_and_refuses_a_folder_inside_the_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "c.jsonl").write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in _docs()))
    p, _ = _debias(tmp_path, folder, out=folder / "debiased")
    line = _one_line(p)
    assert "inside" in line and str(folder) in line and not (folder / "debiased").exists()
    assert not (tmp_path / "cache").exists(), "trained before refusing"
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    p, _ = _debias(tmp_path, folder / "c.jsonl", out=taken)
    assert "notes.txt" in _one_line(p) and not (tmp_path / "cache").exists(), "trained before refusing"


# ------------------------------------------------------------------ 6. the input's format
def test_debias_writes_jsonl_with_the_inputs_fields_id_types_and_extra_fields(tmp_path):
    docs = _docs()
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps({"doc_no": i, "body": d.text, "lang": "en"}) + "\n" for i, d in enumerate(docs)))
    for method in ("swap", "augment"):
        p, out = _debias(tmp_path, f, "--id-field", "doc_no", "--text-field", "body", method=method,
                         out=tmp_path / method)
        assert p.returncode == 0, p
        m = json.loads((out / "manifest.json").read_text())
        assert m["corpus_out"]["file"] == "corpus.jsonl"
        rows = [json.loads(l) for l in (out / "corpus.jsonl").read_text().splitlines()]
        originals = [r for r in rows if not str(r["doc_no"]).count("#")]
        assert [r["doc_no"] for r in originals] == list(range(len(docs)))          # integers, in order
        assert all(set(r) == {"doc_no", "body", "lang"} and r["lang"] == "en" for r in rows)
        assert any(r["body"] != d.text for r, d in zip(originals, docs)) == (method == "swap")
        again = load_corpus(out / "corpus.jsonl", id_field="doc_no", text_field="body")
        assert again.scan().n_documents == len(rows)
        if method == "augment":
            assert {r["doc_no"] for r in rows if isinstance(r["doc_no"], str)} == set(m["added_ids"])


def test_debias_writes_csv_for_a_csv_input_with_the_same_columns(tmp_path):
    docs = _docs()
    f = tmp_path / "c.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "source", "content"])
        w.writerows([d.id, "web", d.text] for d in docs)
    p, out = _debias(tmp_path, f, "--id-field", "key", "--text-field", "content", method="augment")
    assert p.returncode == 0, p
    m = json.loads((out / "manifest.json").read_text())
    assert m["corpus_out"]["file"] == "corpus.csv" and not (out / "corpus.jsonl").exists()
    with (out / "corpus.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["key", "source", "content"] and all(r[1] == "web" for r in rows[1:])
    again = load_corpus(out / "corpus.csv", id_field="key", text_field="content")
    ids = [d.id for d in again]
    assert len(ids) == len(rows) - 1 == m["corpus_out"]["n_documents"] and ids[:2] == [r[0] for r in rows[1:3]]
    assert set(m["added_ids"]) <= set(ids) and "corpus.csv" in p.stdout
