"""The mechanics of a training step's phases on accelerate (`objectives.PhaseRunner`): each micro-batch inside
gradient accumulation, bf16 autocast, the scaled backward, and the checked optimizer step that ends a phase (losses
averaged over processes and finite, gradients clipped and finite)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterator, NoReturn

import torch


@dataclass
class Optimized:
    optimizer: object | None  # the prepared optimizer (None: nothing of this kind trains)
    params: list[torch.nn.Parameter]


class AcceleratePhases:
    def __init__(self, accelerator, models: list[torch.nn.Module], generator: Optimized, discriminators: Optimized,
                 grad_clip: float, n_micro: int, on_diverged: Callable[[str], NoReturn]):
        """`models`: the prepared networks (their DDP gradient averaging waits for a phase's last micro-batch);
        `on_diverged(what)` raises, naming what became NaN/inf."""
        self.acc, self.models = accelerator, models
        self.generator, self.discriminators = generator, discriminators
        self.grad_clip, self.n, self.on_diverged = grad_clip, n_micro, on_diverged
        self.logs: dict[str, float] = defaultdict(float)  # this step's losses, each averaged over micro-batches

    def micro_batches(self, micro: list[dict]) -> Iterator[dict]:
        for mb in micro:
            with self.acc.accumulate(*self.models):
                yield mb

    def autocast(self):
        return self.acc.autocast()

    def backward(self, loss: torch.Tensor, key: str) -> None:
        self.logs[key] += loss.item() / self.n
        self.acc.backward(loss)  # divided by the accumulation count

    def record(self, key: str, value: torch.Tensor) -> None:
        self.logs[key] += value.item() / self.n

    def step_generator(self, phase: str, keys: list[str]) -> None:
        self._step(phase, self.generator, keys)

    def step_discriminators(self, phase: str, keys: list[str]) -> None:
        self._step(phase, self.discriminators, keys)

    def clear_discriminator_grads(self) -> None:
        for p in self.discriminators.params:
            p.grad = None

    def _step(self, phase: str, what: Optimized, keys: list[str]) -> None:
        if self.acc.num_processes > 1:  # every process then checks, and logs, the same numbers
            mean = self.acc.reduce(torch.tensor([self.logs[k] for k in keys], dtype=torch.float64,
                                                device=self.acc.device), "mean")
            self.logs.update(zip(keys, mean.tolist()))
        bad = [k for k in keys if not math.isfinite(self.logs[k])]
        if bad:
            self.on_diverged(f"{bad[0]} loss is {self.logs[bad[0]]}")
        if self.grad_clip > 0:
            norm = self.acc.clip_grad_norm_(what.params, self.grad_clip)
        else:
            norm = torch.norm(torch.stack([p.grad.norm() for p in what.params if p.grad is not None]))
        if not torch.isfinite(norm):
            self.on_diverged(f"the {phase} gradient norm is {norm.item()}")
        what.optimizer.step()
        what.optimizer.zero_grad(set_to_none=True)
