"""Loading the frozen pretrained networks of the training losses (the discriminator's CLIP image tower, the
CLIP-similarity model) from a hub id or a local folder. Offline (`turbo_cli.hub.is_offline`), a hub id that is not
in the local cache becomes one OfflineError line that names the recipe key to point at a local folder, instead
of a stack trace from huggingface_hub."""

from __future__ import annotations

import os
from pathlib import Path

from turbo_cli.errors import ModelError, OfflineError
from turbo_cli.hub import is_offline


def load_hf(cls, source: str | os.PathLike, key: str, **kwargs):
    """`cls.from_pretrained(source)`; `key` names the recipe option in error messages (e.g. "[loss] disc_backbone")."""
    path = Path(source).expanduser()
    if path.exists():
        try:
            return cls.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as e:
            raise ModelError(f"{path}: cannot load {cls.__name__} ({key}): {str(e).splitlines()[0]}") from None
    try:
        return cls.from_pretrained(str(source), local_files_only=is_offline(), **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        looks_offline = is_offline() or any(w in first.lower() for w in ("connect", "offline", "resolve", "timed out"))
        if looks_offline:
            raise OfflineError(f"{key} = '{source}' is not in the local cache and cannot be downloaded (offline); "
                               f"set {key} to a local folder") from None
        raise ModelError(f"{key} = '{source}': cannot load {cls.__name__}: {first}") from None
