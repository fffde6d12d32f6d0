"""Inference weights with every adapter merged in, loaded into `engine/sd.py`'s plain modules (no diffusers, no peft).

What `TurboGenerator` computes with adapters at strength r, folded into plain weights:
    LoRA:       W' = W + r * (alpha / rank) * B @ A     (peft's forward: W x + scaling * B(A(x)), scaling × r)
    skip convs: W' = r * W_skip'                          (the decoder adds skip_conv(r * skip); the conv is linear)
    twin conv:  W' = (1 - r) * W_pretrained + r * W_curr  (and the biases alike: a mix of two convs is one conv)
so the forward is the base model's plus the skip convs, one matmul per layer. tests/test_merged.py checks the
result against the peft model within fp32 rounding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from turbo_cli.engine import lora
from turbo_cli.engine.base import TIMESTEP
from turbo_cli.errors import ModelError

WEIGHTS = "diffusion_pytorch_model.safetensors"
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.(?P<adapter>[^.]+)\.weight$")
_TWIN = "unet.conv_in.conv_in_"


class Unmergeable(Exception):
    """This base model or checkpoint needs the diffusers model (the reason says why)."""


def read_config(root: Path, part: str) -> dict:
    path = Path(root) / part / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load the base model: {str(e).splitlines()[0][:200]}") from None


def alpha_bar(root: Path) -> float:
    """abar_999 exactly as diffusers' DDPMScheduler computes it from the base's scheduler config (float32)."""
    cfg = json.loads((Path(root) / "scheduler" / "scheduler_config.json").read_text())
    n, schedule = cfg.get("num_train_timesteps", 1000), cfg.get("beta_schedule", "linear")
    if cfg.get("trained_betas") is not None or cfg.get("rescale_betas_zero_snr"):
        raise Unmergeable("scheduler with trained or rescaled betas")
    start, end = cfg.get("beta_start", 0.0001), cfg.get("beta_end", 0.02)
    if schedule == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float32) ** 2
    elif schedule == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float32)
    else:
        raise Unmergeable(f"scheduler beta_schedule={schedule!r}")
    return float(torch.cumprod(1.0 - betas, dim=0)[TIMESTEP])


def base_weights(root: Path, part: str) -> dict[str, torch.Tensor]:
    """A part's pretrained tensors, read straight from its safetensors file(s)."""
    from safetensors.torch import load_file

    folder = Path(root) / part
    index = folder / f"{WEIGHTS}.index.json"
    if (folder / WEIGHTS).is_file():
        files = [folder / WEIGHTS]
    elif index.is_file():
        files = [folder / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    else:
        raise Unmergeable(f"{folder}: no {WEIGHTS}")
    tensors = {}
    for file in files:
        try:
            tensors.update(load_file(str(file)))
        except Exception as e:  # safetensors' own error type, OSError: a truncated or foreign file
            raise ModelError(f"{file}: cannot load the base model: {str(e).splitlines()[0][:200]}") from None
    return tensors


def merged_state(base: dict[str, torch.Tensor], state: dict[str, torch.Tensor], r: float,
                 shapes: dict[str, torch.Size], source: str) -> dict[str, torch.Tensor]:
    """Generator keys -> merged fp32 tensors: `base` (already prefixed unet./vae./vae_b2a.) overlaid with the
    checkpoint's `state` (generator state-dict keys, as peft names them) and its adapters folded in at r.
    `shapes`: the merged model's own; a tensor that does not fit them is a ModelError naming `source`."""

    def misfit(key: str, shape, expected) -> ModelError:
        return ModelError(f"{source}: checkpoint does not fit the base model: {key} has shape {tuple(shape)}, "
                          f"the base model's is {tuple(expected)}")

    def target_of(key: str, plain: str) -> str:
        if plain not in shapes:
            raise ModelError(f"{source}: checkpoint does not fit the base model: unknown tensor {key}")
        return plain

    out = {k: v.float() for k, v in base.items()}
    pairs: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    twin: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if (m := _LORA_KEY.match(key)) is not None:
            pairs.setdefault((m["module"], m["adapter"]), {})[m["ab"]] = value.float()
        elif key.startswith(_TWIN):
            twin[key.removeprefix(_TWIN)] = value.float()
        elif "lora_" in key:
            raise Unmergeable(f"adapter tensor {key}")
        else:
            plain = target_of(key, key.replace(".base_layer.", "."))
            if value.shape != shapes[plain]:
                raise misfit(key, value.shape, shapes[plain])
            out[plain] = value.float()
    for (module, adapter), ab in pairs.items():
        a, b = ab["A"], ab["B"]
        target = target_of(f"{module}.lora_A.{adapter}.weight", f"{module.replace('.base_layer', '')}.weight")
        shape = shapes[target]
        if b.shape[0] != shape[0] or a[0].numel() != shape[1:].numel() or a.shape[0] != b.shape[1]:
            raise misfit(f"{module}.lora_B.{adapter}.weight @ lora_A", (b.shape[0], *a.shape[1:]), shape)
        rank = a.shape[0]
        scale = r * lora.adapter_alpha(adapter, rank) / rank
        out[target] = out[target] + scale * (b.flatten(1) @ a.flatten(1)).reshape(shape)
    for key in [k for k in out if ".decoder.skip_conv_" in k]:
        out[key] = out[key] * r
    if twin:
        for part in ("weight", "bias"):
            out[f"unet.conv_in.{part}"] = (1 - r) * twin[f"pretrained.{part}"] + r * twin[f"curr.{part}"]
    return out


def build_merged(root: Path, state: dict[str, torch.Tensor], r: float, directions: list[str], source: str):
    """A `sd.MergedGenerator` for a checkpoint's `state` on the base in `root`, merged at strength r.

    Raises Unmergeable (before reading weights) when the base's configuration is not one `engine/sd.py` builds,
    and ModelError, naming `source`, when the checkpoint does not fit the base."""
    from turbo_cli.engine import sd

    unet_cfg, vae_cfg = read_config(root, "unet"), read_config(root, "vae")
    if (reason := sd.unsupported(unet_cfg, vae_cfg)) is not None:
        raise Unmergeable(reason)
    abar = alpha_bar(root)
    with torch.device("meta"):  # no init work: every tensor is replaced by the merged weights below
        generator = sd.MergedGenerator(unet_cfg, vae_cfg, alpha_bar=abar, r=r, directions=directions)
    base = {f"unet.{k}": v for k, v in base_weights(root, "unet").items()}
    vae = base_weights(root, "vae")
    for prefix in ("vae", "vae_b2a") if generator.vae_b2a is not None else ("vae",):
        base.update({f"{prefix}.{k}": v for k, v in vae.items()})
    shapes = {k: v.shape for k, v in generator.state_dict().items()}
    merged = merged_state(base, state, r, shapes, source)
    if missing := [k for k in shapes if k not in merged]:
        raise ModelError(f"{source}: checkpoint does not fit the base model: no value for {missing[0]}")
    generator.load_state_dict(merged, assign=True)  # strict: also refuses base tensors of another architecture
    return generator.eval().requires_grad_(False)
