"""What a training run shows of itself on the test split: the grid of translations saved every `[eval] every` steps
and the `turbo eval` folder metrics of the translated test images (the eval package's names: fid, kid,
dino_struct, ...), with the metric networks loaded once per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from turbo_cli.errors import ConfigError
from turbo_cli.eval.names import FOLDER_METRICS, select_metrics
from turbo_cli.io.images import image_grid, write_image_atomic
from turbo_cli.io.datasets import split_dirs


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def save_grid(rows: list[list[torch.Tensor]], path: Path) -> np.ndarray:
    """Rows of (1, 3, H, W) images in [-1, 1] -> one PNG grid (every cell at the first cell's size); returns it."""
    grid = image_grid([[to_uint8(t[0]) for t in row] for row in rows], pad=2, background=255)
    write_image_atomic(path, grid)
    return grid


@dataclass
class MetricValues:
    values: dict[str, float] = field(default_factory=dict)  # metric name -> value, for the ones that ran
    unavailable: dict[str, str] = field(default_factory=dict)  # metric name -> why it could not run (one line)


class ValidationMetrics:
    """`[eval] metrics` of a folder of translated test images against the dataset's test split: the sources are
    the A test images (paired: the conditions), the reference the B test images."""

    def __init__(self, metrics: list[str], dataset: Path, device: torch.device, backbones=None):
        """`backbones`: the eval networks (`turbo_cli.eval.networks.Backbones`); None loads them on first use."""
        self.metrics = select_metrics(metrics, FOLDER_METRICS, option="[eval] metrics", error=ConfigError)
        self.dataset = Path(dataset)
        self.device = device
        self.backbones = backbones

    def __call__(self, outputs: Path) -> MetricValues:
        from turbo_cli.eval.folder_eval import evaluate_folders
        from turbo_cli.eval.networks import load_backbones

        if self.backbones is None:
            self.backbones = load_backbones(set(self.metrics), device=str(self.device))
        sources, reference = split_dirs(self.dataset, "test")
        report = evaluate_folders(sources, outputs, reference, backbones=self.backbones, metrics=set(self.metrics))
        found = MetricValues()
        for m in report.metrics:
            name = str(m.key)  # the vocabulary's name: the training log's key
            if m.ok and m.value is not None:
                found.values[name] = float(m.value)
            else:
                found.unavailable[name] = m.reason or "unavailable"
        return found
