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

import json
import os
import re
import shutil
import stat
import tempfile
import time
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=_TMP, dir=path.parent)
    try:
        os.chmod(tmp, public_mode())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:    # a write or fsync fault names no file: name the one being written
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def regular_file(path: str | Path, what: str = "file", error: type[Exception] = ArtifactError) -> Path:
    """``path`` as a Path when it is a regular file (after following symlinks); else ``error`` in one line, before
    anything opens it: a FIFO would block the read forever and /dev/zero would be read until memory runs out."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as e:
        raise error(f"{path}: no such file") from e
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from e
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        raise error(f"{path}: {kind}, not a regular file; a {what} must be a regular file")
    return path


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file; a missing, unreadable or corrupted one is an ArtifactError naming it and the cause."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ArtifactError(f"{path}: {what} missing") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: corrupted {what} ({e})") from e
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read {what} ({e.strerror or e})") from e


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
        tmp = make_temp_dir(self.path.parent, self.path.name)
        try:
            yield from self._stage(tmp, keep_existing)
        except OSError as e:
            if e.filename is None:   # a write or fsync fault names no file: name the folder being written
                raise OSError(e.errno, e.strerror or str(e), str(self.path)) from e
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

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
    is_dir = folder.is_dir()     # decided once: another process may create the folder meanwhile (stage copes)
    manifest = read_manifest(folder) if is_dir else None
    if is_dir:
        clean_stale_temps(folder)
        clean_stale_temps(folder.parent)
    if manifest is None and is_dir:
        entries = sorted(p.name for p in folder.iterdir() if not _is_temp(p))
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            raise ArtifactError(f"{folder}: holds files biasaudit did not write ({shown}); nothing there is "
                                "replaced: choose a new or empty folder with --out")
    if manifest is not None:
        if manifest["kind"] != kind:
            raise ArtifactError(f"{folder}: holds biasaudit {manifest['kind']} outputs, not {kind} outputs; "
                                "choose another --out")
        if check_config and _normal(manifest.get("config")) != _normal(config) and not overwrite:
            raise ArtifactError(f"{folder}: holds {kind} outputs made with another config; use --overwrite "
                                "(it replaces only the files biasaudit wrote there) or another --out")
    check_writable(folder)
    return OutputFolder(folder, kind, config, manifest, frozenset(known), dict(file_patterns or {}))


def same_config(out: OutputFolder) -> bool:
    """Whether the claimed folder already held outputs of this very config (a rerun or a resume)."""
    return out.manifest is not None and _normal(out.manifest.get("config")) == _normal(out.config)
