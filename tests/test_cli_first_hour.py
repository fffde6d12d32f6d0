"""Issue #15, "a new user's first hour", through the CLI: video inputs and file outputs of `turbo translate`,
bracketed file names printed literally, the demo model's size and direction words, `--threads`, `--version`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from turbo_cli.cli.main import app
from turbo_cli.engine.registry import DEMO_IMAGE_PREP

runner = CliRunner(env={"COLUMNS": "400"})  # wide: rich must not wrap the long tmp paths the tests look for


def _rgb(seed: int, w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def run(*args):
    return runner.invoke(app, [*map(str, args)])


def one_line(result) -> str:
    """The error line (rich may wrap long lines: join them back)."""
    return " ".join(result.output.split())


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fail the test if a model gets loaded: refusals must come first."""
    from turbo_cli.jobs import loading

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loading, "build_translator", boom)


@pytest.fixture()
def model_sizes(monkeypatch):
    """Record the (H, W) each model batch runs at and the torch thread count while it runs."""
    from turbo_cli.engine import translator as T

    seen = {"sizes": [], "threads": []}
    real = T.Translator._launch  # where every batch starts, in translate_prepared and in the jobs' pipelined

    def spy(self, frames):
        seen["sizes"].append(tuple(frames.shape[1:3]))
        seen["threads"].append(torch.get_num_threads())
        return real(self, frames)

    monkeypatch.setattr(T.Translator, "_launch", spy)
    return seen


# ---------------------------------------------------------------------------------------------- item 3: videos


def test_a_video_input_points_to_turbo_video(tmp_path, no_model_load):
    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"\0" * 64)
    result = run("translate", clip, tmp_path / "out", "--model", "demo")
    assert result.exit_code == 2, result.output
    assert "is a video" in result.output and "turbo video" in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one message (rich may wrap it)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- item 8: file outputs


def test_one_image_to_a_file_writes_that_file_in_its_suffix_format(tmp_path, tiny_cyclegan):
    Image.fromarray(_rgb(1, 40, 24)).save(tmp_path / "in.png")
    result = run("translate", tmp_path / "in.png", tmp_path / "night.jpg", "--model", tiny_cyclegan)
    assert result.exit_code == 0, result.output
    out = tmp_path / "night.jpg"
    assert out.is_file()  # a file, not a folder named night.jpg
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (40, 24)
    # into a subfolder that does not exist yet, another format
    result = run("translate", tmp_path / "in.png", tmp_path / "new" / "night.webp", "--model", tiny_cyclegan)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "new" / "night.webp") as im:
        assert im.format == "WEBP"
    # a name without an image suffix is still a folder, as before
    assert run("translate", tmp_path / "in.png", tmp_path / "outdir", "--model", tiny_cyclegan).exit_code == 0
    assert (tmp_path / "outdir" / "in.png").is_file()


@pytest.mark.parametrize("make_input, expect", [
    (lambda d: d, "is a folder"),
    (lambda d: str(d / "*.png"), "is a glob pattern"),
])
def test_many_images_into_a_file_is_refused_before_loading(tmp_path, no_model_load, make_input, expect):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_rgb(i, 16, 16)).save(src / f"{i}.png")
    existing = tmp_path / "existing.jpg"
    Image.fromarray(_rgb(9, 16, 16)).save(existing)
    before = existing.read_bytes()
    result = run("translate", make_input(src), existing, "--model", "demo")
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert f"{existing}: names an image file" in line and expect in line and "give an output folder" in line
    assert existing.read_bytes() == before  # nothing lost


@pytest.mark.parametrize("args, message", [
    (["--format", "png"], "--format png disagrees with"),
])
def test_file_output_conflicts_are_one_line(tmp_path, no_model_load, args, message):
    Image.fromarray(_rgb(1, 16, 16)).save(tmp_path / "in.png")
    result = run("translate", tmp_path / "in.png", tmp_path / "out.jpg", "--model", "demo", *args)
    assert result.exit_code == 2 and message in one_line(result), result.output
    result = run("translate", tmp_path / "in.png", tmp_path / "in.png", "--model", "demo")
    assert result.exit_code == 2 and "is the input itself" in one_line(result), result.output
    result = run("translate", tmp_path / "in.png", tmp_path / "out.mp4", "--model", "demo")
    assert result.exit_code == 2 and "names a video" in one_line(result), result.output
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.jpg").exists()


# ------------------------------------------------------------------------------- item 5: brackets stay literal


def test_bracketed_names_are_printed_literally(tmp_path, tiny_cyclegan):
    src = tmp_path / "in [set 1]"
    src.mkdir()
    Image.fromarray(_rgb(1, 32, 32)).save(src / "good [v2].png")
    (src / "bad [copy].jpg").write_text("not an image")
    out = tmp_path / "out [red]"
    result = run("translate", src, out, "--model", tiny_cyclegan)
    assert result.exit_code == 1, result.output
    text = result.output.replace("\n", "")
    assert "bad [copy].jpg" in text and "bad .jpg" not in text
    assert "out [red]" in text  # the summary's output row
    assert (out / "good [v2].png").is_file()


def test_data_and_convert_print_bracketed_paths_literally(tmp_path, tiny_cyclegan):
    data = tmp_path / "data [b]"
    result = run("data", "synth", data, "--size", "16", "--n-train", "1", "--n-test", "1", "--no-clip")
    assert result.exit_code == 0, result.output
    assert "data [b]" in result.output.replace("\n", "")
    result = run("data", "synth", data, "--size", "16", "--n-train", "1", "--n-test", "1", "--no-clip")
    assert result.exit_code == 0 and "data [b]" in result.output.replace("\n", "")  # the "already there" line
    target = tmp_path / "model [v1].safetensors"
    result = run("convert", tiny_cyclegan, target)
    assert result.exit_code == 0, result.output
    assert "model [v1].safetensors" in result.output.replace("\n", "") and target.is_file()


def test_rich_progress_keeps_brackets(tmp_path):
    from rich.console import Console

    from turbo_cli.cli.ui import RichProgress, note, print_summary_table

    out = Console(file=open(tmp_path / "log.txt", "w"), width=200, force_terminal=False)
    with RichProgress(out).bar(2, "img", "reading [bold]x[/bold].png") as bar:
        bar.advance(2)
    RichProgress(out).notice("skipped [copy].png")
    out.file.close()
    text = (tmp_path / "log.txt").read_text()
    assert "reading [bold]x[/bold].png" in text and "skipped [copy].png" in text


# ----------------------------------------------------------------------------- item 9 / 14: the demo model


def test_demo_model_runs_at_its_own_size_unless_told(tmp_path, model_sizes):
    Image.fromarray(_rgb(3, 320, 240)).save(tmp_path / "photo.png")
    result = run("translate", tmp_path / "photo.png", tmp_path / "night.png", "--model", "demo")
    assert result.exit_code == 0, result.output
    w, h = (int(v) for v in DEMO_IMAGE_PREP.removeprefix("resize_").split("x"))
    assert model_sizes["sizes"] == [(h, w)]
    with Image.open(tmp_path / "night.png") as im:
        assert im.size == (320, 240)  # resized back to the input's size
    result = run("translate", tmp_path / "photo.png", tmp_path / "full.png", "--model", "demo",
                 "--image-prep", "no_resize")
    assert result.exit_code == 0, result.output
    assert model_sizes["sizes"][-1] == (240, 320)


def test_demo_model_takes_direction_words(tmp_path):
    Image.fromarray(_rgb(4, 32, 32)).save(tmp_path / "x.png")
    outs = {}
    for tag, direction in (("night", "night"), ("a2b", "a2b"), ("day", "day"), ("b2a", "b2a")):
        result = run("translate", tmp_path / "x.png", tmp_path / f"{tag}.png", "--model", "demo", "-d", direction)
        assert result.exit_code == 0, result.output
        outs[tag] = np.asarray(Image.open(tmp_path / f"{tag}.png"), np.int16)
    assert np.array_equal(outs["night"], outs["a2b"]) and np.array_equal(outs["day"], outs["b2a"])
    assert np.abs(outs["night"] - outs["day"]).mean() > 1
    result = run("translate", tmp_path / "x.png", tmp_path / "r.png", "--model", "demo", "-d", "rainy")
    assert result.exit_code == 2 and "demo model knows night (a2b) and day (b2a)" in one_line(result)


# ---------------------------------------------------------------------------------------- item 13: threads


def test_threads_option_sets_torch_threads_for_the_run_only(tmp_path, tiny_cyclegan, model_sizes, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    Image.fromarray(_rgb(5, 32, 32)).save(tmp_path / "x.png")
    before = torch.get_num_threads()
    result = run("translate", tmp_path / "x.png", tmp_path / "a", "--model", tiny_cyclegan, "--threads", "1")
    assert result.exit_code == 0, result.output
    assert model_sizes["threads"] == [1]
    # default: the CPUs this process may use (here: pretend the affinity mask holds 3 of them)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    result = run("translate", tmp_path / "x.png", tmp_path / "b", "--model", tiny_cyclegan)
    assert result.exit_code == 0, result.output
    assert model_sizes["threads"][-1] == 3
    assert torch.get_num_threads() == before and "OMP_NUM_THREADS" not in os.environ  # restored afterwards
    assert run("translate", tmp_path / "x.png", tmp_path / "c", "--threads", "0").exit_code == 2


def test_default_threads_rule(monkeypatch):
    from turbo_cli import device

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for k in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "TURBO_OMP_NUM_THREADS"):
        monkeypatch.delenv(k, raising=False)
    assert device.default_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four processes launched on this machine share the CPUs
    assert device.default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting wins
    assert device.default_threads() == 3
    monkeypatch.setenv("TURBO_OMP_NUM_THREADS", "3")  # ... but not one turbo wrote in a parent process
    assert device.default_threads() == 2


@pytest.mark.parametrize("verb", ["translate", "video", "train", "eval", "demo"])
def test_every_verb_has_threads(verb):
    result = run(verb, "--help")
    assert result.exit_code == 0 and "--threads" in result.output, verb


# ------------------------------------------------------------------------------------------ item 14: small


def test_version():
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"turbo {version('turbo_cli')}"
    assert version("turbo_cli")[0].isdigit()


def test_translate_help_has_examples():
    text = run("translate", "--help").output
    assert "turbo translate photo.jpg night.jpg --model demo" in text
    assert "turbo video" in text
