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
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from .errors import CorpusError

BUNDLED = {"gcide": "gcide.jsonl.gz", "wordnet": "wordnet.jsonl.gz"}
DEFAULT_CORPUS = "gcide"
_FORMATS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet", ".txt": "text", ".text": "text"}


@dataclass(frozen=True)
class Document:
    id: str
    text: str


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
    _stats: CorpusStats | None = None

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
                raise CorpusError(f"corpus {self.name!r}: document id {doc.id!r} occurs more than once; ids must be unique")
            seen.add(doc.id)
            h.update(doc.id.encode("utf-8", "surrogatepass") + b"\0" + doc.text.encode("utf-8", "surrogatepass") + b"\n")
            n += 1
            chars += len(doc.text)
        if n == 0:
            what = f"{empty} empty documents and no others" if empty else "no documents"
            raise CorpusError(f"corpus {self.name!r} has {what}")
        self._stats = CorpusStats(h.hexdigest(), n, empty, chars)
        return self._stats

    @property
    def hash(self) -> str:
        return self.scan().hash

    def shards(self) -> list["Corpus"]:
        """Independent parts whose documents, in order, are this corpus's (one per file for file corpora):
        the units a Dask worker reads. Document ids are the same as in the whole corpus."""
        return [self]

    def without(self, ids: Iterable[str]) -> "Corpus":
        """This corpus with the documents whose ids are given removed."""
        return EditedCorpus(self, remove=frozenset(ids))

    def upweight(self, ids: Iterable[str], times: int) -> "Corpus":
        """This corpus with each given document present ``times`` times in all (copies get ids ``<id>@copy<k>``)."""
        if times < 1:
            raise CorpusError(f"upweight times must be >= 1, got {times}")
        return EditedCorpus(self, repeat=frozenset(ids), times=times)


class MemoryCorpus(Corpus):
    """A corpus held in memory (tests, small edits)."""

    def __init__(self, documents: Sequence[Document] | Iterable[tuple[str, str]], name: str = "memory"):
        self.name = name
        self.documents = [d if isinstance(d, Document) else Document(str(d[0]), str(d[1])) for d in documents]

    def _raw(self) -> Iterator[Document]:
        return iter(self.documents)


class EditedCorpus(Corpus):
    def __init__(self, base: Corpus, remove: frozenset = frozenset(), repeat: frozenset = frozenset(), times: int = 1):
        self.base, self.remove, self.repeat, self.times = base, remove, repeat, times
        self.name = base.name

    def _raw(self) -> Iterator[Document]:
        for doc in self.base._raw():
            if doc.id in self.remove:
                continue
            yield doc
            if doc.id in self.repeat:
                for k in range(1, self.times):
                    yield Document(f"{doc.id}@copy{k}", doc.text)


class DatasetsCorpus(Corpus):
    """Files (JSONL, CSV, Parquet, text; optionally gzipped) or a hub dataset, streamed through HF ``datasets``."""

    def __init__(self, name: str, files: Sequence[Path] = (), hub: str | None = None,
                 id_field: str = "id", text_field: str = "text"):
        self.name, self.files, self.hub = name, list(files), hub
        self.id_field, self.text_field = id_field, text_field

    def shards(self) -> list["Corpus"]:
        if self.hub is not None or len(self.files) <= 1:
            return [self]
        return [DatasetsCorpus(self.name, [f], id_field=self.id_field, text_field=self.text_field)
                for f in self.files]

    def _streams(self) -> Iterator[tuple[str, Callable[[], Iterable]]]:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        if self.hub is not None:
            yield self.hub, lambda: datasets.load_dataset(self.hub, split="train", streaming=True)
            return
        for f in self.files:
            fmt = _format_of(f)
            kwargs = {"delimiter": "\t"} if f.name.endswith((".tsv", ".tsv.gz")) else {}
            yield f.name, (lambda f=f, fmt=fmt, kw=kwargs:
                           datasets.load_dataset(fmt, data_files=str(f), split="train", streaming=True, **kw))

    def _raw(self) -> Iterator[Document]:
        for label, open_stream in self._streams():
            row = 0
            try:
                for batch in open_stream().iter(batch_size=1000):
                    if self.text_field not in batch:
                        raise CorpusError(f"{label}: no text field {self.text_field!r} (fields: "
                                          f"{', '.join(sorted(batch)) or 'none'}); choose one with --text-field")
                    texts = batch[self.text_field]
                    ids = batch.get(self.id_field)
                    for i, text in enumerate(texts):
                        row += 1
                        doc_id = f"{label}:{row}" if ids is None or ids[i] is None else str(ids[i])
                        yield Document(doc_id, "" if text is None else str(text))
            except CorpusError:
                raise
            except UnicodeDecodeError as e:
                raise CorpusError(f"{label}: not valid UTF-8 near record {row + 1} ({e.reason} at byte {e.start})") from e
            except Exception as e:  # datasets/arrow raise many types; the user needs the file and the reason
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                if "utf-8" in msg.lower() or "utf8" in msg.lower():
                    msg = f"not valid UTF-8 ({msg})"
                raise CorpusError(f"{label}: cannot read record {row + 1}: {msg}") from e


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for comp in (".gz", ".bz2", ".xz", ".zst"):
        if name.endswith(comp):
            name = name[: -len(comp)]
    fmt = _FORMATS.get(Path(name).suffix)
    if fmt is None:
        raise CorpusError(f"{path}: unknown corpus format (use .jsonl, .json, .csv, .tsv, .parquet or .txt, "
                          "optionally .gz)")
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


def load_corpus(source: str | os.PathLike | None = None, id_field: str = "id", text_field: str = "text") -> Corpus:
    """Open a corpus: a bundled name (``gcide``, ``wordnet``; None means the default), a file, a folder or glob
    of files, or a hub dataset name (needs a network connection)."""
    if source is None:
        source = DEFAULT_CORPUS
    src = str(source)
    if src in BUNDLED:
        return DatasetsCorpus(src, [corpora_dir() / BUNDLED[src]])
    path = Path(src).expanduser()
    if path.is_file():
        _format_of(path)
        return DatasetsCorpus(_stem(path), [path], id_field=id_field, text_field=text_field)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and _known(p))
        if not files:
            raise CorpusError(f"{path}: folder holds no corpus files (.jsonl, .json, .csv, .tsv, .parquet, .txt)")
        return DatasetsCorpus(path.name, files, id_field=id_field, text_field=text_field)
    if any(ch in src for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(src), recursive=True) if Path(p).is_file())
        if not files:
            raise CorpusError(f"{src}: no file matches")
        for f in files:
            _format_of(f)
        return DatasetsCorpus(_stem(files[0]) if len(files) == 1 else Path(src).parent.name or "corpus", files,
                              id_field=id_field, text_field=text_field)
    if "/" in src and not src.startswith((".", "/", "~")) and src.count("/") == 1:
        return DatasetsCorpus(src.replace("/", "_"), hub=src, id_field=id_field, text_field=text_field)
    raise CorpusError(f"corpus {src!r} not found: not a bundled corpus ({', '.join(BUNDLED)}), file, folder, glob "
                      "or hub dataset name (owner/name)")


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
