"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to everything the discriminator sees.

Real and fake images get the same kind of random augmentation, so D cannot tell them apart by it, and G
gets gradients through it. Policies: color (brightness, saturation, contrast), translation (1/8 of the
size, zero fill), cutout (a zeroed square of half the size). Randomness comes from torch's global RNG
(seeded per run and saved in checkpoints) unless a generator is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _rand(x: torch.Tensor, *shape: int, generator=None) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=generator.device if generator else x.device).to(x)


def _randint(low: int, high: int, shape, device, generator=None) -> torch.Tensor:
    return torch.randint(low, high, shape, generator=generator,
                         device=generator.device if generator else device).to(device)


def brightness(x: torch.Tensor, generator=None) -> torch.Tensor:
    # x + U(-0.5, 0.5) per image
    return x + (_rand(x, x.shape[0], 1, 1, 1, generator=generator) - 0.5)


def saturation(x: torch.Tensor, generator=None) -> torch.Tensor:
    # scale the distance to the per-pixel grey value by U(0, 2)
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, x.shape[0], 1, 1, 1, generator=generator) * 2) + mean


def contrast(x: torch.Tensor, generator=None) -> torch.Tensor:
    # scale the distance to the image mean by U(0.5, 1.5)
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, x.shape[0], 1, 1, 1, generator=generator) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125, generator=None) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels in x and y; uncovered pixels are zero."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(-sh, sh + 1, (b, 1, 1), x.device, generator)
    tx = _randint(-sw, sw + 1, (b, 1, 1), x.device, generator)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    # Index into a 1-pixel zero-padded copy; out-of-range shifts land on the padding.
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5, generator=None) -> torch.Tensor:
    """Zero a square of ratio * size at a random centre in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(0, h + (1 - ch % 2), (b, 1, 1), x.device, generator)
    ox = _randint(0, w + (1 - cw % 2), (b, 1, 1), x.device, generator)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


POLICIES = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {name!r} (known: {', '.join(POLICIES)})")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout", generator=None) -> torch.Tensor:
    """Apply the comma-separated policies in order. Differentiable with respect to x."""
    for name in parse_policy(policy):
        for fn in POLICIES[name]:
            x = fn(x, generator=generator)
    return x.contiguous()
