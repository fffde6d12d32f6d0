"""SD-Turbo's UNet and skip-connected VAE in plain torch, for inference with the LoRA deltas merged in.

Why a second definition of networks diffusers already has: importing diffusers pulls in transformers, peft and
scipy (about half of a small job's wall time, docs/benchmarks.md "Cold start"), and peft's adapters add two
matmuls per adapted layer on every call. Inference needs neither: `engine/merge.py` folds every adapter into the
base weights (W + r * alpha/rank * B @ A, the skip gain r and the twin conv's mix too) and loads the result into
these modules, whose parameter names are diffusers' (strict `load_state_dict`: a name that does not line up
fails loudly). Training keeps diffusers + peft (`engine/generator.py`); tests/test_merged.py checks the two
agree within fp32 rounding, and the fixture and e2e parity tests run through this path.

Only the configurations SD-Turbo (SD 2.x) uses are built; `unsupported()` names anything else, and the loader then
falls back to the diffusers model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from turbo_cli.engine.base import TIMESTEP, one_step_x0

# Zero-ish init of the skip convs: they start as (almost) no-ops so the pretrained decoder is undisturbed at step 0,
# but not exactly zero so gradients flow into their LoRA from the first step (the original's choice).
SKIP_INIT = 1e-5

# Config values (diffusers' names) these modules implement; an absent key means diffusers' default, which is this.
UNET_FIXED = dict(act_fn="silu", addition_embed_type=None, attention_type="default", center_input_sample=False,
                  class_embed_type=None, num_class_embeds=None, conv_in_kernel=3, conv_out_kernel=3,
                  cross_attention_norm=None, dual_cross_attention=False, encoder_hid_dim=None,
                  encoder_hid_dim_type=None, mid_block_type="UNetMidBlock2DCrossAttn", only_cross_attention=False,
                  mid_block_only_cross_attention=None, resnet_time_scale_shift="default", resnet_out_scale_factor=1.0,
                  resnet_skip_time_act=False, mid_block_scale_factor=1, time_embedding_type="positional",
                  time_cond_proj_dim=None, time_embedding_act_fn=None, timestep_post_act=None,
                  time_embedding_dim=None, transformer_layers_per_block=1,
                  reverse_transformer_layers_per_block=None, dropout=0.0)
VAE_FIXED = dict(act_fn="silu", latents_mean=None, latents_std=None, shift_factor=None)
DOWN_BLOCKS = ("CrossAttnDownBlock2D", "DownBlock2D")
UP_BLOCKS = ("UpBlock2D", "CrossAttnUpBlock2D")


def unsupported(unet_config: dict, vae_config: dict) -> str | None:
    """Why these modules cannot build this base model (None: they can)."""
    for part, config, fixed in (("unet", unet_config, UNET_FIXED), ("vae", vae_config, VAE_FIXED)):
        for key, value in fixed.items():
            if key in config and config[key] != value and not (key == "mid_block_type" and config[key] is None):
                return f"{part} {key}={config[key]!r}"
    if any(t not in DOWN_BLOCKS for t in unet_config["down_block_types"]) or \
            any(t not in UP_BLOCKS for t in unet_config["up_block_types"]):
        return "unet block types"
    if set(vae_config["down_block_types"]) != {"DownEncoderBlock2D"} or \
            set(vae_config["up_block_types"]) != {"UpDecoderBlock2D"} or len(vae_config["block_out_channels"]) != 4:
        return "vae block types (skip connections need 4 DownEncoder/UpDecoder blocks)"
    return None


def skip_channels(block_out_channels: list[int] | tuple[int, ...]) -> list[tuple[int, int]]:
    """(in, out) channels of skip_conv_1..4 for a VAE with block_out_channels (c0, c1, c2, c3).

    SD's VAE (128, 256, 512, 512) gives 512->512, 256->512, 128->512, 128->256: c2->c3, c1->c3, c0->c2, c0->c1.
    """
    c0, c1, c2, c3 = block_out_channels
    return [(c2, c3), (c1, c3), (c0, c2), (c0, c1)]


# ---- shared blocks ------------------------------------------------------------------------------------------------
class ResnetBlock(nn.Module):
    """diffusers' ResnetBlock2D ("default" time-embedding norm, output scale 1)."""

    def __init__(self, cin: int, cout: int, groups: int, eps: float, temb: int | None):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Attention(nn.Module):
    """diffusers' Attention with the SDPA processor: q from x, k/v from `context` (x itself for self-attention)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, bias: bool = False):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=bias)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b = x.shape[0]
        q, k, v = (t.view(b, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)
                   for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(b, -1, q.shape[1] * q.shape[-1]).to(q.dtype))


class Downsample(nn.Module):
    """Stride-2 3x3 conv; the VAE's (padding 0) pads right and bottom by one first, as diffusers does."""

    def __init__(self, channels: int, padding: int):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.padding == 0 else x)


class Upsample(nn.Module):
    """Nearest x2 (or to `size`, for sides the UNet's downsampling rounded up) then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest") if size is None else \
            F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


# ---- UNet ---------------------------------------------------------------------------------------------------------
class FeedForward(nn.Module):
    """GEGLU feed-forward: `net.0.proj` (dim -> 2 x 4dim), x * gelu(gate), `net.2` (4dim -> dim)."""

    def __init__(self, dim: int):
        super().__init__()
        proj = nn.Module()
        proj.proj = nn.Linear(dim, dim * 8)
        self.net = nn.ModuleList([proj, nn.Identity(), nn.Linear(dim * 4, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](h * F.gelu(gate))


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention on the prompt, feed-forward; pre-LayerNorm, residual each."""

    def __init__(self, dim: int, heads: int, context_dim: int, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2D(nn.Module):
    """diffusers' Transformer2DModel on continuous inputs (GroupNorm eps 1e-6, linear or 1x1-conv projections)."""

    def __init__(self, dim: int, heads: int, context_dim: int, groups: int, linear: bool):
        super().__init__()
        self.linear = linear
        self.norm = nn.GroupNorm(groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim) if linear else nn.Conv2d(dim, dim, 1)
        # LayerNorm eps 1e-5: Transformer2DModel's default, which the UNet's blocks do not override
        self.transformer_blocks = nn.ModuleList([TransformerBlock(dim, heads, context_dim, 1e-5)])
        self.proj_out = nn.Linear(dim, dim) if linear else nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        if not self.linear:
            y = self.proj_in(y)
        y = y.permute(0, 2, 3, 1).reshape(b, h * w, c)
        if self.linear:
            y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, context)
        if self.linear:
            y = self.proj_out(y)
        y = y.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        if not self.linear:
            y = self.proj_out(y)
        return y + x


class UNetBlock(nn.Module):
    """A down or up block: resnets, each followed by a transformer in the cross-attention kinds, then the resampler."""

    def __init__(self, resnets: list[ResnetBlock], attentions: list[Transformer2D] | None,
                 downsample: Downsample | None = None, upsample: Upsample | None = None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        if downsample is not None:
            self.downsamplers = nn.ModuleList([downsample])
        if upsample is not None:
            self.upsamplers = nn.ModuleList([upsample])

    def layers(self):
        attentions = getattr(self, "attentions", None)
        return zip(self.resnets, attentions if attentions is not None else [None] * len(self.resnets))


class UNet(nn.Module):
    """UNet2DConditionModel for SD 2.x configs: eps = UNet(z, t, prompt embedding)."""

    def __init__(self, cfg: dict):
        super().__init__()
        channels = list(cfg["block_out_channels"])
        n = len(channels)
        heads = cfg.get("num_attention_heads") or cfg["attention_head_dim"]
        heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * n
        groups, eps, ctx = cfg.get("norm_num_groups", 32), cfg.get("norm_eps", 1e-5), cfg["cross_attention_dim"]
        linear, layers = cfg.get("use_linear_projection", False), cfg["layers_per_block"]
        self.flip_sin_to_cos, self.freq_shift = cfg.get("flip_sin_to_cos", True), cfg.get("freq_shift", 0)
        temb = channels[0] * 4
        self.conv_in = nn.Conv2d(cfg["in_channels"], channels[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(channels[0], temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)

        def transformer(c: int, h: int) -> Transformer2D:
            return Transformer2D(c, h, ctx, groups, linear)

        self.down_blocks = nn.ModuleList()
        cout = channels[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            cin, cout = cout, channels[i]
            cross = kind == "CrossAttnDownBlock2D"
            self.down_blocks.append(UNetBlock(
                [ResnetBlock(cin if j == 0 else cout, cout, groups, eps, temb) for j in range(layers)],
                [transformer(cout, heads[i]) for _ in range(layers)] if cross else None,
                downsample=Downsample(cout, cfg.get("downsample_padding", 1)) if i < n - 1 else None))
        self.mid_block = UNetBlock([ResnetBlock(channels[-1], channels[-1], groups, eps, temb) for _ in range(2)],
                                   [transformer(channels[-1], heads[-1])])
        self.up_blocks = nn.ModuleList()
        rev, rev_heads = channels[::-1], heads[::-1]
        cout = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, cout, cin = cout, rev[i], rev[min(i + 1, n - 1)]
            cross = kind == "CrossAttnUpBlock2D"
            resnets = [ResnetBlock((prev if j == 0 else cout) + (cin if j == layers else cout), cout, groups, eps,
                                   temb) for j in range(layers + 1)]
            self.up_blocks.append(UNetBlock(resnets, [transformer(cout, rev_heads[i]) for _ in range(layers + 1)]
                                            if cross else None, upsample=Upsample(cout) if i < n - 1 else None))
        self.conv_norm_out = nn.GroupNorm(groups, channels[0], eps=eps)
        self.conv_out = nn.Conv2d(channels[0], cfg["out_channels"], 3, padding=1)

    def time_embed(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Sinusoidal embedding of t (diffusers' get_timestep_embedding), then the two-layer MLP."""
        half = self.conv_in.out_channels // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - self.freq_shift)
        angles = t[:, None].float() * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        if self.flip_sin_to_cos:
            emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
        return self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(emb.to(dtype))))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        temb = self.time_embed(t, x.dtype)
        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            for resnet, attention in block.layers():
                h = resnet(h, temb)
                if attention is not None:
                    h = attention(h, context)
                skips.append(h)
            if hasattr(block, "downsamplers"):
                h = block.downsamplers[0](h)
                skips.append(h)
        (first, second), attention = self.mid_block.resnets, self.mid_block.attentions[0]
        h = second(attention(first(h, temb), context), temb)
        for block in self.up_blocks:
            for resnet, attention in block.layers():
                h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
                if attention is not None:
                    h = attention(h, context)
            if hasattr(block, "upsamplers"):
                # to the size of the skip it meets next: x2, or one less where a downsampling rounded an odd side up
                h = block.upsamplers[0](h, size=tuple(skips[-1].shape[-2:]))
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ---- VAE ----------------------------------------------------------------------------------------------------------
class VAEAttention(Attention):
    """The VAE mid block's single-head spatial self-attention with its GroupNorm and residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__(channels, 1, bias=True)
        self.group_norm = nn.GroupNorm(groups, channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.group_norm(x.view(b, c, h * w)).transpose(1, 2)
        return super().forward(y).transpose(1, 2).reshape(b, c, h, w) + x


class VAEMid(nn.Module):
    def __init__(self, channels: int, groups: int, attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, groups, 1e-6, None) for _ in range(2)])
        self.attentions = nn.ModuleList([VAEAttention(channels, groups)] if attention else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if len(self.attentions):
            x = self.attentions[0](x)
        return self.resnets[1](x)


class VAEEncoder(nn.Module):
    """The VAE encoder, also returning the input of each down block (the skip activations)."""

    def __init__(self, cfg: dict):
        super().__init__()
        channels, groups, layers = list(cfg["block_out_channels"]), cfg.get("norm_num_groups", 32), cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cout = channels[0]
        for i in range(len(channels)):
            cin, cout = cout, channels[i]
            self.down_blocks.append(UNetBlock([ResnetBlock(cin if j == 0 else cout, cout, groups, 1e-6, None)
                                               for j in range(layers)], None,
                                              downsample=Downsample(cout, 0) if i < len(channels) - 1 else None))
        self.mid_block = VAEMid(channels[-1], groups, cfg.get("mid_block_add_attention", True))
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(channels[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.conv_in(x)
        skips = []
        for block in self.down_blocks:
            skips.append(h)
            for resnet in block.resnets:
                h = resnet(h)
            if hasattr(block, "downsamplers"):
                h = block.downsamplers[0](h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h))), skips


class VAEDecoder(nn.Module):
    """The VAE decoder with `skip_conv_1..4` (r is already merged into their weights)."""

    def __init__(self, cfg: dict):
        super().__init__()
        channels, groups, layers = list(cfg["block_out_channels"]), cfg.get("norm_num_groups", 32), cfg["layers_per_block"]
        rev = channels[::-1]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], rev[0], 3, padding=1)
        self.mid_block = VAEMid(rev[0], groups, cfg.get("mid_block_add_attention", True))
        self.up_blocks = nn.ModuleList()
        cout = rev[0]
        for i in range(len(rev)):
            cin, cout = cout, rev[i]
            self.up_blocks.append(UNetBlock([ResnetBlock(cin if j == 0 else cout, cout, groups, 1e-6, None)
                                             for j in range(layers + 1)], None,
                                            upsample=Upsample(cout) if i < len(rev) - 1 else None))
        for i, (cin, cout) in enumerate(skip_channels(channels), start=1):
            setattr(self, f"skip_conv_{i}", nn.Conv2d(cin, cout, 1, bias=False))
        self.conv_norm_out = nn.GroupNorm(groups, channels[0], eps=1e-6)
        self.conv_out = nn.Conv2d(channels[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z))
        convs = (self.skip_conv_1, self.skip_conv_2, self.skip_conv_3, self.skip_conv_4)
        for skip_conv, skip, block in zip(convs, reversed(skips), self.up_blocks):
            h = h + skip_conv(skip)
            for resnet in block.resnets:
                h = resnet(h)
            if hasattr(block, "upsamplers"):
                h = block.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class SkipVAE(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.encoder = VAEEncoder(cfg)
        latent = cfg["latent_channels"]
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1) if cfg.get("use_quant_conv", True) else None
        self.post_quant_conv = nn.Conv2d(latent, latent, 1) if cfg.get("use_post_quant_conv", True) else None
        self.decoder = VAEDecoder(cfg)


# ---- the generator --------------------------------------------------------------------------------------------
class MergedGenerator(nn.Module):
    """G(x) in one step with merged weights: the same forward as `TurboGenerator` (docs/design.md §1).

    `r` is fixed when the weights are merged (`engine/merge.py`); only the stochastic model's noise mix reads it
    at run time."""

    def __init__(self, unet_config: dict, vae_config: dict, *, alpha_bar: float, r: float, directions: list[str]):
        super().__init__()
        self.unet = UNet(unet_config)
        self.vae = SkipVAE(vae_config)
        self.vae_b2a = SkipVAE(vae_config) if "b2a" in directions else None
        self.alpha_bar, self.r = alpha_bar, float(r)
        self.scaling_factor = float(vae_config.get("scaling_factor", 0.18215))

    def set_r(self, r: float) -> None:
        if float(r) != self.r:
            raise ValueError(f"the weights were merged at r={self.r}; load the model again for r={r}")

    def vae_for(self, direction: str | None) -> SkipVAE:
        if direction in (None, "a2b"):
            return self.vae
        if direction == "b2a" and self.vae_b2a is not None:
            return self.vae_b2a
        raise ValueError(f"no VAE for direction {direction!r}")

    def forward(self, x: torch.Tensor, prompt_emb: torch.Tensor, direction: str | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        if prompt_emb.shape[0] == 1 and x.shape[0] > 1:
            prompt_emb = prompt_emb.expand(x.shape[0], -1, -1)
        vae = self.vae_for(direction)
        moments, skips = vae.encoder(x)
        if vae.quant_conv is not None:
            moments = vae.quant_conv(moments)
        z = moments.chunk(2, dim=1)[0] * self.scaling_factor  # the posterior mean, as TurboGenerator.encode
        if noise is not None:
            z = z * self.r + noise.to(z) * (1 - self.r)
        eps = self.unet(z, torch.full((z.shape[0],), TIMESTEP, device=z.device, dtype=torch.long), prompt_emb)
        z = one_step_x0(z, eps, self.alpha_bar) / self.scaling_factor
        if vae.post_quant_conv is not None:
            z = vae.post_quant_conv(z)
        return vae.decoder(z, skips).clamp(-1, 1)
