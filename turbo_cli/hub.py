"""Where weights come from: turbo's cache folder and the one offline rule.

Everything that may reach the network (base models, published checkpoints, metric and loss backbones) asks
`is_offline()` here, so one variable, Hugging Face's own `HF_HUB_OFFLINE`, switches all of turbo to local files.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from turbo_cli.errors import ModelError, OfflineError

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


# ---- the Hugging Face Hub: repo ids, snapshots and the errors a user meets first ---------------------------------
_REPO_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?")


def parse_repo_id(text: str) -> tuple[str, str | None] | None:
    """("owner/name", revision or None) for `owner/name` or `owner/name@revision`; None for anything else."""
    m = _REPO_ID.fullmatch(str(text))
    return (m["repo"], m["revision"]) if m else None


def snapshot(repo_id: str, *, revision: str | None = None, allow_patterns: list[str] | None = None,
             ignore_patterns: list[str] | None = None, option: str = "--model",
             instead: str = "pass a local folder") -> Path:
    """A local folder with the repo's files: from the Hugging Face cache, downloaded on first use (its cache, its
    tokens from the usual places, `HF_HUB_OFFLINE`, `HF_ENDPOINT`). Every failure is one line naming `option` and
    what to do."""
    from huggingface_hub import snapshot_download

    with hub_errors(option, f"{repo_id}@{revision}" if revision else repo_id, instead, revision):
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns,
                                      ignore_patterns=ignore_patterns, local_files_only=is_offline(),
                                      endpoint=os.environ.get("HF_ENDPOINT") or None))


@contextlib.contextmanager
def hub_errors(option: str, ref: str, instead: str = "pass a local folder", revision: str | None = None):
    """huggingface_hub's exceptions -> one line naming `option` and `ref`, and what to do."""
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.GatedRepoError:  # (a subclass of RepositoryNotFoundError: first)
        raise ModelError(f"{option} {ref}: a gated repository; accept its conditions on its Hub page, then log in "
                         f"(`hf auth login`) or set HF_TOKEN") from None
    except hf.RepositoryNotFoundError:
        raise ModelError(f"{option} {ref}: no such repository on the Hub, or a private one you have no token for "
                         f"(check the id; log in with `hf auth login` or set HF_TOKEN)") from None
    except hf.RevisionNotFoundError:
        raise ModelError(f"{option} {ref}: the repository has no revision '{revision}'") from None
    except hf.LocalEntryNotFoundError:
        if is_offline():
            raise OfflineError(f"{option} {ref}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; download "
                               f"it once online, or {instead}") from None
        raise OfflineError(f"{option} {ref}: the Hub cannot be reached and nothing is cached; check the network "
                           f"(or HF_ENDPOINT), or {instead}") from None
    except hf.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        if status == 401:
            raise ModelError(f"{option} {ref}: the Hub refused the request (HTTP 401): log in with `hf auth login` "
                             f"or set HF_TOKEN") from None
        raise ModelError(f"{option} {ref}: the Hub answered HTTP {status} ({str(e).splitlines()[0][:120]})") from None
    except Exception as e:  # connection refused, DNS, timeouts: raised by calls that do not fall back to the cache
        if not isinstance(e, OSError) and not type(e).__module__.startswith(("httpx", "httpcore")):
            raise
        raise OfflineError(f"{option} {ref}: the Hub cannot be reached ({type(e).__name__}); check the network "
                           f"(or HF_ENDPOINT), or {instead}") from None
