"""What a local HF checkpoint folder must pass before transformers or tokenizers read it, and how their faults
reach the user: the folder may be hostile (``--checkpoint DIR``), so nothing in it is ever run or trusted.

Decided here:
- Checkpoint code is never run: a JSON config that names code (``auto_map``, or a string naming a ``.py`` file of
  the folder) is refused before transformers sees it, and every transformers call passes
  ``trust_remote_code=False`` as well (so no prompt is printed and stdin is never read).
- Attention and expert implementations are transformers' built-ins only; a hub kernel named in a config
  (``"kernels-community/flash-attn"``) is refused as untrusted code.
- JSON files are read with a size cap and a nesting-depth cap (a RecursionError is a one-line error too).
- ``tokenizer.json``: a regular expression (Split pre-tokenizer, Replace normalizer) that is very long or repeats
  something that itself repeats (``(a+)+``) is refused: Oniguruma's backtracking then hits its retry limit, and
  tokenizers panics. A panic that still happens (pyo3's PanicException derives from BaseException, not
  Exception) becomes an ArtifactError naming the file, when loading and when encoding.
- The weights must be exactly the network's: missing or unexpected keys (transformers' loading info, which knows
  tied weights such as GPT-2's ``lm_head.weight``) are an error naming the first few and the count.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from ..errors import ArtifactError
from ..io import open_regular, parse_json

MAX_CONFIG_BYTES = 16 << 20          # config.json, tokenizer_config.json, ...
MAX_TOKENIZER_BYTES = 256 << 20      # tokenizer.json (large multilingual ones are tens of MB)
MAX_DEPTH = 64                       # real configs and tokenizers nest under 10 deep
MAX_PATTERN = 2000                   # characters of one tokenizer regex (GPT-4o's split regex is ~400)
# the JSON files transformers reads from a checkpoint folder when loading a causal LM and its tokenizer
CONFIG_FILES = ("config.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json",
                "processor_config.json", "preprocessor_config.json")
# transformers' built-in attention kernels (optionally paged); a hub kernel is "org/repo[@rev][:name]"
BUILTIN_ATTENTION = re.compile(r"(paged\|)?(eager|sdpa|flex_attention|flash_attention_\d)")
BUILTIN_EXPERTS = re.compile(r"eager|batched_mm|grouped_mm")
IMPLEMENTATION_KEYS = {"attn_implementation": BUILTIN_ATTENTION, "_attn_implementation": BUILTIN_ATTENTION,
                       "experts_implementation": BUILTIN_EXPERTS, "_experts_implementation": BUILTIN_EXPERTS}


def require_config_json(folder: Path, error: type = ArtifactError) -> None:
    """``error`` (one line naming the folder) unless ``folder`` holds a config.json: the first mark of a model
    folder, an HF checkpoint's or one of this tool's."""
    if not (Path(folder) / "config.json").is_file():
        raise error(f"{folder}: not a model folder (no config.json)")


def check_checkpoint(folder: Path) -> None:
    """Refuse a checkpoint folder whose configs name code or hub kernels, or whose tokenizer.json is too large,
    too deep or holds a regex that backtracks exponentially (one ArtifactError line naming the file)."""
    folder = Path(folder)
    check_regular_files(folder)
    code = {p.stem for p in folder.glob("*.py")}
    for name in CONFIG_FILES:
        path = folder / name
        if not path.exists():
            continue
        data = read_json(path, MAX_CONFIG_BYTES)
        for node, key, value in _items(data):
            if key == "auto_map":
                raise ArtifactError(f"{path}: names checkpoint code (auto_map: {_short(value)}); checkpoint code "
                                    "is never run")
            if key in IMPLEMENTATION_KEYS:
                for impl in (value.values() if isinstance(value, dict) else [value]):
                    if impl is not None and not (isinstance(impl, str) and IMPLEMENTATION_KEYS[key].fullmatch(impl)):
                        raise ArtifactError(f"{path}: {key} {_short(impl)} is not a built-in of transformers (a hub "
                                            "kernel is code from outside the checkpoint); refused as untrusted")
            if code and isinstance(value, str) and _names_code(value, code):
                raise ArtifactError(f"{path}: {key} {_short(value)} names a .py file of the checkpoint; checkpoint "
                                    "code is never run")
    tok = folder / "tokenizer.json"
    if tok.exists():
        check_tokenizer_json(tok)


def check_regular_files(folder: Path) -> None:
    """Every entry of a checkpoint folder is a regular file or a folder (after following links): transformers and
    safetensors open whatever the folder names (weights, shard index, tokenizer files), and a FIFO there would
    block them forever, a link to /dev/zero be read until memory runs out. A dangling link is left to them."""
    for p in sorted(Path(folder).iterdir()):
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                    else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a regular file")
            raise ArtifactError(f"{p}: {kind}, not a regular file; every file of a model folder must be a regular "
                                "file")


def check_tokenizer_json(path: Path) -> None:
    """Size, depth and regular expressions of a tokenizer.json (see the module docstring)."""
    data = read_json(path, MAX_TOKENIZER_BYTES)
    for _, key, value in _items(data):
        if key == "Regex" and isinstance(value, str):
            if len(value) > MAX_PATTERN:
                raise ArtifactError(f"{path}: a tokenizer regex of {len(value):,} characters (at most "
                                    f"{MAX_PATTERN:,}); refused")
            bad = nested_repetition(value)
            if bad is not None:
                raise ArtifactError(f"{path}: the tokenizer regex {_short(value)} repeats a group that itself "
                                    f"repeats ({_short(bad)}): its matching can take exponential time; refused")


def read_json(path: Path, max_bytes: int):
    """A JSON file of at most ``max_bytes``, nested at most MAX_DEPTH deep."""
    with open_regular(path, "checkpoint JSON file") as f:      # a regular file (biasaudit.io's one check)
        try:
            raw = f.read(max_bytes + 1)
        except OSError as e:
            raise ArtifactError(f"{path}: cannot be read ({e.strerror or e})") from e
    if len(raw) > max_bytes:
        raise ArtifactError(f"{path}: larger than {max_bytes >> 20} MiB; refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path}: not valid JSON ({str(e).splitlines()[0][:120]})") from e
    return parse_json(text, path, "JSON", ArtifactError, MAX_DEPTH)


def nested_repetition(pattern: str) -> str | None:
    """The first group of ``pattern`` repeated more than once (``+``, ``*``, ``{n,}``, ``{n,m}`` with m > 1)
    around something that also repeats more than once, e.g. ``(a+)+``: the shape whose backtracking is
    exponential. None when there is none. Escapes and character classes are skipped; alternations that overlap
    (``(a|ab)+``) are not detected (their panic is caught instead)."""
    starts, inner = [], [False]        # per open group: where it starts, whether it holds a repetition
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _class_end(pattern, i)
            continue
        if c == "(":
            starts.append(i)
            inner.append(False)
            i += 1
            continue
        if c == ")" and starts:
            start, held = starts.pop(), inner.pop()
            many, j = _quantifier(pattern, i + 1)
            if many and held:
                return pattern[start:j]
            inner[-1] = inner[-1] or held or many
            i = j
            continue
        many, j = _quantifier(pattern, i)
        if j > i:
            inner[-1] = inner[-1] or many
            i = j
            continue
        i += 1
    return None


def _quantifier(pattern: str, i: int) -> tuple[bool, int]:
    """(repeats more than once, end) of the quantifier at ``i`` (end == i: none there)."""
    n = len(pattern)
    if i >= n:
        return False, i
    c = pattern[i]
    if c in "*+?":
        many, j = c != "?", i + 1
    elif c == "{":
        m = re.match(r"\{(\d*)(,(\d*))?\}", pattern[i:])
        if m is None or (not m.group(1) and not m.group(3)):
            return False, i               # a literal brace
        top = m.group(1) if m.group(2) is None else m.group(3)
        many, j = (not top) or int(top) > 1, i + m.end()
    else:
        return False, i
    if j < n and pattern[j] in "?+":      # lazy or possessive
        j += 1
    return many, j


def _class_end(pattern: str, i: int) -> int:
    """The index after the character class opened at ``i`` (nested POSIX/Oniguruma classes included)."""
    depth, j, n = 0, i, len(pattern)
    while j < n:
        c = pattern[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            depth += 1
            j += 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":    # a ']' first in a class is literal
                j += 1
            continue
        if c == "]":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def check_loading_info(folder: Path, info: dict) -> None:
    """Refuse weights that are not exactly the network's (``info``: transformers' ``output_loading_info``)."""
    parts = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k[0] if isinstance(k, tuple) else k) for k in (info.get(kind) or ()))
        if keys:
            more = f", ... ({len(keys):,} in all)" if len(keys) > 3 else ""
            parts.append(f"{len(keys):,} {kind.replace('_keys', '')} ({', '.join(keys[:3])}{more})")
    if parts:
        raise ArtifactError(f"{folder}: the safetensors weights are not the network config.json describes: "
                            + "; ".join(parts))


def is_panic(e: BaseException) -> bool:
    """A Rust panic raised through pyo3 (``pyo3_runtime.PanicException``, a BaseException)."""
    return type(e).__name__ == "PanicException"


def fault_line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines()[0] if s else type(e).__name__)[:200]


def _items(data):
    """(container, key, value) of every dict entry in ``data``, depth first (already depth-checked)."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                yield node, k, v
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def _names_code(value: str, code: set[str]) -> bool:
    """Does a config string name a module of the folder ('modeling_evil.EvilModel', 'repo--modeling_evil.X')?"""
    ref = value.split("--")[-1]
    return "." in ref and ref.split(".")[0] in code


def _short(value) -> str:
    s = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return s if len(s) <= 80 else s[:77] + "..."
