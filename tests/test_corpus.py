"""Corpus loading through HF datasets, stable ids, hashing, chunking, edits and bad inputs."""
import gzip
import json

import pandas as pd
import pytest

from biasaudit.corpus import Document, MemoryCorpus, load_corpus
from biasaudit.errors import CorpusError
from biasaudit.vocab import TokenStream, chunk, tokenize


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_ids_and_fields(tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "One doc"}, {"id": "b", "text": "Two"}])
    assert [(d.id, d.text) for d in load_corpus(f)] == [("a", "One doc"), ("b", "Two")]
    g = write_jsonl(tmp_path / "d.jsonl", [{"key": 7, "body": "x y"}, {"key": 8, "body": "z"}])
    assert [d.id for d in load_corpus(g, id_field="key", text_field="body")] == ["7", "8"]
    # without an id field: file:record number
    assert [d.id for d in load_corpus(g, text_field="body")] == ["d.jsonl:1", "d.jsonl:2"]


def test_text_csv_parquet_gzip_folder_and_glob(tmp_path):
    (tmp_path / "t.txt").write_text("first line\n\nthird line\n", encoding="utf-8")
    docs = list(load_corpus(tmp_path / "t.txt"))
    assert [(d.id, d.text) for d in docs] == [("t.txt:1", "first line"), ("t.txt:3", "third line")]
    assert load_corpus(tmp_path / "t.txt").scan().n_empty == 1
    pd.DataFrame({"id": ["p1", "p2"], "text": ["pa", "pb"]}).to_csv(tmp_path / "c.csv", index=False)
    assert [d.id for d in load_corpus(tmp_path / "c.csv")] == ["p1", "p2"]
    pd.DataFrame({"id": ["q1"], "text": ["qa"]}).to_parquet(tmp_path / "c.parquet")
    assert [d.text for d in load_corpus(tmp_path / "c.parquet")] == ["qa"]
    with gzip.open(tmp_path / "z.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "z", "text": "zipped"}) + "\n")
    assert [d.id for d in load_corpus(tmp_path / "z.jsonl.gz")] == ["z"]
    sub = tmp_path / "shards"
    sub.mkdir()
    write_jsonl(sub / "b.jsonl", [{"id": "b1", "text": "bee"}])
    write_jsonl(sub / "a.jsonl", [{"id": "a1", "text": "ay"}])
    assert [d.id for d in load_corpus(sub)] == ["a1", "b1"]
    assert [d.id for d in load_corpus(str(sub / "*.jsonl"))] == ["a1", "b1"]


def test_hash_is_stable_and_content_sensitive():
    a = MemoryCorpus([("1", "x y"), ("2", "z")])
    assert a.hash == MemoryCorpus([("1", "x y"), ("2", "z")]).hash
    assert a.hash != MemoryCorpus([("1", "x y"), ("2", "zz")]).hash
    assert a.hash != MemoryCorpus([("2", "z"), ("1", "x y")]).hash


def test_edits():
    c = MemoryCorpus([("1", "a"), ("2", "b"), ("3", "c")])
    assert [d.id for d in c.without({"2"})] == ["1", "3"]
    assert [d.id for d in c.upweight({"2"}, 3)] == ["1", "2", "2@copy1", "2@copy2", "3"]
    with pytest.raises(CorpusError):
        c.upweight({"2"}, 0)


def test_tokenizer_and_chunking_never_truncate():
    assert tokenize("Noah's short-term PLAN, 2 days!") == ["noah", "s", "short", "term", "plan", "2", "days"]
    long_doc = " ".join(f"w{i % 50}" for i in range(25_003))
    pieces = list(TokenStream(MemoryCorpus([("long", long_doc)])))
    assert [len(p) for p in pieces] == [10_000, 10_000, 5_003]
    assert sum(pieces, []) == tokenize(long_doc)
    assert chunk([], 3) == []


def test_bad_inputs(tmp_path):
    with pytest.raises(CorpusError, match="no documents"):
        MemoryCorpus([]).scan()
    with pytest.raises(CorpusError, match="empty documents"):
        MemoryCorpus([("1", " "), ("2", "")]).scan()
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "empty.jsonl").scan()
    f = write_jsonl(tmp_path / "nofield.jsonl", [{"id": "a", "body": "x"}])
    with pytest.raises(CorpusError, match="no text field 'text'.*body"):
        load_corpus(f).scan()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff\xfe line\n")
    with pytest.raises(CorpusError, match="UTF-8"):
        load_corpus(bad).scan()
    badj = tmp_path / "bad.jsonl"
    badj.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match="bad.jsonl"):
        load_corpus(badj).scan()
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(CorpusError, match="more than once"):
        load_corpus(dup).scan()
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match="unknown corpus format"):
        (tmp_path / "x.docx").write_text("x")
        load_corpus(tmp_path / "x.docx")


def test_bundled_corpora_are_there():
    c = load_corpus("wordnet")
    first = next(iter(c))
    assert first == Document("n00001740", first.text) and "existence" in first.text


def test_a_glob_refuses_a_fifo_or_device_among_its_matches(tmp_path):
    """A folder refuses a FIFO or a link to a device among its files in one line; a glob over the same files
    skipped them silently and trained on the rest (found by an attack). Now both say it."""
    import os
    d = tmp_path / "c"
    d.mkdir()
    (d / "a.jsonl").write_text(json.dumps({"id": "1", "text": "one two"}) + "\n")
    os.mkfifo(d / "b.jsonl")
    with pytest.raises(CorpusError, match="b.jsonl"):
        load_corpus(str(d / "*.jsonl"))
    (d / "b.jsonl").unlink()
    (d / "b.jsonl").symlink_to("/dev/zero")
    with pytest.raises(CorpusError, match="b.jsonl"):
        load_corpus(str(d / "*.jsonl"))
    (d / "b.jsonl").unlink()
    assert len(list(load_corpus(str(d / "*.jsonl")))) == 1
