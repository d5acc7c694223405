"""Model families and the contract they share (``base.ModelFamily``).

Each family is a module that registers itself when imported; this file imports them, one line each, so adding a
family is one new file plus one line here. Nothing outside this package asks which family a model is: it asks
``base.family_of(model)``.
"""
# each registers its family, a skip-gram backend or its replay
from . import skipgram, torch_skipgram, skipgram_replay, glove, glove_replay, lm, lm_family, lm_replay, keyed  # noqa: F401, I001
from .base import FAMILIES, family_of, get_family, load_model, make_config, train_model, train_or_load

__all__ = ["FAMILIES", "family_of", "get_family", "load_model", "make_config", "train_model", "train_or_load"]
