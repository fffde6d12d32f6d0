"""What a training run shows of itself on the test split: the grid of translations saved every `[eval] every` steps
and the `turbo eval` folder metrics of the translated test images (the eval package's names: fid, kid,
dino_struct, ...), with the metric networks loaded once per run."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from turbo_cli.atomic import write_text
from turbo_cli.errors import ConfigError
from turbo_cli.eval.names import FOLDER_METRICS, select_metrics
from turbo_cli.io.images import image_grid, read_image, write_image_atomic
from turbo_cli.train import checkpoints as ckpt


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) * 0.5 + 0.5) * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def save_grid(rows: list[list[torch.Tensor]], path: Path) -> np.ndarray:
    """Rows of (1, 3, H, W) images in [-1, 1] -> one PNG grid (every cell at the first cell's size); returns it."""
    grid = image_grid([[to_uint8(t[0]) for t in row] for row in rows], pad=2, background=255)
    write_image_atomic(path, grid)
    return grid


def write_references(val_set, root: Path, limit: int = -1) -> dict[str, Path]:
    """The test split after the val prep as PNGs, the original's T_val(test_A) and T_val(test_B) (paired: the
    conditions and the targets), written once per run under `root`: the inputs and references of the validation
    metrics. `limit`: images per domain (-1: all). Returns {"A": folder, "B": folder}."""
    from turbo_cli.atomic import write_text

    if not (root / ".complete").is_file():
        if val_set.paired:
            count = len(val_set.a) if limit < 0 else min(limit, len(val_set.a))
            for i in range(count):
                item, name = val_set[i], Path(val_set.a.files[i].name).with_suffix(".png")
                write_image_atomic(root / "A" / name, to_uint8(item["condition"] * 2 - 1))
                write_image_atomic(root / "B" / name, to_uint8(item["target"]))
        else:
            for tag, domain in (("A", val_set.a), ("B", val_set.b)):
                for i in range(len(domain) if limit < 0 else min(limit, len(domain))):
                    name = Path(domain.files[i].name).with_suffix(".png")
                    write_image_atomic(root / tag / name, to_uint8(val_set._load(domain, i)))
        write_text(root / ".complete", "")
    return {"A": root / "A", "B": root / "B"}


@dataclass
class MetricValues:
    values: dict[str, float] = field(default_factory=dict)  # metric name -> value, for the ones that ran
    unavailable: dict[str, str] = field(default_factory=dict)  # metric name -> why it could not run (one line)


class ValidationMetrics:
    """`[eval] metrics` of a folder of translated test images: against the folder of reference images of the
    target domain and the folder of the inputs (both the test split after the val prep, as the original's
    T_val(test_*); the trainer writes them once per run)."""

    def __init__(self, metrics: list[str], dataset: Path, device: torch.device, backbones=None):
        """`backbones`: the eval networks (`turbo_cli.eval.networks.Backbones`); None loads them on first use."""
        self.metrics = select_metrics(metrics, FOLDER_METRICS, option="[eval] metrics", error=ConfigError)
        self.dataset = Path(dataset)
        self.device = device
        self.backbones = backbones

    def __call__(self, outputs: Path, sources: Path, reference: Path) -> MetricValues:
        from turbo_cli.eval.folder_eval import evaluate_folders
        from turbo_cli.eval.networks import load_backbones

        if self.backbones is None:
            self.backbones = load_backbones(set(self.metrics), device=str(self.device))
        report = evaluate_folders(sources, outputs, reference, backbones=self.backbones, metrics=set(self.metrics))
        found = MetricValues()
        for m in report.metrics:
            name = str(m.key)  # the vocabulary's name: the training log's key
            if m.ok and m.value is not None:
                found.values[name] = float(m.value)
            else:
                found.unavailable[name] = m.reason or "unavailable"
        return found


class Validator:
    """A training run's validation, as the original validates: the grid of `eval.num_images` test images and the
    numbers — CycleGAN both directions on T_val(test_*), pix2pix L2/LPIPS/CLIP-sim against the target, plus the
    [eval] metrics — to TensorBoard, `val/step_N/metrics.json` and the checkpoint's `val_metrics.json`."""

    def __init__(self, trainer):
        self.trainer = trainer  # its generator, nets, data, accelerator and output folder

    def run(self, step: int) -> Path | None:
        """Translate the first `eval.num_images` test images into a grid PNG (and the metrics when asked)."""
        t = self.trainer
        if t.val_set is None or not t.main:
            return None
        t.gen.eval()
        rows = []
        with t.accelerator.autocast():
            for i in range(min(t.recipe.eval.num_images, len(t.val_set))):
                item = t.val_set[i]
                if t.paired:  # condition | G(c) | target
                    c = item["condition"][None].to(t.device)
                    out = t.gen(c, t.prompts(item["caption"]).to(t.device))
                    rows.append([c * 2 - 1, out, item["target"][None].to(t.device)])
                else:  # input | translation | back again, for a and for b
                    a, b = item["a"][None].to(t.device), item["b"][None].to(t.device)
                    fake_b, fake_a = t.translate(a, "a2b"), t.translate(b, "b2a")
                    rows.append([a, fake_b, t.translate(fake_b, "b2a")])
                    rows.append([b, fake_a, t.translate(fake_a, "a2b")])
        t.gen.train()
        path = t.out / "val" / f"step_{step:06d}.png"
        grid = save_grid(rows, path)
        for tracker in t.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"val/grid": grid[None]}, step, dataformats="NHWC")
            else:
                tracker.log_images({"val/grid": [grid]}, step)
        if t.validation_metrics is not None or t.paired:
            self.measure(step)
        return path

    def measure(self, step: int) -> None:
        """Validation as the original: CycleGAN both directions (a2b on T_val(test_A) against T_val(test_B), b2a
        the other way) with the [eval] metrics; pix2pix L2, LPIPS and CLIP-sim of G(c) against its target (and the
        [eval] metrics against T_val(test_B)). TensorBoard gets val/<direction>/<metric>, and val/step_N/
        metrics.json (copied into the step's checkpoint folder) the same numbers."""
        t = self.trainer
        out_dir = t.out / "val" / f"step_{step:06d}"
        refs = write_references(t.val_set, t.out / "val" / "reference", t.recipe.eval.metric_images)
        values: dict[str, float] = {}
        t.gen.eval()
        with torch.no_grad(), t.accelerator.autocast():
            if t.paired:
                sums = {"l2": 0.0, "lpips": 0.0, "clipsim": 0.0}
                names = [Path(f.name).with_suffix(".png") for f in t.val_set.a.files]
                names = names[:len(list(refs["A"].glob("*.png")))]  # [eval] metric_images
                for i, name in enumerate(names):
                    item = t.val_set[i]
                    y = item["target"][None].to(t.device)
                    out = t.gen(item["condition"][None].to(t.device),
                                   t.prompts(item["caption"]).to(t.device))
                    write_image_atomic(out_dir / "a2b" / name, to_uint8(out[0]))
                    sums["l2"] += torch.mean((out.float() - y.float()) ** 2).item()
                    sums["lpips"] += t.nets.lpips(out, y).item()
                    if t.nets.clipsim is not None:  # CLIP similarity = 1 - the CLIP-sim loss (the original's)
                        sums["clipsim"] += 1.0 - t.nets.clipsim(out, [item["caption"]]).item()
                if t.nets.clipsim is None:
                    del sums["clipsim"]
                values.update({f"a2b/{k}": v / max(1, len(names)) for k, v in sums.items()})
                directions = [("a2b", "A", "B")]
            else:
                directions = [("a2b", "A", "B"), ("b2a", "B", "A")]
                for direction, src, _ in directions:
                    for path in sorted(refs[src].glob("*.png")):
                        x = torch.from_numpy(read_image(path).rgb.copy()).permute(2, 0, 1).float() / 127.5 - 1
                        out = t.translate(x[None].to(t.device), direction)
                        write_image_atomic(out_dir / direction / path.name, to_uint8(out[0]))
        t.gen.train()
        if t.validation_metrics is not None:
            for direction, src, ref in directions:
                found = t.validation_metrics(out_dir / direction, refs[src], refs[ref])
                values.update({f"{direction}/{k}": v for k, v in found.values.items()})
                for name, reason in found.unavailable.items():
                    if name not in t._warned:
                        t._warned.add(name)
                        t.progress.notice(f"validation metric {name} unavailable: {reason}")
        t.accelerator.log({f"val/{k}": v for k, v in values.items()}, step=step)
        t._append_log({"step": step, "val": values})
        record = json.dumps({"step": step, "val": values}, indent=1)
        write_text(out_dir / "metrics.json", record)
        ckpt_dir = ckpt.step_dir(t.out, step)
        if ckpt_dir.is_dir():
            shutil.copyfile(out_dir / "metrics.json", ckpt_dir / "val_metrics.json")

