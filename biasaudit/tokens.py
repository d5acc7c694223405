"""How documents become tokens. A corpus carries its tokenizer (``Corpus.tokenizer``, ``--tokenizer``):

- ``biasaudit`` (default, version ``TOKENIZER``): lowercase the text, then take maximal runs of Unicode letters
  and digits (regex ``[^\\W_]+``). Punctuation, apostrophes and hyphens separate tokens: "Noah's" -> "noah",
  "s"; "short-term" -> "short", "term". Word lists are lowercased the same way.
- ``whitespace``: the text split on whitespace, case and punctuation kept (``str.split()``);
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
    """How a corpus's documents become tokens: ``biasaudit``, ``whitespace`` or ``field:NAME``."""
    spec: str = "biasaudit"

    def __post_init__(self):
        from .errors import ConfigError

        ok = self.spec in ("biasaudit", "whitespace") or (self.spec.startswith("field:") and
                                                          len(self.spec) > len("field:"))
        if not ok:
            raise ConfigError(f"--tokenizer must be biasaudit, whitespace or field:NAME, got {self.spec!r}")

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
        return list(doc.tokens or ())


DEFAULT_TOKENIZER = Tokenizer()
