"""Shared fixtures: a tiny SD-Turbo-shaped base model saved in the SD-Turbo layout, turbo checkpoints on it, and
the img2img-turbo parity fixtures in ../shared/fixtures (skipped with a reason when absent)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network by accident
# turbo's own cache (prompt embeddings, statistics) goes to a fresh folder per test session; the real-weights tests
# still look for downloads where the user keeps them.
USER_TURBO_CACHE = os.environ.get("TURBO_CACHE")
os.environ["TURBO_CACHE"] = tempfile.mkdtemp(prefix="turbo-test-cache-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("TURBO_FIXTURES", REPO.parent / "shared" / "fixtures"))


def _published_weights_cached() -> str | None:
    """None when SD-Turbo and the day_to_night checkpoint are in the local caches, else what is missing."""
    from turbo_cli.engine.registry import PUBLISHED
    from turbo_cli.hub import cache_dir

    missing = []
    saved = os.environ.get("TURBO_CACHE")
    if USER_TURBO_CACHE is None:
        os.environ.pop("TURBO_CACHE")
    else:
        os.environ["TURBO_CACHE"] = USER_TURBO_CACHE
    try:
        checkpoints = cache_dir("checkpoints")
    finally:
        os.environ["TURBO_CACHE"] = saved
    if not (checkpoints / PUBLISHED["day_to_night"].filename).is_file():
        missing.append(f"{PUBLISHED['day_to_night'].filename} in {checkpoints}")
    try:
        from huggingface_hub import snapshot_download

        snapshot_download("stabilityai/sd-turbo", local_files_only=True, allow_patterns=["unet/*"])
    except Exception:
        missing.append("stabilityai/sd-turbo in the Hugging Face cache")
    return ", ".join(missing) or None


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA, `weights` tests the real published weights in the local caches: skip with the reason."""
    if any("gpu" in item.keywords for item in items):
        import torch

        if not torch.cuda.is_available():
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
    if any("weights" in item.keywords for item in items):
        missing = _published_weights_cached()
        if missing:
            for item in items:
                if "weights" in item.keywords:
                    item.add_marker(pytest.mark.skip(reason=f"needs the real weights: {missing}"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core CPU: one intra-op thread avoids OpenMP spin-wait thrashing (often 10x).
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before, before_env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # the CLI sets its threads from this (turbo_cli.device.default_threads)
    yield
    torch.set_num_threads(before)
    if before_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before_env


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
