"""Multi-process training on CPU: two processes with the gloo backend, started by `accelerate launch`.

accelerate 1.x starts ONE process for `--cpu --num_processes 2` (multi-CPU needs mpirun there); `--multi_gpu`
on a machine without CUDA starts N processes through torchrun, and turbo then uses gloo on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from tests._train_helpers import RECIPE, make_unpaired, tiny_models, tiny_overrides
from turbo_cli.engine.checkpoint import read_turbo_info
from turbo_cli.train.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[1]


def test_two_cpu_processes_train_two_steps_and_write_one_checkpoint(tmp_path):
    models = tiny_models(tmp_path / "models")
    data = make_unpaired(tmp_path / "data", n_train=4)
    out = tmp_path / "out"
    sets = tiny_overrides(models, data, out, train__max_steps=2, train__checkpoint_every=2)
    launcher = Path(sys.executable).parent / "accelerate"
    cmd = [str(launcher), "launch", "--num_processes", "2", "--num_machines", "1", "--multi_gpu",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "turbo_cli", "train", str(RECIPE)]
    for s in sets:
        cmd += ["--set", s]
    # CPU processes even on a GPU machine (two processes must not share one GPU)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    ckpts = list_checkpoints(out)
    assert [s for s, _ in ckpts] == [2]  # exactly one checkpoint, written once (by the main process)
    folder = ckpts[0][1]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000002"]
    info = read_turbo_info(folder / "model.safetensors")
    assert info.extra["processes"] == 2 and info.extra["step"] == 2
    assert load_file(str(folder / "model.safetensors"))
    # one log line per step: only the main process writes
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
