"""Corpora read from local files: JSON Lines, a JSON array, CSV, TSV, Parquet or text (one document per line),
optionally gzip, bzip2 or xz compressed; only regular files opened (``biasaudit.io.open_regular``), each record
read with its line number so that a bad one is reported where it is.

Stable ids: a document's id is its ``id`` field (``--id-field``) when the file has one, else ``<file name>:<n>``
with n the 1-based record number in that file (the line number for text and JSONL files).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import CorpusError
from ..io import open_regular
from ..tokens import DEFAULT_TOKENIZER, Tokenizer
from .documents import Corpus, Document


_FORMATS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet", ".txt": "text", ".text": "text"}


class FileCorpus(Corpus):
    """Local files (JSON Lines, a JSON array, CSV, TSV, Parquet or text, one document per line; optionally gzip,
    bzip2 or xz compressed), read with exact line numbers so a bad record is reported where it is."""

    def __init__(self, name: str, files: Sequence[Path], id_field: str = "id", text_field: str = "text",
                 tokenizer: Tokenizer = DEFAULT_TOKENIZER):
        self.name, self.files = name, list(files)
        self.id_field, self.text_field, self.tokenizer = id_field, text_field, tokenizer
        if tokenizer.field is not None:
            for f in self.files:
                if _format_of(f) not in ("json", "parquet"):
                    raise CorpusError(f"{f}: --tokenizer {tokenizer.spec} reads token lists from JSON Lines, JSON "
                                      "or Parquet files, not CSV or text")

    @property
    def label(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"corpus {self.name!r} ({len(self.files)} files)"

    def shards(self) -> list["Corpus"]:
        if len(self.files) <= 1:
            return [self]
        return [FileCorpus(self.name, [f], self.id_field, self.text_field, self.tokenizer) for f in self.files]

    def _raw(self) -> Iterator[Document]:
        for f in self.files:
            fmt = _format_of(f)
            if fmt == "parquet":
                yield from _parquet_documents(f, self.id_field, self.text_field, self.tokenizer.field)
            elif fmt == "csv":
                yield from _csv_documents(f, self.id_field, self.text_field)
            elif fmt == "text":
                name = display_name(f.name)
                for n, line in _lines(f):
                    yield Document(f"{name}:{n}", line)
            else:
                yield from _json_documents(f, self.id_field, self.text_field, self.tokenizer.field)


@contextmanager
def _open_binary(path: Path):
    """A corpus file's bytes (decompressed by its suffix), opened through ``biasaudit.io.open_regular``: the
    descriptor read is the one checked to be a regular file."""
    name = path.name.lower()
    with open_regular(path, "corpus file", CorpusError) as raw:
        if name.endswith(".gz"):
            import gzip
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield f
        elif name.endswith(".bz2"):
            import bz2
            with bz2.BZ2File(raw, "rb") as f:
                yield f
        elif name.endswith(".xz"):
            import lzma
            with lzma.LZMAFile(raw, "rb") as f:
                yield f
        else:
            yield raw


def display_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (kept by the OS as surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogates(value: str, where: str) -> str:
    """JSON can spell a lone surrogate (\\udc80), which is no character: refuse it where it is."""
    m = _SURROGATE.search(value)
    if m:
        raise CorpusError(f"{where}: holds an unpaired surrogate (\\u{ord(m.group()):04x}), not a character")
    return value


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line break) of a UTF-8 text file; a byte that is not UTF-8 is a
    CorpusError naming the line and column."""
    import lzma
    import zlib

    try:
        with _open_binary(path) as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CorpusError(f"{path}: line {n}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                      f"{e.start + 1})") from None
                if n == 1 and line.startswith("\ufeff"):
                    line = line[1:]          # a byte-order mark is not text
                yield n, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:   # unreadable, or a corrupt compressed file
        raise CorpusError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from e


def _field(rec: dict, field: str, where: str, what: str):
    if field not in rec:
        fields = ", ".join(sorted(map(str, rec))) or "none"
        raise CorpusError(f"{where}: no {what} field {field!r} (fields: {fields}); choose one with "
                          f"--{what}-field")
    return rec[field]


def _tokens(value, where: str, field: str) -> tuple[str, ...]:
    """A token-list field (``--tokenizer field:NAME``): a list of strings."""
    if not (isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value)):
        raise CorpusError(f"{where}: the token field {field!r} must hold a list of strings (--tokenizer "
                          f"field:{field}), got {type(value).__name__}")
    for t in value:
        _no_surrogates(t, where)
    return tuple(value)


def _document(rec, where: str, fallback_id: str, id_field: str, text_field: str,
              token_field: str | None = None) -> Document:
    if not isinstance(rec, dict):
        raise CorpusError(f"{where}: not a JSON object")
    if token_field is not None:
        tokens = _tokens(_field(rec, token_field, where, "token"), where, token_field)
        text = rec.get(text_field)
        text = " ".join(tokens) if text is None or isinstance(text, (dict, list)) else text
        doc_id = rec.get(id_field)
        if isinstance(doc_id, (dict, list)):
            raise CorpusError(f"{where}: the id field holds {'an object' if isinstance(doc_id, dict) else 'a list'}, "
                              "not text")
        doc = Document(fallback_id if doc_id is None else str(doc_id), str(text) if tokens else "", tokens)
        _no_surrogates(doc.id, where)
        _no_surrogates(doc.text, where)
        return doc
    text = _field(rec, text_field, where, "text")
    doc_id = rec.get(id_field)
    if isinstance(text, (dict, list)) or isinstance(doc_id, (dict, list)):
        raise CorpusError(f"{where}: the {'text' if isinstance(text, (dict, list)) else 'id'} field holds "
                          f"{'an object' if isinstance(text if isinstance(text, (dict, list)) else doc_id, dict) else 'a list'}, not text")
    doc = Document(fallback_id if doc_id is None else str(doc_id), "" if text is None else str(text))
    _no_surrogates(doc.id, where)
    _no_surrogates(doc.text, where)
    return doc


def _json_documents(path: Path, id_field: str, text_field: str, token_field: str | None = None) -> Iterator[Document]:
    """JSON Lines (one object per line; blank lines skipped), or a file holding one JSON array of objects."""
    for where, n, rec in _json_values(path):
        yield _document(rec, where, f"{display_name(path.name)}:{n}", id_field, text_field, token_field)


def _json_values(path: Path) -> Iterator[tuple[str, int, object]]:
    """(where, record number, parsed value) of each record of a JSON Lines file (blank lines skipped; the number is
    the line's) or of a file holding one JSON array (records numbered from 1): what ``_json_documents`` reads and
    what an edited corpus keeps of each record (``output.records``)."""
    import json

    lines = _lines(path)
    first = True
    for n, line in lines:
        if not line.strip():
            continue
        if first and line.lstrip().startswith("["):
            # a JSON array (the first non-blank character is '['): read whole, records numbered from 1
            text = "\n".join([line] + [l for _, l in lines])
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}: line {n + e.lineno - 1}: not valid JSON ({e.msg} at column "
                                  f"{e.colno})") from None
            except (RecursionError, ValueError) as e:
                raise CorpusError(f"{path}: not a usable JSON array ({str(e)[:80]})") from None
            if not isinstance(records, list):
                raise CorpusError(f"{path}: holds neither one JSON object per line nor one array of objects")
            for i, rec in enumerate(records, 1):
                yield f"{path}: record {i}", i, rec
            return
        first = False
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        except (RecursionError, ValueError) as e:      # nesting too deep, an integer too long
            raise CorpusError(f"{path}: line {n}: not a usable JSON record ({str(e)[:80]})") from None
        yield f"{path}: line {n}", n, rec


def _csv_documents(path: Path, id_field: str, text_field: str) -> Iterator[Document]:
    """CSV (comma) or TSV (tab) with a header row; a document's fallback id is its record number."""
    import csv

    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    lines = (line + "\n" for _, line in _lines(path))
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return
        if text_field not in header:
            raise CorpusError(f"{path}: line 1: no text field {text_field!r} (fields: {', '.join(header) or 'none'});"
                              " choose one with --text-field")
        ti, ii = header.index(text_field), header.index(id_field) if id_field in header else None
        for rec_no, row in enumerate(reader, 1):
            if not row:
                continue
            if len(row) != len(header):
                raise CorpusError(f"{path}: line {reader.line_num}: {len(row)} fields, the header has {len(header)}")
            doc_id = row[ii] if ii is not None and row[ii] != "" else f"{display_name(path.name)}:{rec_no}"
            yield Document(doc_id, row[ti])
    except csv.Error as e:
        raise CorpusError(f"{path}: line {reader.line_num}: not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
                          f"({e})") from None


def _parquet_documents(path: Path, id_field: str, text_field: str,
                       token_field: str | None = None) -> Iterator[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise CorpusError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    try:
        pf = pq.ParquetFile(open_regular(path, "corpus file", CorpusError))   # the checked descriptor
        names = pf.schema_arrow.names
        if token_field is not None:
            if token_field not in names:
                raise CorpusError(f"{path}: no token field {token_field!r} (fields: {', '.join(names) or 'none'})")
            cols = [token_field] + [c for c in (text_field, id_field) if c in names and c != token_field]
            row = 0
            for batch in pf.iter_batches(batch_size=1000, columns=cols):
                for rec in batch.to_pylist():
                    row += 1
                    yield _document(rec, f"{path}: row {row}", f"{display_name(path.name)}:{row}", id_field,
                                    text_field, token_field)
            return
        if text_field not in names:
            raise CorpusError(f"{path}: no text field {text_field!r} (fields: {', '.join(names) or 'none'}); "
                              "choose one with --text-field")
        cols = [text_field] + ([id_field] if id_field in names else [])
        row = 0
        for batch in pf.iter_batches(batch_size=1000, columns=cols):
            d = batch.to_pydict()
            ids = d.get(id_field)
            for i, text in enumerate(d[text_field]):
                row += 1
                doc_id = f"{display_name(path.name)}:{row}" if ids is None or ids[i] is None else str(ids[i])
                yield Document(doc_id, "" if text is None else str(text))
    except CorpusError:
        raise
    except Exception as e:   # pyarrow raises its own types for a corrupt file
        raise CorpusError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for comp in (".gz", ".bz2", ".xz"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    fmt = _FORMATS.get(Path(name).suffix)
    if fmt is None:
        raise CorpusError(f"{path}: unknown corpus format (use .jsonl, .json, .csv, .tsv, .parquet or .txt, "
                          "optionally .gz, .bz2 or .xz)")
    return fmt
