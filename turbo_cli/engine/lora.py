"""LoRA adapters exactly as the original attaches them (docs/design.md §1): targets, adapter names, ranks, alphas.

The alphas matter: pix2pix uses peft's default lora_alpha (8) on both UNet (rank 8 -> scale 1) and VAE
(rank 4 -> scale 2); CycleGAN's UNet adapters use lora_alpha = rank (scale 1). The fixtures catch a mismatch.
"""

from __future__ import annotations

from torch import nn

PEFT_DEFAULT_ALPHA = 8  # peft's LoraConfig default, which the original relies on without saying so

# pix2pix-turbo UNet targets (suffixes; peft matches "name == t or name.endswith('.' + t)").
PIX2PIX_UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out",
                        "proj_in", "proj_out", "ff.net.2", "ff.net.0.proj"]
# CycleGAN-turbo greps UNet parameter names for these substrings (order matters: first match wins).
CYCLEGAN_UNET_GREP = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut",
                      "conv_out", "proj_out", "proj_in", "ff.net.2", "ff.net.0.proj"]
VAE_TARGETS = ["conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "skip_conv_1", "skip_conv_2",
               "skip_conv_3", "skip_conv_4", "to_k", "to_q", "to_v", "to_out.0"]
VAE_ADAPTER = "vae_skip"
PIX2PIX_UNET_ADAPTER = "default"
CYCLEGAN_UNET_ADAPTERS = ("default_encoder", "default_decoder", "default_others")


def cyclegan_unet_targets(unet: nn.Module) -> dict[str, list[str]]:
    """Full module names per CycleGAN adapter: in down_blocks or conv_in / in up_blocks / the rest."""
    groups: dict[str, list[str]] = {name: [] for name in CYCLEGAN_UNET_ADAPTERS}
    for name, _ in unet.named_parameters():
        if "bias" in name or "norm" in name or "lora_" in name:
            continue
        for pattern in CYCLEGAN_UNET_GREP:
            if pattern not in name:
                continue
            module = name.removesuffix(".weight").removesuffix(".base_layer")
            if "down_blocks" in name or "conv_in" in name:
                groups["default_encoder"].append(module)
            elif "up_blocks" in name:
                groups["default_decoder"].append(module)
            else:
                groups["default_others"].append(module)
            break
    return groups


def adapter_alpha(adapter: str, rank: int) -> int:
    """The lora_alpha the original gives an adapter: rank for CycleGAN's UNet adapters, peft's default otherwise."""
    return rank if adapter in CYCLEGAN_UNET_ADAPTERS else PEFT_DEFAULT_ALPHA


def _config(adapter: str, rank: int, targets: list[str]):
    from peft import LoraConfig  # peft only where adapters are built (training, conversion), not for inference

    return LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=list(targets),
                      lora_alpha=adapter_alpha(adapter, rank))


def add_pix2pix_unet_lora(unet, rank: int = 8, targets: list[str] | None = None) -> None:
    unet.add_adapter(_config(PIX2PIX_UNET_ADAPTER, rank, targets or PIX2PIX_UNET_TARGETS))


def add_cyclegan_unet_lora(unet, rank: int, targets: dict[str, list[str]] | None = None) -> None:
    targets = targets or cyclegan_unet_targets(unet)
    for name in CYCLEGAN_UNET_ADAPTERS:
        unet.add_adapter(_config(name, rank, targets[name]), adapter_name=name)
    unet.set_adapters(list(CYCLEGAN_UNET_ADAPTERS))


def add_vae_lora(vae, rank: int = 4, targets: list[str] | None = None) -> None:
    """VAE LoRA, added after the skip convs exist so they are wrapped too (keys `skip_conv_N.base_layer.weight`)."""
    vae.add_adapter(_config(VAE_ADAPTER, rank, targets or VAE_TARGETS), adapter_name=VAE_ADAPTER)


def scale_adapters(module: nn.Module, r: float) -> None:
    """Multiply every adapter's scale (alpha / rank) by r, the stochastic model's strength."""
    from peft.tuners.lora import LoraLayer

    for layer in module.modules():
        if isinstance(layer, LoraLayer):
            for adapter in layer.scaling:
                layer.set_scale(adapter, r)


# ---- which tensors are adapters, which train, which are saved: the one answer ----------------------------------
# Adapters are what the method adds to SD-Turbo and every turbo checkpoint stores: LoRA A/B, the skip convs
# (their weights and LoRA) and the UNet's first conv (retrained; the twin-conv model keeps a frozen copy beside it).
# What trains follows the original's optimizer lists (docs/design.md §1, "What trains, what is saved"):
#   pix2pix-turbo: every LoRA, unet.conv_in, the skip convs themselves (set_train: skip_conv_N.requires_grad_(True));
#   CycleGAN-turbo: every LoRA, unet.conv_in; the skip convs' own weights stay at their 1e-5 init (peft froze them
#     when it wrapped them, so only their LoRA learns);
#   never the twin-conv model's frozen `conv_in_pretrained`. `train_all` (tiny models) trains every weight.
def is_adapter(name: str) -> bool:
    """A generator state-dict key (or parameter name) that every turbo checkpoint stores."""
    return "lora_" in name or "skip_conv_" in name or name.startswith("unet.conv_in.")


def is_trained(name: str, kind: str, *, train_all: bool = False) -> bool:  # kind: families.Kind
    """Whether the original's training updates this generator parameter (kind: "cyclegan" | "pix2pix")."""
    if "conv_in_pretrained" in name:
        return False
    if train_all or "lora_" in name or name.startswith("unet.conv_in."):
        return True
    return "skip_conv_" in name and kind == "pix2pix"


def is_saved(name: str, base_overrides: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether a checkpoint stores this key: every adapter, plus base weights that differ from the base model
    (loaded from an original checkpoint that overrides them, or trained with train_all)."""
    return is_adapter(name) or name in base_overrides


def trained_parameters(named: list[tuple[str, nn.Parameter]], kind: str, *,
                       train_all: bool = False) -> dict[str, nn.Parameter]:
    """name -> parameter for what trains, each parameter once (a module reachable twice is trained once)."""
    chosen: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    for name, p in named:
        if is_trained(name, kind, train_all=train_all) and id(p) not in seen:
            seen.add(id(p))
            chosen[name] = p
    return chosen
