"""One run at a time per output folder: a use case's folder is locked (``fcntl.flock`` on a file beside it) while
a run claims it; claims of one process nest.
"""
from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

from ..errors import ArtifactError
from .files import _kind, public_mode, read_regular


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
