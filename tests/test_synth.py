"""Synthetic day/night dataset and clip (turbo_cli/io/synth.py, `turbo data synth`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from turbo_cli.io.images import read_image
from turbo_cli.io.synth import _image_rng, make_dataset, make_day_clip, render_pair, render_scene


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def test_render_scene_shapes():
    rng = np.random.default_rng(0)
    assert render_scene(rng, 64, night=False).shape == (64, 64, 3)
    img = render_scene(rng, (48, 32), night=True)
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8


def test_day_night_gap_is_obvious():
    day = np.stack([render_scene(np.random.default_rng(i), 64, night=False) for i in range(16)]).astype(float)
    night = np.stack([render_scene(np.random.default_rng(100 + i), 64, night=True) for i in range(16)]).astype(float)
    assert day.mean() - night.mean() > 70
    assert day.mean(axis=(1, 2, 3)).min() > night.mean(axis=(1, 2, 3)).max()  # every day image is brighter
    # Day sky is blue; night has warm lights (lit windows, lamps) in an otherwise dark frame.
    assert (np.median(day[:, :4, :, 2] - day[:, :4, :, 0], axis=(1, 2)) > 40).all()
    warm = (night[..., 0] > 200) & (night[..., 1] > 160) & (night[..., 2] < 170)
    assert warm.mean(axis=(1, 2)).min() > 0
    # Same layout by day and by night differs only in lighting.
    d, n = render_pair(np.random.default_rng(3), 64)
    assert d.mean() > n.mean() + 70


def test_dataset_layout_and_determinism(tmp_path):
    counts = make_dataset(tmp_path / "a", size=32, n_train=4, n_test=2, seed=5)
    assert counts == {"train_A": 4, "train_B": 4, "test_A": 2, "test_B": 2}
    root = tmp_path / "a"
    for split, n in counts.items():
        files = sorted((root / split).glob("*.png"))
        assert len(files) == n
        assert read_image(files[0]).rgb.shape == (32, 32, 3)
    assert "day" in (root / "fixed_prompt_a.txt").read_text()
    assert "night" in (root / "fixed_prompt_b.txt").read_text()
    assert (root / "synth.json").is_file()
    assert not list(root.rglob("*.tmp"))

    make_dataset(tmp_path / "b", size=32, n_train=4, n_test=2, seed=5)
    make_dataset(tmp_path / "c", size=32, n_train=4, n_test=2, seed=6)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert set(_hashes(tmp_path / "a").values()).isdisjoint(_hashes(tmp_path / "c").values())
    # Unpaired: day and night images are independent draws, not the same scene relit.
    a0 = read_image(root / "train_A" / "day_0000.png").rgb
    b0 = read_image(root / "train_B" / "night_0000.png").rgb
    day0, night_of_day0 = render_pair(_image_rng(5, "train_A", 0), 32)
    assert np.array_equal(day0, a0)
    assert not np.array_equal(night_of_day0, b0)


def test_day_clip_frames_and_audio(tmp_path):
    import av

    path = make_day_clip(tmp_path / "clip.mp4", frames=20, fps=10)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.width, v.codec_context.height) == ("h264", 128, 96)
        assert v.codec_context.pix_fmt == "yuv420p"
        assert (a.codec_context.name, a.codec_context.channels, a.codec_context.sample_rate) == ("aac", 2, 44100)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 20
    assert frames[0].mean() > 100  # a day clip
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 5  # the camera moves
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert 1.9 < audio.shape[1] / 44100 < 2.2 and 0.01 < np.abs(audio).max() < 0.5  # 2 s, quiet, not silent
    silent = make_day_clip(tmp_path / "silent.mp4", frames=4, audio=False)
    with av.open(str(silent)) as c:
        assert len(c.streams.audio) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "silent.mp4"]


def test_cli_data_synth(tmp_path):
    from turbo_cli.cli.main import app

    runner = CliRunner()
    out = tmp_path / "ds"
    args = ["data", "synth", str(out), "--size", "16", "--n-train", "3", "--n-test", "2", "--seed", "1"]
    res = runner.invoke(app, args + ["--no-clip"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "train_B").glob("*.png"))) == 3 and not (out / "day_clip.mp4").exists()
    first = _hashes(out)

    # Same command again: nothing to do (and adding --clip only adds the clip).
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "day_clip.mp4").stat().st_size > 0 and _hashes(out) == first

    # Different parameters into a non-empty folder: refused, files untouched.
    res = runner.invoke(app, ["data", "synth", str(out), "--size", "16", "--n-train", "2", "--n-test", "2"])
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert _hashes(out) == first

    # --overwrite replaces the dataset, leaving no stale images behind.
    res = runner.invoke(app, ["data", "synth", str(out), "--size", "16", "--n-train", "2", "--n-test", "2",
                              "--no-clip", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "train_A").glob("*.png"))) == 2 and not (out / "day_clip.mp4").exists()

    res = runner.invoke(app, ["data", "synth", str(tmp_path / "bad"), "--size", "20"])
    assert res.exit_code != 0 and "--size 20" in res.output
