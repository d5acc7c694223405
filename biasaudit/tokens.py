"""How documents become tokens. A corpus carries its tokenizer (``Corpus.tokenizer``, ``--tokenizer``):

- ``biasaudit`` (default, version ``TOKENIZER``): lowercase the text, then take maximal runs of Unicode letters
  and digits (regex ``[^\\W_]+``). Punctuation, apostrophes and hyphens separate tokens: "Noah's" -> "noah",
  "s"; "short-term" -> "short", "term". Word lists are lowercased the same way.
- ``whitespace``: the text split on whitespace, case and punctuation kept (``str.split()``);
- ``simple_preprocess``: gensim's ``gensim.utils.simple_preprocess`` (lowercased tokens of 2 to 15 letters,
  accents kept), for a model trained on tokens made that way;
- ``field:NAME``: the document's field NAME holds its list of tokens (a user's own preprocessing, used as is).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TOKENIZER = "lower-alnum-v1"
TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens of ``text`` (see the module docstring)."""
    return TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Tokenizer:
    """How a corpus's documents become tokens: ``biasaudit``, ``whitespace``, ``simple_preprocess`` or
    ``field:NAME``."""
    spec: str = "biasaudit"

    def __post_init__(self):
        from .errors import ConfigError

        ok = isinstance(self.spec, str) and (self.spec in NAMED or (self.spec.startswith("field:") and
                                                                    len(self.spec) > len("field:")))
        if not ok:
            choices = "biasaudit, whitespace, simple_preprocess (gensim's) or field:NAME"
            raise ConfigError(f"tokenizer must be {choices}, got {self.spec!r}").with_cli(
                f"--tokenizer must be {choices}, got {self.spec!r}")

    @property
    def field(self) -> str | None:
        """The document field holding the tokens (``field:NAME``), else None."""
        return self.spec[len("field:"):] if self.spec.startswith("field:") else None

    @property
    def key(self) -> str:
        """What identifies this tokenizer in cache keys and saved models (the default's is ``TOKENIZER``)."""
        return TOKENIZER if self.spec == "biasaudit" else f"{self.spec}-v1"

    def __call__(self, doc) -> list[str]:
        if self.spec == "biasaudit":
            return TOKEN.findall(doc.text.lower())
        if self.spec == "whitespace":
            return doc.text.split()
        if self.spec == "simple_preprocess":
            from gensim.utils import simple_preprocess
            return simple_preprocess(doc.text)
        return list(doc.tokens or ())


NAMED = ("biasaudit", "whitespace", "simple_preprocess")   # the tokenizers named by a word (not field:NAME)


DEFAULT_TOKENIZER = Tokenizer()
