"""The public Python API (`turbo_cli.load_model`): the same engine as the CLI, callable on images (issue #14)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import turbo_cli
from turbo_cli.errors import InputError, TurboError
from turbo_cli.jobs.loading import ModelOptions, build_translator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tiny_cyclegan):
    return turbo_cli.load_model(tiny_cyclegan, direction="b2a", device="cpu")


def _img(seed, w=64, h=48):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_every_input_type_gives_the_clis_numbers(model, tiny_cyclegan):
    cli = build_translator(ModelOptions(model=str(tiny_cyclegan), direction="b2a", device="cpu"))
    a, b = _img(0), _img(1, 80, 56)
    expected_a, expected_b = cli.translate_frames(a[None])[0], cli.translate_frames(b[None])[0]
    np.testing.assert_array_equal(model(a), expected_a)  # numpy -> numpy
    pil = model(Image.fromarray(b))  # PIL -> PIL
    assert isinstance(pil, Image.Image) and pil.size == (80, 56)
    np.testing.assert_array_equal(np.asarray(pil), expected_b)
    outs = model([a, b, a])  # a mixed-size list keeps its order
    assert [o.shape for o in outs] == [a.shape, b.shape, a.shape]
    # batched with another image: the same up to CPU kernels' rounding for another batch size (a level at most)
    assert np.abs(outs[2].astype(int) - expected_a).max() <= 1
    batch = torch.from_numpy(np.stack([a, a])).permute(0, 3, 1, 2).float() / 255  # (B,3,H,W) in [0,1] -> same
    out = model(batch)
    assert out.shape == batch.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    as_uint8 = (out[1].permute(1, 2, 0).numpy() * 255).round().astype(int)
    assert np.abs(as_uint8 - expected_a).max() <= 1


def test_the_same_typed_errors_as_the_cli(model, tmp_path):
    with pytest.raises(InputError, match="uint8"):
        model(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="cannot translate a str"):
        model("x.png")
    with pytest.raises(TurboError, match="no such checkpoint file"):
        turbo_cli.load_model(tmp_path / "missing.safetensors")
    assert "TurboModel(" in repr(model) and "b2a" in repr(model)


def test_folder_and_video_jobs(model, tmp_path):
    from tests._video_helpers import make_video

    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(_img(i)).save(tmp_path / "in" / f"{i}.png")
    summary = model.translate_folder(tmp_path / "in", tmp_path / "out")
    assert summary.done == 3 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]
    assert model.translate_folder(tmp_path / "in", tmp_path / "out").skipped == 3  # resumes, like the CLI
    make_video(tmp_path / "clip.mp4", frames=5, size=(64, 48), audio=True)
    (result,) = model.translate_video(tmp_path / "clip.mp4", tmp_path / "clip_out.mp4")
    assert result.frames_out == 5 and (tmp_path / "clip_out.mp4").is_file()


def test_the_readme_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    from turbo_cli.io import synth

    day = synth.render_scene(np.random.default_rng(5), 64, night=False)
    Image.fromarray(day).save(tmp_path / "day.png")
    (tmp_path / "frames").mkdir()
    Image.fromarray(day).save(tmp_path / "frames" / "a.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "frames-night" / "a.png").is_file()
