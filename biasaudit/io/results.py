"""A run's output folder and the summary saved in it (``FolderResult``): what the use cases return
(``run_score``, ``run_experiment``: ``biasaudit.audit.RunResult`` is this type) and what the API's results
(``biasaudit.api.ScoreResult``, ...) extend with saving, reports and the notebook view."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import ArtifactError
from .files import MAX_RESULT_BYTES, read_json


class FolderResult:
    """A result over an output folder: ``folder`` and the JSON ``summary`` saved there (read from
    ``summary_file`` when not given), a read-only view through ``result[key]`` and ``get``."""
    kind = ""
    summary_file = ""
    files: tuple = ()

    def __init__(self, folder, summary: Mapping[str, Any] | None = None):
        self.folder = Path(folder)
        self.summary = summary if summary is not None else read_summary(self.folder / self.summary_file)

    def __getitem__(self, key: str):
        return self.summary[key]

    def get(self, key: str, default=None):
        return self.summary.get(key, default)

    def to_dict(self) -> dict:
        """The summary as a plain dict (a copy)."""
        return json.loads(json.dumps(dict(self.summary)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r})"

    @classmethod
    def load(cls, folder):
        """The result a run wrote in ``folder`` (by the API or the command line)."""
        folder = Path(folder)
        if not (folder / cls.summary_file).is_file():
            raise ArtifactError(f"{folder}: no {cls.summary_file}; not a biasaudit {cls.kind} folder")
        return cls(folder)


def read_summary(path: Path) -> dict:
    """A result's summary: a regular file of bounded size and depth (``read_json``)."""
    return read_json(path, "result summary", MAX_RESULT_BYTES, follow=False)   # a link in the folder: refused
