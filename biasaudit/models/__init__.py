"""Model families (one file each) and the contracts they share.

Every family's trained model exposes its vocabulary and the embedding the bias tests read (``vectors``: the
input vectors for skip-gram). Influence (the scoring issue) additionally needs the training loss per document.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Embeddings(Protocol):
    """Word vectors as bias tests read them."""
    index_to_key: Sequence[str]
    key_to_index: dict
    vectors: np.ndarray  # (V, dim)
