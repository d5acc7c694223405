"""What a run returns: ``RunResult``, its folder and the summary it saved there."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class RunResult:
    """What a run wrote: its folder and the summary it saved there (``summary.json`` or ``experiment.json``),
    read-only; ``result["tests"]`` reads a field of the summary."""
    folder: Path
    summary: Mapping[str, Any]

    def __getitem__(self, key: str):
        return self.summary[key]

    def get(self, key: str, default=None):
        return self.summary.get(key, default)

    def to_dict(self) -> dict:
        return dict(self.summary)
