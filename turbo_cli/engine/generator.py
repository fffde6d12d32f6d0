"""The one-step generator: VAE encoder -> UNet at t=999 -> closed-form x0 -> skip-connected VAE decoder (docs/design.md §1).

One class serves both published families:
- pix2pix-turbo: one VAE (`vae`), UNet adapter `default`; optionally stochastic with a twin `conv_in`.
- CycleGAN-turbo: one UNet with adapters `default_{encoder,decoder,others}` shared by both directions, and one
  skip-connected VAE per direction (`vae` for a2b, `vae_b2a` for b2a), each with its own LoRA and skip convs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from turbo_cli.engine import lora
from turbo_cli.engine.base import TIMESTEP, BaseModel, one_step_x0
from turbo_cli.engine.families import Kind, defaults, kind_of

DIRECTIONS = ("a2b", "b2a")


class TwinConv(nn.Module):
    """The stochastic model's UNet conv_in: (1 - r) * pretrained(x) + r * trained(x)."""

    def __init__(self, conv_in_pretrained: nn.Conv2d, conv_in_curr: nn.Conv2d):
        super().__init__()
        self.conv_in_pretrained = conv_in_pretrained.requires_grad_(False)
        self.conv_in_curr = conv_in_curr
        self.r = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_in_pretrained(x).detach() * (1 - self.r) + self.conv_in_curr(x) * self.r


@dataclass
class GeneratorSpec:
    """Everything needed to rebuild a generator's architecture on a base model (saved in checkpoints)."""

    kind: Kind
    rank_unet: int = 8  # pix2pix default; CycleGAN-turbo trains with 128 (families.defaults)
    rank_vae: int = 4  # both published families
    unet_targets: dict[str, list[str]] = field(default_factory=dict)  # adapter name -> target modules
    vae_targets: list[str] = field(default_factory=lambda: list(lora.VAE_TARGETS))
    twin_conv: bool = False  # sketch_to_image_stochastic's conv_in

    def __post_init__(self):
        self.kind = kind_of(self.kind)


class TurboGenerator(nn.Module):
    """G(x) in one step. Inputs (B,3,H,W), H and W multiples of 8; output (B,3,H,W) in [-1, 1].

    Takes ownership of `base.unet` and `base.vae` (no copy of the 866M-parameter UNet); they are set to None
    on `base` so nothing else uses the modified modules by mistake. Load the base again for a second generator.
    """

    def __init__(self, base: BaseModel, spec: GeneratorSpec):
        super().__init__()
        self.spec = spec
        self.base_source = base.source
        self.alpha_bar = base.alpha_bar
        self.scaling_factor = float(base.vae.config.scaling_factor)
        self.r = 1.0  # the stochastic model's strength (families.py); 1 = deterministic
        self.posterior = "mean"  # "sample": draw from the VAE posterior in training mode (the original's training)
        # Base (non-adapter) weights that differ from the base model: saved in turbo checkpoints too.
        self.base_overrides: set[str] = set()

        if base.unet is None:
            raise ValueError("this BaseModel's unet/vae were already taken by another generator; load it again")
        unet, vae = base.unet, base.vae
        base.unet = base.vae = None
        if spec.kind is Kind.PIX2PIX:
            if spec.twin_conv:
                unet.conv_in = TwinConv(copy.deepcopy(unet.conv_in), unet.conv_in)
            if not spec.unet_targets:
                spec.unet_targets = {lora.PIX2PIX_UNET_ADAPTER: list(lora.PIX2PIX_UNET_TARGETS)}
            lora.add_pix2pix_unet_lora(unet, spec.rank_unet, spec.unet_targets[lora.PIX2PIX_UNET_ADAPTER])
        else:
            if not spec.unet_targets:
                spec.unet_targets = lora.cyclegan_unet_targets(unet)
            lora.add_cyclegan_unet_lora(unet, spec.rank_unet, spec.unet_targets)
        self.unet = unet
        from turbo_cli.engine.vae import add_skip_connections  # diffusers: only where a trainable model is built

        vae = add_skip_connections(vae)
        # CycleGAN: the b2a direction has its own VAE (the checkpoints carry a whole VAE per direction).
        self.vae_b2a = copy.deepcopy(vae) if spec.kind is Kind.CYCLEGAN else None
        self.vae = vae
        for v in self.vaes():
            lora.add_vae_lora(v, spec.rank_vae, spec.vae_targets)
        self.set_trainable()

    # ---- what trains -------------------------------------------------------------------------------------------
    def trained_parameters(self, train_all: bool = False) -> dict[str, nn.Parameter]:
        """name -> parameter for what the original trains for this family (`lora.is_trained`), each once."""
        return lora.trained_parameters(list(self.named_parameters()), self.spec.kind, train_all=train_all)

    def set_trainable(self, train_all: bool = False) -> list[nn.Parameter]:
        """Freeze everything but what trains; with train_all, trained base weights are remembered for saving."""
        chosen = self.trained_parameters(train_all)
        self.requires_grad_(False)
        for name, p in chosen.items():
            p.requires_grad_(True)
            if not lora.is_adapter(name):
                self.base_overrides.add(name)
        return list(chosen.values())

    # ---- stochastic strength r -----------------------------------------------------------------------------------
    def set_r(self, r: float) -> None:
        """Set r: LoRA scales × r, skip gain r, twin conv mix r. r = 1 is the deterministic model."""
        self.r = float(r)
        for vae in self.vaes():
            lora.scale_adapters(vae, self.r)
        lora.scale_adapters(self.unet, self.r)
        if isinstance(self.unet.conv_in, TwinConv):
            self.unet.conv_in.r = self.r

    def vaes(self) -> list[nn.Module]:
        return [v for v in (self.vae, self.vae_b2a) if v is not None]

    def vae_for(self, direction: str | None) -> nn.Module:
        if self.vae_b2a is None or direction in (None, "a2b"):
            return self.vae
        if direction == "b2a":
            return self.vae_b2a
        raise ValueError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")

    # ---- the network -------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, direction: str | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Posterior MEAN × scaling factor (deterministic: the same frame gives the same latent) + skip activations.

        With `posterior = "sample"` and in training mode: a SAMPLE of the posterior (diffusers'
        DiagonalGaussianDistribution, torch's global random stream), as the original trains; validation (eval mode)
        and inference always use the mean (docs/design.md §5)."""
        vae = self.vae_for(direction)
        h, skips = vae.encoder(x)
        moments = vae.quant_conv(h) if vae.quant_conv is not None else h
        if self.posterior == "sample" and self.training:
            from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

            return DiagonalGaussianDistribution(moments).sample() * self.scaling_factor, skips
        mean = moments.chunk(2, dim=1)[0]
        return mean * self.scaling_factor, skips

    def denoise(self, sample: torch.Tensor, prompt_emb: torch.Tensor) -> torch.Tensor:
        """The UNet's eps at t=999, then x0 in closed form (`base.one_step_x0`)."""
        t = torch.full((sample.shape[0],), TIMESTEP, device=sample.device, dtype=torch.long)
        eps = self.unet(sample, t, encoder_hidden_states=prompt_emb).sample
        return one_step_x0(sample, eps, self.alpha_bar)

    def decode(self, latent: torch.Tensor, skips: list[torch.Tensor], direction: str | None = None) -> torch.Tensor:
        vae = self.vae_for(direction)
        z = latent / self.scaling_factor
        if vae.post_quant_conv is not None:
            z = vae.post_quant_conv(z)
        return vae.decoder(z, skips, r=self.r).clamp(-1, 1)

    def forward(self, x: torch.Tensor, prompt_emb: torch.Tensor, direction: str | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """G(x) (deterministic) or G(x, noise, r) with r = `self.r` (stochastic pix2pix).

        `prompt_emb` is (B, 77, D) or (1, 77, D) (broadcast over the batch).
        """
        if prompt_emb.shape[0] == 1 and x.shape[0] > 1:
            prompt_emb = prompt_emb.expand(x.shape[0], -1, -1)
        z, skips = self.encode(x, direction)
        if noise is not None:
            r = self.r
            z = z * r + noise.to(z) * (1 - r)  # the stochastic model's UNet input, also the DDPM step's sample
        return self.decode(self.denoise(z, prompt_emb), skips, direction)


def build_pix2pix(base: BaseModel, rank_unet: int | None = None, rank_vae: int | None = None,
                  twin_conv: bool = False) -> TurboGenerator:
    """A fresh pix2pix-turbo generator for training (LoRA gaussian-init, skips at 1e-5); ranks: the family's."""
    d = defaults(Kind.PIX2PIX, twin_conv)
    return TurboGenerator(base, GeneratorSpec(Kind.PIX2PIX, rank_unet or d.rank_unet, rank_vae or d.rank_vae,
                                              twin_conv=twin_conv))


def build_cyclegan(base: BaseModel, rank_unet: int | None = None, rank_vae: int | None = None) -> TurboGenerator:
    """A fresh CycleGAN-turbo generator for training (one UNet, a VAE per direction); ranks: the family's."""
    d = defaults(Kind.CYCLEGAN)
    return TurboGenerator(base, GeneratorSpec(Kind.CYCLEGAN, rank_unet or d.rank_unet, rank_vae or d.rank_vae))
