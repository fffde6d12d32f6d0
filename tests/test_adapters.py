"""Which generator tensors train and which a checkpoint saves, pinned per family (docs/design.md §1).

The expectations are written from the original's training code, not from turbo's predicate: CycleGAN-turbo's
optimizer gets every LoRA and `unet.conv_in` (its skip convs' base weights stay frozen at 1e-5: peft froze them when
it wrapped them); pix2pix-turbo's `set_train` also unfreezes `vae.decoder.skip_conv_N` itself; the twin-conv
model's frozen copy `conv_in_pretrained` never trains but is saved.
"""

from __future__ import annotations

import pytest
from safetensors import safe_open

from turbo_cli.engine.base import load_base
from turbo_cli.engine.generator import build_cyclegan, build_pix2pix

SKIP_BASES = {f"{vae}.decoder.skip_conv_{i}.base_layer.weight" for vae in ("vae",) for i in range(1, 5)}


def _lora(names):
    return {n for n in names if ".lora_A." in n or ".lora_B." in n}


@pytest.fixture()
def generators(tiny_base):
    return {
        "cyclegan": build_cyclegan(load_base(tiny_base, with_text_encoder=False), 4, 4),
        "pix2pix": build_pix2pix(load_base(tiny_base, with_text_encoder=False), 4, 4),
        "sketch": build_pix2pix(load_base(tiny_base, with_text_encoder=False), 4, 4, twin_conv=True),
    }


def test_cyclegan_trains_lora_and_conv_in_not_the_skip_bases(generators):
    gen = generators["cyclegan"]
    names = {n for n, _ in gen.named_parameters()}
    skip_bases = SKIP_BASES | {s.replace("vae.", "vae_b2a.", 1) for s in SKIP_BASES}
    # conv_in is LoRA-wrapped in CycleGAN (its target grep matches "conv_in"); the original trains all of it
    expected = _lora(names) | {"unet.conv_in.base_layer.weight", "unet.conv_in.base_layer.bias"}
    assert skip_bases <= names
    assert set(gen.trained_parameters()) == expected
    assert {n for n, p in gen.named_parameters() if p.requires_grad} == expected
    # LoRA on both VAEs (a2b and b2a) and on all three UNet adapters
    for part in ("vae.", "vae_b2a.", "default_encoder", "default_decoder", "default_others"):
        assert any(part in n for n in expected), part


def test_pix2pix_also_trains_its_skip_convs(generators):
    gen = generators["pix2pix"]
    names = {n for n, _ in gen.named_parameters()}
    expected = _lora(names) | {"unet.conv_in.weight", "unet.conv_in.bias"} | SKIP_BASES
    assert set(gen.trained_parameters()) == expected
    gen.set_trainable()
    assert {n for n, p in gen.named_parameters() if p.requires_grad} == expected


def test_the_twin_conv_copy_is_saved_but_never_trained(generators):
    gen = generators["sketch"]
    trained = set(gen.trained_parameters())
    assert {"unet.conv_in.conv_in_curr.weight", "unet.conv_in.conv_in_curr.bias"} <= trained
    assert not any("conv_in_pretrained" in n for n in trained)


@pytest.mark.parametrize("family", ["cyclegan", "pix2pix", "sketch"])
def test_a_checkpoint_saves_exactly_the_adapters(generators, family, tmp_path):
    from turbo_cli.engine.checkpoint import ModelInfo, save_turbo

    gen = generators[family]
    kind = "cyclegan" if family == "cyclegan" else "pix2pix"
    path = save_turbo(gen, ModelInfo.for_family(kind, gen.spec, stochastic=family == "sketch"), tmp_path / "m.st")
    with safe_open(str(path), framework="pt") as f:
        saved = set(f.keys())
    names = set(gen.state_dict())
    expected = (_lora(names) | {n for n in names if "skip_conv_" in n}
                | {n for n in names if n.startswith("unet.conv_in.")})
    assert saved == expected
    # nothing of the frozen base besides: no UNet attention weight, no VAE conv outside the skips
    assert not any(n.endswith("to_q.base_layer.weight") for n in saved)
    # with train_all every weight trains, and the trained base weights are saved too
    gen.set_trainable(train_all=True)
    path = save_turbo(gen, ModelInfo.for_family(kind, gen.spec, stochastic=family == "sketch"), tmp_path / "all.st")
    with safe_open(str(path), framework="pt") as f:
        saved_all = set(f.keys())
    trained_all = {n for n, p in gen.named_parameters() if p.requires_grad}
    assert trained_all - {n for n in trained_all if "conv_in_pretrained" in n} <= saved_all
