"""Shared fixtures: a tiny SD-Turbo-shaped base model saved in the SD-Turbo layout, turbo checkpoints on it, and
the img2img-turbo parity fixtures in ../shared/fixtures (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network by accident
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("TURBO_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core CPU: one intra-op thread avoids OpenMP spin-wait thrashing (often 10x).
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not (SHARED_FIXTURES / "cases" / "manifest.json").is_file():
        pytest.skip(f"img2img-turbo parity fixtures not found at {SHARED_FIXTURES} (set TURBO_FIXTURES)")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    from turbo_cli.engine.tiny import build_tiny_base

    return build_tiny_base(tmp_path_factory.mktemp("tiny-base") / "sd-turbo-tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_cyclegan(tiny_base, tmp_path_factory) -> Path:
    from turbo_cli.engine.tiny import make_random_checkpoint

    return make_random_checkpoint(tiny_base, tmp_path_factory.mktemp("ckpt") / "cyclegan.safetensors", "cyclegan")


@pytest.fixture(scope="session")
def tiny_pix2pix(tiny_base, tmp_path_factory) -> Path:
    from turbo_cli.engine.tiny import make_random_checkpoint

    return make_random_checkpoint(tiny_base, tmp_path_factory.mktemp("ckpt") / "pix2pix.safetensors", "pix2pix",
                                  prompt="a red bird")


@pytest.fixture(scope="session")
def tiny_sketch(tiny_base, tmp_path_factory) -> Path:
    from turbo_cli.engine.tiny import make_random_checkpoint

    return make_random_checkpoint(tiny_base, tmp_path_factory.mktemp("ckpt") / "sketch.safetensors",
                                  "pix2pix_stochastic", prompt="a cat")
