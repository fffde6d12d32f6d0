"""The paper's two training objectives, one optimizer step each: CycleGAN-turbo (unpaired: cycle consistency,
adversarial, identity) and pix2pix-turbo (paired: L2 + LPIPS + CLIP similarity, adversarial). Each phase ends in
its own optimizer step, in the original img2img-turbo order; the trainer (train/loop.py) supplies the networks and
the mechanics of a phase (`PhaseRunner`: mixed precision, gradient accumulation, the optimizer steps).

Notation: G is the generator (G(a) = G_a2b(a); F = G_b2a, the way back), D_A / D_B judge domain-A / domain-B images,
c a condition and y its target. λ are the recipe's [loss] weights (λ_cycle = lambda_cycle, λ_cycle_lpips =
cycle_lpips, λ_idt_lpips = idt_lpips, ...); ‖·‖₁ and ‖·‖₂² are means over the pixels. The adversarial term is the
vision-aided discriminator's multi-level sigmoid loss: GAN(D, x, real) = Σ_levels BCE(D(x), t if real else 0) with
t = 1 ("multilevel_sigmoid") or 0.8 ("multilevel_sigmoid_s"), the recipe's [loss] gan_loss (Recipe.gan_loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Protocol

import torch

from turbo_cli.train.discriminator import multilevel_sigmoid_loss
from turbo_cli.train.losses import l1, l2
from turbo_cli.train.recipe import LossConfig

Tensor = torch.Tensor
Judge = Callable[[Tensor], list[Tensor]]  # a discriminator: images in [-1, 1] -> logits per feature level


class PhaseRunner(Protocol):
    """The mechanics the objectives leave to the trainer."""

    def micro_batches(self, micro: list[dict]) -> Iterator[dict]:
        """The step's micro-batches, each inside gradient accumulation (one call per phase)."""

    def autocast(self) -> ContextManager:
        """Mixed precision for the forward passes ([train] mixed_precision)."""

    def backward(self, loss: Tensor, key: str) -> None:
        """Backpropagate `loss` (scaled for accumulation) and add it to the step's log under `key`."""

    def record(self, key: str, value: Tensor) -> None:
        """Add a value to the step's log without backpropagating it (a part of a loss)."""

    def step_generator(self, phase: str, keys: list[str]) -> None:
        """Check the phase's losses `keys` and gradients, then step G's optimizer and clear its gradients."""

    def step_discriminators(self, phase: str, keys: list[str]) -> None:
        """The same for the discriminators' heads."""

    def clear_discriminator_grads(self) -> None:
        """Drop the gradients G's adversarial loss left in the discriminators' heads (not D's objective)."""


def gan(judge: Judge, images: Tensor, real: bool, loss_type: str) -> Tensor:
    """GAN(D, x, real) = mean_batch Σ_levels mean_cells BCE(D(x), t if real else 0), t = 1 or 0.8 by `loss_type`;
    `real=True` is also G's wish for its fakes (vision-aided's for_G)."""
    return multilevel_sigmoid_loss(judge(images), real, loss_type)


# ---------------------------------------------------------------------------------------------------- CycleGAN-turbo


@dataclass
class CycleGanNets:
    G: Callable[[Tensor, str], Tensor]  # G(x, "a2b") = G(x), G(x, "b2a") = F(x); each with its domain's caption
    D: dict[str, Judge]  # "a": D_A, "b": D_B; empty when λ_gan = 0
    lpips: Callable[[Tensor, Tensor], Tensor]
    gan_loss: str = "multilevel_sigmoid"  # the original's unpaired --gan_loss_type default


def cyclegan_step(run: PhaseRunner, nets: CycleGanNets, w: LossConfig, micro: list[dict]) -> None:
    """One optimizer step of CycleGAN-turbo on micro-batches {"a", "b"} (images in [-1, 1]):
        1. cycle      F(G(a)) ≈ a and G(F(b)) ≈ b                  -> step G
        2. GAN for G  D_B(G(a)) and D_A(F(b)) should say "real"    -> step G
        3. identity   G(b) ≈ b and F(a) ≈ a                        -> step G
        4. D          on phase 2's fakes, then on real a and b     -> step D, step D
    """
    G, D, lpips, gl = nets.G, nets.D, nets.lpips, nets.gan_loss

    # 1. cycle consistency; each direction is backpropagated alone (half the activation memory)
    for mb in run.micro_batches(micro):
        for x, fwd, back in ((mb["a"], "a2b", "b2a"), (mb["b"], "b2a", "a2b")):
            with run.autocast():
                rec = G(G(x, fwd), back)
                # L_cyc = λ_cycle·‖F(G(a)) − a‖₁ + λ_cycle_lpips·LPIPS(F(G(a)), a)   (and G(F(b)) vs b)
                loss = w.lambda_cycle * l1(rec, x) + w.cycle_lpips * lpips(rec, x)
            run.backward(loss, "cycle")
    run.step_generator("cycle", ["cycle"])

    # 2. GAN for G; the fakes are kept for D's phase
    fakes: list[dict[str, Tensor]] = []
    if D:
        for mb in run.micro_batches(micro):
            fake = {}
            for x, fwd, judge in ((mb["a"], "a2b", "b"), (mb["b"], "b2a", "a")):
                with run.autocast():
                    fake[judge] = G(x, fwd)
                    # L_GAN(G) = λ_gan·GAN(D_B, G(a), real)   (and λ_gan·GAN(D_A, F(b), real))
                    loss = w.lambda_gan * gan(D[judge], fake[judge], real=True, loss_type=gl)
                run.backward(loss, "gan_g")
                fake[judge] = fake[judge].detach()
            fakes.append(fake)
        run.step_generator("GAN (G)", ["gan_g"])
        run.clear_discriminator_grads()

    # 3. identity: a translator handed an image of its target domain should leave it alone
    if w.lambda_idt > 0 or w.idt_lpips > 0:
        for mb in run.micro_batches(micro):
            for x, fwd in ((mb["b"], "a2b"), (mb["a"], "b2a")):
                with run.autocast():
                    same = G(x, fwd)
                    # L_idt = λ_idt·‖G(b) − b‖₁ + λ_idt_lpips·LPIPS(G(b), b)   (and F(a) vs a)
                    loss = w.lambda_idt * l1(same, x) + w.idt_lpips * lpips(same, x)
                run.backward(loss, "idt")
        run.step_generator("identity", ["idt"])

    # 4. the discriminators: phase 2's fakes (target 0), then the real images (target 1)
    if D:
        for k, _ in enumerate(run.micro_batches(micro)):
            with run.autocast():
                # L_D,fake = ½·λ_gan·(GAN(D_B, G(a), fake) + GAN(D_A, F(b), fake))
                loss = 0.5 * w.lambda_gan * (gan(D["b"], fakes[k]["b"], real=False, loss_type=gl)
                                             + gan(D["a"], fakes[k]["a"], real=False, loss_type=gl))
            run.backward(loss, "d_fake")
        run.step_discriminators("D fake", ["d_fake"])
        for mb in run.micro_batches(micro):
            with run.autocast():
                # L_D,real = ½·λ_gan·(GAN(D_B, b, real) + GAN(D_A, a, real))
                loss = 0.5 * w.lambda_gan * (gan(D["b"], mb["b"], real=True, loss_type=gl)
                                             + gan(D["a"], mb["a"], real=True, loss_type=gl))
            run.backward(loss, "d_real")
        run.step_discriminators("D real", ["d_real"])


# ----------------------------------------------------------------------------------------------------- pix2pix-turbo


@dataclass
class Pix2PixNets:
    G: Callable[[dict], Tensor]  # G(mb) = G(c) for micro-batch mb: its caption, and for G(c, z, r) its z and r
    D: Judge | None  # D_B, judging targets; None when λ_gan = 0
    lpips: Callable[[Tensor, Tensor], Tensor]
    clipsim: Callable[[Tensor, list[str]], Tensor] | None  # 1 − cos(CLIP(image), CLIP(caption)); None when λ = 0
    gan_loss: str = "multilevel_sigmoid_s"  # the original's paired --gan_loss_type default


def pix2pix_step(run: PhaseRunner, nets: Pix2PixNets, w: LossConfig, micro: list[dict]) -> None:
    """One optimizer step of pix2pix-turbo on micro-batches {"condition" [0, 1], "target" [-1, 1], "caption"}:
        1. reconstruction  G(c) ≈ y                                   -> step G
        2. GAN for G       D(G(c)) should say "real" (G runs again)   -> step G
        3. D               on real targets, then on phase 2's fakes    -> step D, step D
    """
    G, D, lpips, clipsim, gl = nets.G, nets.D, nets.lpips, nets.clipsim, nets.gan_loss

    # 1. reconstruction
    for mb in run.micro_batches(micro):
        y = mb["target"]
        with run.autocast():
            pred = G(mb)
            # L_rec = λ_l2·‖G(c) − y‖₂² + λ_lpips·LPIPS(G(c), y)
            loss = w.lambda_l2 * l2(pred, y) + w.lambda_lpips * lpips(pred, y)
            if clipsim is not None:
                # L_clip = λ_clipsim·(1 − mean_ij s·cos(CLIP_img(G(c)_i), CLIP_txt(caption_j))/100), s = CLIP's
                # logit scale (100 for ViT-B/32), over all B×B pairs as the original ([loss] clipsim_pairs)
                clip_loss = clipsim(pred, mb["caption"])
                run.record("clipsim", clip_loss)
                loss = loss + w.lambda_clipsim * clip_loss
        run.backward(loss, "rec")
    run.step_generator("reconstruction", ["rec"])

    if D is None:
        return
    # 2. GAN for G, on G's outputs after phase 1's update
    fakes: list[Tensor] = []
    for mb in run.micro_batches(micro):
        with run.autocast():
            pred = G(mb)
            # L_GAN(G) = λ_gan·GAN(D, G(c), real)
            loss = w.lambda_gan * gan(D, pred, real=True, loss_type=gl)
        run.backward(loss, "gan_g")
        fakes.append(pred.detach())
    run.step_generator("GAN (G)", ["gan_g"])
    run.clear_discriminator_grads()

    # 3. the discriminator: real targets (target 1), then the fakes (target 0)
    for mb in run.micro_batches(micro):
        with run.autocast():
            # L_D,real = λ_gan·GAN(D, y, real)
            loss = w.lambda_gan * gan(D, mb["target"], real=True, loss_type=gl)
        run.backward(loss, "d_real")
    run.step_discriminators("D real", ["d_real"])
    for k, _ in enumerate(run.micro_batches(micro)):
        with run.autocast():
            # L_D,fake = λ_gan·GAN(D, G(c), fake)
            loss = w.lambda_gan * gan(D, fakes[k], real=False, loss_type=gl)
        run.backward(loss, "d_fake")
    run.step_discriminators("D fake", ["d_fake"])
