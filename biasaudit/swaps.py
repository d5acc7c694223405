"""Counterfactual rewrites (CDA): a document with every word of a swap pair replaced by the other.

Decided here:
- Pairs are bidirectional and one-to-one (a word in two pairs is an error), lowercase in the list; in the text a
  word is matched case-insensitively as a whole token (runs of letters and digits, the default tokenizer's) and
  replaced keeping its case: "He" -> "She", "HIS" -> "HER". Everything else in the text is kept byte for byte.
- The English pronouns are the one ambiguity, resolved by the next word: "her" becomes "his" before a word that can
  follow a possessive determiner (any word but the function words of ``NOT_A_NOUN``, a punctuation mark or the end)
  and "him" otherwise; "his" becomes "her" before such a word and "hers" otherwise; "him" -> "her", "hers" ->
  "his". Swapping twice gives the text back whenever the next word keeps its kind (a noun stays a noun: gendered
  nouns are swapped with nouns).
- Names: a test whose target words are not in the list (first names) has its two target lists paired in list
  order (``with_groups``), up to the shorter list's length.
- The bundled list (``biasaudit/data/wordsets/swap_pairs.json``) has 130 pairs with its source; ``--swap-pairs
  FILE`` reads a JSON list of pairs (or an object with "pairs") or a TSV of two columns.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .io import MAX_RECORD_BYTES, read_regular

WORD = re.compile(r"[^\W_]+")
PRONOUNS = {"her", "his", "him", "hers"}
NOT_A_NOUN = frozenset("""a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each either even ever every few for from
further had has have having he her here hers herself him himself his how i if in into is it its itself just may me
might more most must my myself neither no nor not now of off on once only or other our ours out over own same she
should so some such than that the their theirs them themselves then there these they this those though through to
too under until up upon very was we were what when where whether which while who whom whose why will with would
yet you your yours""".split()) - {"own"}


def _case_like(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@dataclass(frozen=True)
class SwapList:
    """A one-to-one, bidirectional word mapping (plus the pronoun rule) and where it came from."""
    pairs: tuple[tuple[str, str], ...]
    source: str = ""
    mapping: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        m: dict[str, str] = {}
        for a, b in self.pairs:
            for w in (a, b):
                if not isinstance(w, str) or not WORD.fullmatch(w) or w != w.lower():
                    raise ConfigError(f"swap pairs: {w!r} is not one lowercase word")
            if a == b:
                raise ConfigError(f"swap pairs: {a!r} is paired with itself")
            for x, y in ((a, b), (b, a)):
                if x in PRONOUNS:
                    continue
                if x in m and m[x] != y:
                    raise ConfigError(f"swap pairs: {x!r} is in two pairs ({x}/{m[x]} and {x}/{y}); each word may "
                                      "be in one pair only")
                m[x] = y
        for p in PRONOUNS:
            m.pop(p, None)
        object.__setattr__(self, "mapping", m)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(sorted(map(list, self.pairs))).encode()).hexdigest()

    @property
    def words(self) -> set[str]:
        return set(self.mapping) | PRONOUNS

    def with_groups(self, xs, ys) -> "SwapList":
        """This list plus the words of two groups paired in order (first names of a test's targets)."""
        extra = tuple((x, y) for x, y in zip(xs, ys) if x not in self.mapping and y not in self.mapping
                      and x not in PRONOUNS and y not in PRONOUNS)
        return SwapList(self.pairs + extra, self.source) if extra else self

    def swap_tokens(self, tokens) -> tuple[str, ...]:
        """A token list swapped word by word, with the same pronoun rule (``--tokenizer field:NAME`` corpora)."""
        joined = "\n".join(tokens)
        return tuple(self.swap(joined).split("\n")) if "\n" not in "".join(tokens) else tuple(tokens)

    def swap_document(self, doc):
        """A Document with its text (and its own tokens, if any) swapped; the same id."""
        from dataclasses import replace

        return replace(doc, text=self.swap(doc.text),
                       tokens=None if doc.tokens is None else self.swap_tokens(doc.tokens))

    def swap(self, text: str) -> str:
        """``text`` with every listed word swapped (see the module docstring)."""
        out, last = [], 0
        matches = list(WORD.finditer(text))
        for i, m in enumerate(matches):
            w = m.group(0)
            low = w.lower()
            if low in PRONOUNS:
                nxt = matches[i + 1] if i + 1 < len(matches) else None
                noun_next = (nxt is not None and text[m.end():nxt.start()].strip() == ""
                             and nxt.group(0).lower() not in NOT_A_NOUN)
                new = {"her": "his" if noun_next else "him", "his": "her" if noun_next else "hers",
                       "him": "her", "hers": "his"}[low]
            else:
                new = self.mapping.get(low)
                if new is None:
                    continue
            out.append(text[last:m.start()])
            out.append(_case_like(new, w))
            last = m.end()
        out.append(text[last:])
        return "".join(out)


def bundled_swaps() -> SwapList:
    from importlib.resources import files

    data = json.loads(files("biasaudit").joinpath("data/wordsets/swap_pairs.json").read_text(encoding="utf-8"))
    return SwapList(tuple(tuple(p) for p in data["pairs"]), data["source"])


def load_swaps(path: str | Path | None) -> SwapList:
    """The bundled list (None), or a user's file: JSON (a list of pairs, or {"pairs": [...]}) or TSV/CSV rows of two
    words."""
    if path is None:
        return bundled_swaps()
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark at the start is not text
        text = read_regular(path, "--swap-pairs file", ConfigError, MAX_RECORD_BYTES).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--swap-pairs: cannot read {path} ({getattr(e, 'strerror', None) or e})") from e
    pairs = []
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--swap-pairs: {path}: line {e.lineno}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ConfigError(f"--swap-pairs: {path}: JSON nested too deeply to be a list of pairs") from None
        except ValueError as e:          # an integer of thousands of digits (Python's int conversion limit)
            raise ConfigError(f"--swap-pairs: {path}: holds a number too long to read "
                              f"({str(e).splitlines()[0][:80]})") from None
        data = data.get("pairs") if isinstance(data, dict) else data
        if not isinstance(data, list):
            raise ConfigError(f"--swap-pairs: {path}: expected a list of [word, word] pairs")
        for i, p in enumerate(data, 1):
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(w, str) for w in p)):
                raise ConfigError(f"--swap-pairs: {path}: pair {i} is not two words")
            pairs.append((p[0].strip().lower(), p[1].strip().lower()))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = [c.strip() for c in re.split(r"[\t,]", line) if c.strip()]
            if len(cols) != 2:
                raise ConfigError(f"--swap-pairs: {path}: line {n}: expected two words separated by a tab or comma")
            pairs.append((cols[0].lower(), cols[1].lower()))
    if not pairs:
        raise ConfigError(f"--swap-pairs: {path} holds no pair")
    try:
        return SwapList(tuple(pairs), str(path))
    except ConfigError as e:
        raise ConfigError(f"--swap-pairs: {path}: {str(e).removeprefix('swap pairs: ')}") from None


def swaps_for_test(base: SwapList, test) -> SwapList:
    """The swap list for a bias test: ``base``, plus its target lists paired in order when they are names (not in
    the list)."""
    xs, ys = test.target_x.words, test.target_y.words
    if all(w in base.words for w in xs + ys):
        return base
    return base.with_groups([w for w in xs if w not in base.words], [w for w in ys if w not in base.words])


def concept_test(test, heldout, swaps: SwapList, known):
    """The audited test's attributes against the swap list's gendered words as targets (in the orientation of the
    test's own targets; first names: the list's first words as X), leaving out every word of the test and of its
    held-out companion (``heldout``, or None) and words ``known`` does not hold: a measure of the concept, not of
    the word list."""
    from .wordsets import BiasTest, WordSet

    firsts = [a for a, _ in swaps.pairs]
    seconds = [b for _, b in swaps.pairs]
    xs = test.target_x.words
    if sum(w in seconds for w in xs) > sum(w in firsts for w in xs):
        firsts, seconds = seconds, firsts
    skip = set(test.words) | (set(heldout.words) if heldout is not None else set())
    kept = [(a, b) for a, b in zip(firsts, seconds) if a not in skip and b not in skip and a in known and b in known]
    if len(kept) < 2:
        from .errors import ConfigError
        raise ConfigError(f"{test.name}: fewer than 2 swap pairs outside the test's and its companion's words are "
                          "in the vocabulary; --rank-by concept needs them")
    return BiasTest(name=f"{test.name}~concept",
                    target_x=WordSet(f"{test.target_x.name} (swap list)", tuple(a for a, _ in kept)),
                    target_y=WordSet(f"{test.target_y.name} (swap list)", tuple(b for _, b in kept)),
                    attribute_a=test.attribute_a, attribute_b=test.attribute_b,
                    description=f"{test.name}'s attributes against {len(kept)} gendered word pairs of the swap list")
