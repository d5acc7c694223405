"""Documents and corpora: loading (bundled corpora, local files through HF datasets, hub names), stable ids,
a content hash, and edits (without some documents, with some repeated).

A Corpus is a re-iterable stream of Documents: nothing holds the whole corpus in memory, so a JSONL file larger
than memory can be scanned, trained on and scored. Empty documents (no text after stripping whitespace) are
skipped while iterating and counted by ``scan()``; a corpus with no non-empty document is an error.

Stable ids: a document's id is its ``id`` field (``--id-field``) when the file has one, else ``<file name>:<n>``
with n the 1-based record number in that file (the line number for text and JSONL files).
"""
from __future__ import annotations

import abc
import glob
import hashlib
import json
import re
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import CorpusError
from .io import open_regular, regular_file
from .tokens import DEFAULT_TOKENIZER, Tokenizer

BUNDLED = {"gcide": "gcide.jsonl.gz", "wordnet": "wordnet.jsonl.gz"}
DEFAULT_CORPUS = "gcide"
_FORMATS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet", ".txt": "text", ".text": "text"}


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    tokens: tuple[str, ...] | None = None   # the document's own tokens (``--tokenizer field:NAME``)


@dataclass(frozen=True)
class CorpusStats:
    """One pass over a corpus: its content hash and counts."""
    hash: str          # sha256 over (id, text) of the non-empty documents, in order
    n_documents: int   # non-empty documents
    n_empty: int       # documents skipped because their text was empty
    n_chars: int

    def to_dict(self) -> dict:
        return {"hash": self.hash, "n_documents": self.n_documents, "n_empty": self.n_empty, "n_chars": self.n_chars}


class Corpus(abc.ABC):
    """A named, re-iterable stream of documents. Subclasses provide ``_raw()`` (documents, empty ones included)."""

    name: str = "corpus"
    source: str | None = None                 # what load_corpus was given (to repeat the command)
    fields: tuple[str, str] = ("id", "text")  # the id and text fields it was read with
    tokenizer: Tokenizer = DEFAULT_TOKENIZER  # how its documents become tokens
    _stats: CorpusStats | None = None

    @property
    def label(self) -> str:
        """How error messages name this corpus (its file where it has one)."""
        return f"corpus {self.name!r}"

    def __repr__(self) -> str:
        n = self.n_documents_known
        tok = "" if self.tokenizer == DEFAULT_TOKENIZER else f", tokenizer {self.tokenizer.spec!r}"
        where = f", {self.label}" if self.label != f"corpus {self.name!r}" else ""
        return (f"<{type(self).__name__} {self.name!r}{where}: "
                f"{f'{n:,} documents' if n is not None else 'not read yet'}{tok}>")

    def __len__(self) -> int:
        """The number of non-empty documents: one pass over the corpus the first time (``scan``, cached)."""
        return self.scan().n_documents

    def __bool__(self) -> bool:      # a corpus is a corpus, empty or not (``len`` reads it)
        return True

    @abc.abstractmethod
    def _raw(self) -> Iterator[Document]:
        """Every document in order, empty ones included."""

    def __iter__(self) -> Iterator[Document]:
        for doc in self._raw():
            if doc.text.strip():
                yield doc

    def iter_batches(self, batch_size: int = 1000) -> Iterator[list[Document]]:
        batch: list[Document] = []
        for doc in self:
            batch.append(doc)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def scan(self) -> CorpusStats:
        """Hash and count the corpus in one pass (cached); raise CorpusError if it is empty or ids repeat."""
        if self._stats is not None:
            return self._stats
        h = hashlib.sha256()
        seen: set[str] = set()
        n = empty = chars = 0
        for doc in self._raw():
            if not doc.text.strip():
                empty += 1
                continue
            if doc.id in seen:
                raise CorpusError(f"{self.label}: document id {doc.id!r} occurs more than once; ids must be unique")
            seen.add(doc.id)
            h.update(doc.id.encode("utf-8", "surrogatepass") + b"\0" + doc.text.encode("utf-8", "surrogatepass") + b"\n")
            if doc.tokens is not None:
                h.update(json.dumps(doc.tokens).encode("utf-8", "surrogatepass") + b"\n")
            n += 1
            chars += len(doc.text)
        if n == 0:
            what = f"{empty} empty documents and no others" if empty else "no documents"
            raise CorpusError(f"{self.label} has {what}")
        self._stats = CorpusStats(h.hexdigest(), n, empty, chars)
        return self._stats

    @property
    def n_documents_known(self) -> int | None:
        """The number of non-empty documents where a scan has counted them (no pass over the corpus), else None:
        the total a progress bar over the documents shows."""
        return self._stats.n_documents if self._stats is not None else None

    @property
    def hash(self) -> str:
        """The content hash, and the tokenizer's where it is not the default (models and rankings are cached by
        it: the same text tokenized differently is another training set)."""
        h = self.scan().hash
        if self.tokenizer != DEFAULT_TOKENIZER:
            h = hashlib.sha256(f"{h}\0{self.tokenizer.key}".encode()).hexdigest()
        return h

    def describe(self) -> dict:
        """What a model records of the corpus it was trained on: name, hash (``hash``), counts, tokenizer."""
        return {"name": self.name, **self.scan().to_dict(), "hash": self.hash, "tokenizer": self.tokenizer.key}

    def shards(self) -> list["Corpus"]:
        """Independent parts whose documents, in order, are this corpus's (one per file for file corpora):
        the units a Dask worker reads. Document ids are the same as in the whole corpus."""
        return [self]

    def without(self, ids: Iterable[str]) -> "Corpus":
        """This corpus with the documents whose ids are given removed."""
        return EditedCorpus(self, remove=frozenset(ids))

    def swapped(self, ids: Iterable[str], swaps) -> "Corpus":
        """This corpus with the given documents replaced by their counterfactual rewrites (``swaps``: a
        ``biasaudit.swaps.SwapList``; one-sided CDA). Ids are kept."""
        return EditedCorpus(self, swap=frozenset(ids), swaps=swaps)

    def augmented(self, ids: Iterable[str] | None, swaps) -> "Corpus":
        """This corpus with a counterfactual copy (id ``<id>#cda``, or ``#cda2``, ... when that id is taken) after
        each given document (None: every one; two-sided CDA), where the rewrite changes something."""
        return EditedCorpus(self, augment=None if ids is None else frozenset(ids), augment_all=ids is None,
                            swaps=swaps)

    def upweight(self, ids: Iterable[str], times: int) -> "Corpus":
        """This corpus with each given document present ``times`` times in all (copies get the first ids
        ``<id>@copy1``, ``@copy2``, ... that the corpus does not hold already)."""
        if times < 1:
            raise CorpusError(f"upweight times must be >= 1, got {times}")
        return EditedCorpus(self, repeat=frozenset(ids), times=times)


class MemoryCorpus(Corpus):
    """A corpus held in memory (tests, small edits)."""

    def __init__(self, documents: Sequence[Document] | Iterable[tuple[str, str]], name: str = "memory",
                 tokenizer: Tokenizer = DEFAULT_TOKENIZER):
        self.name, self.tokenizer = name, tokenizer
        self.documents = [d if isinstance(d, Document) else Document(str(d[0]), str(d[1])) for d in documents]

    def _raw(self) -> Iterator[Document]:
        return iter(self.documents)


class EditedCorpus(Corpus):
    def __init__(self, base: Corpus, remove: frozenset = frozenset(), repeat: frozenset = frozenset(), times: int = 1,
                 swap: frozenset = frozenset(), augment: frozenset | None = frozenset(), augment_all: bool = False,
                 swaps=None):
        self.base, self.remove, self.repeat, self.times = base, remove, repeat, times
        self.swap, self.augment, self.augment_all, self.swaps = swap, augment or frozenset(), augment_all, swaps
        self.name, self.tokenizer = base.name, base.tokenizer
        self._taken: frozenset | None = None        # the base's ids (a copy's id avoids them), read once

    def _raw(self) -> Iterator[Document]:
        if (self.augment_all or self.augment or (self.repeat and self.times > 1)) and self._taken is None:
            self._taken = frozenset(d.id for d in self.base._raw())
        added: set[str] = set()
        for doc in self.base._raw():
            if doc.id in self.remove:
                continue
            yield self.swaps.swap_document(doc) if doc.id in self.swap else doc
            if doc.id in self.repeat:
                k = 0
                for _ in range(1, self.times):
                    k += 1
                    while f"{doc.id}@copy{k}" in self._taken or f"{doc.id}@copy{k}" in added:
                        k += 1          # the user's corpus holds that id: the next free one, as cda_id does
                    added.add(f"{doc.id}@copy{k}")
                    yield Document(f"{doc.id}@copy{k}", doc.text, doc.tokens)
            if self.augment_all or doc.id in self.augment:
                cf = self.swaps.swap_document(doc)
                if cf.text != doc.text or cf.tokens != doc.tokens:
                    new = cda_id(doc.id, self._taken, added)
                    added.add(new)
                    yield Document(new, cf.text, cf.tokens)


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
                yield _document(rec, f"{path}: record {i}", f"{display_name(path.name)}:{i}", id_field, text_field,
                                token_field)
            return
        first = False
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        except (RecursionError, ValueError) as e:      # nesting too deep, an integer too long
            raise CorpusError(f"{path}: line {n}: not a usable JSON record ({str(e)[:80]})") from None
        yield _document(rec, f"{path}: line {n}", f"{display_name(path.name)}:{n}", id_field, text_field,
                        token_field)


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


class HubCorpus(Corpus):
    """A dataset on the Hugging Face hub, streamed through HF ``datasets`` (needs a network connection)."""

    def __init__(self, name: str, hub: str, id_field: str = "id", text_field: str = "text"):
        self.name, self.hub, self.id_field, self.text_field = name, hub, id_field, text_field

    def __len__(self) -> int:
        if self._stats is None:    # counting would stream the whole dataset
            raise TypeError(f"len() of hub dataset {self.hub!r} is known once it has been read (corpus.scan())")
        return self._stats.n_documents

    def _raw(self) -> Iterator[Document]:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        row = 0
        try:
            for batch in datasets.load_dataset(self.hub, split="train", streaming=True).iter(batch_size=1000):
                if self.text_field not in batch:
                    raise CorpusError(f"{self.hub}: no text field {self.text_field!r} (fields: "
                                      f"{', '.join(sorted(batch)) or 'none'}); choose one with --text-field")
                ids = batch.get(self.id_field)
                for i, text in enumerate(batch[self.text_field]):
                    row += 1
                    doc_id = f"{self.name}:{row}" if ids is None or ids[i] is None else str(ids[i])
                    yield Document(doc_id, "" if text is None else str(text))
        except CorpusError:
            raise
        except Exception as e:  # datasets raises many types; the user needs the name and the reason
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CorpusError(f"{self.hub}: cannot read record {row + 1}: {msg}") from e


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


def corpora_dir() -> Path:
    """Where the bundled corpora live: $BIASAUDIT_CORPORA, the source checkout, or the installed data files."""
    env = os.environ.get("BIASAUDIT_CORPORA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parent.parent / "corpora", Path(sys.prefix) / "share" / "biasaudit" / "corpora"]
    for c in candidates:
        if (c / BUNDLED[DEFAULT_CORPUS]).exists():
            return c
    raise CorpusError("bundled corpora not found: set BIASAUDIT_CORPORA to the repository's corpora/ folder")


def load_corpus(source: str | os.PathLike | None = None, id_field: str = "id", text_field: str = "text",
                tokenizer: Tokenizer | str = DEFAULT_TOKENIZER) -> Corpus:
    """Open a corpus: a bundled name (``gcide``, ``wordnet``; None means the default), a file, a folder of files,
    a glob, or a hub dataset name (``owner/name``; needs a network connection).

    An existing path is always a path, never a pattern: ``corpus[2024].jsonl`` reads that file. Only a path that
    does not exist is tried as a glob, then as a hub name."""
    tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
    src = DEFAULT_CORPUS if source is None else str(source)
    corpus = (FileCorpus(src, [corpora_dir() / BUNDLED[src]]) if source is None
              else _open(src, id_field, text_field))
    corpus.source, corpus.fields = src, (id_field, text_field)
    if tokenizer != DEFAULT_TOKENIZER:
        if not isinstance(corpus, FileCorpus):
            raise CorpusError(f"{src}: --tokenizer {tokenizer.spec} applies to local files only")
        corpus = FileCorpus(corpus.name, corpus.files, id_field, text_field, tokenizer)
        corpus.source, corpus.fields = src, (id_field, text_field)
    return corpus


def _open(src: str, id_field: str, text_field: str) -> Corpus:
    path = Path(src).expanduser()
    if src in BUNDLED and not path.exists():
        return FileCorpus(src, [corpora_dir() / BUNDLED[src]])
    if path.exists():
        if path.is_dir():
            files = sorted(_regular(p) for p in path.rglob("*") if not p.is_dir() and _known(p)
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise CorpusError(f"{path}: folder holds no corpus files (.jsonl, .json, .csv, .tsv, .parquet, .txt)")
            return FileCorpus(safe_name(path.resolve().name), files, id_field, text_field)
        _regular(path)
        _format_of(path)
        return FileCorpus(safe_name(_stem(path)), [path], id_field, text_field)
    if any(ch in src for ch in "*?["):
        # every match that is not a folder is checked as a folder's files are: a FIFO or a link to a device among
        # them is one line naming it, not silently skipped
        files = sorted(_regular(Path(p)) for p in glob.glob(os.path.expanduser(src), recursive=True)
                       if not os.path.isdir(p))
        if not files:
            raise CorpusError(f"{src}: no such file, and no file matches it as a pattern")
        for f in files:
            _format_of(f)
        name = _stem(files[0]) if len(files) == 1 else Path(src).parent.name or "corpus"
        return FileCorpus(safe_name(name), files, id_field, text_field)
    if _looks_like_hub_name(src):
        if not _hub_reachable():
            raise CorpusError(f"{src}: no such file or folder (as a hub dataset name it needs the network, and "
                              "huggingface.co is not reachable)")
        return HubCorpus(safe_name(src.replace("/", "_")), src, id_field, text_field)
    if "/" in src or "\\" in src or _known(Path(src)):
        raise CorpusError(f"{src}: no such file or folder")
    raise CorpusError(f"corpus {src!r} not found: not a bundled corpus ({', '.join(BUNDLED)}), file, folder, glob "
                      "or hub dataset name (owner/name)")


def _regular(path: Path) -> Path:
    """``path`` when it is a regular file; checked before every open, since a FIFO would block the read forever
    and a device (/dev/zero) would never end: each is one line naming it."""
    return regular_file(path, "corpus file", CorpusError)


def _looks_like_hub_name(src: str) -> bool:
    """owner/name, with no file extension a corpus file would have and no path-like start."""
    if src.count("/") != 1 or src.startswith((".", "/", "~")) or src.endswith("/"):
        return False
    try:
        _format_of(Path(src))
        return False        # names a corpus file that does not exist
    except CorpusError:
        return True


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub can be reached at all (offline settings or a failed connection: no), decided in at most
    ``timeout`` seconds rather than after datasets' retries."""
    import socket

    if any(os.environ.get(v, "").lower() in ("1", "true", "yes")
           for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def safe_name(name: str) -> str:
    """A corpus name usable in a folder name and printable: letters, digits, '.', '_' and '-' kept, anything else
    (path separators, control characters, spaces) becomes '_'."""
    out = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_" for ch in name).strip(".")
    return out[:80] or "corpus"


def _known(p: Path) -> bool:
    try:
        _format_of(p)
        return True
    except CorpusError:
        return False


def _stem(p: Path) -> str:
    name = p.name
    while "." in name:
        name = name.rsplit(".", 1)[0]
    return name or "corpus"


# ------------------------------------------------------------------ writing edited corpora in the input's format
def cda_id(doc_id: str, *taken) -> str:
    """The id of a counterfactual copy: ``<id>#cda``, else ``<id>#cda2``, ``#cda3``, ... the first that none of
    ``taken`` holds (every id of the corpus, and the copies' ids so far: the caller adds the new one)."""
    new, k = f"{doc_id}#cda", 1
    while any(new in t for t in taken):
        k += 1
        new = f"{doc_id}#cda{k}"
    return new


def _json_records(path: Path) -> Iterator[dict]:
    """The raw records of a JSON Lines (or JSON array) file, in the order ``_json_documents`` reads them."""
    lines = _lines(path)
    first = True
    for n, line in lines:
        if not line.strip():
            continue
        if first and line.lstrip().startswith("["):
            yield from json.loads("\n".join([line] + [l for _, l in lines]))
            return
        first = False
        yield json.loads(line)


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
