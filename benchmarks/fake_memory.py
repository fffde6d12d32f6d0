"""Peak memory of CycleGAN-turbo training and inference on the FULL SD-Turbo shapes, computed on the CPU (no GPU).

    python benchmarks/memory.py --fake                 # the table below, JSON in benchmarks/results/memory_fake.json
    python benchmarks/fake_memory.py --tiny            # the same code path on the tiny shapes (seconds)

Method: every network is built under `FakeTensorMode` (tensors with shapes, dtypes and strides but no data, so an
866M-parameter UNet costs nothing) and one step runs through turbo's own code: `engine.generator.build_cyclegan`
(peft LoRA, the skip-connected VAEs), `train.build._cast_frozen` (frozen weights in bf16), the recipe's gradient
checkpointing switch, `train.objectives.cyclegan_step` (all four phases: cycle, GAN for G, identity, the
discriminators, each ending in an AdamW step), `train.losses.LPIPS` (VGG16, random trunk: same sizes) and two
`train.discriminator.VisionAidedDiscriminator` on CLIP ViT-B/32's image tower (random weights: same sizes).
`LiveBytes`, a `TorchDispatchMode`, sees every op's outputs and sums the bytes of the distinct storages alive at
each moment (a storage is counted once however many views it has, and leaves the count when Python frees it); its
peak is what `torch.cuda.max_memory_allocated()` would report for the same sequence of tensors, minus allocator
rounding (512-byte blocks) and fragmentation, the CUDA context (~0.5 GB), cuDNN/cuBLAS workspaces and anything
a CUDA kernel allocates internally. Each byte is labelled by where it was made: weights (frozen / trained), data,
forward activations (the tensors a forward makes: those saved for backward and temporaries), backward (gradient
temporaries and, with checkpointing, the recomputed activations), gradients of the trained parameters (relabelled
when they land in `.grad`), optimizer state (AdamW's two moments, made in the first step), plus the phase of the
step the peak falls in.

Differences from a CUDA run, stated: autocast is the CPU's bf16 autocast (its op lists match CUDA's for the
convolutions, linears and matmuls that hold the memory); attention is PyTorch's fused SDPA (flash-style: the
attention matrix is never materialized; CUDA bf16 picks flash or memory-efficient attention, same footprint);
what the trainer does around the step is not run (accelerate's `prepare` and its DDP buckets: none on one GPU;
logging; the `.item()` finiteness checks; gradient clipping's few scalars). The text encoder is not counted: an
unpaired run embeds its two captions once and moves it back to the CPU before the first step (train/build.py).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import sys
import tempfile
import time
import types
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 2**30
PHASES = ["cycle", "GAN (G)", "identity", "D fake", "D real"]
LABELS = ["frozen weights", "trained weights", "data", "forward activations", "backward", "gradients",
          "optimizer state"]


class LiveBytes(TorchDispatchMode):
    """Sums the bytes of the live, distinct tensor storages; keeps the peak and its breakdown by label."""

    def __init__(self):
        super().__init__()
        self.by_label: dict[str, int] = {k: 0 for k in LABELS}
        self.label_of: dict[int, str] = {}  # id(storage) -> label, while it lives
        self.size_of: dict[int, int] = {}
        self.total = self.peak = 0
        self.peak_labels: dict[str, int] = dict(self.by_label)
        self.peak_phase = ""
        self.phase = ""
        self.forced: str | None = None  # a label forced by a context (the optimizer step, data)

    # ---- bookkeeping --------------------------------------------------------------------------------------------
    def add(self, t: torch.Tensor, label: str) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta" and not _is_fake(t):
            return
        s = t.untyped_storage()
        key = id(s)
        if key in self.label_of:
            return
        n = s.nbytes()
        self.label_of[key], self.size_of[key] = label, n
        self.by_label[label] += n
        self.total += n
        weakref.finalize(s, self._free, key)
        if self.total > self.peak:
            self.peak, self.peak_labels, self.peak_phase = self.total, dict(self.by_label), self.phase

    def relabel(self, t: torch.Tensor, label: str) -> None:
        key = id(t.untyped_storage())
        old = self.label_of.get(key)
        if old is None:
            self.add(t, label)
        elif old != label:
            self.by_label[old] -= self.size_of[key]
            self.by_label[label] += self.size_of[key]
            self.label_of[key] = label

    def _free(self, key: int) -> None:
        label = self.label_of.pop(key, None)
        if label is not None:
            n = self.size_of.pop(key)
            self.by_label[label] -= n
            self.total -= n

    def track_module(self, module: torch.nn.Module) -> None:
        for p in module.parameters():
            self.add(p, "trained weights" if p.requires_grad else "frozen weights")
        for b in module.buffers():
            self.add(b, "frozen weights")

    def track_grads(self, params: list[torch.nn.Parameter]) -> None:
        """A trained parameter's gradient counts as `gradients` from the moment it lands in `.grad`."""
        for p in params:
            p.register_post_accumulate_grad_hook(lambda q: self.relabel(q.grad, "gradients"))

    @contextlib.contextmanager
    def labelled(self, label: str):
        before, self.forced = self.forced, label
        try:
            yield
        finally:
            self.forced = before

    # ---- the dispatch hook --------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        label = self.forced or ("backward" if torch._C._current_graph_task_id() != -1 else "forward activations")
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.add(t, label)
        return out

    def report(self) -> dict:
        return {"peak_gib": self.peak / GIB, "peak_phase": self.peak_phase,
                "at_peak_gib": {k: v / GIB for k, v in self.peak_labels.items()}}


def _is_fake(t) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


# ------------------------------------------------------------------------------------------------ building, faked


@contextlib.contextmanager
def fake_friendly_module_to():
    """`nn.Module.to` for fake modules on the CPU: dtype casts through `.data` (torch's `_apply` swaps fake
    parameters with `swap_tensors`, which fails when peft/diffusers hold references); device moves are no-ops."""
    original = torch.nn.Module.to

    def to(self, *args, **kwargs):
        _, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is None:
            return self
        for m in self.modules():
            for key, t in list(m._parameters.items()) + list(m._buffers.items()):
                if t is None or not t.is_floating_point() or t.dtype == dtype:
                    continue
                if key in m._parameters:
                    t.data = t.data.to(dtype)
                else:
                    m._buffers[key] = t.to(dtype)
        return self

    torch.nn.Module.to = to
    try:
        yield
    finally:
        torch.nn.Module.to = original


def fakeify(module: torch.nn.Module, mode) -> torch.nn.Module:
    """A real (small) module's parameters and buffers replaced by fake copies."""
    for m in module.modules():
        for key, p in list(m._parameters.items()):
            if p is not None:
                m._parameters[key] = torch.nn.Parameter(mode.from_tensor(p.detach()), requires_grad=p.requires_grad)
        for key, b in list(m._buffers.items()):
            if b is not None:
                m._buffers[key] = mode.from_tensor(b)
    return module


def _shapes(tiny: bool) -> tuple[dict, dict, dict, int]:
    from turbo_cli.engine import tiny as T

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from memory import CLIP_B32_VISION, TINY_VISION

    if tiny:
        return T.TINY_UNET, T.TINY_VAE, TINY_VISION, T.TINY_TEXT["hidden_size"]
    return T.SD_TURBO_UNET, T.SD_TURBO_VAE, CLIP_B32_VISION, T.SD_TURBO_TEXT["hidden_size"]


def fake_generator(tiny: bool, rank_unet: int | None):
    """build_cyclegan on a fake SD-Turbo-shaped base (call inside FakeTensorMode and fake_friendly_module_to)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from turbo_cli.engine.base import BaseModel
    from turbo_cli.engine.generator import build_cyclegan

    unet_cfg, vae_cfg, _, _ = _shapes(tiny)
    sched = types.SimpleNamespace(alphas_cumprod=_alphas_cumprod())
    unet = UNet2DConditionModel(**unet_cfg).requires_grad_(False)
    vae = AutoencoderKL(**vae_cfg).requires_grad_(False)
    gen = build_cyclegan(BaseModel("random", None, None, unet, vae, sched), rank_unet)
    # `copy.deepcopy(vae)` (the b2a VAE) gives fake tensors of a second FakeTensorMode: give them fresh storages of
    # the active one (values do not matter here; sizes, dtypes and strides do)
    mode = next(iter(gen.unet.parameters())).fake_mode
    for m in gen.modules():
        for key, t in list(m._parameters.items()) + list(m._buffers.items()):
            if t is not None and t.fake_mode is not mode:
                fresh = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype)
                if key in m._parameters:
                    m._parameters[key] = torch.nn.Parameter(fresh, requires_grad=t.requires_grad)
                else:
                    m._buffers[key] = fresh
    return gen


@functools.lru_cache(maxsize=1)
def _alphas_cumprod() -> list[float]:
    """The scheduler's alpha-bars as Python floats (a fake tensor has no value for `BaseModel.alpha_bar` to read);
    first called outside FakeTensorMode."""
    from diffusers import DDPMScheduler

    from turbo_cli.engine import tiny as T

    return DDPMScheduler.from_config(T.SCHEDULER).alphas_cumprod.tolist()


@functools.lru_cache(maxsize=2)
def _real_lpips(net: str):
    """turbo's LPIPS with a random trunk (same sizes as the real one), built once per process (VGG16 is slow to
    initialise); callers deep-copy it before faking it."""
    from memory import random_vgg16_trunk
    from turbo_cli.train.losses import LPIPS

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        return LPIPS(net, trunk_weights=random_vgg16_trunk(Path(tmp) / "vgg16.pth"))


def _peft_no_device_moves():
    """peft moves each new adapter to its base layer's device; here everything is already on the (fake) CPU."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return _patched(BaseTunerLayer, "_move_adapter_to_device_of_base_layer", lambda self, *a, **k: None)


@contextlib.contextmanager
def _patched(owner, name, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


# ------------------------------------------------------------------------------------------------ one training step


class FakePhases:
    """train.objectives.PhaseRunner for one step: what AcceleratePhases does on one GPU, minus the `.item()` checks
    and the gradient clipping (scalars)."""

    def __init__(self, tracker: LiveBytes, opt_g, opt_d, d_params, autocast):
        self.tracker, self.opt_g, self.opt_d, self.d_params, self._autocast = tracker, opt_g, opt_d, d_params, autocast
        self.phase_index = 0
        tracker.phase = PHASES[0]

    def micro_batches(self, micro):
        yield from micro

    def autocast(self):
        return self._autocast()

    def backward(self, loss, key):
        loss.backward()

    def record(self, key, value):
        pass

    def _step(self, opt):
        with self.tracker.labelled("optimizer state"):
            opt.step()
        opt.zero_grad(set_to_none=True)
        self.phase_index += 1
        self.tracker.phase = PHASES[min(self.phase_index, len(PHASES) - 1)]

    def step_generator(self, phase, keys):
        self._step(self.opt_g)

    def step_discriminators(self, phase, keys):
        self._step(self.opt_d)

    def clear_discriminator_grads(self):
        for p in self.d_params:
            p.grad = None


def train_step(size: int = 256, bf16: bool = True, gradient_checkpointing: bool = True, tiny: bool = False,
               rank_unet: int | None = None, batch: int = 1) -> dict:
    """Peak live bytes of one unpaired CycleGAN-turbo optimizer step (the first: AdamW's state is made in it)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from turbo_cli.train.build import _cast_frozen
    from turbo_cli.train.discriminator import VisionAidedDiscriminator
    from turbo_cli.train.objectives import CycleGanNets, cyclegan_step
    from turbo_cli.train.recipe import load_recipe

    recipe = load_recipe(None, ["data.dataset=\"unused\""])  # the defaults: loss weights, AdamW, GAN loss
    L, o = recipe.loss, recipe.optim
    _, _, vision, text_dim = _shapes(tiny)
    frozen = torch.bfloat16 if bf16 else torch.float32
    _alphas_cumprod()
    t0 = time.perf_counter()
    lpips_real = copy.deepcopy(_real_lpips(L.lpips_net))
    backbone = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
    discs_real = {k: VisionAidedDiscriminator(copy.deepcopy(backbone), diffaug=L.diffaug, gan_loss=recipe.gan_loss)
                  for k in ("a", "b")}
    mode = FakeTensorMode()
    lpips = fakeify(lpips_real, mode)
    discs = {k: fakeify(d, mode) for k, d in discs_real.items()}
    with mode, fake_friendly_module_to(), _peft_no_device_moves():
        gen = fake_generator(tiny, rank_unet)
        g_params = gen.set_trainable()
        if gradient_checkpointing:  # what train/build.py does for [model] gradient_checkpointing
            gen.unet.enable_gradient_checkpointing()
            for vae in gen.vaes():
                vae.enable_gradient_checkpointing()
        for m in [gen, lpips, *discs.values()]:
            _cast_frozen(m, frozen)
            m.train()
        d_params = [p for d in discs.values() for p in d.heads()]
        kw = dict(lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
        opt_g, opt_d = torch.optim.AdamW(g_params, **kw), torch.optim.AdamW(d_params, **kw)

        tracker = LiveBytes()
        for m in [gen, lpips, *discs.values()]:
            tracker.track_module(m)
        tracker.track_grads(g_params + d_params)
        emb_a, emb_b = (torch.randn(1, 77, text_dim) for _ in range(2))
        emb = {"a2b": emb_b, "b2a": emb_a}
        tracker.add(emb_a, "data")
        tracker.add(emb_b, "data")
        if bf16:
            def autocast():
                return torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            autocast = contextlib.nullcontext
        with tracker:
            with tracker.labelled("data"):
                micro = [{"a": torch.rand(batch, 3, size, size) * 2 - 1, "b": torch.rand(batch, 3, size, size) * 2 - 1}]
            phases = FakePhases(tracker, opt_g, opt_d, d_params, autocast)
            nets = CycleGanNets(lambda x, d: gen(x, emb[d], direction=d), discs, lpips, recipe.gan_loss)
            cyclegan_step(phases, nets, L, micro)
        n_trained = sum(p.numel() for p in g_params)
        n_frozen = sum(p.numel() for p in gen.parameters() if not p.requires_grad)
    row = dict(what="train step", size=f"{size}x{size}", batch=batch, precision="bf16" if bf16 else "fp32",
               gradient_checkpointing=gradient_checkpointing, tiny=tiny,
               generator_trained_params_m=n_trained / 1e6, generator_frozen_params_m=n_frozen / 1e6,
               disc_head_params_m=sum(p.numel() for p in d_params) / 1e6,
               frozen_nets_params_m=dict(
                   lpips_vgg16=sum(p.numel() for p in lpips.parameters()) / 1e6,
                   disc_backbones_2x_clip_b32=sum(p.numel() for d in discs.values()
                                                   for p in d.backbone.parameters()) / 1e6),
               compute_sec=time.perf_counter() - t0, **tracker.report())
    return row


# ------------------------------------------------------------------------------------------------------ inference


def inference(height: int, width: int, batch: int, tiny: bool = False) -> dict:
    """Peak live bytes of one batch through the Translator's path: uint8 frames -> float -> bf16 generator (the
    merged inference model `engine/sd.py` with both directions' VAEs, all weights bf16, as `Translator` casts
    them) under inference_mode -> uint8 frames."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from turbo_cli.engine.sd import MergedGenerator

    unet_cfg, vae_cfg, _, text_dim = _shapes(tiny)
    alpha_bar = _alphas_cumprod()[999]  # real numbers, before fake mode
    t0 = time.perf_counter()
    with FakeTensorMode() as mode, fake_friendly_module_to():
        del mode
        gen = MergedGenerator(dict(unet_cfg), dict(vae_cfg), alpha_bar=alpha_bar, r=1.0,
                              directions=["a2b", "b2a"])
        gen.requires_grad_(False).to(torch.bfloat16).eval()
        tracker = LiveBytes()
        tracker.track_module(gen)
        emb = torch.randn(1, 77, text_dim, dtype=torch.bfloat16)
        tracker.add(emb, "data")
        with tracker, torch.inference_mode():
            with tracker.labelled("data"):
                frames = torch.zeros(batch, height, width, 3, dtype=torch.uint8)
            x = frames.permute(0, 3, 1, 2).contiguous().to(torch.float32) / 255
            out = gen((x * 2 - 1).to(torch.bfloat16), emb, direction="a2b")
            out = ((out.float() * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            del out
        n = sum(p.numel() for p in gen.parameters())
    return dict(what="inference", size=f"{width}x{height}", batch=batch, precision="bf16", tiny=tiny,
                generator_params_m=n / 1e6, compute_sec=time.perf_counter() - t0, **tracker.report())


# --------------------------------------------------------------------------------------------------------- main


def run_all(tiny: bool = False, train_size: int = 256, infer: list[tuple[int, int, int]] | None = None,
            fp32: bool = False) -> list[dict]:
    rows = []
    configs = [(True, False), (True, True)] + ([(False, False), (False, True)] if fp32 else [])
    for bf16, gc in configs:
        rows.append(train_step(train_size, bf16=bf16, gradient_checkpointing=gc, tiny=tiny))
    for h, w, b in infer if infer is not None else [(512, 512, 8), (1080, 1920, 1)]:
        rows.append(inference(h, w, b, tiny=tiny))
    return rows


def print_table(rows: list[dict]) -> None:
    tiny = rows[0]["tiny"]
    print(f"\nturbo memory, computed on the CPU (FakeTensorMode + live storage bytes) — CycleGAN-turbo, "
          f"{'tiny' if tiny else 'full SD-Turbo'} shapes, torch {torch.__version__}")
    short = {"frozen weights": "frozen", "trained weights": "trained", "data": "data", "forward activations": "fwd act",
             "backward": "bwd", "gradients": "grads", "optimizer state": "AdamW"}
    head = f"{'what':>10} {'size':>9} {'batch':>5} {'prec':>4} {'ckpt':>4} {'peak GiB':>9} {'phase at peak':>13}"
    print(head + "".join(f" {v:>8}" for v in short.values()))
    for r in rows:
        ckpt = ("on" if r["gradient_checkpointing"] else "off") if "gradient_checkpointing" in r else "-"
        line = (f"{r['what'][:10]:>10} {r['size']:>9} {r['batch']:>5} {r['precision']:>4} {ckpt:>4} "
                f"{r['peak_gib']:9.2f} {r['peak_phase'] or '-':>13}")
        print(line + "".join(f" {r['at_peak_gib'][k]:8.2f}" for k in short))
    print("(columns after the phase: GiB alive at the peak, by what made them)")


def main(argv: list[str] | None = None) -> list[dict]:
    from turbo_cli.atomic import write_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (a smoke test of this program)")
    ap.add_argument("--size", type=int, default=256, help="training image size (square)")
    ap.add_argument("--fp32", action="store_true", help="also fp32 training (mixed_precision = no)")
    ap.add_argument("--json", type=Path, help="default: benchmarks/results/memory_fake[_tiny].json")
    args = ap.parse_args(argv)
    infer = [(64, 64, 8), (72, 128, 1)] if args.tiny else None
    rows = run_all(args.tiny, args.size, infer, args.fp32)
    print_table(rows)
    out = args.json or Path(__file__).parent / "results" / f"memory_fake{'_tiny' if args.tiny else ''}.json"
    write_text(out, json.dumps(dict(method="FakeTensorMode + live storage bytes (benchmarks/fake_memory.py)",
                                    torch=torch.__version__, rows=rows), indent=2) + "\n")
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
