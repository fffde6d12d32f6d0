"""The training loop: CycleGAN-turbo (unpaired) and pix2pix-turbo (paired, optionally stochastic) on accelerate.

One optimizer step of the unpaired model is the original's sequence, each phase with its own G or D step:
    1. cycle     G_b2a(G_a2b(a)) ~ a and G_a2b(G_b2a(b)) ~ b               -> step G
    2. GAN for G D_b(G_a2b(a)) and D_a(G_b2a(b)) should say "real"         -> step G
    3. identity  G_a2b(b) ~ b and G_b2a(a) ~ a                             -> step G
    4. D on the fakes of phase 2 (detached), then D on real a and b        -> step D, step D
(D_a judges domain-A images, D_b domain-B images.) The paired step: reconstruction -> step G; GAN for G -> step
G; D on real targets -> step D; D on fakes -> step D.

Run state lives in OUTPUT/checkpoints/step_NNNNNN/: `model.safetensors` (turbo's format: `turbo translate --model
...` loads it), `training_state.pt` (optimizers, schedulers, discriminator heads, RNG) and the resolved
`recipe.toml`. A directory appears only complete (written as a temp dir, then renamed). Resuming rebuilds the
same data order and per-step random streams from (seed, step), so 2 + resume + 2 steps equal 4 straight steps.

Multi-process (`accelerate launch -m turbo_cli train ...`): every process reads its own samples, gradients are
averaged across processes after each phase, and only the main process writes files.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import math
import os
import random
import shutil
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from turbo_cli.config import save_config, to_dict
from turbo_cli.errors import ConfigError, InputError, TurboError
from turbo_cli.train import data as datasets
from turbo_cli.train.losses import l1, l2
from turbo_cli.train.recipe import Recipe

log = logging.getLogger("turbo.train")

CKPT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"
RECIPE_FILE = "recipe.toml"
LOG_FILE = "train_log.jsonl"
STATE_VERSION = 1


class TrainingDiverged(TurboError):
    """A loss or gradient became NaN/inf."""

    exit_code = 5


@dataclass
class TrainResult:
    step: int  # optimizer steps done (the run's global step)
    output_dir: Path
    checkpoint: Path | None  # the newest complete checkpoint folder
    history: list[dict] = field(default_factory=list)  # per-step losses of this invocation (main process)
    skipped_images: int = 0
    interrupted: bool = False


StepFn = Callable[[int, int, dict], None]  # (step done, max_steps, losses)
MessageFn = Callable[[str], None]


# ----------------------------------------------------------------------------- checkpoints on disk


def step_dir(out: Path, step: int) -> Path:
    return out / CKPT_DIR / f"step_{step:06d}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (step, folder), oldest first. Temp folders (".step_...") never count."""
    root = Path(out) / CKPT_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit() and (p / STATE_FILE).is_file():
                found.append((int(p.name[5:]), p))
    return sorted(found)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state["python"]))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _step_seed(seed: int, step: int, rank: int, tag: int = 0) -> int:
    """A seed for one step's random stream (DiffAugment, stochastic r and noise): resumable by construction."""
    return int(np.random.SeedSequence([seed, step, rank, tag]).generate_state(1)[0])


# ----------------------------------------------------------------------------- trainer


class Trainer:
    def __init__(self, recipe: Recipe, *, resume: bool = False, on_step: StepFn | None = None,
                 on_message: MessageFn | None = None, base=None, disc_backbone: torch.nn.Module | None = None):
        """`base` (a BaseModel) and `disc_backbone` (a CLIPVisionModelWithProjection) replace loading them from the
        recipe's sources: for measurements on random full-size models (turbo_cli.train.memory)."""
        self.recipe = recipe
        self._given_base, self._given_disc = base, disc_backbone
        self.resume_required = resume
        self.on_step = on_step
        self.say = on_message or (lambda text: log.info(text))
        self.out = Path(recipe.train.output_dir)
        self._stop_requested = False
        self.start_step: int | None = None

    # ---- setup ------------------------------------------------------------------------------------------------
    def _setup_accelerator(self) -> None:
        from accelerate import PartialState
        from accelerate.utils import set_seed

        # accelerate's process state: device, rank and world size, whether launched by `accelerate launch` or not.
        # Mixed precision is our own autocast (below): accelerate's is a process-wide singleton that a second run in
        # the same process could not change.
        # cpu=True on a machine without CUDA, so a torchrun / `accelerate launch --multi_gpu` world there uses gloo.
        self.acc = PartialState(cpu=not torch.cuda.is_available())
        mp = self.recipe.train.mixed_precision
        self.device = self.acc.device
        if mp == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("[train] mixed_precision = \"bf16\": this GPU does not support bf16; use \"no\"")
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.main = self.acc.is_main_process
        # The same seed on every process: identical initial weights (LoRA init, D heads) everywhere.
        set_seed(self.recipe.train.seed)
        # Frozen weights in bf16 halve their memory; trained weights (LoRA, conv_in, skips, heads) stay fp32.
        self.frozen_dtype = torch.bfloat16 if mp == "bf16" else torch.float32

    def autocast(self):
        """bf16 autocast for forward passes when [train] mixed_precision = "bf16" (fp32 master weights)."""
        enabled = self.recipe.train.mixed_precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _cast_frozen(self, module: torch.nn.Module) -> None:
        """Frozen weights to the frozen dtype; weights that checkpoints store (skip convs, conv_in) stay fp32."""
        if self.frozen_dtype == torch.float32:
            return
        from turbo_cli.engine.lora import is_adapter as is_adapter_key

        for name, p in module.named_parameters():
            if not p.requires_grad and not is_adapter_key(name):
                p.data = p.data.to(self.frozen_dtype)

    def _build(self) -> None:
        from turbo_cli.engine.base import PromptEncoder, load_base, quiet_libraries
        from turbo_cli.engine.generator import build_cyclegan, build_pix2pix
        from turbo_cli.train.discriminator import VisionAidedDiscriminator
        from turbo_cli.train.losses import LPIPS, ClipSimilarityLoss

        quiet_libraries()
        r, m, L = self.recipe, self.recipe.model, self.recipe.loss
        if r.data.dataset is None:
            raise ConfigError("[data] dataset is not set (the dataset folder)")
        self.paired = r.paired
        self.stochastic = m.kind == "paired_stochastic"

        # data first: a wrong folder should fail before minutes of model loading
        self.train_set = datasets.build_dataset(r.data.dataset, self.paired, "train", r.data.train_prep, r.train.seed)
        self.captions = None if self.paired else datasets.unpaired_captions(r.data.dataset, m.caption_a, m.caption_b)
        self.val_set = None
        if r.eval.every > 0:
            self.val_set = datasets.build_dataset(r.data.dataset, self.paired, "test", r.data.val_prep, r.train.seed)

        base = self._given_base or load_base(m.base_model)
        self.base_source = m.base_model
        if Path(m.base_model).expanduser().exists():
            self.base_source = str(Path(m.base_model).expanduser().resolve())  # checkpoints work from anywhere
        if self.paired:
            self.gen = build_pix2pix(base, m.rank_unet, m.rank_vae, twin_conv=self.stochastic)
        else:
            self.gen = build_cyclegan(base, m.rank_unet, m.rank_vae)
        self.g_params = self._select_trainable()
        self.prompts = PromptEncoder(base.tokenizer, base.text_encoder)
        if m.gradient_checkpointing:
            self.gen.unet.enable_gradient_checkpointing()
            for vae in self.gen.vaes():
                vae.enable_gradient_checkpointing()

        self.lpips = LPIPS(L.lpips_net, random_backbone=L.lpips_random)
        self.clipsim = None
        if self.paired and L.lambda_clipsim > 0:
            self.clipsim = ClipSimilarityLoss.from_pretrained(L.clip_model)
        self.discs: dict[str, VisionAidedDiscriminator] = {}
        if L.lambda_gan > 0:
            names = ["b"] if self.paired else ["a", "b"]  # paired: one D on targets (domain B)
            for name in names:
                if self._given_disc is not None:
                    self.discs[name] = VisionAidedDiscriminator(copy.deepcopy(self._given_disc), diffaug=L.diffaug)
                else:
                    self.discs[name] = VisionAidedDiscriminator.from_pretrained(L.disc_backbone, diffaug=L.diffaug)
        self.d_params = [p for d in self.discs.values() for p in d.heads()]

        for mod in [self.gen, base.text_encoder, self.lpips, self.clipsim, *self.discs.values()]:
            if mod is not None:
                self._cast_frozen(mod)
                mod.to(self.device)
        self.text_encoder = base.text_encoder
        if self.captions is not None:
            self.emb_a = self.prompts(self.captions.a).to(self.device)
            self.emb_b = self.prompts(self.captions.b).to(self.device)
            # Unpaired training only ever needs these two embeddings: free the text encoder's GPU memory (1.4 GB).
            base.text_encoder.to("cpu")

        o = r.optim
        kw = dict(lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
        self.opt_g = torch.optim.AdamW(self.g_params, **kw)
        self.opt_d = torch.optim.AdamW(self.d_params, **kw) if self.d_params else None
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, self._lr_lambda)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, self._lr_lambda) if self.opt_d else None

    def _lr_lambda(self, step: int) -> float:
        o = self.recipe.optim
        if o.lr_scheduler == "constant_with_warmup" and o.warmup_steps > 0:
            return min(1.0, (step + 1) / o.warmup_steps)
        return 1.0

    def _select_trainable(self) -> list[torch.nn.Parameter]:
        """What trains: the original's choices per family (`engine.lora.is_trained`, docs/design.md)."""
        return self.gen.set_trainable(self.recipe.model.train_all)

    # ---- resume -----------------------------------------------------------------------------------------------
    def _maybe_resume(self) -> int:
        ckpts = list_checkpoints(self.out)
        if not ckpts:
            if self.resume_required:
                raise InputError(f"--resume: no checkpoint in {self.out / CKPT_DIR} to resume from")
            return 0
        step, folder = ckpts[-1]
        self._check_compatible(folder)
        from safetensors.torch import load_file

        from turbo_cli.engine.checkpoint import load_into

        load_into(self.gen, load_file(str(folder / MODEL_FILE)), str(folder / MODEL_FILE))
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        if state.get("version") != STATE_VERSION:
            raise InputError(f"{folder / STATE_FILE}: unknown training-state version {state.get('version')}")
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_d.load_state_dict(state["sched_d"])
        for name, d in self.discs.items():
            d.load_head_state_dict({k: v.to(self.device) for k, v in state["discs"][name].items()})
        _set_rng_state(state["rng"])
        self.say(f"resuming from {folder} (step {step})")
        return step

    def _check_compatible(self, folder: Path) -> None:
        """The saved run must have the same model; other differences (max_steps, lr, ...) are allowed."""
        from turbo_cli.train.recipe import load_recipe

        saved = load_recipe(folder / RECIPE_FILE)
        now = to_dict(self.recipe.model)
        before = to_dict(saved.model)
        for key in now:
            if now[key] != before[key] and key != "gradient_checkpointing":
                raise ConfigError(f"{folder / RECIPE_FILE}: [model] {key} was {before[key]!r}, the recipe now says "
                                  f"{now[key]!r}; resume with the same model or use another --output")
        changed = [f"[{sec}] {k}" for sec, vals in to_dict(self.recipe).items() if isinstance(vals, dict)
                   for k, v in vals.items() if to_dict(saved).get(sec, {}).get(k) != v and sec != "model"]
        if changed:
            self.say(f"resuming with changed settings: {', '.join(changed)}")

    # ---- saving -----------------------------------------------------------------------------------------------
    def _model_info(self, step: int):
        from turbo_cli.engine.checkpoint import ModelInfo

        r = self.recipe
        extra = {"step": step, "recipe": r.name, "trained_with": "turbo train", "processes": self.world}
        if self.paired:
            return ModelInfo("pix2pix", self.gen.spec, self.base_source, name=r.name, image_prep=r.data.val_prep,
                             input_range="0,1", stochastic=self.stochastic,
                             gamma=1.0 if not self.stochastic else 0.4, extra=extra)
        return ModelInfo("cyclegan", self.gen.spec, self.base_source, name=r.name, image_prep=r.data.val_prep,
                         captions={"a2b": self.captions.b, "b2a": self.captions.a}, direction="a2b",
                         directions=["a2b", "b2a"], input_range="-1,1", extra=extra)

    def _check_in_sync(self, step: int) -> None:
        """Every process must hold the same weights (same init, averaged grads); a cheap checksum proves it."""
        if self.world == 1:
            return
        total = torch.stack([p.detach().double().sum() for p in self.g_params + self.d_params]).sum()
        lo, hi = total.clone(), total.clone()
        torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        if not torch.isclose(lo, hi, rtol=1e-9, atol=1e-9):
            raise TurboError(f"step {step}: the {self.world} processes hold different weights ({lo.item()} vs "
                             f"{hi.item()}); this is a bug in turbo's multi-process training")

    def save_checkpoint(self, step: int) -> Path | None:
        """Write step_NNNNNN/ atomically (main process); a failure leaves earlier checkpoints untouched."""
        self._check_in_sync(step)
        target = step_dir(self.out, step)
        if self.main and not target.exists():
            from turbo_cli.engine.checkpoint import save_turbo

            tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
            try:
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir(parents=True)
                save_turbo(self.gen, self._model_info(step), tmp / MODEL_FILE)
                state = {
                    "version": STATE_VERSION,
                    "step": step,
                    "opt_g": self.opt_g.state_dict(),
                    "sched_g": self.sched_g.state_dict(),
                    "opt_d": self.opt_d.state_dict() if self.opt_d else None,
                    "sched_d": self.sched_d.state_dict() if self.sched_d else None,
                    "discs": {n: {k: v.detach().cpu() for k, v in d.head_state_dict().items()}
                              for n, d in self.discs.items()},
                    "rng": _rng_state(),
                }
                torch.save(state, tmp / STATE_FILE)
                save_config(self.recipe, tmp / RECIPE_FILE)
                os.replace(tmp, target)
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                prev = list_checkpoints(self.out)
                keep = f"; the previous checkpoint {prev[-1][1]} is intact" if prev else ""
                why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
                raise TurboError(f"{target}: could not write the checkpoint at step {step} ({why}){keep}") from None
            for _, old in list_checkpoints(self.out)[:-self.recipe.train.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        self._barrier()
        return target

    # ---- distributed helpers ----------------------------------------------------------------------------------
    def _barrier(self) -> None:
        if self.world > 1:
            self.acc.wait_for_everyone()

    def _sync_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average gradients over processes (one flat all-reduce); a parameter unused on a rank counts as 0."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
            offset += n

    def _mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return dict(zip(keys, (t / self.world).tolist()))

    def _any_rank(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t)
        return bool(t.item() > 0)

    # ---- one optimizer step of a phase ------------------------------------------------------------------------
    def _opt_step(self, step: int, phase: str, opt, params, logs: dict, keys: list[str]) -> None:
        """Average grads over ranks, check the phase's losses and grads are finite, clip, step, clear grads."""
        self._sync_grads(params)
        synced = self._mean_over_ranks({k: logs[k] for k in keys})
        logs.update(synced)
        bad = [k for k in keys if not math.isfinite(logs[k])]
        if bad:
            self._diverged(step, f"{bad[0]} loss is {logs[bad[0]]}")
        clip = self.recipe.optim.grad_clip
        if clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            norm = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        if not torch.isfinite(norm):
            self._diverged(step, f"the {phase} gradient norm is {norm.item()}")
        opt.step()
        opt.zero_grad(set_to_none=True)

    def _diverged(self, step: int, what: str) -> None:
        prev = list_checkpoints(self.out)
        keep = f"; the last good checkpoint is {prev[-1][1]}" if prev else "; no checkpoint was written yet"
        raise TrainingDiverged(f"step {step + 1}: {what}, training stopped{keep}")

    def _zero_d(self) -> None:
        for p in self.d_params:
            p.grad = None

    # ---- the unpaired step ------------------------------------------------------------------------------------
    def _G(self, x, direction):
        emb = self.emb_b if direction == "a2b" else self.emb_a  # a2b makes B images: condition on B's caption
        return self.gen(x, emb, direction=direction)

    def _unpaired_step(self, step: int, micro: list[dict]) -> dict:
        L, n = self.recipe.loss, len(micro)
        logs: dict[str, float] = defaultdict(float)
        ac = self.autocast

        def backward(loss, key):
            logs[key] += loss.item() / n
            (loss / n).backward()

        # 1. cycle: L1 + LPIPS between x and G_back(G_fwd(x)); each direction backwarded alone (half the memory)
        for mb in micro:
            for x, fwd, back in ((mb["a"], "a2b", "b2a"), (mb["b"], "b2a", "a2b")):
                with ac():
                    rec = self._G(self._G(x, fwd), back)
                    # lambda_cycle * |rec - x|_1 + cycle_lpips * LPIPS(rec, x)
                    loss = L.lambda_cycle * l1(rec, x) + L.cycle_lpips * self.lpips(rec, x)
                backward(loss, "cycle")
        self._opt_step(step, "cycle", self.opt_g, self.g_params, logs, ["cycle"])

        # 2. GAN for G: D_b(G_a2b(a)) and D_a(G_b2a(b)) should say real; keep the fakes for the D phase
        fakes = []
        if self.discs:
            for mb in micro:
                pair = {}
                for x, fwd, judge in ((mb["a"], "a2b", "b"), (mb["b"], "b2a", "a")):
                    with ac():
                        fake = self._G(x, fwd)
                        # lambda_gan * sum_levels BCE(D(fake), 1)
                        loss = L.lambda_gan * self.discs[judge].loss(fake, real=True)
                    backward(loss, "gan_g")
                    pair[judge] = fake.detach()
                fakes.append(pair)
            self._opt_step(step, "GAN (G)", self.opt_g, self.g_params, logs, ["gan_g"])
            self._zero_d()  # D's heads got gradients from G's loss: not D's objective

        # 3. identity: G_a2b(b) ~ b and G_b2a(a) ~ a
        if L.lambda_idt > 0 or L.idt_lpips > 0:
            for mb in micro:
                for x, fwd in ((mb["b"], "a2b"), (mb["a"], "b2a")):
                    with ac():
                        same = self._G(x, fwd)
                        # lambda_idt * |G(x) - x|_1 + idt_lpips * LPIPS(G(x), x)
                        loss = L.lambda_idt * l1(same, x) + L.idt_lpips * self.lpips(same, x)
                    backward(loss, "idt")
            self._opt_step(step, "identity", self.opt_g, self.g_params, logs, ["idt"])

        # 4. D: fakes (target 0) then reals (target 1), each 0.5 * lambda_gan * (D_a + D_b)
        if self.discs:
            for mb, pair in zip(micro, fakes):
                with ac():
                    loss = 0.5 * L.lambda_gan * (self.discs["b"].loss(pair["b"], real=False)
                                                 + self.discs["a"].loss(pair["a"], real=False))
                backward(loss, "d_fake")
            self._opt_step(step, "D fake", self.opt_d, self.d_params, logs, ["d_fake"])
            for mb in micro:
                with ac():
                    loss = 0.5 * L.lambda_gan * (self.discs["b"].loss(mb["b"], real=True)
                                                 + self.discs["a"].loss(mb["a"], real=True))
                backward(loss, "d_real")
            self._opt_step(step, "D real", self.opt_d, self.d_params, logs, ["d_real"])
        return dict(logs)

    # ---- the paired step --------------------------------------------------------------------------------------
    def _paired_step(self, step: int, micro: list[dict]) -> dict:
        L, n = self.recipe.loss, len(micro)
        logs: dict[str, float] = defaultdict(float)
        ac = self.autocast
        lo, hi = self.recipe.train.r_range

        # per micro-batch: caption embeddings, and for the stochastic model r and the noise (seeded by the step)
        extras = []
        for k, mb in enumerate(micro):
            emb = self.prompts(mb["caption"]).to(self.device)
            r, noise = 1.0, None
            if self.stochastic:
                g = torch.Generator().manual_seed(_step_seed(self.recipe.train.seed, step, self.rank, 100 + k))
                r = lo + (hi - lo) * float(torch.rand((), generator=g))
                c = mb["condition"]
                noise = torch.randn((c.shape[0], 4, c.shape[2] // 8, c.shape[3] // 8), generator=g).to(self.device)
            extras.append((emb, r, noise))

        def G(mb, ex):
            emb, r, noise = ex
            if self.stochastic:
                self.gen.set_strength(r)
            return self.gen(mb["condition"], emb, noise=noise)

        def backward(loss, key):
            logs[key] += loss.item() / n
            (loss / n).backward()

        # 1. reconstruction: lambda_l2 * MSE + lambda_lpips * LPIPS + lambda_clipsim * (1 - cos(CLIP(G(c)), caption))
        for mb, ex in zip(micro, extras):
            with ac():
                pred = G(mb, ex)
                loss = L.lambda_l2 * l2(pred, mb["target"]) + L.lambda_lpips * self.lpips(pred, mb["target"])
                if self.clipsim is not None:
                    clip_loss = self.clipsim(pred, mb["caption"])
                    logs["clipsim"] += clip_loss.item() / n
                    loss = loss + L.lambda_clipsim * clip_loss
            backward(loss, "rec")
        self._opt_step(step, "reconstruction", self.opt_g, self.g_params, logs, ["rec"])

        if self.discs:
            disc = self.discs["b"]
            # 2. GAN for G (the original runs G again after the first update)
            fakes = []
            for mb, ex in zip(micro, extras):
                with ac():
                    pred = G(mb, ex)
                    loss = L.lambda_gan * disc.loss(pred, real=True)  # lambda_gan * sum_levels BCE(D(G(c)), 1)
                backward(loss, "gan_g")
                fakes.append(pred.detach())
            self._opt_step(step, "GAN (G)", self.opt_g, self.g_params, logs, ["gan_g"])
            self._zero_d()
            # 3. D on real targets (1), then on the fakes (0)
            for mb in micro:
                with ac():
                    loss = L.lambda_gan * disc.loss(mb["target"], real=True)
                backward(loss, "d_real")
            self._opt_step(step, "D real", self.opt_d, self.d_params, logs, ["d_real"])
            for fake in fakes:
                with ac():
                    loss = L.lambda_gan * disc.loss(fake, real=False)
                backward(loss, "d_fake")
            self._opt_step(step, "D fake", self.opt_d, self.d_params, logs, ["d_fake"])
        if self.stochastic:
            self.gen.set_strength(1.0)
        return dict(logs)

    # ---- validation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, step: int) -> Path | None:
        """Translate the first `eval.num_images` test images; save a grid PNG (and metrics when asked)."""
        if self.val_set is None or not self.main:
            return None
        self.gen.eval()
        rows = []
        count = min(self.recipe.eval.num_images, len(self.val_set))
        with self.autocast():
            for i in range(count):
                item = self.val_set[i]
                if self.paired:
                    c = item["condition"][None].to(self.device)
                    out = self.gen(c, self.prompts(item["caption"]).to(self.device))
                    rows.append([c * 2 - 1, out, item["target"][None].to(self.device)])
                else:
                    a, b = item["a"][None].to(self.device), item["b"][None].to(self.device)
                    fake_b = self._G(a, "a2b")
                    fake_a = self._G(b, "b2a")
                    rows.append([a, fake_b, self._G(fake_b, "b2a")])
                    rows.append([b, fake_a, self._G(fake_a, "a2b")])
        self.gen.train()
        grid = _grid(rows)
        path = self.out / "val" / f"step_{step:06d}.png"
        _save_png(grid, path)
        if self.tb is not None:
            self.tb.add_image("val/grid", grid, step, dataformats="HWC")
        if self.recipe.eval.metrics:
            self._metrics(step)
        return path

    def _metrics(self, step: int) -> None:
        """`turbo eval` metrics of a2b (unpaired) / G(c) (paired) on the test split against the B test images."""
        try:
            from turbo_cli.eval.api import ALL_METRICS, METRIC_ALIASES, evaluate_folders
            from turbo_cli.eval.backbones import load_backbones, tiny_backbones
        except ImportError as e:  # the eval package is optional for training
            self.say(f"validation metrics skipped: {e}")
            return
        wanted = {METRIC_ALIASES.get(m, m) for m in self.recipe.eval.metrics}
        unknown = wanted - set(ALL_METRICS)
        if unknown:
            raise ConfigError(f"[eval] metrics: unknown metric {sorted(unknown)[0]!r}")
        if not hasattr(self, "_eval_backbones"):
            self._eval_backbones = (tiny_backbones(wanted) if self.recipe.eval.tiny_backbones
                                    else load_backbones(wanted, device=str(self.device)))
        src_dir, ref_dir = datasets.split_dirs(self.recipe.data.dataset, "test")
        out_dir = self.out / "val" / f"step_{step:06d}"
        limit = self.recipe.eval.metric_images
        count = len(self.val_set.a)  # the A test images (paired: the conditions)
        self.gen.eval()
        with self.autocast():
            for i in range(count if limit < 0 else min(limit, count)):
                if self.paired:
                    item = self.val_set[i]
                    out = self.gen(item["condition"][None].to(self.device),
                                   self.prompts(item["caption"]).to(self.device))
                    name = self.val_set.a.files[i].name
                else:
                    out = self._G(self.val_set[i]["a"][None].to(self.device), "a2b")
                    name = self.val_set.a.files[i].name
                _save_png(_to_uint8(out[0]), out_dir / Path(name).with_suffix(".png"))
        self.gen.train()
        report = evaluate_folders(src_dir, out_dir, ref_dir, backbones=self._eval_backbones, metrics=wanted)
        values = {}
        for m in report.metrics:
            if m.ok and m.value is not None:
                values[m.key] = m.value
                if self.tb is not None:
                    self.tb.add_scalar(f"val/{m.key}", m.value, step)
            elif not getattr(self, "_warned_" + m.key, False):
                setattr(self, "_warned_" + m.key, True)
                self.say(f"validation metric {m.key} unavailable: {m.reason}")
        self._append_log({"step": step, "val": values})

    # ---- logging ----------------------------------------------------------------------------------------------
    def _open_logs(self) -> None:
        self.tb = None
        self.wandb = None
        if not self.main:
            return
        if self.recipe.log.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"))
        if self.recipe.log.wandb:
            try:
                import wandb
            except ImportError:
                raise ConfigError("[log] wandb = true needs the wandb package (pip install wandb)") from None
            self.wandb = wandb.init(project=self.recipe.log.wandb_project, name=self.recipe.name,
                                    config=to_dict(self.recipe), dir=str(self.out))

    def _append_log(self, record: dict) -> None:
        if not self.main:
            return
        with open(self.out / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _log_step(self, step: int, logs: dict) -> None:
        if not self.main:
            return
        lr = self.sched_g.get_last_lr()[0]
        record = {"step": step, "lr": lr, **logs}
        self._append_log(record)
        if self.tb is not None:
            for k, v in logs.items():
                self.tb.add_scalar(f"loss/{k}", v, step)
            self.tb.add_scalar("lr", lr, step)
        if self.wandb is not None:
            self.wandb.log(record, step=step)

    # ---- Ctrl-C -----------------------------------------------------------------------------------------------
    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self.say("Ctrl-C: saving a checkpoint after this step (press again to abort without saving)")

        return signal.signal(signal.SIGINT, handler)

    # ---- the run ----------------------------------------------------------------------------------------------
    def setup(self) -> int:
        """Build everything and load the newest checkpoint of the output folder; returns the step to start at."""
        if getattr(self, "start_step", None) is None:
            self._setup_accelerator()
            self._build()
            self.start_step = self._maybe_resume()
        return self.start_step

    def run(self) -> TrainResult:
        r = self.recipe
        start = self.setup()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(r, self.out / RECIPE_FILE)
        self._barrier()
        self._open_logs()
        result = TrainResult(step=start, output_dir=self.out, checkpoint=None)
        if list_checkpoints(self.out):
            result.checkpoint = list_checkpoints(self.out)[-1][1]
        if start >= r.train.max_steps:
            self.say(f"nothing to do: the run is at step {start} of {r.train.max_steps}")
            return result

        sampler = datasets.StepBatches(start, r.train.max_steps, r.train.batch_size, r.optim.grad_accumulation,
                                       self.world, self.rank)
        loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=sampler, collate_fn=datasets.collate,
                                             num_workers=r.data.num_workers,
                                             persistent_workers=False, pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        old_handler = self._install_sigint()
        self.gen.train()
        for d in self.discs.values():
            d.train()
        step = start
        try:
            while step < r.train.max_steps:
                micro = []
                for _ in range(r.optim.grad_accumulation):
                    mb = next(batches)
                    micro.append({k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                                  for k, v in mb.items()})
                # DiffAugment and any other torch randomness of this step: a stream that depends only on the step
                torch.manual_seed(_step_seed(r.train.seed, step, self.rank))
                t0 = time.perf_counter()
                logs = self._paired_step(step, micro) if self.paired else self._unpaired_step(step, micro)
                self.sched_g.step()
                if self.sched_d is not None:
                    self.sched_d.step()
                step += 1
                result.step = step
                logs["sec"] = time.perf_counter() - t0
                if self.main:
                    result.history.append({"step": step, **logs})
                if step % r.log.every == 0 or step == r.train.max_steps:
                    self._log_step(step, logs)
                if self.on_step is not None:
                    self.on_step(step, r.train.max_steps, logs)
                stop = self._any_rank(self._stop_requested)
                if step % r.train.checkpoint_every == 0 or step == r.train.max_steps or stop:
                    result.checkpoint = self.save_checkpoint(step)
                if r.eval.every > 0 and (step % r.eval.every == 0 or step == r.train.max_steps):
                    self.validate(step)
                if stop:
                    result.interrupted = True
                    self.say(f"stopped at step {step}; checkpoint {result.checkpoint}; run the same command to resume")
                    break
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            if self.tb is not None:
                self.tb.close()
            if self.wandb is not None:
                self.wandb.finish()
        result.skipped_images = self.train_set.num_bad  # counted here with num_workers = 0 (workers warn themselves)
        if result.skipped_images:
            self.say(f"{result.skipped_images} unreadable training image(s) were skipped")
        if result.interrupted:
            raise KeyboardInterrupt
        return result


# ----------------------------------------------------------------------------- images


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def _grid(rows: list[list[torch.Tensor]], pad: int = 2) -> np.ndarray:
    """Rows of (1, 3, H, W) images in [-1, 1] -> one uint8 HWC grid; every cell resized to the first cell's size."""
    h, w = rows[0][0].shape[-2:]
    cells = [[F.interpolate(t.float(), size=(h, w), mode="area") if t.shape[-2:] != (h, w) else t.float()
              for t in row] for row in rows]
    ncol = max(len(r) for r in cells)
    grid = torch.ones(3, len(cells) * (h + pad) + pad, ncol * (w + pad) + pad)
    for i, row in enumerate(cells):
        for j, t in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[:, y:y + h, x:x + w] = t[0].cpu().clamp(-1, 1)
    return _to_uint8(grid)


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    from turbo_cli.atomic import atomic_path

    with atomic_path(path, suffix=".png.tmp") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def train(recipe: Recipe, *, resume: bool = False, on_step: StepFn | None = None,
          on_message: MessageFn | None = None) -> TrainResult:
    """Train from a resolved recipe. Re-running into an output folder with checkpoints resumes from the newest."""
    return Trainer(recipe, resume=resume, on_step=on_step, on_message=on_message).run()
