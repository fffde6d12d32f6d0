"""The loss terms the training objectives are made of: pixel L1 and L2, the LPIPS perceptual distance (with its
trunk from torch hub or a local file) and the CLIP image-caption similarity. How they combine, with which weights,
is train/objectives.py; the adversarial term is the discriminator's (train/discriminator.py)."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import lpips
import torch
import torch.nn.functional as F
from torch import nn

from turbo_cli.errors import InputError, ModelError, OfflineError
from turbo_cli.hub import is_offline
from turbo_cli.train.discriminator import CLIP_MEAN, CLIP_STD
from turbo_cli.train.pretrained import load_hf, trunk_file_name


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # mean |x - y|
    return F.l1_loss(x.float(), y.float())


def l2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # mean (x - y)^2
    return F.mse_loss(x.float(), y.float())


class LPIPS(nn.Module):
    """LPIPS distance (Zhang et al. 2018) from the lpips package, inputs in [-1, 1], mean over the batch.

    The trunk is torchvision's ImageNet network for `net`: from `trunk_weights` (a torchvision state-dict file, or a
    folder holding it under torchvision's name) when given, else from torch hub's cache or a download. The
    package's own calibrated linear heads are used either way.
    """

    def __init__(self, net: str = "vgg", trunk_weights: str | os.PathLike | None = None):
        super().__init__()
        local = trunk_weights is not None
        if not local:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / trunk_file_name(net)
            if is_offline() and not cached.is_file():
                raise OfflineError(f"[loss] lpips_net = '{net}': torchvision's {cached.name} is not in {cached.parent} "
                                   f"and cannot be downloaded (offline); set [loss] lpips_weights to a local copy")
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation, via lpips
                # pnet_rand: a random trunk (no download) that the local file then overwrites
                self.net = lpips.LPIPS(net=net, pretrained=True, pnet_rand=local, verbose=False)
        except Exception as e:  # torchvision's weight download fails with URLError/RuntimeError/OSError offline
            if "urlopen" in repr(e).lower() or "url" in type(e).__name__.lower() or isinstance(e, OSError):
                raise OfflineError(f"[loss] lpips_net = '{net}': torchvision's {net} weights are not cached and "
                                   "cannot be downloaded (offline); set [loss] lpips_weights to a local copy") from None
            raise ModelError(f"[loss] lpips_net = '{net}': cannot build LPIPS: {e}") from None
        if local:
            _load_trunk(self.net.net, net, Path(trunk_weights).expanduser())
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # frozen; its dropout must stay off
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # mean_b sum_l w_l . || phi_l(x) - phi_l(y) ||^2 (spatially averaged), per the lpips package
        return self.net(x.float(), y.float()).mean()


def _load_trunk(trunk: nn.Module, net: str, path: Path) -> None:
    """A torchvision trunk file (`lpips_weights`) into the lpips trunk (`eval.networks.lpips_trunk_state`)."""
    key = "[loss] lpips_weights"
    if path.is_dir():
        path = path / trunk_file_name(net)
    if not path.is_file():
        raise InputError(f"{key} = '{path}': file not found (torchvision's {trunk_file_name(net)} for lpips_net = "
                         f"'{net}')")
    try:
        from turbo_cli.eval.networks import lpips_trunk_state

        saved = torch.load(path, map_location="cpu", weights_only=True)
        trunk.load_state_dict(lpips_trunk_state(trunk, saved), strict=True)
    except Exception as e:  # not a state dict, a different network, a truncated file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{key} = '{path}': not torchvision's {trunk_file_name(net)} weights ({first})") from None


class ClipSimilarityLoss(nn.Module):
    """The CLIP-similarity loss of pix2pix-turbo between G(c) and the captions, `pairs`:

    - "all_pairs" (the original): CLIP's logits s·cos(image_i, caption_j) (s = exp(logit_scale), 100 for ViT-B/32)
      over ALL B x B image/caption pairs: 1 - mean_ij logits_ij / 100 (`1 - logits_per_image.mean() / 100`);
    - "own_caption": 1 - mean_i cos(image_i, caption_i), each image against its own caption only.
    Equal at batch 1 when s = 100.
    """

    PAIRS = ("all_pairs", "own_caption")

    def __init__(self, model: nn.Module, tokenizer, pairs: str = "all_pairs"):
        super().__init__()
        if pairs not in self.PAIRS:
            raise ValueError(f"clipsim_pairs: unknown {pairs!r} (known: {', '.join(self.PAIRS)})")
        self.pairs = pairs
        self.model = model.requires_grad_(False).eval()
        self.tokenizer = tokenizer
        self.image_size = int(model.config.vision_config.image_size)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self._text: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, source: str, key: str = "[loss] clip_model", pairs: str = "all_pairs"
                        ) -> "ClipSimilarityLoss":
        from transformers import CLIPModel, CLIPTokenizer

        return cls(load_hf(CLIPModel, source, key), load_hf(CLIPTokenizer, source, key), pairs)

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
        img = F.normalize(img.float(), dim=-1)
        txt = self.text_embeds(list(captions)).to(img.device)
        if self.pairs == "own_caption":
            return 1.0 - (img * txt).sum(-1).mean()
        logits_per_image = self.model.logit_scale.exp().float() * img @ txt.t()  # (B images, B captions)
        return 1.0 - logits_per_image.mean() / 100.0
