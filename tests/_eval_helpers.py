"""Small synthetic images and videos for the eval tests (no weights, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scene(h: int = 64, w: int = 80, shift: int = 0, tint: tuple[int, int, int] = (0, 0, 0),
          seed: int = 0) -> np.ndarray:
    """A dark background with a bright box at a position set by `shift` and a soft texture (seeded)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 30, np.float32) + rng.normal(0, 3, (h, w, 3))
    img[10 + shift: h // 2 + 10 + shift, 12: w // 2 + 12] = 200
    img += np.asarray(tint, np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def texture_frames(n: int = 8, h: int = 64, w: int = 64, step: float = 1.5, seed: int = 0) -> list[np.ndarray]:
    """A smooth random texture moving left by `step` px per frame (camera panning right): real motion for flow."""
    import cv2

    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h + 32, w + 64 + int(n * step) + 8, 3)).astype(np.float32), (0, 0), 3)
    big = (big - big.min()) / (big.max() - big.min()) * 255
    frames = []
    for t in range(n):
        m = np.float32([[1, 0, -t * step], [0, 1, 0]])
        shifted = cv2.warpAffine(big, m, (big.shape[1], big.shape[0]), flags=cv2.INTER_LINEAR)
        frames.append(np.clip(shifted[16:16 + h, 16:16 + w], 0, 255).astype(np.uint8))
    return frames


def save_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    """Near-lossless H.264 (crf 0) so decoded frames stay close to what was written."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Tiny random metric networks: the real interfaces (InceptionFeatures, DinoKeys, LpipsDistance) on networks built
# offline in milliseconds. Numbers are meaningless; every code path runs.


def tiny_backbones(metrics=None, seed: int = 0, device: str = "cpu"):
    """Seeded random stand-ins for the networks `metrics` need (all three when None)."""
    import warnings

    import lpips
    import torch
    from transformers import ViTConfig, ViTModel

    from turbo_cli.eval.dino import DinoKeys
    from turbo_cli.eval.names import INCEPTION_METRICS, Metric
    from turbo_cli.eval.networks import Backbones, InceptionFeatures, LpipsDistance

    metrics = set(Metric) if metrics is None else {Metric(m) for m in metrics}
    torch.manual_seed(seed)
    nets = Backbones()
    if metrics & INCEPTION_METRICS:
        inception = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 7, stride=4), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        ).eval().to(device)
        # the same 0..255 input convention as clean-fid's Inception
        nets.inception = InceptionFeatures(lambda x: inception((x - 128.0) / 128.0),
                                           id="tiny-random-inception (16-d, test)", device=device)
    if Metric.DINO_STRUCT in metrics:
        cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        image_size=64, patch_size=8)
        nets.dino = DinoKeys(ViTModel(cfg, add_pooling_layer=False), id="tiny-random-vit (test)", short_side=64,
                             device=device)
    if Metric.LPIPS in metrics:
        with warnings.catch_warnings():  # lpips calls torchvision with the deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            # AlexNet trunk, random (pnet_rand): small and offline; the linear heads ship inside the lpips package.
            net = lpips.LPIPS(verbose=False, net="alex", pnet_rand=True)
        nets.lpips = LpipsDistance(net, id="lpips alex, random trunk (test)", device=device)
    return nets


def use_tiny_backbones(monkeypatch) -> None:
    """Make `turbo eval` (the CLI) load the tiny networks instead of the real ones."""
    from turbo_cli.eval import networks

    monkeypatch.setattr(networks, "load_backbones", lambda metrics, *args, **kwargs: tiny_backbones(metrics))
