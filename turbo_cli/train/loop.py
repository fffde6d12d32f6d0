"""The training run: builds CycleGAN-turbo (unpaired) or pix2pix-turbo (paired, optionally stochastic) from a
recipe, then runs the objectives of train/objectives.py step after step on an `accelerate.Accelerator`, with
checkpoints (train/checkpoints.py), validation (train/validation.py), logs and Ctrl-C handling.

accelerate provides: the processes and devices, DDP gradient averaging (`prepare`), bf16 autocast, gradient
accumulation (`accumulate`, `backward`), the numbers logged across processes (`reduce`, `gather`), the optimizer /
scheduler / RNG / discriminator-head state of checkpoints (`save_state`, `load_state`) and the TensorBoard / W&B
trackers. turbo keeps its own data order: sample numbers are a pure function of (seed, step, process), and each
step's random stream (DiffAugment, the stochastic model's r and noise) is seeded by the step, so a run interrupted
and resumed equals a straight run, bit for bit.

Multi-process: `accelerate launch -m turbo_cli train RECIPE`; every process reads its own samples and only the main
process writes files.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from turbo_cli.config import save_config, to_dict
from turbo_cli.errors import ConfigError, InputError, TurboError
from turbo_cli.progress import QUIET, Progress
from turbo_cli.train import checkpoints as ckpt
from turbo_cli.train import data as datasets
from turbo_cli.train.build import build_networks
from turbo_cli.train.objectives import CycleGanNets, Pix2PixNets, cyclegan_step, pix2pix_step
from turbo_cli.train.phases import AcceleratePhases, Optimized
from turbo_cli.train.pretrained import check_weights_offline
from turbo_cli.train.recipe import Recipe
from turbo_cli.train.validation import ValidationMetrics, Validator


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
    main_process: bool = True  # False in the other processes of a multi-process run (they report nothing)


StepFn = Callable[[int, int, dict], None]  # (steps done, max_steps, this step's losses and "sec")


def _step_seed(seed: int, step: int, rank: int, tag: int = 0) -> int:
    """A seed for one step's random stream (DiffAugment, stochastic r and noise): resumable by construction."""
    return int(np.random.SeedSequence([seed, step, rank, tag]).generate_state(1)[0])


class Trainer:
    def __init__(self, recipe: Recipe, *, resume: bool = False, on_step: StepFn | None = None,
                 progress: Progress = QUIET, base=None, disc_backbone: torch.nn.Module | None = None,
                 eval_backbones=None):
        """`progress` shows the step count and notices (main process only). `base` (a BaseModel),
        `disc_backbone` (a CLIPVisionModelWithProjection) and `eval_backbones` (turbo_cli.eval.networks.Backbones)
        replace loading them from the recipe's sources: random full-size models for benchmarks/memory.py, tiny
        ones in the tests."""
        self.recipe = recipe
        self._given_base, self._given_disc, self._given_eval = base, disc_backbone, eval_backbones
        self.resume_required = resume
        self.on_step = on_step
        self._progress = progress
        self.progress = QUIET  # until the accelerator says whether this is the main process
        self.out = Path(recipe.train.output_dir)
        self._stop_requested = False
        self._warned: set[str] = set()  # unavailable validation metrics already reported
        self.start_step: int | None = None

    # ---- setup ------------------------------------------------------------------------------------------------
    def _start_accelerator(self) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        r = self.recipe
        mp = r.train.mixed_precision
        if mp == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise ConfigError("[train] mixed_precision = \"bf16\": this GPU does not support bf16; use \"no\"")
        # accelerate keeps one process-wide state that a second Accelerator cannot change (its mixed precision,
        # its accumulation count); a second run in the same process (the tests, benchmarks/memory.py) starts it
        # afresh. The process group (PartialState) is kept.
        AcceleratorState._reset_state()
        GradientState._reset_state()
        self.accelerator = Accelerator(
            mixed_precision=mp,
            gradient_accumulation_steps=r.optim.grad_accumulation,
            step_scheduler_with_optimizer=False,  # one LR step per optimizer step, whatever the process count
            log_with=self._trackers() or None,
            # G runs one direction at a time, so a backward pass leaves the other direction's VAE unused; the
            # buffers are constants or (spectral norm's u) evolve identically everywhere from identical weights
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True, broadcast_buffers=False)],
            # a world without CUDA (torchrun / `accelerate launch --multi_gpu` on CPUs) then uses gloo
            cpu=not torch.cuda.is_available(),
        )
        acc = self.accelerator
        self.device = acc.device
        self.rank, self.world, self.main = acc.process_index, acc.num_processes, acc.is_main_process
        self.progress = self._progress if self.main else QUIET
        # The same seed on every process: identical initial weights (LoRA init, D heads) everywhere.
        set_seed(r.train.seed)

    def _trackers(self) -> list:
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        log_cfg, trackers = self.recipe.log, []
        if log_cfg.tensorboard:
            trackers.append(TensorBoardTracker("tb", self.out))  # event files in OUTPUT/tb
        if log_cfg.wandb:
            if importlib.util.find_spec("wandb") is None:
                raise ConfigError("[log] wandb = true needs the wandb package (pip install wandb)")
            trackers.append(WandBTracker(log_cfg.wandb_project, name=self.recipe.name, config=to_dict(self.recipe),
                                         dir=str(self.out)))
        return trackers

    def _build(self) -> None:
        r, m = self.recipe, self.recipe.model
        if r.data.dataset is None:
            raise ConfigError("[data] dataset is not set (the dataset folder)")
        self.paired = r.paired
        self.stochastic = m.kind == "paired_stochastic"
        # data first: a wrong folder should fail before minutes of model loading
        self.train_set = datasets.build_dataset(r.data.dataset, self.paired, "train", r.data.train_prep, r.train.seed)
        captions = None if self.paired else datasets.unpaired_captions(r.data.dataset, m.caption_a, m.caption_b)
        self.val_set = None
        if r.eval.every > 0:
            self.val_set = datasets.build_dataset(r.data.dataset, self.paired, "test", r.data.val_prep, r.train.seed)
        self.validation_metrics = None
        if r.eval.metrics and r.eval.every > 0:
            self.validation_metrics = ValidationMetrics(r.eval.metrics, r.data.dataset, self.device, self._given_eval)

        frozen_dtype = torch.bfloat16 if r.train.mixed_precision == "bf16" else torch.float32
        nets = build_networks(r, self.device, frozen_dtype, captions, base=self._given_base,
                              disc_backbone=self._given_disc)
        self.nets = nets
        self.gen, self.g_params, self.prompts, self.discs, self.d_params = (nets.gen, nets.g_params, nets.prompts,
                                                                           nets.discs, nets.d_params)

        o = r.optim
        kw = dict(lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
        self.opt_g = torch.optim.AdamW(self.g_params, **kw)
        self.opt_d = torch.optim.AdamW(self.d_params, **kw) if self.d_params else None
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, self._lr_lambda)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, self._lr_lambda) if self.opt_d else None

    def _prepare(self) -> None:
        """Hand the networks and optimizers to accelerate (DDP, autocast, accumulation, checkpoint state)."""
        acc = self.accelerator
        names = list(self.discs)
        objects = [self.gen, *self.discs.values(), self.opt_g, self.sched_g]
        if self.opt_d is not None:
            objects += [self.opt_d, self.sched_d]
        prepared = acc.prepare(*objects)
        # self.gen / self.discs stay the raw modules (saving, validation); these are what the steps call
        self.g_forward = prepared[0]
        self.judges = dict(zip(names, prepared[1:1 + len(names)]))
        rest = prepared[1 + len(names):]
        self.opt_g, self.sched_g = rest[0], rest[1]
        if self.opt_d is not None:
            self.opt_d, self.sched_d = rest[2], rest[3]
        self.prepared_models = [self.g_forward, *self.judges.values()]
        # checkpoints: turbo's model.safetensors holds the generator, the heads object the discriminators; so
        # save_state writes no model weights (a whole SD-Turbo per checkpoint) and load_state reads none
        acc.register_for_checkpointing(ckpt.DiscriminatorHeads(self.discs))
        acc.register_save_state_pre_hook(lambda models, weights, folder: weights.clear())
        acc.register_load_state_pre_hook(lambda models, folder: models.clear())

    def _lr_lambda(self, step: int) -> float:
        o = self.recipe.optim
        if o.lr_scheduler == "constant_with_warmup" and o.warmup_steps > 0:
            return min(1.0, (step + 1) / o.warmup_steps)
        return 1.0

    # ---- resume -----------------------------------------------------------------------------------------------
    def _maybe_resume(self) -> int:
        found = ckpt.list_checkpoints(self.out)
        if not found:
            return 0
        step, folder = found[-1]
        changed = ckpt.check_resumable(folder, self.recipe)
        if changed:
            self.progress.notice(f"resuming with changed settings: {', '.join(changed)}")
        from safetensors.torch import load_file

        from turbo_cli.engine.checkpoint import load_into

        load_into(self.gen, load_file(str(folder / ckpt.MODEL_FILE)), str(folder / ckpt.MODEL_FILE))
        ckpt.read_checkpoint(self.accelerator, folder)
        self.progress.notice(f"resuming from {folder} (step {step})")
        return step

    # ---- saving -----------------------------------------------------------------------------------------------
    def _model_info(self, step: int):
        from turbo_cli.engine.checkpoint import ModelInfo
        from turbo_cli.engine.families import Kind

        r = self.recipe
        extra = {"step": step, "recipe": r.name, "trained_with": "turbo train", "processes": self.world}
        if self.paired:
            # trained on the dataset's own conditions: inputs are used as they are (no sketch/canny preprocessing)
            return ModelInfo.for_family(Kind.PIX2PIX, self.gen.spec, self.nets.base_source,
                                        stochastic=self.stochastic, name=r.name, image_prep=r.data.inference_prep(),
                                        preprocess="none", extra=extra)
        captions = {"a2b": self.nets.captions.b, "b2a": self.nets.captions.a}
        return ModelInfo.for_family(Kind.CYCLEGAN, self.gen.spec, self.nets.base_source, name=r.name,
                                    image_prep=r.data.inference_prep(), captions=captions, extra=extra)

    def _check_in_sync(self, step: int) -> None:
        """Every process must hold the same weights (same init, averaged grads); a cheap checksum proves it."""
        if self.world == 1:
            return
        total = torch.stack([p.detach().double().sum() for p in self.g_params + self.d_params]).sum()
        sums = self.accelerator.gather(total[None])
        lo, hi = sums.min(), sums.max()
        if not torch.isclose(lo, hi, rtol=1e-9, atol=1e-9):
            raise TurboError(f"step {step}: the {self.world} processes hold different weights ({lo.item()} vs "
                             f"{hi.item()}); this is a bug in turbo's multi-process training")

    def save_checkpoint(self, step: int) -> Path:
        """Write step_NNNNNN/ (all processes take part); a failure leaves earlier checkpoints untouched."""
        from turbo_cli.engine import checkpoint as engine_checkpoint

        self._check_in_sync(step)
        target = ckpt.step_dir(self.out, step)

        def write_model(folder: Path) -> None:
            engine_checkpoint.save_turbo(self.gen, self._model_info(step), folder / ckpt.MODEL_FILE)
            save_config(self.recipe, folder / ckpt.RECIPE_FILE)

        try:
            ckpt.write_checkpoint(self.accelerator, target, write_model)
        except OSError as e:
            prev = ckpt.list_checkpoints(self.out)
            keep = f"; the previous checkpoint {prev[-1][1]} is intact" if prev else ""
            why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise TurboError(f"{target}: could not write the checkpoint at step {step} ({why}){keep}") from None
        if self.main:
            ckpt.remove_old(self.out, self.recipe.train.keep_last)
        self.accelerator.wait_for_everyone()
        return target

    # ---- one step ---------------------------------------------------------------------------------------------
    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """CycleGAN: G_a2b(x) or G_b2a(x), each conditioned on its target domain's caption."""
        emb = self.nets.emb_b if direction == "a2b" else self.nets.emb_a  # a2b makes B images: B's caption
        return self.gen(x, emb, direction=direction)

    def _train_step(self, step: int, micro: list[dict]) -> dict[str, float]:
        phases = AcceleratePhases(self.accelerator, self.prepared_models, Optimized(self.opt_g, self.g_params),
                                  Optimized(self.opt_d, self.d_params), self.recipe.optim.grad_clip, len(micro),
                                  on_diverged=lambda what: self._diverged(step, what))
        if self.paired:
            self._pix2pix_inputs(step, micro)
            pix2pix_step(phases, Pix2PixNets(self._pix2pix_G, self.judges.get("b"), self.nets.lpips,
                                             self.nets.clipsim, self.recipe.gan_loss), self.recipe.loss, micro)
            if self.stochastic:
                self.gen.set_r(1.0)  # the deterministic model between steps (validation, checkpoints)
        else:
            emb = {"a2b": self.nets.emb_b, "b2a": self.nets.emb_a}  # a2b makes B images: B's caption
            G = self.g_forward
            cyclegan_step(phases, CycleGanNets(lambda x, d: G(x, emb[d], direction=d), self.judges, self.nets.lpips,
                                               self.recipe.gan_loss), self.recipe.loss, micro)
        return dict(phases.logs)

    def _pix2pix_inputs(self, step: int, micro: list[dict]) -> None:
        """Each micro-batch's caption embedding, and for G(c, z, r) its r ~ U(r_range) and noise z, drawn from a
        stream seeded by the step."""
        lo, hi = self.recipe.train.r_range
        for k, mb in enumerate(micro):
            mb["emb"] = self.prompts(mb["caption"]).to(self.device)
            mb["r"], mb["noise"] = 1.0, None
            if self.stochastic:
                g = torch.Generator().manual_seed(_step_seed(self.recipe.train.seed, step, self.rank, 100 + k))
                mb["r"] = lo + (hi - lo) * float(torch.rand((), generator=g))
                c = mb["condition"]
                mb["noise"] = torch.randn((c.shape[0], 4, c.shape[2] // 8, c.shape[3] // 8), generator=g)
                mb["noise"] = mb["noise"].to(self.device)

    def _pix2pix_G(self, mb: dict) -> torch.Tensor:
        if self.stochastic:
            self.gen.set_r(mb["r"])
        return self.g_forward(mb["condition"], mb["emb"], noise=mb["noise"])

    def _diverged(self, step: int, what: str) -> None:
        prev = ckpt.list_checkpoints(self.out)
        keep = f"; the last good checkpoint is {prev[-1][1]}" if prev else "; no checkpoint was written yet"
        raise TrainingDiverged(f"step {step + 1}: {what}, training stopped{keep}")

    # ---- validation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, step: int) -> Path | None:
        """The validation grid of the first `eval.num_images` test images, and the metrics when asked
        (`train/validation.Validator`)."""
        return Validator(self).run(step)

    # ---- logging ----------------------------------------------------------------------------------------------
    def _append_log(self, record: dict) -> None:
        if self.main:
            with open(self.out / ckpt.LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _log_step(self, step: int, logs: dict) -> None:
        lr = self.sched_g.get_last_lr()[0]
        self._append_log({"step": step, "lr": lr, **logs})
        self.accelerator.log({"lr": lr, **{f"loss/{k}": v for k, v in logs.items()}}, step=step)

    # ---- Ctrl-C -----------------------------------------------------------------------------------------------
    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self.progress.notice("Ctrl-C: saving a checkpoint after this step (press again to abort without saving)")

        return signal.signal(signal.SIGINT, handler)

    def _any_process(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor([float(flag)], device=self.device), "sum").item() > 0)

    # ---- the run ----------------------------------------------------------------------------------------------
    def setup(self) -> int:
        """Build everything and load the newest checkpoint of the output folder; returns the step to start at."""
        if self.start_step is None:
            if self.resume_required and not ckpt.list_checkpoints(self.out):  # before minutes of model loading
                raise InputError(f"--resume: no checkpoint in {self.out / ckpt.CKPT_DIR} to resume from")
            # offline: every missing pretrained network in one message, before seconds of setup and loading
            check_weights_offline(self.recipe, base_given=self._given_base is not None,
                                  disc_given=self._given_disc is not None)
            self._start_accelerator()
            self._build()
            self._prepare()
            self.start_step = self._maybe_resume()
        return self.start_step

    def run(self) -> TrainResult:
        r = self.recipe
        start = self.setup()
        acc = self.accelerator
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(r, self.out / ckpt.RECIPE_FILE)
        acc.wait_for_everyone()
        acc.init_trackers(r.name)
        found = ckpt.list_checkpoints(self.out)
        result = TrainResult(step=start, output_dir=self.out, checkpoint=found[-1][1] if found else None,
                             main_process=self.main)
        old_handler = None
        try:
            if start >= r.train.max_steps:
                self.progress.notice(f"nothing to do: the run is at step {start} of {r.train.max_steps}")
                return result
            old_handler = self._install_sigint()
            with self.progress.bar(r.train.max_steps, "step", r.name) as bar:
                bar.update(completed=start)
                self._steps(start, result, bar)
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            acc.end_training()
        result.skipped_images = self.train_set.num_bad  # counted here with num_workers = 0 (workers warn themselves)
        if result.skipped_images:
            self.progress.notice(f"{result.skipped_images} unreadable training image(s) were skipped")
        if result.interrupted:
            raise KeyboardInterrupt
        return result

    def _batches(self, start: int) -> Iterator[dict]:
        r = self.recipe
        # not accelerate's prepared loader: the sample numbers must stay a function of (seed, step, process)
        sampler = datasets.StepBatches(start, r.train.max_steps, r.train.batch_size, r.optim.grad_accumulation,
                                       self.world, self.rank)
        loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=sampler, collate_fn=datasets.collate,
                                             num_workers=r.data.num_workers, persistent_workers=False,
                                             pin_memory=self.device.type == "cuda")
        for mb in loader:
            yield {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in mb.items()}

    def _steps(self, start: int, result: TrainResult, bar) -> None:
        r = self.recipe
        batches = self._batches(start)
        self.gen.train()
        for d in self.discs.values():
            d.train()
        step = start
        while step < r.train.max_steps:
            micro = [next(batches) for _ in range(r.optim.grad_accumulation)]
            # DiffAugment and any other torch randomness of this step: a stream that depends only on the step
            torch.manual_seed(_step_seed(r.train.seed, step, self.rank))
            t0 = time.perf_counter()
            logs = self._train_step(step, micro)
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
            bar.update(completed=step)
            if self.on_step is not None:
                self.on_step(step, r.train.max_steps, logs)
            stop = self._any_process(self._stop_requested)
            if step % r.train.checkpoint_every == 0 or step == r.train.max_steps or stop:
                result.checkpoint = self.save_checkpoint(step)
            if r.eval.every > 0 and (step % r.eval.every == 0 or step == r.train.max_steps):
                self.validate(step)
            if stop:
                result.interrupted = True
                self.progress.notice(f"stopped at step {step}; checkpoint {result.checkpoint}; "
                                     "run the same command to resume")
                return


def train(recipe: Recipe, *, resume: bool = False, on_step: StepFn | None = None,
          progress: Progress = QUIET) -> TrainResult:
    """Train from a resolved recipe. Re-running into an output folder with checkpoints resumes from the newest."""
    return Trainer(recipe, resume=resume, on_step=on_step, progress=progress).run()
