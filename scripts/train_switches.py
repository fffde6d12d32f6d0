"""The training switches of issue #12 measured on short tiny CPU runs: each family, each GAN loss type, the VAE
posterior (sample / mean) and the CLIP-similarity pairs (all_pairs / own_caption). Prints a table and writes
benchmarks/results/train_switches.json; docs/fidelity.md ("Training") quotes it.

    .venv/bin/python scripts/train_switches.py [--steps 30] [--seeds 0 1]

Task metric: unpaired, the a2b colour gap to domain B (|mean(R-B) of G(a) - mean(R-B) of test B|, [-1, 1] units,
lower is better; tests/_train_helpers.SHIFT); paired, the L2 of G(c) to the target on the test split. Tiny random
models (tests/_train_helpers), so the numbers show direction and size of each switch's effect, not image quality.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._train_helpers import RECIPE, make_paired, make_unpaired, tiny_models, tiny_overrides  # noqa: E402

CONFIGS = [
    ("unpaired", {}),  # the original's defaults: multilevel_sigmoid, posterior sample
    ("unpaired", {"loss__gan_loss": "multilevel_sigmoid_s"}),
    ("unpaired", {"model__vae_posterior": "mean"}),
    ("paired", {}),  # the original's defaults: multilevel_sigmoid_s, all_pairs, posterior sample
    ("paired", {"loss__gan_loss": "multilevel_sigmoid"}),
    ("paired", {"loss__clipsim_pairs": "own_caption"}),
    ("paired", {"model__vae_posterior": "mean"}),
]


@torch.no_grad()
def task_metric(trainer, data: Path, paired: bool) -> float:
    from turbo_cli.train.data import PairedDataset, UnpairedDataset

    trainer.gen.eval()
    if paired:
        test = PairedDataset(data, "test", "no_resize")
        errs = []
        for i in range(len(test)):
            item = test[i]
            out = trainer.gen(item["condition"][None], trainer.prompts(item["caption"]))
            errs.append(torch.mean((out - item["target"][None]) ** 2).item())
        value = sum(errs) / len(errs)
    else:
        test = UnpairedDataset(data, "test", "no_resize")
        a = torch.stack([test[i]["a"] for i in range(len(test))])
        b = torch.stack([test[i]["b"] for i in range(len(test))])
        rb = lambda x: (x[:, 0].mean() - x[:, 2].mean()).item()  # noqa: E731
        value = abs(rb(trainer.translate(a, "a2b")) - rb(b))
    trainer.gen.train()
    return value


def run(kind: str, sets: dict, seed: int, steps: int, root: Path, models, data) -> dict:
    from turbo_cli.train.loop import Trainer
    from turbo_cli.train.recipe import load_recipe

    paired = kind == "paired"
    extra = dict(model__kind=kind, train__max_steps=steps, train__checkpoint_every=steps, train__seed=seed, **sets)
    if paired:
        extra.update(loss__lambda_clipsim=5.0, train__batch_size=2)
    out = root / f"{kind}-{'-'.join(f'{v}' for v in sets.values()) or 'default'}-{seed}"
    cfg = load_recipe(RECIPE, tiny_overrides(models, data[kind], out, **extra))
    trainer = Trainer(cfg)
    trainer.setup()
    before = task_metric(trainer, data[kind], paired)
    t0 = time.perf_counter()
    result = trainer.run()
    after = task_metric(trainer, data[kind], paired)
    main_loss = "rec" if paired else "cycle"
    hist = [h[main_loss] for h in result.history]
    return {"kind": kind, "switch": sets or "defaults", "seed": seed, "gan_loss": cfg.gan_loss,
            "metric_before": before, "metric_after": after, f"{main_loss}_first3": sum(hist[:3]) / 3,
            f"{main_loss}_last3": sum(hist[-3:]) / 3,
            "d_real_last3": sum(h["d_real"] for h in result.history[-3:]) / 3,
            "d_fake_last3": sum(h["d_fake"] for h in result.history[-3:]) / 3,
            "gan_g_last3": sum(h["gan_g"] for h in result.history[-3:]) / 3,
            "sec": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "train_switches.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = tiny_models(root / "models")
        data = {"unpaired": make_unpaired(root / "unpaired", n_train=6, n_test=4, size=32, seed=1),
                "paired": make_paired(root / "paired", n_train=6, n_test=4, size=32, seed=1)}
        for kind, sets in CONFIGS:
            for seed in args.seeds:
                row = run(kind, sets, seed, args.steps, root, models, data)
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"steps": args.steps, "seeds": args.seeds, "rows": rows}, indent=1))
    print("\n| family | switch | GAN loss | task metric before -> after (mean of seeds) | main loss first3 -> last3 |")
    print("|---|---|---|---|---|")
    for kind, sets in CONFIGS:
        sel = [r for r in rows if r["kind"] == kind and r["switch"] == (sets or "defaults")]
        m = lambda k: sum(r[k] for r in sel) / len(sel)  # noqa: E731
        key = "rec" if kind == "paired" else "cycle"
        print(f"| {kind} | {sets or 'defaults'} | {sel[0]['gan_loss']} | {m('metric_before'):.4f} -> "
              f"{m('metric_after'):.4f} | {m(key + '_first3'):.4f} -> {m(key + '_last3'):.4f} |")


if __name__ == "__main__":
    main()
