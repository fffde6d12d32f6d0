"""Spreading inference over processes with accelerate (torch.distributed underneath); no scheduler of our own.

`accelerate launch -m turbo_cli translate ...` starts N processes; each takes the inputs at positions
rank, rank + N, ... of the sorted input list, uses its own device (cuda:LOCAL_RANK) and loads the model once.
`--num-processes N` re-launches the same command line through `accelerate launch` on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from turbo_cli.errors import TurboError
from turbo_cli.progress import QUIET, Progress


@dataclass
class Rank:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_rank() -> Rank:
    """This process's place in a launched run (environment set by accelerate / torchrun), or a single process."""
    return Rank(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def device_for(rank: Rank, device: str) -> str:
    """One GPU per process: 'auto'/'cuda' become cuda:LOCAL_RANK in a multi-process run."""
    if rank.world_size == 1:
        return device
    import torch

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return f"cuda:{rank.local_rank}"
    return device


def gather(obj, rank: Rank) -> list:
    """Every process's `obj`, on every process (a list in rank order)."""
    if rank.world_size == 1:
        return [obj]
    from accelerate import PartialState
    from accelerate.utils import gather_object

    import torch

    PartialState(cpu=not torch.cuda.is_available())  # the process group: nccl on GPUs, gloo on the CPU
    return gather_object([obj])


def relaunch(num_processes: int, verb: str, device: str) -> int:
    """Run this same command line under `accelerate launch` with N processes on this machine; returns its exit code."""
    argv = sys.argv[1:]
    if verb not in argv:
        raise TurboError(f"--num-processes: cannot find the '{verb}' command in the command line to relaunch it")
    args = argv[argv.index(verb):]
    cleaned, skip = [], False
    for arg in args:  # drop --num-processes N / --num-processes=N
        if skip:
            skip = False
            continue
        if arg == "--num-processes":
            skip = True
            continue
        if arg.startswith("--num-processes="):
            continue
        cleaned.append(arg)
    import torch

    env = dict(os.environ)
    if device == "cpu" or not torch.cuda.is_available():
        # accelerate's --cpu starts ONE process unless MPI is set up; --multi_gpu goes through torchrun and, with
        # no visible GPU, each process runs on the CPU with the gloo backend.
        env["CUDA_VISIBLE_DEVICES"] = ""
        # threads per process: each child divides the usable CPUs by LOCAL_WORLD_SIZE (device.default_threads)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(num_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "turbo_cli", *cleaned]
    return subprocess.call(command, env=env)


class OutputMonitor:
    """Rank 0's merged progress bar in a multi-process run: it watches every shard's outputs appear on disk.

    The shards are deterministic, so rank 0 knows every process's outputs; outputs are written atomically, so an
    existing one is complete. No communication between processes is needed.
    """

    def __init__(self, outputs: list[Path], unit: str, description: str, progress: Progress = QUIET):
        self.pending = set(outputs)
        self.stopped = threading.Event()
        self.bar = progress.bar(len(self.pending), unit, description)
        self.thread = threading.Thread(target=self._run, daemon=True, name="turbo-progress")
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(0.5):
            self._scan()

    def _scan(self) -> None:
        done = {p for p in self.pending if p.exists()}
        self.pending -= done
        self.bar.advance(len(done))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._scan()  # outputs written since the last look: the bar closes on the real count
        self.bar.close()


