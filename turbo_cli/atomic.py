"""Atomic writes, the one home for them: a temp file (or folder) beside the target, renamed over it only when complete.

Every file turbo writes for a user (images, videos, checkpoints, reports, caches, downloads) goes through here, so an
interrupted run never leaves a half-written file and a re-run can trust that an existing output is complete.
Temp names start with "." and contain ".tmp" so folder scans skip them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator


# Temp names carry their writer (host and pid), so a later run can tell a temp file left by a killed process
# (SIGKILL runs no cleanup) from one a live process is still writing: `remove_stale`.
_OWNER = f"{socket.gethostname().split('.')[0] or 'host'}-{os.getpid()}"
_STALE = re.compile(r"^\..+\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp[^/]*$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path in dest's folder; on success it replaces `dest`, on any error (Ctrl-C too) it is removed.

    `suffix` should contain ".tmp" (e.g. ".png.tmp") so folder scans skip the temp file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{_OWNER}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `dest` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `dest` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `dest`; on success it is renamed to `dest` (which must not exist yet),
    on any error it is removed. Checkpoint folders are written this way, so a listed checkpoint is complete."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{_OWNER}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Delete the temp files (and folders) under `folder` that a process of this host left when it was killed:
    their writer's pid no longer runs. Files of live writers, and of other hosts, are left alone. Returns how many
    were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    host, removed = _OWNER.rsplit("-", 1)[0], 0
    for path in (folder.rglob if recursive else folder.glob)(".*.tmp*"):
        m = _STALE.match(path.name)
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
