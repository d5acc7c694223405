"""Documents and corpora: loading (bundled corpora, local files, folders, globs, hub names), stable ids, a content
hash, edits (without some documents, with some repeated or swapped), and edited corpora written in their input's
format. One module a noun:

- ``documents``: Document, the Corpus contract (iteration, ``scan``: hash and counts), MemoryCorpus, the edits;
- ``files``: FileCorpus and the readers of each file format (line numbers, only regular files opened);
- ``sources``: ``load_corpus`` (what a source names), HubCorpus, the bundled corpora, ``safe_name``;
- ``output``: an edited corpus written in its input's format (``records``, ``output_layout``, ``write_records``).

Every name is importable from ``biasaudit.corpus`` as before the split.
"""
from __future__ import annotations

from .documents import Corpus, CorpusStats, Document, EditedCorpus, MemoryCorpus, cda_id
from .files import FileCorpus, display_name
from .output import edited_record, output_layout, records, write_records
from .sources import BUNDLED, DEFAULT_CORPUS, HubCorpus, corpora_dir, load_corpus, safe_name

__all__ = ["BUNDLED", "DEFAULT_CORPUS", "Corpus", "CorpusStats", "Document", "EditedCorpus", "FileCorpus",
           "HubCorpus", "MemoryCorpus", "cda_id", "corpora_dir", "display_name", "edited_record", "load_corpus",
           "output_layout", "records", "safe_name", "write_records"]
