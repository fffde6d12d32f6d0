"""`turbo translate` end to end on the tiny model: files, sizes, odd images, resume, errors."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from turbo_cli.cli.main import app

runner = CliRunner()


def _rgb(seed: int, w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture()
def photo_folder(tmp_path) -> Path:
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(_rgb(i, 64, 48)).save(src / f"img{i}.png")
    Image.fromarray(_rgb(9, 40, 72)).save(src / "sub" / "tall.jpg", quality=95)
    rgba = np.dstack([_rgb(10, 32, 32), np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "sub" / "alpha.png")
    Image.fromarray(_rgb(11, 48, 48)[:, :, 0], "L").save(src / "sub" / "deeper" / "grey.webp")
    Image.fromarray(_rgb(12, 32, 24)[:, :, 0].astype(np.uint16) * 257).save(src / "sub" / "deep16.png")
    # EXIF orientation 6 (rotate 90° CW to display): stored 64x32, displayed 32x64.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(13, 64, 32)).save(src / "rotated.jpg", exif=exif.tobytes())
    buf = io.BytesIO()
    Image.fromarray(_rgb(14, 64, 64)).save(buf, "PNG")
    (src / "sub" / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (src / "notes.png").write_text("this is not an image")
    return src


def translate(*args):
    return runner.invoke(app, ["translate", *map(str, args)])


def test_folder_end_to_end(photo_folder, tmp_path, tiny_cyclegan):
    out = tmp_path / "out"
    result = translate(photo_folder, out, "--model", tiny_cyclegan, "--batch-size", "3")
    assert result.exit_code == 1, result.output  # two bad files -> non-zero, the rest translated
    assert "truncated.png" in result.output and "notes.png" in result.output
    expected = {"img0.png", "img1.png", "img2.png", "img3.png", "img4.png", "rotated.jpg", "sub/tall.jpg",
                "sub/alpha.png", "sub/deeper/grey.webp", "sub/deep16.png"}
    produced = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert produced == expected  # mirrors relative paths; no temp files, nothing for the bad inputs
    for rel in expected:
        src_size = Image.open(photo_folder / rel).size
        if rel == "rotated.jpg":
            src_size = src_size[::-1]  # upright output
        assert Image.open(out / rel).size == src_size, rel
    alpha = np.asarray(Image.open(out / "sub" / "alpha.png"))
    assert alpha.shape[2] == 4 and (alpha[:, :, 3] == 128).all()
    # The model really ran: outputs are not the inputs.
    a = np.asarray(Image.open(photo_folder / "img0.png"), np.float32)
    b = np.asarray(Image.open(out / "img0.png"), np.float32)
    assert np.abs(a - b).mean() > 5


def test_rerun_resumes_and_overwrite_redoes(tmp_path, tiny_cyclegan):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        Image.fromarray(_rgb(i, 32, 32)).save(src / f"{i}.png")
    out = tmp_path / "out"
    assert translate(src, out, "--model", tiny_cyclegan).exit_code == 0
    (out / "2.png").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = translate(src, out, "--model", tiny_cyclegan)
    assert result.exit_code == 0
    assert re.search(r"skipped \(already done\)\W+(\d+)", result.output).group(1) == "3"
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png", "3.png"]
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in stamps.items())  # untouched
    result = translate(src, out, "--model", tiny_cyclegan, "--overwrite", "--format", "jpg")
    assert result.exit_code == 0
    assert len(list(out.glob("*.jpg"))) == 4


def test_batch_size_does_not_change_outputs(tmp_path, tiny_cyclegan):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        Image.fromarray(_rgb(i, 32, 32)).save(src / f"{i}.png")
    for bs in (1, 4):
        assert translate(src, tmp_path / f"o{bs}", "--model", tiny_cyclegan, "--batch-size", bs).exit_code == 0
    for i in range(5):
        a = np.asarray(Image.open(tmp_path / "o1" / f"{i}.png"), np.int16)
        b = np.asarray(Image.open(tmp_path / "o4" / f"{i}.png"), np.int16)
        assert np.abs(a - b).max() <= 1


def test_directions_differ_and_glob_input(tmp_path, tiny_cyclegan):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_rgb(i, 32, 32)).save(src / f"{i}.png")
    Image.fromarray(_rgb(5, 32, 32)).save(src / "x.jpg")
    assert translate(str(src / "*.png"), tmp_path / "a", "--model", tiny_cyclegan, "-d", "a2b").exit_code == 0
    assert translate(str(src / "*.png"), tmp_path / "b", "--model", tiny_cyclegan, "-d", "b2a").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["0.png", "1.png", "2.png"]
    a = np.asarray(Image.open(tmp_path / "a" / "0.png"), np.float32)
    b = np.asarray(Image.open(tmp_path / "b" / "0.png"), np.float32)
    assert np.abs(a - b).mean() > 1


def test_single_image_pix2pix_with_canny(tmp_path, tiny_pix2pix):
    Image.fromarray(_rgb(1, 61, 45)).save(tmp_path / "one.png")
    result = translate(tmp_path / "one.png", tmp_path / "out", "--model", tiny_pix2pix, "--preprocess", "canny",
                       "--prompt", "a blue bird")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "one.png").size == (61, 45)  # multiple-of-8 inside, input size outside


def test_stochastic_seed(tmp_path, tiny_sketch):
    Image.fromarray(_rgb(1, 32, 32)).save(tmp_path / "s.png")
    outs = {}
    for tag, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert translate(tmp_path / "s.png", tmp_path / tag, "--model", tiny_sketch, "--seed", seed).exit_code == 0
        outs[tag] = np.asarray(Image.open(tmp_path / tag / "s.png"), np.int16)
    assert np.array_equal(outs["a"], outs["b"])
    assert np.abs(outs["a"] - outs["c"]).max() > 0


@pytest.mark.parametrize("args, code, message", [
    (["--model", "no_such_model"], 3, "known: day_to_night, night_to_day"),
    (["--direction", "sideways"], 2, "valid: a2b, b2a"),
    ([], 2, "pass --model"),
    (["--model", "day_to_night", "--direction", "day"], 2, "picks the model night_to_day"),
])
def test_bad_options_one_line(tmp_path, args, code, message):
    Image.fromarray(_rgb(1, 16, 16)).save(tmp_path / "x.png")
    result = translate(tmp_path / "x.png", tmp_path / "out", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_offline_published_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TURBO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Image.fromarray(_rgb(1, 16, 16)).save(tmp_path / "x.png")
    result = translate(tmp_path / "x.png", tmp_path / "out", "--direction", "night")
    assert result.exit_code == 4
    assert "day2night.pkl" in result.output and "--model PATH" in result.output


def test_missing_base_model_offline_says_base_model_dir(tmp_path, monkeypatch, fixtures_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    Image.fromarray(_rgb(1, 16, 16)).save(tmp_path / "x.png")
    result = translate(tmp_path / "x.png", tmp_path / "out", "--model", fixtures_dir / "checkpoints" / "pix2pix_ref.pkl",
                       "--prompt", "a cat")
    assert result.exit_code == 4, result.output
    assert "pass --base-model DIR" in result.output


def test_missing_base_model_folder_is_one_line(tmp_path, tiny_cyclegan, fixtures_dir):
    Image.fromarray(_rgb(1, 16, 16)).save(tmp_path / "x.png")
    result = translate(tmp_path / "x.png", tmp_path / "out", "--model", fixtures_dir / "checkpoints" / "pix2pix_ref.pkl",
                       "--prompt", "a cat", "--base-model", str(Path(str(tiny_cyclegan)).parent / "nope"))
    assert result.exit_code == 3 and "no such base-model folder" in result.output


def test_checkpoint_on_wrong_base_names_mismatch(tmp_path, tiny_base, tiny_cyclegan):
    """A checkpoint made on one base, loaded on a base of other widths: one line naming the tensor and both shapes."""
    import shutil

    from diffusers import UNet2DConditionModel

    from turbo_cli.engine.tiny import TINY_UNET

    wider = tmp_path / "wider-base"
    shutil.copytree(tiny_base, wider)
    shutil.rmtree(wider / "unet")
    UNet2DConditionModel(**{**TINY_UNET, "block_out_channels": (32, 96)}).save_pretrained(wider / "unet")
    Image.fromarray(_rgb(1, 64, 64)).save(tmp_path / "x.png")
    result = translate(tmp_path / "x.png", tmp_path / "out", "--model", tiny_cyclegan, "--base-model", wider)
    assert result.exit_code == 3, result.output
    line = result.output.strip().splitlines()[-1]
    assert f"{tiny_cyclegan}: checkpoint does not fit the base model" in line
    assert re.search(r"has shape \(\d+(, \d+)*\), the base model's is \(\d+(, \d+)*\)", line), line


def test_interrupted_run_leaves_no_partial_files(tmp_path, tiny_cyclegan, monkeypatch):
    from turbo_cli.engine import translator as runner_module

    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        Image.fromarray(_rgb(i, 32, 32)).save(src / f"{i}.png")
    real = runner_module.Translator._launch  # where every batch starts
    calls = {"n": 0}

    def flaky(self, frames):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # while batch 1 is in flight: it is still written
        return real(self, frames)

    monkeypatch.setattr(runner_module.Translator, "_launch", flaky)
    out = tmp_path / "out"
    result = translate(src, out, "--model", tiny_cyclegan, "--batch-size", "2")
    assert result.exit_code == 130
    files = [p.name for p in out.rglob("*")] if out.exists() else []
    assert sorted(files) == ["0.png", "1.png"]  # the first batch, complete; no temp files
    monkeypatch.setattr(runner_module.Translator, "_launch", real)
    assert translate(src, out, "--model", tiny_cyclegan, "--batch-size", "2").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(6)]
