"""Bias measures: the float64 references that give the reported numbers (``weat``, ``embedding``, ``lm``) and their
differentiable twins that influence takes gradients of (``targets`` for word vectors, ``lm`` for language models),
all returning one frozen result type (``result.MeasureResult``). Measures read a model through its vectors or its
network; they import no model family.

The measures of a BiasTest are rows of one registry (``registry.MEASURES``); each module below registers its rows
when imported, so a new measure is one new file plus its name on this line (docs/architecture.md).
"""
from . import weat, embedding  # noqa: F401, I001  (each registers its rows, WEAT first)
