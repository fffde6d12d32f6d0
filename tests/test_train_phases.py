"""The original's optimizer phase order, pinned for both families (img2img-turbo 86f5414, docs/design.md §3):
which losses are backpropagated into which optimizer, in which order, with which clipping, and what each
discriminator judges. Written from the original training scripts, so a refactor cannot reorder them silently.

train_cyclegan_turbo.py, per step:
  1. loss_cycle_a + loss_cycle_b      -> backward; clip_grad_norm_(params_gen, max_grad_norm); optimizer_gen.step
  2. loss_gan_a + loss_gan_b (for_G)  -> backward; clip params_gen; optimizer_gen.step; optimizer_disc.zero_grad
  3. loss_g_idt                       -> backward; clip params_gen; optimizer_gen.step
  4. loss_D_fake (step 2's fakes, detached, for_real=False) -> backward; clip params_disc; optimizer_disc.step
  5. loss_D_real (real_a, real_b, for_real=True)            -> backward; clip params_disc; optimizer_disc.step
train_pix2pix_turbo.py, per step:
  1. l2 + lpips + clipsim             -> backward; clip layers_to_opt; optimizer.step
  2. lossG: G runs again, net_disc(x_tgt_pred, for_G=True) -> backward; clip; optimizer.step; optimizer_disc.zero_grad
  3. lossD_real: net_disc(x_tgt, for_real=True)             -> backward; clip net_disc params; optimizer_disc.step
  4. lossD_fake: net_disc(step 2's x_tgt_pred.detach(), for_real=False) -> backward; clip; optimizer_disc.step
"""

from __future__ import annotations

import contextlib

import torch

from turbo_cli.train.objectives import CycleGanNets, Pix2PixNets, cyclegan_step, pix2pix_step
from turbo_cli.train.phases import AcceleratePhases, Optimized
from turbo_cli.train.recipe import LossConfig, load_recipe
from tests._train_helpers import RECIPE


class Tape:
    """Everything the step does, in order: backward(key), clip(which, max_norm), step(which), zero(which),
    judge(D, image label, target)."""

    def __init__(self):
        self.events: list[tuple] = []
        self.labels: dict[int, str] = {}

    def label(self, t: torch.Tensor, name: str) -> torch.Tensor:
        self.labels[t.data_ptr()] = name  # a detached copy shares the storage: it keeps the label
        return t

    def name_of(self, t: torch.Tensor) -> str:
        return self.labels.get(t.data_ptr(), "?")


class FakeAccelerator:
    num_processes = 1

    def __init__(self, tape: Tape, which: dict[int, str]):
        self.tape, self.which = tape, which

    def accumulate(self, *models):
        return contextlib.nullcontext()

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, params, max_norm):
        self.tape.events.append(("clip", self.which[id(params[0])], max_norm))
        return torch.tensor(1.0)


class FakeOptimizer:
    def __init__(self, tape: Tape, name: str):
        self.tape, self.name = tape, name

    def step(self):
        self.tape.events.append(("step", self.name))

    def zero_grad(self, set_to_none=True):
        pass


def runner(tape: Tape, clip: float, n_micro: int = 1):
    g, d = torch.nn.Parameter(torch.ones(())), torch.nn.Parameter(torch.ones(()))
    which = {id(g): "G", id(d): "D"}
    phases = AcceleratePhases(FakeAccelerator(tape, which), [], Optimized(FakeOptimizer(tape, "G"), [g]),
                              Optimized(FakeOptimizer(tape, "D"), [d]), clip, n_micro,
                              on_diverged=lambda what: (_ for _ in ()).throw(AssertionError(what)))
    backward = phases.backward

    def recording_backward(loss, key):
        tape.events.append(("backward", key))
        backward(loss, key)

    phases.backward = recording_backward
    clear = phases.clear_discriminator_grads

    def recording_clear():
        tape.events.append(("zero", "D"))
        clear()

    phases.clear_discriminator_grads = recording_clear
    return phases, g, d


def judge(tape: Tape, name: str, d: torch.nn.Parameter):
    def D(x):
        tape.events.append(("judge", name, tape.name_of(x)))
        return [d * x.mean().reshape(1, 1)]
    return D


def recorded(tape: Tape, kinds=("backward", "clip", "step", "zero", "judge")) -> list[tuple]:
    return [e for e in tape.events if e[0] in kinds]


def record_targets(tape: Tape, monkeypatch) -> None:
    """The GAN loss's target of each judgement: ("real" for real images and for G's wish, "fake"), and its type."""
    from turbo_cli.train import objectives

    loss = objectives.multilevel_sigmoid_loss

    def recording(logits, real, loss_type):
        tape.events.append(("target", "real" if real else "fake", loss_type))
        return loss(logits, real, loss_type)

    monkeypatch.setattr(objectives, "multilevel_sigmoid_loss", recording)


def test_cyclegan_phase_order_as_the_original(monkeypatch):
    tape = Tape()
    record_targets(tape, monkeypatch)
    run, g, d = runner(tape, clip=10.0)

    def G(x, direction):
        src = tape.name_of(x)
        return tape.label(x * g, f"{'G' if direction == 'a2b' else 'F'}({src})")

    a, b = tape.label(torch.rand(1, 3, 8, 8), "a"), tape.label(torch.rand(1, 3, 8, 8), "b")
    nets = CycleGanNets(G, {"a": judge(tape, "D_A", d), "b": judge(tape, "D_B", d)}, lambda x, y: (x - y).abs().mean())
    cyclegan_step(run, nets, LossConfig(), [{"a": a, "b": b}])
    assert [e[1:] for e in tape.events if e[0] == "target"] == [("real", "multilevel_sigmoid")] * 2 + \
        [("fake", "multilevel_sigmoid")] * 2 + [("real", "multilevel_sigmoid")] * 2  # G x2, D fake x2, D real x2
    assert recorded(tape) == [
        # 1. cycle, both directions, into G's optimizer
        ("backward", "cycle"), ("backward", "cycle"), ("clip", "G", 10.0), ("step", "G"),
        # 2. GAN for G: D_B judges G(a), D_A judges F(b); G's step; D's gradients from it are dropped
        ("judge", "D_B", "G(a)"), ("backward", "gan_g"), ("judge", "D_A", "F(b)"), ("backward", "gan_g"),
        ("clip", "G", 10.0), ("step", "G"), ("zero", "D"),
        # 3. identity into G
        ("backward", "idt"), ("backward", "idt"), ("clip", "G", 10.0), ("step", "G"),
        # 4. D on phase 2's fakes (detached), then on the real images, each its own D step
        ("judge", "D_B", "G(a)"), ("judge", "D_A", "F(b)"), ("backward", "d_fake"), ("clip", "D", 10.0),
        ("step", "D"),
        ("judge", "D_B", "b"), ("judge", "D_A", "a"), ("backward", "d_real"), ("clip", "D", 10.0), ("step", "D"),
    ]


def test_pix2pix_phase_order_as_the_original(monkeypatch):
    tape = Tape()
    record_targets(tape, monkeypatch)
    run, g, d = runner(tape, clip=1.0)
    calls = []

    def G(mb):
        calls.append(len(tape.events))
        return tape.label(mb["condition"] * g, f"G(c)#{len(calls)}")

    c, y = tape.label(torch.rand(1, 3, 8, 8), "c"), tape.label(torch.rand(1, 3, 8, 8), "y")
    nets = Pix2PixNets(G, judge(tape, "D", d), lambda x, y: (x - y).abs().mean(),
                       lambda x, caps: x.mean() * 0)
    pix2pix_step(run, nets, LossConfig(), [{"condition": c, "target": y, "caption": ["x"]}])
    assert [e[1:] for e in tape.events if e[0] == "target"] == [
        ("real", "multilevel_sigmoid_s"), ("real", "multilevel_sigmoid_s"), ("fake", "multilevel_sigmoid_s")]
    assert recorded(tape) == [
        # 1. reconstruction (L2 + LPIPS + CLIP-sim) into G
        ("backward", "rec"), ("clip", "G", 1.0), ("step", "G"),
        # 2. G runs again after its update; D judges that output for G
        ("judge", "D", "G(c)#2"), ("backward", "gan_g"), ("clip", "G", 1.0), ("step", "G"), ("zero", "D"),
        # 3. D on the real target, then 4. on phase 2's output (detached)
        ("judge", "D", "y"), ("backward", "d_real"), ("clip", "D", 1.0), ("step", "D"),
        ("judge", "D", "G(c)#2"), ("backward", "d_fake"), ("clip", "D", 1.0), ("step", "D"),
    ]
    assert len(calls) == 2  # G ran twice: before and after the reconstruction step


def test_recipes_clip_as_the_original_per_family():
    # the original's max_grad_norm: 10 for CycleGAN-turbo, 1 for pix2pix-turbo; the same value clips G and D
    from pathlib import Path

    recipes = Path(RECIPE).parent
    for name, clip in (("horse2zebra", 10.0), ("day2night", 10.0), ("fill50k", 1.0), ("sketch_stochastic", 1.0)):
        assert load_recipe(recipes / f"{name}.toml").optim.grad_clip == clip, name
