"""Write a generator in the ORIGINAL img2img-turbo checkpoint formats (test support).

turbo only reads these formats; the tests need to make them for architectures the shared fixtures do not cover
(the full SD-Turbo shapes). `test_full_size.py` first proves this writer against the original's own files: a
fixture pickle read by turbo and written back here gives the same keys, lists, numbers and tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from turbo_cli.engine import lora


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v.detach().cpu().clone() for k, v in state.items() if k.startswith(prefix)}


def original_pix2pix(generator) -> dict:
    """`Pix2Pix_Turbo.save_model`'s dict: UNet keys with "lora" or "conv_in", VAE keys with "lora" or "skip"."""
    state = generator.state_dict()
    unet = {k: v for k, v in _strip(state, "unet.").items() if "lora" in k or "conv_in" in k}
    vae = {k: v for k, v in _strip(state, "vae.").items() if "lora" in k or "skip" in k}
    spec = generator.spec
    return {"unet_lora_target_modules": list(spec.unet_targets[lora.PIX2PIX_UNET_ADAPTER]),
            "vae_lora_target_modules": list(spec.vae_targets), "rank_unet": spec.rank_unet,
            "rank_vae": spec.rank_vae, "state_dict_unet": unet, "state_dict_vae": vae}


def original_cyclegan(generator) -> dict:
    """`train_cyclegan_turbo.py`'s dict: peft state dicts per UNet adapter (keys without the adapter name) and the
    whole state of both VAEs (keys "vae." / "vae_b2a.") under both sd_vae_enc and sd_vae_dec."""
    state = generator.state_dict()
    spec = generator.spec
    out = {"l_target_modules_encoder": list(spec.unet_targets["default_encoder"]),
           "l_target_modules_decoder": list(spec.unet_targets["default_decoder"]),
           "l_modules_others": list(spec.unet_targets["default_others"]), "rank_unet": spec.rank_unet}
    for adapter, key in zip(lora.CYCLEGAN_UNET_ADAPTERS, ("sd_encoder", "sd_decoder", "sd_other")):
        out[key] = {k.replace(f".lora_A.{adapter}.", ".lora_A.").replace(f".lora_B.{adapter}.", ".lora_B."): v
                    for k, v in _strip(state, "unet.").items() if f".{adapter}." in k}
    vaes = {k: v.detach().cpu().clone() for k, v in state.items() if k.startswith(("vae.", "vae_b2a."))}
    out.update(rank_vae=spec.rank_vae, vae_lora_target_modules=list(spec.vae_targets), sd_vae_enc=vaes,
               sd_vae_dec=dict(vaes))
    return out


def save_original(generator, path: Path) -> Path:
    data = original_cyclegan(generator) if generator.spec.kind == "cyclegan" else original_pix2pix(generator)
    torch.save(data, path)
    return path
