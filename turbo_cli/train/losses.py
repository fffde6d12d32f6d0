"""Reconstruction, perceptual and CLIP losses of CycleGAN-turbo / pix2pix-turbo (design §3).

Unpaired (per direction, summed over a and b):
    cycle    = lambda_cycle * L1(G_b2a(G_a2b(a)), a) + cycle_lpips * LPIPS(G_b2a(G_a2b(a)), a)
    identity = lambda_idt   * L1(G_a2b(b), b)        + idt_lpips   * LPIPS(G_a2b(b), b)
Paired:
    rec      = lambda_l2 * MSE(G(c), y) + lambda_lpips * LPIPS(G(c), y)
               + lambda_clipsim * (1 - cos(CLIP_img(G(c)), CLIP_txt(caption)))
The GAN terms live in discriminator.py.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from turbo_cli.errors import ModelError, OfflineError
from turbo_cli.train.backbones import load_hf
from turbo_cli.train.discriminator import CLIP_MEAN, CLIP_STD


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # mean |x - y|
    return F.l1_loss(x.float(), y.float())


def l2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # mean (x - y)^2
    return F.mse_loss(x.float(), y.float())


class LPIPS(nn.Module):
    """LPIPS distance (Zhang et al. 2018) from the lpips package, inputs in [-1, 1], mean over the batch.

    `random_backbone=True` builds the feature network with random weights (no download: tests only); the
    package's own calibrated linear heads are used either way.
    """

    def __init__(self, net: str = "vgg", random_backbone: bool = False):
        super().__init__()
        import lpips

        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation, via lpips
                self.net = lpips.LPIPS(net=net, pretrained=True, pnet_rand=random_backbone, verbose=False)
        except Exception as e:  # torchvision's weight download fails with URLError/RuntimeError/OSError offline
            if "urlopen" in repr(e).lower() or "url" in type(e).__name__.lower() or isinstance(e, OSError):
                raise OfflineError(f"[loss] lpips_net = '{net}': torchvision's {net} weights are not cached and "
                                   f"cannot be downloaded (offline)") from None
            raise ModelError(f"[loss] lpips_net = '{net}': cannot build LPIPS: {e}") from None
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # frozen; its dropout must stay off
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # mean_b sum_l w_l . || phi_l(x) - phi_l(y) ||^2 (spatially averaged), per the lpips package
        return self.net(x.float(), y.float()).mean()


class ClipSimilarityLoss(nn.Module):
    """1 - cos(CLIP image embedding of G(c), CLIP text embedding of its caption), averaged over the batch.

    The original computes CLIP's logits 100 * cos over all B x B image/caption pairs and takes 1 - mean/100;
    we compare each image with its own caption only (the intended objective; the same at batch 1).
    """

    def __init__(self, model: nn.Module, tokenizer):
        super().__init__()
        self.model = model.requires_grad_(False).eval()
        self.tokenizer = tokenizer
        self.image_size = int(model.config.vision_config.image_size)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self._text: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, source: str, key: str = "[loss] clip_model") -> "ClipSimilarityLoss":
        from transformers import CLIPModel, CLIPTokenizer

        return cls(load_hf(CLIPModel, source, key), load_hf(CLIPTokenizer, source, key))

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def text_embeds(self, captions: list[str]) -> torch.Tensor:
        """Normalised caption embeddings, cached (captions repeat and CLIP is frozen)."""
        todo = [c for c in dict.fromkeys(captions) if c not in self._text]
        if todo:
            max_len = min(int(self.tokenizer.model_max_length),
                          int(self.model.config.text_config.max_position_embeddings))
            tok = self.tokenizer(todo, padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
            device = self.mean.device
            emb = self.model.get_text_features(input_ids=tok.input_ids.to(device),
                                               attention_mask=tok.attention_mask.to(device))
            emb = getattr(emb, "pooler_output", emb)  # transformers 5 may return a model output here
            for c, e in zip(todo, F.normalize(emb.float(), dim=-1)):
                self._text[c] = e
        return torch.stack([self._text[c] for c in captions])

    def forward(self, images: torch.Tensor, captions: list[str]) -> torch.Tensor:
        x = F.interpolate(images.float() * 0.5 + 0.5, size=(self.image_size, self.image_size), mode="bilinear",
                          align_corners=False)
        x = (x - self.mean) / self.std
        img = self.model.get_image_features(pixel_values=x.to(self.model.dtype))
        img = getattr(img, "pooler_output", img)
        cos = (F.normalize(img.float(), dim=-1) * self.text_embeds(list(captions)).to(img.device)).sum(-1)
        return 1.0 - cos.mean()
