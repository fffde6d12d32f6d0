"""Download a file once into the cache: a byte-count progress bar, temp file + rename, size check, one line when
offline. Published checkpoints and the metric networks' weights both come through here."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from turbo_cli.atomic import atomic_path
from turbo_cli.errors import ModelError, OfflineError
from turbo_cli.hub import is_offline
from turbo_cli.progress import QUIET, Progress

CHUNK = 1 << 20
_LOCAL_URLS = ("http://127.0.0.1", "http://localhost", "file:")  # reachable offline (tests, a local mirror)


def download(url: str, dest: Path, *, progress: Progress = QUIET, timeout: float = 30.0,
             instead: str = "pass --model PATH to a local copy") -> Path:
    """Fetch `url` to `dest` unless it is already there. The file appears only when complete and of the right size.

    `timeout` (seconds) bounds each network wait, so a stalled connection fails with a message instead of hanging.
    `instead` is what the user can do without the network; it ends the offline messages.
    """
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    if is_offline() and not url.startswith(_LOCAL_URLS):
        raise OfflineError(f"{dest.name} is not in the cache ({dest.parent}) and HF_HUB_OFFLINE is set; "
                           f"download {url} there or {instead}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise ModelError(f"{url}: download failed (HTTP {e.code})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise OfflineError(f"cannot download {url} ({reason}); are you offline? {instead}") from None
    expected = int(response.headers.get("Content-Length") or 0) or None
    received = 0
    with atomic_path(dest) as tmp:
        with response, open(tmp, "wb") as out, \
                progress.bar(expected, "B", f"downloading {dest.name}", transient=True, bytes_=True) as bar:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.advance(len(chunk))
            except (urllib.error.URLError, OSError) as e:  # the connection dropped mid-file
                raise OfflineError(f"{url}: download interrupted ({getattr(e, 'reason', e)}); run again to "
                                   f"retry, or {instead}") from None
        if expected is not None and received != expected:
            raise ModelError(f"{url}: download incomplete ({received} of {expected} bytes); run again to retry")
    return dest
