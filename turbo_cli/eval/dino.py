"""DINO keys for DINO-Struct-Dist (docs/design.md §4).

The structure of an image is summarised by how its ViT tokens relate to each other: the cosine self-similarity
of the last block's attention KEYS (all tokens incl. CLS, heads concatenated). Two images with the same layout
have similar matrices whatever their colours or textures, which is what "structure kept" should mean for
day->night or horse->zebra.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from turbo_cli.eval.metrics import dino_struct_dist

DINO_HUB_ID = "facebook/dino-vitb8"
DINO_SHORT_SIDE = 224  # the DINO/Splice preprocessing: short side to 224, aspect kept, no crop
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def find_last_key_projection(model: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """The key projection (Linear: hidden -> heads*head_dim) of the last transformer block.

    transformers 5 names it `layers.N.attention.k_proj`; 4.x named it `encoder.layer.N.attention.attention.key`.
    Taking the last module with either name keeps both working.
    """
    found = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and (name.endswith(".k_proj") or name.endswith(".attention.key"))
    ]
    if not found:
        raise ValueError(f"{type(model).__name__}: no attention key projection found (not a ViT?)")
    return found[-1]


class DinoKeys:
    """Wraps a transformers ViTModel; `keys(rgb)` -> (T, D) keys of the last block, T = 1 + patches."""

    def __init__(self, model: torch.nn.Module, id: str = DINO_HUB_ID, short_side: int = DINO_SHORT_SIDE,
                 device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
        self.id = id
        self.short_side = short_side
        self.device = torch.device(device)
        self.layer_name, key_proj = find_last_key_projection(self.model)
        self._captured: torch.Tensor | None = None
        # The Linear's output is (B, T, heads*head_dim): exactly the heads concatenated, before the model splits them.
        key_proj.register_forward_hook(self._capture)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _capture(self, module, inputs, output) -> None:
        self._captured = output

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, h, w) normalised, short side = self.short_side (bilinear, antialiased like
        torchvision's Resize), aspect kept, no crop."""
        x = torch.tensor(np.asarray(rgb), device=self.device).permute(2, 0, 1)[None].float() / 255.0
        h, w = x.shape[-2:]
        scale = self.short_side / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def keys(self, rgb: np.ndarray) -> torch.Tensor:
        self._captured = None
        self.model(pixel_values=self.preprocess(rgb), interpolate_pos_encoding=True)
        if self._captured is None:
            raise RuntimeError(f"{self.layer_name} did not run")
        return self._captured[0].float()

    def struct_dist(self, source_rgb: np.ndarray, output_rgb: np.ndarray) -> float:
        """Raw DINO-Struct-Dist of one pair (papers print it x100). Both images must have the same size."""
        if source_rgb.shape != output_rgb.shape:
            raise ValueError(f"image sizes differ: {source_rgb.shape} vs {output_rgb.shape}")
        return dino_struct_dist(self.keys(source_rgb), self.keys(output_rgb))
