"""The parity evidence in one command: turbo against the original img2img-turbo on the shared fixtures.

    .venv/bin/python scripts/parity.py [--fixtures ../shared/fixtures] [--json parity.json] [--precision]

1. End to end (`fixtures/e2e/`): every case of the original inference SCRIPTS (odd-sized inputs; their resizing,
   Canny, sketch threshold, seeds and defaults) run through `turbo translate` exactly as a user runs it (the CLI's
   own code path, in this process), each output compared per image with the file the script wrote (or, where turbo
   keeps the input's size, that file Lanczos-resized to it). Tolerance: max 3 / mean 0.5 levels per image.
2. The generator (`fixtures/cases/`): each case's model output against the original's, max |diff| in fp32.
3. With --precision: fp16 / bf16 / torch.compile against fp32 on the same e2e inputs (CPU; mean/max levels).

Prints a table per part and writes everything to --json. tests/test_parity_e2e.py runs part 1 through the same
`run_e2e_case`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = (3, 0.5)  # per image: max |diff| and mean |diff| in 8-bit levels (fixtures/e2e/README.md)


@contextmanager
def _in(folder: Path, env: dict[str, str]):
    old_cwd, old_env = Path.cwd(), {k: os.environ.get(k) for k in env}
    os.chdir(folder)
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_turbo(args: list[str]) -> tuple[int, str]:
    """`turbo ARGS` in this process through the CLI's own entry point: (exit code, output)."""
    from typer.testing import CliRunner

    from turbo_cli.cli.main import app

    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def run_e2e_case(case: dict, e2e: Path, work: Path, extra_args: tuple[str, ...] = ()) -> list[dict]:
    """Run one case of e2e/cases.json through `turbo translate`; per image: max/mean |diff| against the
    original's file, the sizes, and whether it is within the tolerance."""
    from turbo_cli.engine.registry import PUBLISHED

    out_dir, cache = work / case["case"], work / "cache"
    env = {"TURBO_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    if case.get("named_model"):  # turbo_setup: the fixture checkpoint stands in for the published file
        target = cache / "checkpoints" / PUBLISHED[case["named_model"]].filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile((e2e / case["checkpoint"]).resolve(), target)
    args = [a.replace("{out_dir}", str(out_dir)) for a in case["turbo_args"]] + list(extra_args)
    with _in(e2e, env):
        code, output = run_turbo(args)
    if code != 0:
        raise RuntimeError(f"{case['case']}: turbo exited {code}: {output.strip().splitlines()[-1:]}")
    rows = []
    for image in case["images"]:
        expected = np.asarray(Image.open(e2e / image["compare_with"]).convert("RGB")).astype(int)
        produced = np.asarray(Image.open(out_dir / Path(image["input"]).name).convert("RGB")).astype(int)
        row = {"case": case["case"], "input": image["input"], "input_size": image["input_size"],
               "size": [produced.shape[1], produced.shape[0]], "expected_size": image["compare_size"]}
        if produced.shape != expected.shape:
            row.update(max=None, mean=None, ok=False)
        else:
            diff = np.abs(produced - expected)
            row.update(max=int(diff.max()), mean=float(diff.mean()),
                       ok=bool(diff.max() <= TOLERANCE[0] and diff.mean() <= TOLERANCE[1]))
        rows.append(row)
    return rows


def e2e_cases(fixtures: Path) -> list[dict]:
    return json.loads((fixtures / "e2e" / "cases.json").read_text())["cases"]


def generator_parity(fixtures: Path) -> list[dict]:
    """Each fixtures/cases/*.pt: turbo's generator output vs the original's, loaded through turbo's loaders."""
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.test_engine_parity import CASES, run_case  # the same code the parity tests run
    from turbo_cli.jobs.loading import load_inference_model, load_model

    rows = []
    for name in CASES:
        case = torch.load(fixtures / "cases" / f"{name}.pt", weights_only=True)
        checkpoint, base = str(fixtures / "checkpoints" / case["checkpoint"]), str(fixtures / "base")
        loaded, prompts = load_model(checkpoint, base)
        out = run_case(loaded.generator, prompts, case)
        row = {"case": name, "max_abs": float((out - case["output"]).abs().max())}
        r = case["r"] if case["deterministic"] is False else None
        merged, _ = load_inference_model(checkpoint, base, r)
        if r is None or merged.info.stochastic:  # the model turbo translate runs (adapters merged in)
            row["merged_max_abs"] = float((run_case(merged.generator, prompts, case) - case["output"]).abs().max())
        rows.append(row)
    return rows


def precision(fixtures: Path, work: Path) -> list[dict]:
    """fp16 / bf16 / compile against fp32 through `turbo translate` on the e2e inputs (per case, all images)."""
    rows = []
    variants = {"bf16": ("--dtype", "bf16"), "fp16": ("--dtype", "fp16"), "compile": ("--compile",)}
    e2e = fixtures / "e2e"
    for case in e2e_cases(fixtures):
        if case["case"] not in ("cyclegan_a2b_default_prep", "pix2pix_rgb_custom_path", "sketch_stochastic_g04_s42"):
            continue
        base = dict(case, turbo_args=[a for a in case["turbo_args"] if a not in ("--dtype", "fp32")])
        ref_dir = work / "fp32"
        run_e2e_case(dict(base, case=f"fp32/{case['case']}"), e2e, work)
        for name, args in variants.items():
            if name == "compile" and not case["case"].startswith("cyclegan"):
                continue  # on a CPU each new shape compiles for minutes: the one-shape (512x512) case shows it
            try:
                run_e2e_case(dict(base, case=f"{name}/{case['case']}"), e2e, work, args)
            except RuntimeError as e:
                rows.append({"case": case["case"], "variant": name, "error": str(e)})
                continue
            diffs = []
            for image in case["images"]:
                a = np.asarray(Image.open(ref_dir / case["case"] / Path(image["input"]).name)).astype(int)
                b = np.asarray(Image.open(work / name / case["case"] / Path(image["input"]).name)).astype(int)
                diffs.append(np.abs(a - b))
            rows.append({"case": case["case"], "variant": name, "max": int(max(d.max() for d in diffs)),
                         "mean": float(np.mean([d.mean() for d in diffs]))})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, default=Path(os.environ.get("TURBO_FIXTURES",
                                                                         ROOT.parent / "shared" / "fixtures")))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "parity.json")
    ap.add_argument("--precision", action="store_true", help="also fp16/bf16/compile vs fp32 (slow on a CPU)")
    args = ap.parse_args()
    if not (args.fixtures / "e2e" / "cases.json").is_file():
        print(f"no fixtures at {args.fixtures} (pass --fixtures or set TURBO_FIXTURES)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = {"device": "cpu", "dtype": "fp32", "tolerance_levels": {"max": TOLERANCE[0], "mean": TOLERANCE[1]}}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for case in e2e_cases(args.fixtures) for r in run_e2e_case(case, args.fixtures / "e2e", Path(tmp))]
        result["e2e"] = rows
        print(f"{'case':32} {'input':24} {'size':>9} {'max':>4} {'mean':>6}  ok")
        for r in rows:
            size = "x".join(map(str, r["size"]))
            print(f"{r['case']:32} {r['input']:24} {size:>9} {r['max']!s:>4} {r['mean'] or 0:6.3f}  "
                  f"{'yes' if r['ok'] else 'NO'}")
        worst = lambda key: max(99 if r[key] is None else r[key] for r in rows)  # noqa: E731 (99: wrong size)
        print(f"end to end: {sum(r['ok'] for r in rows)}/{len(rows)} images within max {TOLERANCE[0]} / mean "
              f"{TOLERANCE[1]} levels; worst max {worst('max')}, worst mean {worst('mean'):.3f}")
        result["generator"] = generator_parity(args.fixtures)
        print(f"generator: {len(result['generator'])} cases, worst max |diff| "
              f"{max(r['max_abs'] for r in result['generator']):.2e} (fp32, peft model), "
              f"{max(r.get('merged_max_abs', 0) for r in result['generator']):.2e} (fp32, merged inference model)")
        if args.precision:
            result["precision"] = precision(args.fixtures, Path(tmp))
            for r in result["precision"]:
                print(f"{r['case']:32} {r['variant']:8} " + (r.get("error") or f"max {r['max']} mean {r['mean']:.3f}"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r["ok"] for r in result["e2e"]) else 1


if __name__ == "__main__":
    sys.exit(main())
