"""The SD VAE with skip connections from encoder to decoder (docs/design.md §1).

The encoder returns the activation that enters each of its down blocks; the decoder adds a 1x1 "skip conv" of
those activations (reversed) before each of its up blocks. The skip convs are registered submodules named
`skip_conv_1..4`, so checkpoints of the original (keys `decoder.skip_conv_N...`) load as they are.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import Decoder, Encoder
from torch import nn

from turbo_cli.engine.sd import SKIP_INIT, skip_channels


class SkipEncoder(Encoder):
    """VAE encoder that also returns the input of each down block (the skip activations)."""

    def forward(self, sample: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        sample = self.conv_in(sample)
        skips = []
        checkpoint = torch.is_grad_enabled() and self.gradient_checkpointing
        for down_block in self.down_blocks:
            skips.append(sample)
            sample = self._gradient_checkpointing_func(down_block, sample) if checkpoint else down_block(sample)
        sample = self._gradient_checkpointing_func(self.mid_block, sample) if checkpoint else self.mid_block(sample)
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        return sample, skips


class SkipDecoder(Decoder):
    """VAE decoder that adds `skip_conv_i(r * skips[::-1][i])` before up block i (r: the stochastic strength,
    the original's `decoder.gamma`; 1 for deterministic models)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        channels = skip_channels(kwargs["block_out_channels"])
        self.skip_conv_1 = nn.Conv2d(*channels[0], kernel_size=1, bias=False)
        self.skip_conv_2 = nn.Conv2d(*channels[1], kernel_size=1, bias=False)
        self.skip_conv_3 = nn.Conv2d(*channels[2], kernel_size=1, bias=False)
        self.skip_conv_4 = nn.Conv2d(*channels[3], kernel_size=1, bias=False)
        for conv in self.skip_convs():
            nn.init.constant_(conv.weight, SKIP_INIT)

    def skip_convs(self) -> list[nn.Module]:
        return [self.skip_conv_1, self.skip_conv_2, self.skip_conv_3, self.skip_conv_4]

    def forward(self, sample: torch.Tensor, skips: list[torch.Tensor], r: float = 1.0) -> torch.Tensor:
        checkpoint = torch.is_grad_enabled() and self.gradient_checkpointing
        sample = self.conv_in(sample)
        sample = self._gradient_checkpointing_func(self.mid_block, sample) if checkpoint else self.mid_block(sample)
        for skip_conv, skip, up_block in zip(self.skip_convs(), reversed(skips), self.up_blocks):
            sample = sample + skip_conv(skip * r)
            sample = self._gradient_checkpointing_func(up_block, sample) if checkpoint else up_block(sample)
        return self.conv_out(self.conv_act(self.conv_norm_out(sample)))


def _encoder_kwargs(cfg) -> dict:
    return dict(
        in_channels=cfg.in_channels,
        out_channels=cfg.latent_channels,
        down_block_types=tuple(cfg.down_block_types),
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        act_fn=cfg.act_fn,
        norm_num_groups=cfg.norm_num_groups,
        double_z=True,
        mid_block_add_attention=cfg.get("mid_block_add_attention", True),
    )


def _decoder_kwargs(cfg) -> dict:
    return dict(
        in_channels=cfg.latent_channels,
        out_channels=cfg.out_channels,
        up_block_types=tuple(cfg.up_block_types),
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups,
        act_fn=cfg.act_fn,
        mid_block_add_attention=cfg.get("mid_block_add_attention", True),
    )


def add_skip_connections(vae: AutoencoderKL) -> AutoencoderKL:
    """Swap the VAE's encoder/decoder for skip-connected ones holding the same pretrained weights (in place)."""
    if isinstance(vae.encoder, SkipEncoder):
        return vae
    if len(vae.config.block_out_channels) != 4:
        raise ValueError(f"skip connections need a VAE with 4 blocks, got {vae.config.block_out_channels}")
    dtype = next(vae.parameters()).dtype
    encoder = SkipEncoder(**_encoder_kwargs(vae.config)).to(dtype)
    encoder.load_state_dict(vae.encoder.state_dict())
    decoder = SkipDecoder(**_decoder_kwargs(vae.config)).to(dtype)
    missing, unexpected = decoder.load_state_dict(vae.decoder.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("skip_conv_") for k in missing), (missing, unexpected)
    vae.encoder, vae.decoder = encoder, decoder
    return vae
