"""The tokenizers of language models: the word-level one of models trained from scratch here (the project's
tokenizer, ``biasaudit.vocab``; ids: the four specials, then words by frequency), and a checkpoint's own (HF)
tokenizer, where a word may be several tokens.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..corpus import Corpus
from ..errors import ArtifactError
from ..vocab import build_vocab, tokenize
from .checkpoint import fault_line, is_panic

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = range(4)


class WordEncoder:
    """The word-level tokenizer of models trained here (ids: the four specials, then words by frequency)."""
    bos_id, eos_id, pad_id, unk_id = BOS, EOS, PAD, UNK

    def __init__(self, words: tuple[str, ...]):
        self.words = tuple(words)          # specials included, at their ids
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        get = self.index.get
        return [get(t, UNK) for t in tokenize(text)]

    def known(self, word: str) -> bool:
        return word in self.index and self.index[word] >= len(SPECIALS)

    def unrepresented(self, text: str) -> list[str]:
        """The words of ``text`` this tokenizer maps to <unk>."""
        return [t for t in tokenize(text) if t not in self.index]

    def hf_tokenizer(self):
        """The same tokenizer as an HF PreTrainedTokenizerFast (saved beside the weights)."""
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        tok = Tokenizer(models.WordLevel(vocab=dict(self.index), unk_token="<unk>"))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\W_]+"), behavior="removed")
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                       bos_token="<bos>", eos_token="<eos>")


class HFEncoder:
    """A foreign checkpoint's own tokenizer (words may be several tokens)."""

    def __init__(self, tok, source: Path | None = None):
        self.tok = tok
        self.source = source       # the checkpoint folder (named when its tokenizer panics)
        self.bos_id = tok.bos_token_id
        self.eos_id = tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.unk_id = tok.unk_token_id

    def __len__(self) -> int:
        return len(self.tok)

    def _call(self, text: str, **kw):
        try:
            return self.tok(text, add_special_tokens=False, **kw)
        except BaseException as e:       # a Rust panic (pyo3's PanicException) is a BaseException
            if not is_panic(e):
                raise
            raise ArtifactError(f"{self.source}/tokenizer.json: the tokenizer failed on {text[:40]!r} "
                                f"({fault_line(e)})") from e

    def encode(self, text: str) -> list[int]:
        return self._call(text)["input_ids"]

    def known(self, word: str) -> bool:
        ids = self.encode(" " + word)
        return bool(ids) and (self.unk_id is None or self.unk_id not in ids)

    def unrepresented(self, text: str) -> list[str]:
        """The parts of ``text`` this tokenizer loses: the text of tokens mapped to <unk>, and characters other
        than white space that no token covers (a tokenizer without <unk> or byte fallback drops what it cannot
        encode, silently)."""
        if not self.tok.is_fast:         # no offsets: <unk> tokens only
            return ["<unk>" for i in self.encode(text) if self.unk_id is not None and i == self.unk_id]
        enc = self._call(text, return_offsets_mapping=True)
        covered = np.zeros(len(text) + 1, dtype=bool)
        lost = []
        for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
            covered[a:b] = True
            if self.unk_id is not None and i == self.unk_id:
                lost.append(text[a:b] or "<unk>")
        return lost + [c for c, ok in zip(text, covered) if not ok and not c.isspace()]

    def hf_tokenizer(self):
        return self.tok


def word_encoder(corpus: Corpus, min_count: int) -> "WordEncoder":
    """The word-level tokenizer of ``corpus``: the specials, then words seen at least ``min_count`` times."""
    vocab = build_vocab((tokenize(d.text) for d in corpus), min_count)
    return WordEncoder(SPECIALS + tuple(vocab.index_to_key))


def doc_word_index(corpus: Corpus, words: tuple[str, ...]) -> dict[int, tuple[int, ...]]:
    """doc index -> indices into ``words`` of the test words it holds (for the report's highlighting)."""
    pos = {w: i for i, w in enumerate(words)}
    out = {}
    for i, d in enumerate(corpus):
        hit = {pos[t] for t in tokenize(d.text) if t in pos}
        if hit:
            out[i] = tuple(sorted(hit))
    return out
