"""What a run returns: its folder and the summary it saved there, ``RunResult`` (the one such type,
``biasaudit.io.FolderResult``, which the API's results extend)."""
from __future__ import annotations

from ..io.results import FolderResult as RunResult

__all__ = ["RunResult"]
