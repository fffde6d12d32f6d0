"""Device and dtype choice, the one home for both: `auto` means CUDA when present, else the CPU."""

from __future__ import annotations

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
