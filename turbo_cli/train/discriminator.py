"""The vision-aided discriminator (Kumari et al. 2022) that CycleGAN-turbo and pix2pix-turbo train against.

A frozen CLIP ViT image tower (transformers' CLIPVisionModelWithProjection; the original uses ViT-B/32) turns
the image into three feature levels: the patch tokens after blocks 4 and 8 (as C x g x g maps) and the final
projected CLS embedding. Small spectral-normalised heads, the only trained part, map each level to logits.
The heads and the GAN losses ("multilevel_sigmoid", "multilevel_sigmoid_s") are vision-aided-loss 0.1.0's
(tests/test_train_vision_aided.py compares them with that package's own classes).

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


# vision-aided-loss's BlurPool filters: binomial rows, by filter size
_BINOMIAL = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}


class BlurPool(nn.Module):
    """Anti-aliasing blur (Zhang 2019) as vision-aided-loss's `BlurPool(ch, pad_type='zero', stride=1)` builds it:
    its default `filt_size=4`, the [1,3,3,1] x [1,3,3,1] / 64 depthwise filter after zero padding of
    (filt_size - 1) // 2 = 1 on every side, so an n x n map becomes (n - 1) x (n - 1) (7x7 -> 6x6)."""

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 1):
        super().__init__()
        a = torch.tensor(_BINOMIAL[filt_size])
        k = a[:, None] * a[None, :]
        self.register_buffer("filt", (k / k.sum()).expand(channels, 1, filt_size, filt_size).clone(),
                             persistent=False)
        self.pad, self.stride = (filt_size - 1) // 2, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4)  # zero padding
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=x.shape[1])


class MultiLevelHeads(nn.Module):
    """vision-aided-loss's `MultiLevelDViT(level=3, down=1)`, the heads of its CLIP discriminator, with the same
    module names (so its state dict loads here and back):

        decoder[i], per token map: SN conv3x3 C->256 (pad 1), LeakyReLU(0.2), BlurPool(256), SN conv1x1 256->1
                    stride 2; a 7x7 map gives 3x3 logits. (down = 1: no leading blur, as vision-aided for CLIP.)
        decoder[-1], out, on the projected CLS embedding: SN Linear E->256, LeakyReLU(0.2), SN Linear 256->1.
    """

    def __init__(self, channels: int, embed_dim: int, levels: int = 3, hidden: int = 256):
        super().__init__()
        self.decoder = nn.ModuleList(nn.Sequential(
            nn.Identity(),  # vision-aided's leading BlurPool slot, used only when down > 1
            spectral_norm(nn.Conv2d(channels, hidden, kernel_size=3, stride=1, padding=1)),
            nn.LeakyReLU(0.2),
            BlurPool(hidden),
            spectral_norm(nn.Conv2d(hidden, 1, kernel_size=1, stride=2)),
        ) for _ in range(levels - 1))
        self.decoder.append(nn.Sequential(spectral_norm(nn.Linear(embed_dim, hidden)), nn.LeakyReLU(0.2)))
        self.out = spectral_norm(nn.Linear(hidden, 1))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[map_1, ..., map_{L-1}, embedding] -> [(B, cells_1), ..., (B, 1)] logits."""
        logits = [head(f.float()).flatten(1) for head, f in zip(self.decoder[:-1], feats[:-1])]
        logits.append(self.out(self.decoder[-1](feats[-1].float())))
        return logits


# The GAN loss types of vision-aided-loss (cv_losses.loss_dict) that the original trains with, and their target for
# real images and for G: "multilevel_sigmoid" (CycleGAN-turbo's default) and "multilevel_sigmoid_s",
# functools.partial(multilevel_loss, alpha=0.8), one-sided label smoothing (pix2pix-turbo's default).
GAN_LOSSES = {"multilevel_sigmoid": 1.0, "multilevel_sigmoid_s": 0.8}


def multilevel_sigmoid_loss(logits: list[torch.Tensor], real: bool, loss_type: str = "multilevel_sigmoid"
                            ) -> torch.Tensor:
    """mean_batch sum_levels mean_cells BCEWithLogits(logits_l, target): vision-aided's `multilevel_loss` and the
    original's `.mean()` over the batch. target = GAN_LOSSES[loss_type] (1 or 0.8) for real images and for G's
    objective (G wants D to call its outputs real), 0 for fakes."""
    target = GAN_LOSSES[loss_type] if real else 0.0
    loss = logits[0].new_zeros(())
    for lv in logits:
        lv = lv.float()
        loss = loss + F.binary_cross_entropy_with_logits(lv, torch.full_like(lv, target))
    return loss


class VisionAidedDiscriminator(nn.Module):
    """Frozen CLIP image tower + trainable multi-level heads. Input images in [-1, 1], any size."""

    def __init__(self, backbone: nn.Module, taps: tuple[int, ...] = (4, 8), diffaug: str = "color,translation,cutout",
                 hidden: int = 256, gan_loss: str = "multilevel_sigmoid"):
        super().__init__()
        cfg = backbone.config
        if cfg.num_hidden_layers < max(taps):
            raise ValueError(f"the CLIP image tower has {cfg.num_hidden_layers} blocks; the discriminator taps "
                             f"blocks {list(taps)}")
        self.backbone = backbone.requires_grad_(False).eval()
        self.taps = tuple(taps)
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {gan_loss!r} (known: {', '.join(GAN_LOSSES)})")
        self.gan_loss = gan_loss
        self.diffaug = diffaug
        parse_policy(diffaug)
        self.image_size = int(cfg.image_size)  # 224 for ViT-B/32; tiny test configs use small images
        self.grid = self.image_size // int(cfg.patch_size)
        self.head = MultiLevelHeads(cfg.hidden_size, int(cfg.projection_dim), levels=len(self.taps) + 1, hidden=hidden)
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
        return list(self.head.parameters())

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
        return self.head(self.features(x))

    def loss(self, x: torch.Tensor, real: bool) -> torch.Tensor:
        """This discriminator's GAN loss; real=True for real images and for G's loss, False for fakes."""
        return multilevel_sigmoid_loss(self(x), real, self.gan_loss)
