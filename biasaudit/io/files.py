"""Files, written and read safely: atomic writes (a temporary file in the same folder, renamed over the target, so
an interrupted run never leaves a half-written file behind), and the one way a file is read: only a regular file
(no FIFO or device can hang a read), bounded in size, its JSON bounded in depth.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ArtifactError


_TMP = ".tmp-biasaudit"          # suffix of every temporary file or folder biasaudit.io makes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8"):
    """A file object writing to a temporary file beside ``path``; on success it is fsynced and renamed over
    ``path``, on error removed. For outputs written line by line (scores.jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=_TMP, dir=path.parent)
    except OSError as e:        # a full disk: the file asked for, not the temporary name tried
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    try:
        os.chmod(tmp, public_mode())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        named = _naming(e, Path(tmp), path)
        if named is e:
            raise
        raise named from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _naming(e: OSError, tmp: Path, target: Path) -> OSError:
    """``e`` naming ``target`` (the output the user asked for) where it names nothing, or the hidden temporary
    ``tmp`` (or a file inside it) that stands for ``target`` while it is written (a full disk, a write fault)."""
    name = e.filename
    if name is not None:
        try:
            rel = Path(os.fsdecode(name)).relative_to(tmp)
        except (TypeError, ValueError):
            return e                 # it names a real path: kept
        target = target / rel if rel.parts else target
    return OSError(e.errno, e.strerror or str(e), str(target))


def public_mode(directory: bool = False) -> int:
    """0o666 (0o777 for a folder) under the process umask: what open() / mkdir() would create (mkstemp and
    mkdtemp make private 0o600 / 0o700 entries)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


_SURROGATE = re.compile("[\ud800-\udfff]")


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text, atomically; a file name's undecodable bytes (surrogates) are written as U+FFFD."""
    atomic_write_bytes(path, _SURROGATE.sub("\ufffd", text).encode("utf-8"))


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    atomic_write_text(path, to_json(obj))


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))

# Size caps per kind of file read (``read_regular``, ``read_json``): what such a file can be, with a wide margin.
MAX_RECORD_BYTES = 16 << 20      # manifests, run records, configs, shard indexes
MAX_RESULT_BYTES = 256 << 20     # summary.json, experiment.json, an LM folder's biasaudit.json (its vocabulary)
MAX_DATA_BYTES = 1 << 30         # scores.json (every document's score), results.csv, vocab.json, scores.jsonl
MAX_JSON_DEPTH = 64              # nesting of any JSON file read (ours nest under 10 deep)


def _kind(mode: int) -> str:
    return next((k for test, k in _KINDS if test(mode)), "not a regular file")


def regular_file(path: str | Path, what: str = "file", error: type[Exception] = ArtifactError) -> Path:
    """``path`` as a Path when it is a regular file (after following symlinks); else ``error`` in one line, before
    anything opens it: a FIFO would block the read forever and /dev/zero would be read until memory runs out.
    Readers that open the file themselves should use ``open_regular`` (it checks the opened descriptor)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as e:
        raise error(f"{path}: no such file") from e
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    if not stat.S_ISREG(mode):
        raise error(f"{path}: {_kind(mode)}, not a regular file; a {what} must be a regular file")
    return path


def open_regular(path: str | Path, what: str = "file", error: type[Exception] = ArtifactError,
                 max_bytes: int | None = None, follow: bool = True):
    """The one way this tool opens a file it reads: a binary file object, only when ``path`` is a regular file.

    Opened with O_NONBLOCK (opening a FIFO returns at once instead of waiting for a writer) and, unless
    ``follow``, O_NOFOLLOW (a file inside an output folder: a symbolic link there is refused, never followed);
    the opened descriptor is then fstat'ed, so a file swapped after a check is still caught. A FIFO, device, socket
    or folder, a missing file and, with ``max_bytes``, a larger file are ``error`` in one line naming ``path``."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise error(f"{path}: no such file") from e
    except OSError as e:
        if not follow and path.is_symlink():
            raise error(f"{path}: a symbolic link inside an output folder; biasaudit never follows one "
                        "(remove the link)") from e
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: {_kind(st.st_mode)}, not a regular file; a {what} must be a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise error(f"{path}: {st.st_size:,} bytes, larger than a {what} can be ({_size(max_bytes)}); refused")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _size(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def read_regular(path: str | Path, what: str = "file", error: type[Exception] = ArtifactError,
                 max_bytes: int = MAX_RECORD_BYTES, follow: bool = True) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (``open_regular``); a file that grows past the cap while
    it is read is refused too, so memory is bounded by the cap whatever the file is."""
    with open_regular(path, what, error, max_bytes, follow) as f:
        try:       # what fstat says it holds (no larger buffer), then what it grew by, in blocks, up to the cap
            parts = [f.read(os.fstat(f.fileno()).st_size + 1)]
            got = len(parts[0])
            while parts[-1] and got <= max_bytes:
                parts.append(f.read(min(1 << 20, max_bytes + 1 - got)))
                got += len(parts[-1])
            data = b"".join(parts) if len(parts) > 1 else parts[0]
        except OSError as e:
            raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    if len(data) > max_bytes:
        raise error(f"{path}: larger than a {what} can be ({_size(max_bytes)}); refused")
    return data


def sha256_file(path: str | Path, what: str = "file", error: type[Exception] = ArtifactError,
                follow: bool = True) -> str:
    """The sha256 of a regular file, read in blocks of 1 MiB (memory bounded whatever its size)."""
    import hashlib

    h = hashlib.sha256()
    with open_regular(path, what, error, None, follow) as f:
        try:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        except OSError as e:
            raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    return h.hexdigest()


def parse_json(text: str | bytes, where: str | Path, what: str = "file", error: type[Exception] = ArtifactError,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON read from ``where``: invalid JSON, and JSON nested deeper than ``max_depth`` (100,000 ``[`` make
    the parser recurse until Python stops it), are ``error`` in one line naming ``where``."""
    try:
        data = json.loads(text)
    except RecursionError as e:
        raise error(f"{where}: {what} nested deeper than {max_depth} levels; refused") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{where}: corrupted {what} ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})"
                    ) from e
    stack = [(data, 1)]
    while stack:       # iterative: the depth check itself must not recurse
        node, depth = stack.pop()
        if depth > max_depth:
            raise error(f"{where}: {what} nested deeper than {max_depth} levels; refused")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return data


def read_json(path: str | Path, what: str = "file", max_bytes: int = MAX_RECORD_BYTES,
              error: type[Exception] = ArtifactError, follow: bool = True) -> Any:
    """Parse a JSON file (``read_regular``, ``parse_json``); a missing, unreadable, oversized, too deep or
    corrupted one is ``error`` naming it and the cause."""
    path = Path(path)
    try:
        raw = read_regular(path, what, error, max_bytes, follow)
    except error as e:
        if str(e) == f"{path}: no such file":
            raise error(f"{path}: {what} missing") from e
        raise
    return parse_json(raw, path, what, error)
