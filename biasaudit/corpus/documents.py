"""Documents and corpora as streams: the Document, the Corpus contract (iteration, one scan for the content hash and
counts, shards), corpora held in memory, and edits (without some documents, swapped, augmented, upweighted).

A Corpus is a re-iterable stream of Documents: nothing holds the whole corpus in memory, so a JSONL file larger
than memory can be scanned, trained on and scored. Empty documents (no text after stripping whitespace) are
skipped while iterating and counted by ``scan()``; a corpus with no non-empty document is an error.
"""
from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from ..errors import CorpusError
from ..tokens import DEFAULT_TOKENIZER, Tokenizer


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


def cda_id(doc_id: str, *taken) -> str:
    """The id of a counterfactual copy: ``<id>#cda``, else ``<id>#cda2``, ``#cda3``, ... the first that none of
    ``taken`` holds (every id of the corpus, and the copies' ids so far: the caller adds the new one)."""
    new, k = f"{doc_id}#cda", 1
    while any(new in t for t in taken):
        k += 1
        new = f"{doc_id}#cda{k}"
    return new
