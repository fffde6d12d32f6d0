"""The networks behind the metrics: Inception (FID/KID), DINO ViT-B/8 (DINO-Struct-Dist) and LPIPS, and loading them.

They are arguments of the evaluation API (`Backbones`), never globals, so a caller (a test: tiny random networks)
can pass its own. The real ones load from a local folder (`--weights-dir`) or download:

| metric | file / id looked for in --weights-dir | else |
|---|---|---|
| FID, KID | `inception-2015-12-05.pt` (clean-fid's TorchScript Inception) | turbo cache, clean-fid's /tmp, download |
| DINO | `dino-vitb8/` or `facebook/dino-vitb8/` (a transformers folder) | Hugging Face hub `facebook/dino-vitb8` |
| LPIPS | `vgg16-397923af.pth` (torchvision VGG16) | torch hub cache, download; linear heads ship with lpips |

A backbone that cannot load becomes `Unavailable(reason)`: its metrics say why in the table, the rest still run.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from turbo_cli.device import pick_device
from turbo_cli.errors import ModelError, OfflineError, TurboError
from turbo_cli.eval.dino import DINO_HUB_ID, DINO_SHORT_SIDE, DinoKeys
from turbo_cli.eval.names import INCEPTION_METRICS, Metric
from turbo_cli.hub import cache_dir, is_offline
from turbo_cli.io.download import download
from turbo_cli.progress import QUIET, Progress

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
VGG_FILE = "vgg16-397923af.pth"
VGG_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


@dataclass(frozen=True)
class Unavailable:
    """A backbone that could not be built, and the one-line reason the report shows."""

    reason: str


def _find_file(name: str, folders: list[Path | None]) -> Path | None:
    for folder in folders:
        if folder is not None and (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def _fetch(url: str, target: Path, what: str, progress: Progress) -> Path:
    """Download metric weights into the cache; errors name the metric and the --weights-dir way round them."""
    try:
        return download(url, target, progress=progress, instead=f"put {target.name} in --weights-dir")
    except TurboError as e:
        raise type(e)(f"{what}: {e}") from None


# ----------------------------------------------------------------------------------------------------------------------
# Inception (FID, KID)


class InceptionFeatures:
    """Image -> feature vector, with clean-fid's "clean" preprocessing: PIL bicubic resize to 299x299 on float
    channels (no uint8 quantisation), values 0..255 handed to the network."""

    mode = "clean"
    resize_policy = "PIL bicubic to 299x299 per float channel, no quantisation (clean-fid mode 'clean')"

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], id: str, device: str | torch.device = "cpu",
                 batch_size: int = 32):
        from cleanfid.resize import build_resizer

        self.fn = fn
        self.id = id
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._resize = build_resizer(self.mode)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """CPU part: (H, W, 3) uint8 -> (299, 299, 3) float32 in 0..255."""
        return self._resize(np.asarray(rgb)).astype(np.float32)

    @torch.inference_mode()
    def embed(self, prepared: list[np.ndarray]) -> np.ndarray:
        """A batch of prepare() outputs -> (B, D) float64 features."""
        x = torch.from_numpy(np.stack(prepared)).permute(0, 3, 1, 2).to(self.device)
        return self.fn(x).detach().float().cpu().numpy().astype(np.float64)


def load_inception(weights_dir: str | Path | None = None, device: str | torch.device = "cpu",
                   progress: Progress = QUIET) -> InceptionFeatures:
    """clean-fid's Inception for mode "clean": the same network `cleanfid.features.build_feature_extractor("clean")`
    builds (InceptionV3W, resize outside), loaded from --weights-dir / our cache / clean-fid's /tmp copy before
    downloading (atomically, unlike clean-fid, so an interrupted download cannot poison later runs)."""
    from cleanfid.inception_torchscript import InceptionV3W

    weights_dir = Path(weights_dir) if weights_dir else None
    cache = cache_dir("weights")
    path = _find_file(INCEPTION_FILE, [weights_dir, cache, Path("/tmp")])
    if path is None:
        path = _fetch(INCEPTION_URL, cache / INCEPTION_FILE, "FID/KID (clean-fid Inception)", progress)
    try:
        with progress.status("loading the Inception network (FID/KID)"):
            model = InceptionV3W(str(path.parent), download=False, resize_inside=False).to(device).eval()
    except (RuntimeError, OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load the Inception weights ({e})") from None
    return InceptionFeatures(model, id=f"clean-fid InceptionV3 ({INCEPTION_FILE}, pool3 2048-d)", device=device)


# ----------------------------------------------------------------------------------------------------------------------
# DINO


def _dino_source(weights_dir: Path | None) -> str:
    if weights_dir is not None:
        for cand in (weights_dir / "dino-vitb8", weights_dir / "facebook" / "dino-vitb8", weights_dir):
            if (cand / "config.json").is_file():
                return str(cand)
    return DINO_HUB_ID


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached, or None. Checked once up front because huggingface_hub retries
    a dead connection with backoff for about a minute per file; behind a proxy we cannot tell, so we just try."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return None
    except OSError as e:
        return f"{host}: {e.strerror or e}"


def load_dino(weights_dir: str | Path | None = None, device: str | torch.device = "cpu",
              progress: Progress = QUIET) -> DinoKeys:
    """DINO ViT-B/8 from --weights-dir, else the Hugging Face cache, else the hub (unless offline)."""
    from transformers import ViTModel

    source = _dino_source(Path(weights_dir) if weights_dir else None)
    kw = {"add_pooling_layer": False, "output_loading_info": True}
    try:
        try:  # the hub cache first: no network needed when the weights were downloaded before
            with progress.status("loading DINO ViT-B/8 (DINO-Struct-Dist)"):
                model, info = ViTModel.from_pretrained(source, local_files_only=True, **kw)
        except OSError:
            if source != DINO_HUB_ID or is_offline():
                raise
            why = _hub_unreachable()
            if why:
                raise OSError(f"cannot connect ({why})") from None
            model, info = ViTModel.from_pretrained(source, **kw)  # huggingface_hub shows its own download bars
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if source == DINO_HUB_ID and (is_offline() or "connect" in str(e).lower() or "offline" in str(e).lower()):
            raise OfflineError(f"DINO-Struct-Dist: {DINO_HUB_ID} is not in the Hugging Face cache and the hub cannot "
                               f"be reached (offline); download it once or pass --weights-dir with a dino-vitb8 "
                               f"folder") from None
        raise ModelError(f"DINO-Struct-Dist: cannot load {source} ({first})") from None
    # A checkpoint whose names this transformers version does not map would leave layers randomly initialised and
    # give plausible-looking garbage: refuse it instead.
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
    if missing:
        raise ModelError(f"DINO-Struct-Dist: {source} does not fill this ViT ({len(missing)} weights missing, "
                         f"e.g. {missing[0]}); not a dino-vitb8 checkpoint for this transformers version?")
    return DinoKeys(model, id=DINO_HUB_ID if source == DINO_HUB_ID else source, short_side=DINO_SHORT_SIDE,
                    device=device)


# ----------------------------------------------------------------------------------------------------------------------
# LPIPS


class LpipsDistance:
    """LPIPS(a, b) for two same-size uint8 RGB images (the lpips package wants [-1, 1])."""

    def __init__(self, net: torch.nn.Module, id: str, device: str | torch.device = "cpu"):
        self.net = net.eval().to(device)
        self.id = id
        self.device = torch.device(device)

    def _tensor(self, rgb: np.ndarray) -> torch.Tensor:
        x = torch.tensor(np.asarray(rgb), device=self.device).permute(2, 0, 1)[None].float()
        return x / 127.5 - 1.0

    @torch.inference_mode()
    def __call__(self, a_rgb: np.ndarray, b_rgb: np.ndarray) -> float:
        if a_rgb.shape != b_rgb.shape:
            raise ValueError(f"image sizes differ: {a_rgb.shape} vs {b_rgb.shape}")
        return float(self.net(self._tensor(a_rgb), self._tensor(b_rgb)).mean())


def _quiet_lpips(**kw) -> torch.nn.Module:
    import warnings

    import lpips

    with warnings.catch_warnings():  # lpips still calls torchvision with the deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        return lpips.LPIPS(verbose=False, **kw)


def lpips_trunk_state(trunk: torch.nn.Module, torchvision_state: dict) -> dict:
    """torchvision's `features.N.*` tensors (VGG16 / AlexNet files) -> the state dict of an lpips trunk, which
    slices `features` into slice1..5 and keeps each layer's index N as its name."""
    state = {}
    for slice_name, block in trunk.named_children():
        for index, _ in block.named_children():
            prefix = f"features.{index}."
            state.update({f"{slice_name}.{index}.{k[len(prefix):]}": v for k, v in torchvision_state.items()
                          if k.startswith(prefix)})
    return state


def load_lpips(weights_dir: str | Path | None = None, device: str | torch.device = "cpu",
               progress: Progress = QUIET) -> LpipsDistance:
    """LPIPS-VGG v0.1. The trunk (torchvision VGG16) is found or downloaded by us, then loaded into a randomly
    initialised lpips trunk, so --weights-dir works and offline gives one clear line instead of torch.hub's trace."""
    weights_dir = Path(weights_dir) if weights_dir else None
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    cache = cache_dir("weights")
    path = _find_file(VGG_FILE, [weights_dir, hub, cache])
    if path is None:
        path = _fetch(VGG_URL, cache / VGG_FILE, "LPIPS (VGG16 trunk)", progress)
    net = _quiet_lpips(net="vgg", pnet_rand=True)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        net.net.load_state_dict(lpips_trunk_state(net.net, sd), strict=True)
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        raise ModelError(f"{path}: not torchvision's VGG16 weights ({str(e).splitlines()[0]})") from None
    return LpipsDistance(net, id="lpips v0.1 vgg (torchvision VGG16 trunk)", device=device)


# ----------------------------------------------------------------------------------------------------------------------
# The set the API takes


@dataclass
class Backbones:
    """What the metrics run on. None = not requested; Unavailable = requested but could not be built."""

    inception: InceptionFeatures | Unavailable | None = None
    dino: DinoKeys | Unavailable | None = None
    lpips: LpipsDistance | Unavailable | None = None


def _try(build: Callable[[], object]) -> object:
    try:
        return build()
    except TurboError as e:
        return Unavailable(str(e))


def load_backbones(metrics: set[Metric], weights_dir: str | Path | None = None, device: str | None = "auto",
                   progress: Progress = QUIET) -> Backbones:
    """The real networks for the requested metrics; each one that cannot load becomes Unavailable(reason)."""
    dev = pick_device(device)
    metrics = {Metric(m) for m in metrics}
    return Backbones(
        inception=_try(lambda: load_inception(weights_dir, dev, progress)) if metrics & INCEPTION_METRICS else None,
        dino=_try(lambda: load_dino(weights_dir, dev, progress)) if Metric.DINO_STRUCT in metrics else None,
        lpips=_try(lambda: load_lpips(weights_dir, dev, progress)) if Metric.LPIPS in metrics else None,
    )
