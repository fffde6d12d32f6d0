"""Device, dtype and CPU-thread choice, the one home for each: `auto` means CUDA when present, else the CPU;
CPU threads follow the CPUs this process may use (`set_threads`, every verb's `--threads`)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from turbo_cli.errors import InputError

DTYPE_NAMES = ("fp32", "fp16", "bf16")


def pick_device(name: str | None = "auto"):
    """`auto` (or None/"") -> cuda if available else cpu; `cpu`, `cuda`, `cuda:N` as given, checked."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device (auto, cpu, cuda, cuda:N)") from None


def pick_dtype(name: str, device):
    """`auto`: bf16 on CUDA (fp16 where bf16 is missing), fp32 on the CPU (half precision is slower there)."""
    import torch

    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in dtypes:
        raise InputError(f"--dtype {name}: valid values are auto, {', '.join(DTYPE_NAMES)}")
    return dtypes[name]


# ----------------------------------------------------------------------------------------------- CPU threads

# Set beside OMP_NUM_THREADS when turbo (not the user) wrote it, so a relaunched worker process, which inherits
# the environment, can tell turbo's value from a user's explicit one.
_OURS = "TURBO_OMP_NUM_THREADS"


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (a container's cpuset, `taskset`), not the machine's
    core count, which torch uses by default and which oversubscribes a shared or limited CPU."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Intra-op threads when `--threads` is not given: the user's OMP_NUM_THREADS if they set one, else the usable
    CPUs shared out among the processes of a local launch (accelerate sets LOCAL_WORLD_SIZE).

    Why: torch's default counts every core of the machine; OpenMP threads beyond the CPUs we may use spin-wait
    against each other and against other work (training steps measured 1.3-143 s instead of a steady 2 s)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env and env != os.environ.get(_OURS) and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, usable_cpus() // local)


def set_threads(n: int | None = None) -> int:
    """Use `n` CPU threads (None: `default_threads()`) for torch's intra-op pool and OpenMP; returns the count.

    OMP_NUM_THREADS is set too: torch reads it when it is first imported, and child processes (a relaunch under
    accelerate, data-loader workers) inherit it."""
    if n is not None and n < 1:
        raise InputError(f"--threads {n}: must be at least 1")
    n = n or default_threads()
    os.environ["OMP_NUM_THREADS"] = os.environ[_OURS] = str(n)
    if "torch" in sys.modules:  # already loaded (tests, a second call): set it directly; never import it here
        sys.modules["torch"].set_num_threads(n)
    return n


@contextlib.contextmanager
def thread_scope() -> Iterator[None]:
    """Undo `set_threads` calls made inside, so an in-process caller (tests, a notebook) keeps its own setting."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", _OURS)}
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if before is not None:
            torch.set_num_threads(before)
