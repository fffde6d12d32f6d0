"""Cached reference statistics: a key that changes when the folder or the method changes, and small .npz files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from turbo_cli.atomic import atomic_path


def folder_fingerprint(files: list[Path], root: Path) -> str:
    """Hash of the files' relative names, sizes and mtimes: changes when any image is added, removed or rewritten,
    without reading the pixels (that is the slow part the cache avoids)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def stats_key(fingerprint: str, **policy) -> str:
    """Cache key: folder fingerprint + everything that changes the numbers (mode, backbone id, version)."""
    blob = json.dumps({"folder": fingerprint, **policy}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """A cached .npz, or None when missing or unreadable (a broken cache entry is recomputed, not fatal)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write a .npz atomically: a reader never sees a half-written cache entry."""
    with atomic_path(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
