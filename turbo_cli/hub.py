"""Where weights come from: turbo's cache folder and the one offline rule.

Everything that may reach the network (base models, published checkpoints, metric and loss backbones) asks
`is_offline()` here, so one variable, Hugging Face's own `HF_HUB_OFFLINE`, switches all of turbo to local files.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = ("1", "true", "yes", "on")


def is_offline() -> bool:
    """True when `HF_HUB_OFFLINE` is set (1/true/yes/on): nothing may be downloaded, only caches and local folders."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in _TRUE


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
