"""Writing outputs safely: atomic files, and output folders that are claimed, staged and committed.

A write goes to a temporary file in the same folder and is renamed over the target, so an interrupted run
never leaves a half-written file behind.

Output folders (models, ``score`` and ``experiment`` results) follow one protocol, ``claim_folder``:
- a folder this tool writes holds a manifest, ``.biasaudit.json``: what kind of output it is, the config that
  made it, the files this tool wrote there, and whether the run completed;
- a new or empty folder is claimed; a folder holding another kind of output, or files this tool did not write,
  is refused (nothing in it is touched, with or without ``--overwrite``); a folder holding the same kind made with
  another config is refused unless ``overwrite``, and then only the files this tool wrote are replaced;
- a run's files are written into a hidden temporary folder beside the target and moved into place when the run
  succeeds, the manifest last: a crash leaves either the old outputs or a folder marked incomplete, never new
  scores beside an old summary. A folder marked incomplete with the same config is simply written again.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import ArtifactError

MANIFEST = ".biasaudit.json"
_TMP = ".tmp-biasaudit"          # suffix of every temporary file or folder this module makes
STALE_SECONDS = 24 * 3600        # a temporary entry this old is left over from a crash, whatever its process


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


# ------------------------------------------------------------------ temporary entries
def _is_temp(p: Path) -> bool:
    return p.name.startswith(".") and p.name.endswith(_TMP)


def _temp_is_stale(p: Path) -> bool:
    """A temporary entry of a process that is gone (its pid is in its name), or older than STALE_SECONDS."""
    try:
        if time.time() - p.lstat().st_mtime > STALE_SECONDS:
            return True
    except OSError:
        return False
    try:
        pid = int(p.name[1:-len(_TMP)].rsplit(".", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def clean_stale_temps(folder: str | Path) -> None:
    """Remove temporary files and folders left in ``folder`` by runs that crashed (best effort)."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for p in entries:
        if _is_temp(p) and _temp_is_stale(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def make_temp_dir(parent: Path, name: str) -> Path:
    """A hidden temporary folder in ``parent`` named after ``name`` and this process."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}-", suffix=_TMP, dir=parent))
    os.chmod(tmp, public_mode(directory=True))
    return tmp


# ------------------------------------------------------------------ output folders
def check_writable(folder: str | Path) -> None:
    """Fail early (before hours of training) when ``folder`` cannot be created or written: an ArtifactError
    naming the folder and the cause."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ArtifactError(f"{folder}: {probe} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=f".write-test.{os.getpid()}-", suffix=_TMP, dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise ArtifactError(f"{folder}: cannot write there ({e.strerror or e})") from e


def _safe_entry(rel) -> bool:
    """A manifest entry names a file or folder inside its own folder: a relative path, no '..', not '.'."""
    if not isinstance(rel, str) or not rel or rel in (".", "./") or "\0" in rel:
        return False
    p = Path(rel)
    return not p.is_absolute() and ".." not in p.parts and p.parts[0] not in (".", "")


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of a folder this tool wrote, or None when there is none. A manifest whose entries are not
    plain relative paths inside the folder is refused as corrupted (nothing it names is ever touched)."""
    path = Path(folder) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink():
        raise ArtifactError(f"{path}: a symbolic link, not a biasaudit manifest")
    m = read_json(path, "biasaudit manifest")
    if not (isinstance(m, dict) and isinstance(m.get("kind"), str) and isinstance(m.get("files", []), list)):
        raise ArtifactError(f"{path}: corrupted biasaudit manifest (not the expected object)")
    bad = [f for f in m.get("files", []) if not _safe_entry(f)]
    if bad:
        raise ArtifactError(f"{path}: corrupted biasaudit manifest (entry {bad[0]!r} is not a path inside the "
                            "folder); nothing is touched")
    return m


def _normal(config: Any) -> Any:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


@dataclass
class OutputFolder:
    """A claimed output folder (see the module docstring). ``stage()`` writes a run's files into it."""
    path: Path
    kind: str
    config: Any
    manifest: dict | None = None                  # what the folder held when claimed (None: nothing of ours)
    known: frozenset = frozenset()                # names this kind of output writes
    file_patterns: dict = field(default_factory=dict)   # sub-folder -> regex of the file names ours in it
    lock: str | None = None                       # the run lock this claim holds (``lock_folder``), if any

    def release(self) -> None:
        """Give back this claim's run lock (at the end of ``stage``; also when the claim is garbage-collected)."""
        if self.lock is not None:
            key, self.lock = self.lock, None
            _unlock(key)

    @property
    def owned(self) -> set[str]:
        """Files (relative paths) this tool wrote here: the manifest's list and, in a folder with a manifest,
        this kind's own names."""
        if not self.manifest:
            return set()
        return set(self.manifest.get("files", [])) | {n for n in self.known if (self.path / n).exists()}

    def _write_manifest(self, files: Iterable[str], complete: bool) -> None:
        from ._version import __version__
        write_json(self.path / MANIFEST, {"kind": self.kind, "complete": complete, "config": _normal(self.config),
                                          "files": sorted(set(files)), "biasaudit": __version__,
                                          "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def begin(self) -> None:
        """Create the folder and mark it as this run's, incomplete (for runs that write into it as they go)."""
        self.path.mkdir(parents=True, exist_ok=True)
        old = self.owned if self.manifest and _normal(self.manifest.get("config")) == _normal(self.config) else set()
        self._write_manifest(old, complete=False)
        self.manifest = read_manifest(self.path)

    def remove_owned(self, keep: Iterable[str] = ()) -> None:
        """Delete the files this tool wrote here (an overwrite), except ``keep``; nothing else is touched. A
        sub-folder is emptied only of what its own manifest, or this kind's ``file_patterns``, says is ours."""
        import re

        keep = set(keep)
        root = self.path.resolve()
        for rel in sorted(self.owned - keep):
            p = self.path / rel
            if p.is_symlink():
                p.unlink(missing_ok=True)          # the link, never what it points to
                continue
            try:
                if root not in p.resolve().parents:
                    continue
            except OSError:
                continue
            if p.is_dir():
                sub = read_manifest(p) if (p / MANIFEST).exists() else None
                if sub is not None:     # its own files go; its manifest stays (a folder of ours, now empty)
                    inner = OutputFolder(p, sub["kind"], sub.get("config"), sub)
                    inner.remove_owned()
                    inner._write_manifest([], complete=False)
                else:
                    pattern = self.file_patterns.get(rel)
                    for f in list(p.iterdir()) if pattern else []:
                        if f.is_file() and not f.is_symlink() and re.fullmatch(pattern, f.name):
                            f.unlink(missing_ok=True)
                try:
                    p.rmdir()                      # only if nothing else is left in it
                except OSError:
                    pass
            else:
                p.unlink(missing_ok=True)

    @contextmanager
    def stage(self, keep_existing: bool = False):
        """Yield an empty temporary folder beside the target; when the block succeeds, its files replace the
        target's (a new target is renamed into place whole), the manifest written last. ``keep_existing``:
        when another process created the target after it was claimed (two runs caching the same model), keep
        theirs."""
        try:
            tmp = make_temp_dir(self.path.parent, self.path.name)
        except OSError as e:
            self.release()
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from e
        try:
            yield from self._stage(tmp, keep_existing)
        except OSError as e:     # a full disk names the output asked for, not the hidden folder it is staged in
            named = _naming(e, tmp, self.path)
            if named is e:
                raise
            raise named from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self.release()

    def _stage(self, tmp: Path, keep_existing: bool):
        """``stage``'s body: yield the temporary folder, then move its files into place."""
        yield tmp
        files = [str(p.relative_to(tmp)) for p in sorted(tmp.rglob("*")) if p.is_file()]
        if not self.path.exists():
            write_json(tmp / MANIFEST, {"kind": self.kind, "complete": True, "config": _normal(self.config),
                                        "files": sorted(files), "biasaudit": _version(),
                                        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            try:
                os.rename(tmp, self.path)
                self.manifest = read_manifest(self.path)
                return
            except OSError:
                if not self.path.is_dir():
                    raise
                if keep_existing:
                    return           # another process finished the same output first
                (tmp / MANIFEST).unlink()
                self.manifest = read_manifest(self.path)
        previous = self.owned
        if not same_config(self):
            # an overwrite: the outputs of the other config go, this tool's files only, before the new ones
            # arrive, so the folder never holds a mix of the two
            self._write_manifest(previous, complete=False)
            self.remove_owned(keep=files)
            previous = set()
        self._write_manifest(previous | set(files), complete=False)
        for rel in files:
            dest = self.path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, dest)
        self._write_manifest(previous | set(files), complete=True)
        self.manifest = read_manifest(self.path)


def _version() -> str:
    from ._version import __version__
    return __version__


def claim_folder(folder: str | Path, kind: str, config: Any, overwrite: bool = False,
                 known: Iterable[str] = (), check_config: bool = True, file_patterns: dict | None = None
                 ) -> OutputFolder:
    """Claim ``folder`` for a ``kind`` output made with ``config`` (see the module docstring); raises
    ArtifactError naming the folder and what to do. ``known``: the names this kind writes (deleted on an overwrite
    when present); ``file_patterns``: for its sub-folders, which files in them are its own. Nothing is created or
    changed here."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise ArtifactError(f"{folder}: a symbolic link to nothing; choose another --out")
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"{folder}: exists and is a file, not a folder; choose another --out")
    key = lock_folder(folder) if kind in LOCKED_KINDS else None
    try:
        out = _claim(folder, kind, config, overwrite, known, check_config, file_patterns)
    except BaseException:
        if key is not None:
            _unlock(key)
        raise
    if key is not None:
        out.lock = key
        weakref.finalize(out, _unlock_once, out.__dict__)
    return out


def _unlock_once(state: dict) -> None:
    if state.get("lock") is not None:
        _unlock(state["lock"])
        state["lock"] = None


def _claim(folder: Path, kind: str, config: Any, overwrite: bool, known: Iterable[str], check_config: bool,
           file_patterns: dict | None) -> OutputFolder:
    """``claim_folder``'s checks, under the folder's run lock."""
    links = [folder / n for n in (*known, *(file_patterns or {})) if (folder / n).is_symlink()]
    if links:
        raise ArtifactError(f"{links[0]}: a symbolic link inside the output folder; biasaudit never follows a link "
                            "out of an output folder nor deletes through one: remove the link or choose another --out")
    is_dir = folder.is_dir()     # decided once: another process may create the folder meanwhile (stage copes)
    manifest = read_manifest(folder) if is_dir else None
    if is_dir:
        clean_stale_temps(folder)
        clean_stale_temps(folder.parent)
    if manifest is None and is_dir:
        entries = sorted(p.name for p in folder.iterdir() if not _is_temp(p) and not _is_lock(p))
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            said = f"{folder}: holds files biasaudit did not write ({shown}); nothing there is replaced: "
            raise ArtifactError(said + "choose a new or empty folder (out=)").with_cli(
                said + "choose a new or empty folder with --out")
    if manifest is not None:
        if manifest["kind"] != kind:
            said = f"{folder}: holds biasaudit {manifest['kind']} outputs, not {kind} outputs; choose another "
            raise ArtifactError(said + "out").with_cli(said + "--out")
        if check_config and _normal(manifest.get("config")) != _normal(config) and not overwrite:
            said = f"{folder}: holds {kind} outputs made with another config; use "
            raise ArtifactError(said + "overwrite=True (it replaces only the files biasaudit wrote there) or another "
                                "out").with_cli(said + "--overwrite (it replaces only the files biasaudit wrote "
                                                "there) or another --out")
    check_writable(folder)
    return OutputFolder(folder, kind, config, manifest, frozenset(known), dict(file_patterns or {}))


def same_config(out: OutputFolder) -> bool:
    """Whether the claimed folder already held outputs of this very config (a rerun or a resume)."""
    return out.manifest is not None and _normal(out.manifest.get("config")) == _normal(out.config)


# ------------------------------------------------------------------ one run at a time per folder
LOCKED_KINDS = frozenset({"score", "experiment", "debias"})    # use-case outputs (a model cache folder is shared)
_LOCK = ".biasaudit-lock"
_held: dict[str, list] = {}          # lock file -> [descriptor, claims of this process holding it]
_held_guard = threading.Lock()


def _is_lock(p: Path) -> bool:
    return p.name.startswith(".") and p.name.endswith(_LOCK)


def lock_path(folder: str | Path) -> Path:
    """The lock file of an output folder: beside it (the folder may not exist yet), named after it. The path is
    resolved through every link, the folder's own name included, so a link to a folder and the folder share one
    lock (two runs, one through ``out`` and one through a link to it, would otherwise both write it)."""
    real = Path(os.path.abspath(folder)).resolve()
    return real.parent / f".{real.name}{_LOCK}"


def lock_folder(folder: str | Path) -> str:
    """Take ``folder``'s run lock (an advisory ``fcntl.flock`` on ``lock_path``), so that one run at a time writes
    it; a folder another process is writing is an ArtifactError at once, naming it. Claims of one process nest.
    Returns the key ``_unlock`` takes."""
    import fcntl

    folder = Path(folder)
    path = lock_path(folder)
    key = str(path)
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            return key
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                             | getattr(os, "O_CLOEXEC", 0), public_mode())
            except OSError as e:
                if e.errno == getattr(os, "ELOOP", -1) or path.is_symlink():
                    raise ArtifactError(f"{path}: a symbolic link where biasaudit keeps {folder}'s run lock; "
                                        "remove it") from e
                raise ArtifactError(f"{folder}: cannot write there ({e.strerror or e})") from e
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                os.close(fd)
                raise ArtifactError(f"{path}: {_kind(mode)} where biasaudit keeps {folder}'s run lock; remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ArtifactError(f"{folder}: cannot lock it for this run ({e.strerror or e}: {path})") from e
                raise ArtifactError(f"{folder}: another biasaudit run is writing this folder{_holder(path)}; one "
                                    "run at a time writes a folder: wait for it or choose another --out") from e
            try:         # the run that held it may have removed the file meanwhile: hold the one in place
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[key] = [fd, 1]
        return key


def _holder(path: Path) -> str:
    try:
        pid = int(read_regular(path, "lock file", max_bytes=64, follow=False).decode().strip())
        return f" (process {pid})"
    except (ArtifactError, ValueError, UnicodeDecodeError):
        return ""


def _unlock(key: str) -> None:
    """One claim fewer on a lock of this process; the last removes the lock file (while holding it) and lets go."""
    with _held_guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        try:
            if os.stat(key, follow_symlinks=False).st_ino == os.fstat(entry[0]).st_ino:
                os.unlink(key)
        except OSError:
            pass
        os.close(entry[0])
