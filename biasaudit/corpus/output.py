"""Writing an edited corpus in its input's format: each document with the record it was read from (``records``),
the output's format and fields (``output_layout``), a document's record with every other field kept
(``edited_record``), and the records written with their hash (``write_records``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

from .documents import Corpus, Document
from .files import FileCorpus, _format_of, _json_values, _lines


def _json_records(path: Path) -> Iterator[dict]:
    """The raw records of a JSON Lines (or JSON array) file, in the order ``_json_documents`` reads them."""
    return (rec for _, _, rec in _json_values(path))


def _csv_layout(path: Path) -> tuple[list[str], str]:
    """(header, delimiter) of a CSV or TSV file."""
    import csv

    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    header = next(csv.reader((line + "\n" for _, line in _lines(path)), delimiter=delimiter), None)
    return list(header or []), delimiter


def _csv_records(path: Path) -> Iterator[dict]:
    """The rows of a CSV or TSV file as {column: value}, in the order ``_csv_documents`` reads them."""
    import csv

    header, delimiter = _csv_layout(path)
    reader = csv.reader((line + "\n" for _, line in _lines(path)), delimiter=delimiter)
    next(reader, None)
    for row in reader:
        if row:
            yield dict(zip(header, row))


def records(corpus: Corpus) -> Iterator[tuple[Document, dict | None]]:
    """Each document of ``corpus`` (empty ones skipped, as iterating does) with the record it was read from: the
    JSON object or the CSV row; None for text, Parquet, hub and in-memory documents."""
    if not isinstance(corpus, FileCorpus):
        yield from ((d, None) for d in corpus)
        return
    for f in corpus.files:
        docs = FileCorpus(corpus.name, [f], corpus.id_field, corpus.text_field, corpus.tokenizer)._raw()
        fmt = _format_of(f)
        recs = _json_records(f) if fmt == "json" else _csv_records(f) if fmt == "csv" else None
        for doc in docs:
            rec = next(recs) if recs is not None else None
            if doc.text.strip():
                yield doc, rec


def output_layout(corpus: Corpus) -> dict:
    """How an edited ``corpus`` is written: ``{"file", "format", "fields", "header", "delimiter"}``. CSV (TSV)
    when every file of it is CSV (TSV) with the same header, with that header (the id column added in front when
    it has none); else JSON Lines. Fields are the corpus's id and text fields (and token field)."""
    id_field, text_field = getattr(corpus, "id_field", corpus.fields[0]), getattr(corpus, "text_field",
                                                                                 corpus.fields[1])
    fields = {"id": id_field, "text": text_field}
    if corpus.tokenizer.field is not None:
        fields["tokens"] = corpus.tokenizer.field
    files = corpus.files if isinstance(corpus, FileCorpus) else []
    if files and all(_format_of(f) == "csv" for f in files):
        layouts = {(tuple(h), d) for h, d in map(_csv_layout, files)}
        if len(layouts) == 1:
            (header, delimiter), = layouts
            header = list(header) if id_field in header else [id_field, *header]
            ext = "tsv" if delimiter == "\t" else "csv"
            return {"file": f"corpus.{ext}", "format": ext, "fields": fields, "header": header,
                    "delimiter": delimiter}
    return {"file": "corpus.jsonl", "format": "jsonl", "fields": fields, "header": None, "delimiter": None}


def edited_record(layout: dict, doc: Document, like: dict | None) -> dict:
    """The record that writes ``doc``: ``like`` (the record it was read from, or its original's) with its id, text
    and token list set from ``doc`` and every other field kept. An id the record holds is kept as it was written
    (an integer stays an integer); an id it did not hold (``file:line``) is written into the id field, so every
    document keeps its id in the new file."""
    f = layout["fields"]
    rec = dict(like) if like is not None else {}
    old = rec.get(f["id"])
    if old is None or isinstance(old, (dict, list)) or str(old) != doc.id or old == "":
        rec[f["id"]] = doc.id
    if "tokens" in f and doc.tokens is not None:
        rec[f["tokens"]] = list(doc.tokens)
        if isinstance(rec.get(f["text"]), str) or like is None:
            rec[f["text"]] = doc.text
    else:
        rec[f["text"]] = doc.text
    return rec


def write_records(layout: dict, rows: Iterable[dict], out) -> tuple[int, str]:
    """Write ``rows`` to the binary file ``out`` in ``layout``'s format; (rows written, sha256 of the bytes)."""
    import csv
    import io

    h = hashlib.sha256()

    def put(line: str) -> None:
        data = line.encode("utf-8", "replace")
        out.write(data)
        h.update(data)

    def csv_line(values) -> str:
        buf = io.StringIO()
        csv.writer(buf, delimiter=layout["delimiter"], lineterminator="\n").writerow(values)
        return buf.getvalue()

    if layout["format"] != "jsonl":
        put(csv_line(layout["header"]))
    n = 0
    for rec in rows:
        put(json.dumps(rec, ensure_ascii=False) + "\n" if layout["format"] == "jsonl"
            else csv_line(["" if rec.get(c) is None else rec[c] for c in layout["header"]]))
        n += 1
    return n, h.hexdigest()
