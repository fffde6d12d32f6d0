"""Building a training run's networks from its recipe: the generator (what trains is engine.lora's one answer),
its prompt encoder and captions, the LPIPS and CLIP-similarity losses and the vision-aided discriminators, with
frozen weights in the run's frozen dtype and everything on the run's device."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from turbo_cli.train import data as datasets
from turbo_cli.train.discriminator import VisionAidedDiscriminator
from turbo_cli.train.losses import LPIPS, ClipSimilarityLoss
from turbo_cli.train.recipe import Recipe


@dataclass
class TrainingNetworks:
    gen: torch.nn.Module  # the TurboGenerator
    g_params: list[torch.nn.Parameter]  # what trains in it
    prompts: object  # engine.base.PromptEncoder: caption -> CLIP text embedding (cached)
    base_source: str  # the base model as checkpoints name it (a local folder made absolute)
    lpips: LPIPS
    clipsim: ClipSimilarityLoss | None  # paired, when λ_clipsim > 0
    discs: dict[str, VisionAidedDiscriminator]  # "a"/"b": judging domain A/B images; empty when λ_gan = 0
    d_params: list[torch.nn.Parameter]  # the discriminators' heads
    captions: datasets.Captions | None  # unpaired: the two fixed captions
    emb_a: torch.Tensor | None = None  # unpaired: their embeddings (the only text G ever sees)
    emb_b: torch.Tensor | None = None


def build_networks(recipe: Recipe, device: torch.device, frozen_dtype: torch.dtype,
                   captions: datasets.Captions | None, *, base=None,
                   disc_backbone: torch.nn.Module | None = None) -> TrainingNetworks:
    """`captions`: the unpaired run's two captions (None for paired). `base` (a BaseModel) and `disc_backbone`
    (a CLIPVisionModelWithProjection) replace loading them from the recipe's sources."""
    from turbo_cli.engine.base import PromptEncoder, load_base, quiet_libraries
    from turbo_cli.engine.generator import build_cyclegan, build_pix2pix

    quiet_libraries()
    m, L = recipe.model, recipe.loss
    base = base or load_base(m.base_model)
    base_source = m.base_model
    if Path(m.base_model).expanduser().exists():
        base_source = str(Path(m.base_model).expanduser().resolve())  # checkpoints work from anywhere
    if recipe.paired:
        gen = build_pix2pix(base, m.rank_unet, m.rank_vae, twin_conv=m.kind == "paired_stochastic")
    else:
        gen = build_cyclegan(base, m.rank_unet, m.rank_vae)
    g_params = gen.set_trainable(m.train_all)
    gen.posterior = m.vae_posterior  # "sample": the original's training; eval mode (validation) keeps the mean
    if m.gradient_checkpointing:
        gen.unet.enable_gradient_checkpointing()
        for vae in gen.vaes():
            vae.enable_gradient_checkpointing()

    lpips = LPIPS(L.lpips_net, trunk_weights=L.lpips_weights)
    clipsim = None
    if recipe.paired and L.lambda_clipsim > 0:
        clipsim = ClipSimilarityLoss.from_pretrained(L.clip_model, pairs=L.clipsim_pairs)
    discs: dict[str, VisionAidedDiscriminator] = {}
    if L.lambda_gan > 0:
        for name in (["b"] if recipe.paired else ["a", "b"]):  # paired: one D, on targets (domain B)
            if disc_backbone is not None:
                discs[name] = VisionAidedDiscriminator(copy.deepcopy(disc_backbone), diffaug=L.diffaug,
                                                       gan_loss=recipe.gan_loss)
            else:
                discs[name] = VisionAidedDiscriminator.from_pretrained(L.disc_backbone, diffaug=L.diffaug,
                                                                       gan_loss=recipe.gan_loss)

    for module in [gen, base.text_encoder, lpips, clipsim, *discs.values()]:
        if module is not None:
            _cast_frozen(module, frozen_dtype)
            module.to(device)
    nets = TrainingNetworks(gen, g_params, PromptEncoder(base.tokenizer, base.text_encoder), base_source, lpips,
                            clipsim, discs, [p for d in discs.values() for p in d.heads()], captions)
    if captions is not None:
        nets.emb_a = nets.prompts(nets.captions.a).to(device)
        nets.emb_b = nets.prompts(nets.captions.b).to(device)
        # Unpaired training only ever needs these two embeddings: free the text encoder's GPU memory (1.4 GB).
        base.text_encoder.to("cpu")
    return nets


def _cast_frozen(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Frozen weights to the frozen dtype (bf16 halves their memory); what trains, and what checkpoints store
    (skip convs, conv_in), stays fp32."""
    if dtype == torch.float32:
        return
    from turbo_cli.engine.lora import is_adapter

    for name, p in module.named_parameters():
        if not p.requires_grad and not is_adapter(name):
            p.data = p.data.to(dtype)
