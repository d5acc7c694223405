"""Regenerate the bundled corpora deterministically from the installed Debian packages.

    apt-get install dict-gcide wordnet-base
    python scripts/build_corpora.py            # writes corpora/gcide.jsonl.gz, corpora/wordnet.jsonl.gz

GCIDE: one document per dictionary entry (unique (offset, length) block of the dictd index), id = headword
(with "#n" for the n-th entry of a repeated headword), text = the entry with pronunciation markup and source
tags such as "[1913 Webster]" removed. WordNet 3.0: one document per synset, id = "<pos><offset>", text = the
gloss (definition and examples). Output is gzip JSONL with fields id, text, with a fixed gzip mtime, so the
same packages give byte-identical files.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import re
from pathlib import Path

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SOURCE_TAG = re.compile(r"^\s*\[(?:[^\]]*(?:Webster|WordNet|PJC|Century|Dict|Diet|Chambers|Stormonth|Webster|RDH|JC|MW|Note)[^\]]*)\]\s*$")
PRONUNCIATION = re.compile(r"\\[^\\\n]*\\")
# "(h[a^]m\"l[e^]t)" after the headword: a respelled pronunciation
RESPELLING = re.compile(r"^(\S+(?: \S+)?) \([^()]*[\"*][^()]*\)")
# GCIDE character entities for accented letters and ligatures: [a^] -> a, [imac] -> i, [ae] -> ae
ENTITY = re.compile(r"\[([a-zA-Z]{1,2})(?:\^|`|'|=|~|:|\.|mac|breve|dot|sdot|ddot|cced|til|acute|grave|uml|circ|ring)+\]|\[(ae|AE|oe|OE)\]")


def _b64(s: str) -> int:
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _normal(s: str) -> str:
    """Lowercase letters and digits only: how headwords are compared ("Aard\"vark" = "aardvark")."""
    return "".join(ch for ch in s.lower() if ch.isalnum())


def entry_headword(raw: str) -> str:
    """The entry's own headword: its first line up to the pronunciation, a comma or a bracket, with syllable
    marks and character entities removed ('Bohemian \\Bo*he"mi*an\\, a.' -> 'Bohemian')."""
    first = raw.split("\n", 1)[0]
    if not first.strip():
        return ""
    head = re.split(r"\s*\\|,|\s[(\[]", first.strip(), maxsplit=1)[0]
    head = ENTITY.sub(lambda m: m.group(1) or m.group(2), head)
    return " ".join(head.replace('"', "").replace("*", "").replace("`", "").split())


def gcide_documents(dictd: Path):
    blocks: dict[tuple[int, int], list[str]] = {}
    for line in (dictd / "gcide.index").read_text(encoding="utf-8").splitlines():
        word, off, length = line.split("\t")
        if word.startswith("00-"):
            continue
        blocks.setdefault((_b64(off), _b64(length)), []).append(word)
    data = gzip.open(dictd / "gcide.dict.dz").read()
    seen: dict[str, int] = {}
    for (off, length), words in sorted(blocks.items()):
        raw = _decode(data[off:off + length])
        head = entry_headword(raw)
        if not head:
            continue   # a block without a headword line (front matter), not a dictionary entry
        # several headwords (inflections, Latin names, see-also terms) can share a block: the id is the entry's
        # own headword, spelled as the index spells it where the index has it
        word = next((w for w in words if _normal(w) == _normal(head)), head)
        lines = [ln for ln in raw.splitlines() if not SOURCE_TAG.match(ln)]
        text = " ".join(" ".join(lines).split())
        text = ENTITY.sub(lambda m: m.group(1) or m.group(2), PRONUNCIATION.sub(" ", text))
        text = RESPELLING.sub(r"\1", " ".join(text.split())).replace("{", "").replace("}", "")
        if not text:
            continue
        seen[word] = seen.get(word, 0) + 1
        yield {"id": word if seen[word] == 1 else f"{word}#{seen[word]}", "text": text}


def wordnet_documents(wndir: Path):
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (wndir / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            offset, _, ss_type = head.split(" ")[:3]
            gloss = " ".join(gloss.split())
            if gloss:
                yield {"id": f"{ss_type}{offset}", "text": gloss}


def write_jsonl_gz(path: Path, docs) -> tuple[int, int]:
    n = tokens = 0
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        for d in docs:
            gz.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
            tokens += len(re.findall(r"[^\W_]+", d["text"].lower()))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return n, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dictd", type=Path, default=Path("/usr/share/dictd"))
    p.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "corpora")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for name, docs in (("gcide", gcide_documents(a.dictd)), ("wordnet", wordnet_documents(a.wordnet))):
        n, t = write_jsonl_gz(a.out / f"{name}.jsonl.gz", docs)
        print(f"{name}: {n} documents, {t} tokens -> {a.out / (name + '.jsonl.gz')}")


if __name__ == "__main__":
    main()
