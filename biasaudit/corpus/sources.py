"""Where a corpus comes from: ``load_corpus`` opens a bundled name, a file, a folder of files, a glob (only for
paths that do not exist) or a hub dataset name; the bundled corpora's folder; corpus names safe in folder names.
"""
from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Iterator

from ..errors import CorpusError
from ..io import regular_file
from ..tokens import DEFAULT_TOKENIZER, Tokenizer
from .documents import Corpus, Document
from .files import FileCorpus, _format_of


BUNDLED = {"gcide": "gcide.jsonl.gz", "wordnet": "wordnet.jsonl.gz"}
DEFAULT_CORPUS = "gcide"


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


def corpora_dir() -> Path:
    """Where the bundled corpora live: $BIASAUDIT_CORPORA, the source checkout, or the installed data files."""
    env = os.environ.get("BIASAUDIT_CORPORA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "corpora", Path(sys.prefix) / "share" / "biasaudit" / "corpora"]
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
