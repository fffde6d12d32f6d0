"""Loading the frozen pretrained networks of the training losses (the discriminator's CLIP image tower, the
CLIP-similarity model) from a hub id or a local folder, and checking up front which ones a run lacks offline. Offline (`turbo_cli.hub.is_offline`), a hub id that is not
in the local cache becomes one OfflineError line that names the recipe key to point at a local folder, instead
of a stack trace from huggingface_hub."""

from __future__ import annotations

import os
from pathlib import Path

from turbo_cli.errors import ModelError, OfflineError
from turbo_cli.hub import is_offline


TORCHVISION_TRUNKS = {"vgg": "VGG16_Weights", "alex": "AlexNet_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def trunk_file_name(net: str) -> str:
    """torchvision's file name for LPIPS's trunk `net` (e.g. "vgg16-397923af.pth"), as torch hub caches it."""
    import torchvision.models

    return Path(getattr(torchvision.models, TORCHVISION_TRUNKS[net]).IMAGENET1K_V1.url).name


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


def _cached(source: str, filename: str) -> bool:
    """A local folder, or a hub id whose `filename` is in the local Hugging Face cache."""
    if Path(source).expanduser().exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(str(source), filename), str)
    except Exception:  # not a valid repo id: the loader will say so
        return True


def missing_weights(recipe, *, base_given: bool = False, disc_given: bool = False) -> list[str]:
    """Every pretrained network the run needs that is neither a local path nor in the local caches, one entry
    each ("[loss] clip_model = 'openai/clip-vit-base-patch32' (set it to a local folder)"). `*_given`: networks
    handed to the trainer, which need no weights."""
    import torch

    m, L = recipe.model, recipe.loss
    needed = []
    if not base_given:
        needed.append(("[model] base_model", m.base_model, "model_index.json", "a folder in the SD-Turbo layout"))
    if L.lambda_gan > 0 and not disc_given:
        needed.append(("[loss] disc_backbone", L.disc_backbone, "config.json", "a CLIPVisionModelWithProjection folder"))
    if recipe.paired and L.lambda_clipsim > 0:
        needed.append(("[loss] clip_model", L.clip_model, "config.json", "a CLIPModel folder with its tokenizer"))
    missing = [f"{key} = '{source}' (set it to {what})" for key, source, filename, what in needed
               if not _cached(source, filename)]
    if L.lpips_weights is None:
        trunk = Path(torch.hub.get_dir()) / "checkpoints" / trunk_file_name(L.lpips_net)
        if not trunk.is_file():
            missing.append(f"LPIPS-{L.lpips_net}'s trunk {trunk.name} is not in {trunk.parent} (set [loss] "
                           "lpips_weights to a local copy)")
    return missing


def check_weights_offline(recipe, **given) -> None:
    """Every missing pretrained network in ONE error before any is loaded, instead of one failure per network
    after minutes of loading the others: offline (`turbo_cli.hub.is_offline`), or when something must be
    downloaded and the Hub does not answer within seconds (huggingface_hub would retry for about a minute)."""
    missing = missing_weights(recipe, **given)
    if not missing:
        return
    if is_offline():
        raise OfflineError(f"offline (HF_HUB_OFFLINE), and {len(missing)} pretrained network(s) the recipe needs "
                           f"are not on this machine: " + "; ".join(missing))
    if not _hub_reachable():
        raise OfflineError(f"the Hugging Face Hub does not answer (no network?), and {len(missing)} pretrained "
                           f"network(s) the recipe needs are not on this machine: " + "; ".join(missing))


def _hub_reachable(timeout: float = 5.0) -> bool:
    """One quick request to the Hub's endpoint (HF_ENDPOINT, else huggingface.co): any HTTP answer counts."""
    import os
    import urllib.error
    import urllib.request

    url = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/") + "/api/whoami-v2"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return True  # it answered (401 without a token)
    except (urllib.error.URLError, OSError):
        return False
    return True
