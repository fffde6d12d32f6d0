"""Where turbo keeps downloaded checkpoints and cached statistics."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """TURBO_CACHE, else $HF_HOME/turbo, else $XDG_CACHE_HOME/turbo, else ~/.cache/turbo (created on demand)."""
    if os.environ.get("TURBO_CACHE"):
        root = Path(os.environ["TURBO_CACHE"])
    elif os.environ.get("HF_HOME"):
        root = Path(os.environ["HF_HOME"]) / "turbo"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turbo"
    path = root.expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
