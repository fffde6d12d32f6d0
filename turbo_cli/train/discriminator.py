"""The vision-aided discriminator (Kumari et al. 2022) that CycleGAN-turbo and pix2pix-turbo train against.

A frozen CLIP ViT image tower (transformers' CLIPVisionModelWithProjection; the original uses ViT-B/32) turns
the image into three feature levels: the patch tokens after blocks 4 and 8 (as C x g x g maps) and the final
projected CLS embedding. Small spectral-normalised heads, the only trained part, map each level to logits.
Loss "multilevel_sigmoid": binary cross-entropy with logits summed over the levels.

    D = VisionAidedDiscriminator.from_pretrained("openai/clip-vit-base-patch32")
    loss_G = D.loss(fake, real=True)            # G wants its outputs called real
    loss_D = D.loss(fake.detach(), real=False) + D.loss(real_images, real=True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from turbo_cli.train.pretrained import load_hf
from turbo_cli.train.diffaug import diff_augment, parse_policy

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class BlurPool(nn.Module):
    """Anti-aliasing blur (Zhang 2019): a fixed [1,2,1]x[1,2,1]/16 depthwise filter, zero padding, given stride."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("filt", k.expand(channels, 1, 3, 3).clone(), persistent=False)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, padding=1, groups=x.shape[1])


class MapHead(nn.Module):
    """Logits from a token map: SN conv3x3 C->256, LeakyReLU(0.2), BlurPool, SN conv1x1 256->1 (stride 2).

    As in vision-aided-gan's multi-level ViT head with down = 1 (what CLIP's small maps use), the leading
    BlurPool is only inserted when the head downsamples its input first (down > 1).
    """

    def __init__(self, channels: int, hidden: int = 256, down: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            BlurPool(channels, stride=1) if down > 1 else nn.Identity(),
            spectral_norm(nn.Conv2d(channels, hidden, 3, stride=2 if down > 1 else 1, padding=0 if down > 1 else 1)),
            nn.LeakyReLU(0.2),
            BlurPool(hidden, stride=1),
            spectral_norm(nn.Conv2d(hidden, 1, 1, stride=2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)  # (B, cells)


class EmbedHead(nn.Module):
    """Logit from the projected CLS embedding: SN Linear E->256, LeakyReLU(0.2), SN Linear 256->1."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(spectral_norm(nn.Linear(dim, hidden)), nn.LeakyReLU(0.2),
                                 spectral_norm(nn.Linear(hidden, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())


def multilevel_sigmoid_loss(logits: list[torch.Tensor], real: bool) -> torch.Tensor:
    """sum_levels BCEWithLogits(logits_l, 1 if real else 0), each level averaged over its elements.

    Target 1 is used for real images and for G's objective (G wants D to call its outputs real), 0 for fakes.
    """
    loss = logits[0].new_zeros(())
    for lv in logits:
        target = torch.ones_like(lv) if real else torch.zeros_like(lv)
        loss = loss + F.binary_cross_entropy_with_logits(lv.float(), target.float())
    return loss


class VisionAidedDiscriminator(nn.Module):
    """Frozen CLIP image tower + trainable multi-level heads. Input images in [-1, 1], any size."""

    def __init__(self, backbone: nn.Module, taps: tuple[int, ...] = (4, 8), diffaug: str = "color,translation,cutout",
                 hidden: int = 256):
        super().__init__()
        cfg = backbone.config
        if cfg.num_hidden_layers < max(taps):
            raise ValueError(f"the CLIP image tower has {cfg.num_hidden_layers} blocks; the discriminator taps "
                             f"blocks {list(taps)}")
        self.backbone = backbone.requires_grad_(False).eval()
        self.taps = tuple(taps)
        self.diffaug = diffaug
        parse_policy(diffaug)
        self.image_size = int(cfg.image_size)  # 224 for ViT-B/32; tiny test configs use small images
        self.grid = self.image_size // int(cfg.patch_size)
        self.map_heads = nn.ModuleList(MapHead(cfg.hidden_size, hidden) for _ in self.taps)
        self.embed_head = EmbedHead(int(backbone.config.projection_dim), hidden)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, source: str, key: str = "[loss] disc_backbone", **kwargs) -> "VisionAidedDiscriminator":
        from transformers import CLIPVisionModelWithProjection

        return cls(load_hf(CLIPVisionModelWithProjection, source, key), **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: never in training mode
        return self

    def heads(self) -> list[nn.Parameter]:
        """The trainable parameters (the backbone stays frozen)."""
        return list(self.map_heads.parameters()) + list(self.embed_head.parameters())

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_head_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            raise ValueError(f"discriminator heads do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[-1, 1] images -> [map after block taps[0], map after block taps[1], ..., projected CLS embedding]."""
        x = diff_augment(x, self.diffaug) if self.diffaug else x
        x = F.interpolate(x * 0.5 + 0.5, size=(self.image_size, self.image_size), mode="area")
        x = (x - self.mean.to(x)) / self.std.to(x)
        out = self.backbone(pixel_values=x.to(self.backbone.dtype), output_hidden_states=True)
        feats = []
        for t in self.taps:
            tokens = out.hidden_states[t][:, 1:, :]  # hidden_states[0] is the embedding; [t] is after block t
            b, n, c = tokens.shape
            feats.append(tokens.transpose(1, 2).reshape(b, c, self.grid, self.grid))
        feats.append(out.image_embeds)
        return feats

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-level logits."""
        feats = self.features(x)
        logits = [head(f.float()) for head, f in zip(self.map_heads, feats[:-1])]
        logits.append(self.embed_head(feats[-1]))
        return logits

    def loss(self, x: torch.Tensor, real: bool) -> torch.Tensor:
        """Multi-level sigmoid loss; real=True for real images and for G's loss, False for fakes."""
        return multilevel_sigmoid_loss(self(x), real)
