"""Word sets and bias tests: the bundled WEAT tests, user test files (JSON or YAML), vocabulary checks.

A BiasTest has two target sets X, Y and two attribute sets A, B. Convention: its effect is positive when X goes
with A and Y with B. File shape:

    {"name": "...", "target_x": {"name": "male", "words": [...]}, "target_y": {...},
     "attribute_a": {...}, "attribute_b": {...}}

Bundled tests (``biasaudit wordsets``): the four tests of the cross-loss influence paper in the orientation of its
code (``math-arts``, ``science-arts``, ``career-family``, ``race-names``; gender or names as targets) and the ten
WEAT tests of Caliskan et al. 2017 in their published orientation (``weat1-...`` to ``weat10-...``). A WEFE
``Query`` converts to a test and back (``from_wefe_query``, ``to_wefe_query``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Container, Iterable

from .errors import ConfigError, VocabularyError
from .io import read_regular, regular_file

SET_FIELDS = ("target_x", "target_y", "attribute_a", "attribute_b")
MAX_TEST_FILE = 10 * 2 ** 20   # bytes
DEFAULT_TESTS = ("math-arts", "science-arts", "career-family")
DEFAULT_MEASURE = "weat"   # the measure a test is read with unless it carries another (``biasaudit.measures``)


@dataclass(frozen=True)
class WordSet:
    name: str
    words: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "words": list(self.words)}


@dataclass(frozen=True)
class BiasTest:
    """Targets X, Y and attributes A, B; the effect is positive when X goes with A and Y with B."""
    name: str
    target_x: WordSet
    target_y: WordSet
    attribute_a: WordSet
    attribute_b: WordSet
    description: str = ""
    source: str = ""
    heldout_for: str = ""   # for a held-out companion: the name of the audited test it checks
    measure: str = DEFAULT_MEASURE   # the bias measure the test is read with (``biasaudit.measures``: weat, ripa...)
    paired: bool = False    # X and Y pair word by word (RIPA, Direct Bias): a word dropped drops its partner

    @property
    def sets(self) -> tuple[WordSet, WordSet, WordSet, WordSet]:
        return (self.target_x, self.target_y, self.attribute_a, self.attribute_b)

    @property
    def words(self) -> tuple[str, ...]:
        """Every word of the test, each once, in set order."""
        return tuple(dict.fromkeys(w for s in self.sets for w in s.words))

    def with_measure(self, name: str, paired: bool = False) -> "BiasTest":
        """The same words read with another measure; ``paired``: X and Y pair word by word, in order (their sizes
        must then be equal)."""
        if paired and len(self.target_x.words) != len(self.target_y.words):
            raise ConfigError(f"test {self.name!r}: {name} pairs X and Y word by word, in order; X has "
                              f"{len(self.target_x.words)} words and Y {len(self.target_y.words)}")
        return replace(self, measure=name, paired=paired)

    def swapped(self) -> "BiasTest":
        """The same test with the target sets exchanged: its effect size is the negative."""
        return replace(self, target_x=self.target_y, target_y=self.target_x)

    def missing(self, vocab: Container[str]) -> dict[str, list[str]]:
        """Words absent from ``vocab``, per set field."""
        out = {}
        for f, s in zip(SET_FIELDS, self.sets):
            gone = [w for w in s.words if w not in vocab]
            if gone:
                out[f] = gone
        return out

    def restrict(self, vocab: Container[str], allow_oov: bool = False) -> tuple["BiasTest", dict[str, list[str]]]:
        """The test with out-of-vocabulary words dropped (only with ``allow_oov``) and what was dropped.

        Raises VocabularyError naming every missing word and its set; with ``allow_oov``, only if a set keeps
        fewer than 2 words."""
        missing = self.missing(vocab)
        if not missing:
            return self, {}
        listing = describe_missing(self, missing)
        if not allow_oov:
            raise VocabularyError(f"test {self.name!r}: words not in the vocabulary: {listing}", missing=missing)
        dropped = {f: list(v) for f, v in missing.items()}
        if self.paired:          # a pair goes with either of its words
            xs, ys = self.target_x.words, self.target_y.words
            for f, own, other in (("target_y", xs, ys), ("target_x", ys, xs)):
                gone = set(dropped.get("target_x" if f == "target_y" else "target_y", []))
                extra = [w for o, w in zip(own, other) if o in gone and w in vocab]
                if extra:
                    dropped.setdefault(f, []).extend(extra)
        kept = {}
        for f, s in zip(SET_FIELDS, self.sets):
            words = tuple(w for w in s.words if w not in dropped.get(f, ()))
            if len(words) < 2:
                raise VocabularyError(f"test {self.name!r}: set {s.name!r} ({f}) keeps {len(words)} word(s) after "
                                      f"dropping words not in the vocabulary (absent, or under min_count or "
                                      f"--min-word-count) ({listing}); at least 2 are needed",
                                      missing=missing)
            kept[f] = WordSet(s.name, words)
        return replace(self, **kept), dropped

    def to_dict(self) -> dict:
        d = {"name": self.name, "description": self.description, "source": self.source}
        if self.heldout_for:
            d["heldout_for"] = self.heldout_for
        if self.measure != DEFAULT_MEASURE:     # the default is not written (test files stay as they were)
            d["measure"] = self.measure
        if self.paired:
            d["paired"] = True
        d.update({f: s.to_dict() for f, s in zip(SET_FIELDS, self.sets)})
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "test") -> "BiasTest":
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: a test must be an object with fields name, {', '.join(SET_FIELDS)}")
        missing = [f for f in ("name",) + SET_FIELDS if f not in d]
        if missing:
            raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
        sets = {}
        for f in SET_FIELDS:
            s = d[f]
            if isinstance(s, list):
                s = {"name": f, "words": s}
            if not isinstance(s, dict) or not isinstance(s.get("words"), list):
                raise ConfigError(f"{where}: field {f} must be {{\"name\": ..., \"words\": [...]}}")
            odd = [w for w in s["words"] if not isinstance(w, str)]
            if odd:
                raise ConfigError(f"{where}: set {f} holds {odd[0]!r}, not a word (words are strings)")
            words = tuple(dict.fromkeys(w.strip().lower() for w in s["words"] if w.strip()))
            if len(words) < 2:
                raise ConfigError(f"{where}: set {f} needs at least 2 words, has {len(words)}")
            sets[f] = WordSet(str(s.get("name", f)), words)
        # a word in both targets, or in a target and an attribute, makes the association meaningless (cos = 1
        # with itself); the same word in A and B cancels and is refused too
        for f1, f2 in (("target_x", "target_y"), ("attribute_a", "attribute_b"), ("target_x", "attribute_a"),
                       ("target_x", "attribute_b"), ("target_y", "attribute_a"), ("target_y", "attribute_b")):
            shared = [w for w in sets[f1].words if w in set(sets[f2].words)]
            if shared:
                raise ConfigError(f"{where}: {', '.join(repr(w) for w in shared[:5])} in both {f1} and {f2}; "
                                  "each word may be in one set only")
        test = cls(name=str(d["name"]), description=str(d.get("description", "")),
                   source=str(d.get("source", "")), heldout_for=str(d.get("heldout_for", "")), **sets)
        if "paired" in d and not isinstance(d["paired"], bool):     # "false" is a non-empty string: true
            raise ConfigError(f"{where}: field paired must be true or false (a JSON boolean), got {d['paired']!r}")
        if "measure" in d:        # a test saved with the measure it is read with (an experiment's config)
            if (not isinstance(d["measure"], str) or not d["measure"].replace("-", "").isalpha()
                    or len(d["measure"]) > 40):
                raise ConfigError(f"{where}: field measure must be a measure's name")
            # the name is checked against the measures by every use case (audit.check_carried_measures)
            test = test.with_measure(d["measure"], paired=d.get("paired", False))
        return test


def from_wefe_query(query, name: str | None = None) -> BiasTest:
    """A WEFE ``Query`` with two target and two attribute sets (template (2, 2)) as a BiasTest: target sets 0, 1 ->
    X, Y; attribute sets 0, 1 -> A, B, with the query's set names; the test's name is ``name`` or the query's.
    Words are lowercased and checked as in a test file (``BiasTest.from_dict``). WEFE's (2, 1) queries (RIPA,
    RND, ECT) hold one attribute set: give the two sets of the bias test in one (2, 2) query instead.
    WEFE's WEAT effect size divides by the population sd (ddof=0), this tool's by the sample sd (ddof=1): the same
    words give a d larger in WEFE by sqrt(n/(n-1)), n = |X| + |Y| (``biasaudit.measure(..., sd="population")``
    gives WEFE's number)."""
    try:
        targets, attributes = list(query.target_sets), list(query.attribute_sets)
    except AttributeError as e:
        raise ConfigError(f"not a WEFE Query: {type(query).__name__} has no target_sets/attribute_sets") from e
    if len(targets) != 2 or len(attributes) != 2:
        raise ConfigError(f"a bias test has 2 target and 2 attribute sets; this WEFE query has "
                          f"({len(targets)}, {len(attributes)})")
    t_names = list(getattr(query, "target_sets_names", None) or ["target_x", "target_y"])
    a_names = list(getattr(query, "attribute_sets_names", None) or ["attribute_a", "attribute_b"])
    d = {"name": name or getattr(query, "query_name", None) or "wefe-query", "source": "WEFE query"}
    for f, n, ws in zip(SET_FIELDS, t_names + a_names, targets + attributes):
        d[f] = {"name": str(n), "words": [str(w) for w in ws]}
    return BiasTest.from_dict(d, f"WEFE query {d['name']!r}")


def to_wefe_query(test: BiasTest, attributes: str = "both"):
    """The WEFE ``Query`` of a BiasTest: targets [X, Y] and attributes [A, B] (``attributes="both"``, WEAT's, MAC's
    and RNSB's template), [A] or [B] (``"a"``, ``"b"``: RIPA's and RND's (2, 1)), or [A u B] (``"union"``: ECT's).
    Needs WEFE (imported here only).
    WEFE's WEAT effect size divides by the population sd (ddof=0), this tool's by the sample sd (ddof=1): the same
    words give a d larger in WEFE by sqrt(n/(n-1)), n = |X| + |Y| (``biasaudit.measure(..., sd="population")``
    gives WEFE's number)."""
    try:
        from wefe.query import Query
    except ImportError as e:
        raise ConfigError("to_wefe_query needs WEFE: pip install --no-deps wefe==1.0.1 (and scikit-learn, "
                          "semantic_version)") from e
    x, y, a, b = (list(s.words) for s in test.sets)
    xa, ya, aa, ba = (s.name for s in test.sets)
    sets = {"both": ([a, b], [aa, ba]), "a": ([a], [aa]), "b": ([b], [ba]),
            "union": ([a + b], [f"{aa} u {ba}"])}
    if attributes not in sets:
        raise ConfigError(f"attributes={attributes!r}: one of {', '.join(sets)}")
    attribute_sets, attribute_names = sets[attributes]
    return Query([x, y], attribute_sets, [xa, ya], attribute_names)


def describe_missing(test: BiasTest, missing: dict[str, list[str]], limit: int = 20) -> str:
    """"set (field): w1, w2; ..." for missing words, at most ``limit`` words in all, then the count left out."""
    parts, shown = [], 0
    total = sum(len(ws) for ws in missing.values())
    for f, ws in missing.items():
        take = ws[:max(0, limit - shown)]
        shown += len(take)
        if take:
            parts.append(f"{getattr(test, f).name} ({f}): {', '.join(take)}")
    text = "; ".join(parts)
    return text + (f" and {total - shown} more ({total} in all)" if total > shown else "")


def restrict_tests(tests: list[BiasTest], vocab: Container[str], strict: bool = False,
                   what: str = "the vocabulary") -> tuple[list[tuple[BiasTest, BiasTest]], dict, dict]:
    """The rule every command follows for words missing from ``vocab``: dropped and listed by default (a test
    whose set keeps fewer than 2 words is skipped, with the reason, and only a run with no test left fails), or,
    with ``strict``, one error naming every test's missing words.

    Returns ([(test, test as kept)], {test name: dropped words per set}, {skipped test name: reason})."""
    if strict:
        missing = {t.name: (t, t.missing(vocab)) for t in tests}
        bad = {n: m for n, (t, m) in missing.items() if m}
        if bad:
            listing = " | ".join(f"{n}: {describe_missing(missing[n][0], m)}" for n, m in bad.items())
            raise VocabularyError(f"words not in {what}: {listing} (without --strict-oov they are dropped and "
                                  "listed)")
        return [(t, t) for t in tests], {}, {}
    kept, dropped, skipped = [], {}, {}
    for t in tests:
        try:
            k, gone = t.restrict(vocab, allow_oov=True)
        except VocabularyError as e:
            skipped[t.name] = str(e)
            dropped[t.name] = e.missing
            continue
        kept.append((t, k))
        if gone:
            dropped[t.name] = gone
    if not kept:
        raise VocabularyError("no test can be computed: " + " | ".join(skipped.values()))
    return kept, dropped, skipped


def bundled_tests() -> dict[str, BiasTest]:
    """The bundled tests by name, in listing order."""
    text = resources.files("biasaudit").joinpath("data/wordsets/bundled.json").read_text(encoding="utf-8")
    return {d["name"]: BiasTest.from_dict(d, "bundled") for d in json.loads(text)}


def bundled_heldout() -> dict[str, BiasTest]:
    """Held-out companions of bundled tests, by the name of the test they check: other words for the same
    concepts, none shared with the audit lists."""
    text = resources.files("biasaudit").joinpath("data/wordsets/heldout.json").read_text(encoding="utf-8")
    return {d["heldout_for"]: BiasTest.from_dict(d, "bundled held-out") for d in json.loads(text)}


def resolve_heldout(tests: list[BiasTest], files: Iterable[str] | None) -> dict[str, BiasTest]:
    """Held-out companion per audited test name: from ``files`` (each test names the audited test in
    ``heldout_for``; without it, files pair with the tests in order), else the bundled companions."""
    out = {t.name: h for t in tests if (h := bundled_heldout().get(t.name)) is not None}
    given = [h for f in (files or []) for h in load_test_file(f)]
    names = [t.name for t in tests]
    for i, h in enumerate(given):
        target = h.heldout_for or (names[i] if i < len(names) else "")
        if target not in names:
            raise ConfigError(f"held-out test {h.name!r}: heldout_for={target or '(none)'!r} names no audited "
                              f"test ({', '.join(names)})")
        out[target] = h
    for t in tests:
        h = out.get(t.name)
        if h is not None:
            shared = set(h.words) & set(t.words)
            if shared:
                raise ConfigError(f"held-out test {h.name!r} shares words with {t.name!r}: "
                                  f"{', '.join(sorted(shared))}")
    return out


def load_test_file(path: str | Path) -> list[BiasTest]:
    """Tests from a JSON or YAML file holding one test object or a list of them."""
    path = regular_file(path, "test file", ConfigError)
    try:
        if path.stat().st_size > MAX_TEST_FILE:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a test file holds at most "
                              f"{MAX_TEST_FILE:,}")
        text = read_regular(path, "test file", ConfigError, MAX_TEST_FILE).decode("utf-8")   # the checked descriptor
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read test file ({getattr(e, 'strerror', None) or e})") from e
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml
            # aliases let a few hundred bytes expand to gigabytes (a "billion laughs"); test files need none
            if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader)):
                raise ConfigError(f"{path}: YAML aliases (*name) are not allowed in test files")
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                          f"({str(e).splitlines()[0]})") from e
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ConfigError(f"{path}: holds no test")
    return [BiasTest.from_dict(d, str(path)) for d in items]


def resolve_tests(specs: Iterable[str | BiasTest] | None) -> list[BiasTest]:
    """Turn names of bundled tests and paths of test files into tests (None or empty: the default tests);
    BiasTest objects pass through. Test names are unique (``resolve_tests_from``)."""
    return [t for t, _ in resolve_tests_from(specs)]


def resolve_tests_from(specs: Iterable[str | BiasTest] | None) -> list[tuple[BiasTest, str]]:
    """``resolve_tests`` with where each test came from ("bundled test NAME", "test file PATH", "a test given as
    an object"): a name given twice is one error naming both sources."""
    specs = list(specs or DEFAULT_TESTS)
    bundled = bundled_tests()
    out: list[tuple[BiasTest, str]] = []
    for spec in specs:
        if isinstance(spec, BiasTest):
            out.append((spec, "a test given as an object"))
        elif spec in bundled:
            out.append((bundled[spec], f"bundled test {spec}"))
        elif Path(spec).is_file() or Path(spec).exists():   # a FIFO or device: refused by load_test_file
            out.extend((t, f"test file {spec}") for t in load_test_file(spec))
        else:
            import difflib
            close = difflib.get_close_matches(str(spec), list(bundled), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else " (see `biasaudit wordsets`)"
            raise ConfigError(f"unknown test {spec!r}: not a bundled test nor a file{hint}")
    unique_names((t.name, source) for t, source in out)
    return out


def unique_names(named: Iterable[tuple[str, str]]) -> None:
    """One ConfigError naming both sources when two of a run's measures (tests, pair sets) share a name: their
    rows in scores.jsonl and their entries in summary.json would merge, one value replacing the other."""
    seen: dict[str, str] = {}
    for name, source in named:
        if name in seen:
            raise ConfigError(f"test name(s) given twice: {name!r} is named by {seen[name]} and by {source}; "
                              "every test and pair set of a run needs its own name")
        seen[name] = source
