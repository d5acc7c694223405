"""Output folders, claimed, staged and committed (``claim_folder``), and the temporary entries beside them.

Output folders (models, ``score`` and ``experiment`` results) follow one protocol:
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
import shutil
import tempfile
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import ArtifactError
from .files import _TMP, _naming, public_mode, read_json, write_json
from .locks import LOCKED_KINDS, _is_lock, _unlock, lock_folder

MANIFEST = ".biasaudit.json"
STALE_SECONDS = 24 * 3600        # a temporary entry this old is left over from a crash, whatever its process


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
        from .._version import __version__
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
    from .._version import __version__
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
