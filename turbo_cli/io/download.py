"""Download a file once into the cache: rich progress, temp file + rename, size check, one line when offline."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from turbo_cli.atomic import atomic_path
from turbo_cli.errors import ModelError, OfflineError

CHUNK = 1 << 20


def download(url: str, dest: Path, *, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch `url` to `dest` unless it is already there. The file appears only when complete and of the right size."""
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") and not url.startswith(
            ("http://127.0.0.1", "http://localhost", "file:")):
        raise OfflineError(f"{dest.name} is not in the cache ({dest.parent}) and HF_HUB_OFFLINE is set; "
                           f"download {url} there or pass --model PATH")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise ModelError(f"{url}: download failed (HTTP {e.code})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise OfflineError(f"cannot download {url} ({reason}); are you offline? pass --model PATH to a local copy") \
            from None
    expected = int(response.headers.get("Content-Length") or 0) or None
    received = 0
    with atomic_path(dest) as tmp:
        with response, open(tmp, "wb") as out, _progress(progress, dest.name, expected) as advance:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                advance(len(chunk))
        if expected is not None and received != expected:
            raise ModelError(f"{url}: download incomplete ({received} of {expected} bytes); run again to retry")
    return dest


class _progress:
    """A rich progress bar in bytes (or nothing when disabled)."""

    def __init__(self, enabled: bool, name: str, total: int | None):
        self.enabled, self.name, self.total = enabled, name, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, DownloadColumn, Progress, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
        self.bar.start()
        task = self.bar.add_task(f"downloading {self.name}", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False
