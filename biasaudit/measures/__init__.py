"""Bias measures: the float64 references that give the reported numbers (``weat``, ``lm``) and their differentiable
twins that influence takes gradients of (``targets`` for word vectors, ``lm`` for language models), all returning
one frozen result type (``result.MeasureResult``). Measures read a model through its vectors or its network; they
import no model family."""
