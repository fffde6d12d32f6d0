"""Temporal flicker: 0 for a static video, input-level for a stable translation, larger with per-frame noise; and
`turbo eval` on two video files."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests._eval_helpers import texture_frames, use_tiny_backbones, write_video
from turbo_cli.eval.flicker import compute_flow, temporal_flicker, warp_error


def _noisy(frames, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_static_video_has_zero_flicker(method):
    frame = texture_frames(1)[0]
    static_in, static_out = [frame] * 5, [255 - frame] * 5
    r = temporal_flicker(zip(static_in, static_out), method)
    assert (r.input, r.output, r.pairs) == (0.0, 0.0, 4)
    noisy = temporal_flicker(zip(static_in, _noisy(static_out, 10)), method)
    assert noisy.output > 5.0  # ~ E|N(0,10) - N(0,10)| = 11.3, less where clipping bites


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_stable_translation_follows_input_motion(method):
    frames = texture_frames(8, step=1.5)
    stable = [255 - f for f in frames]  # a per-pixel colour map: moves exactly with the input
    r = temporal_flicker(zip(frames, stable), method)
    assert r.input < 3.0  # the flow explains the pan
    assert r.output == pytest.approx(r.input, rel=0.05)  # inverting does not change |differences|
    flick = temporal_flicker(zip(frames, _noisy(stable, 12)), method)
    assert flick.output > 3 * r.output and flick.ratio > 3


def test_warp_error_uses_flow_direction():
    frames = texture_frames(2, step=2.0)
    flow = compute_flow(frames[0], frames[1], "dis")
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(-2.0, abs=0.3)  # content moved left by 2 px
    err, n = warp_error(frames[0], frames[1], flow)
    zero, _ = warp_error(frames[0], frames[1], np.zeros_like(flow))
    assert n > 0 and err < 0.5 * zero


def test_flicker_needs_two_frames_and_equal_sizes():
    f = texture_frames(1)[0]
    with pytest.raises(ValueError, match="2 frames"):
        temporal_flicker(zip([f], [f]))
    with pytest.raises(ValueError, match="sizes differ"):
        temporal_flicker(zip([f, f], [f, f[:32]]))


def test_cli_video_eval(tmp_path, monkeypatch):
    from turbo_cli.cli.main import app

    monkeypatch.setenv("TURBO_CACHE", str(tmp_path / "cache"))
    use_tiny_backbones(monkeypatch)
    frames = texture_frames(10, h=64, w=64)
    src = write_video(tmp_path / "in.mp4", frames)
    stable = write_video(tmp_path / "stable.mp4", [255 - f for f in frames])
    noisy = write_video(tmp_path / "noisy.mp4", _noisy([255 - f for f in frames], 12))
    results = {}
    for name, out in (("stable", stable), ("noisy", noisy)):
        rep = tmp_path / f"rep-{name}"
        r = CliRunner().invoke(app, ["eval", "--source", str(src), "--output", str(out), "--report", str(rep),
                                     "--max-images", "4"])
        assert r.exit_code == 0, r.output
        data = json.loads((rep / "metrics.json").read_text())
        assert data["kind"] == "video"
        assert data["counts"]["frames"] == 10 and data["counts"]["sampled_frames"] == 4
        assert (rep / "index.html").is_file() and (rep / "grid.png").is_file()
        assert data["metrics"]["dino_struct"]["status"] == "ok"
        results[name] = data["metrics"]["flicker"]
    assert results["stable"]["extra"]["input"] == pytest.approx(results["noisy"]["extra"]["input"])
    assert results["noisy"]["value"] > 3 * results["stable"]["value"]
    assert results["stable"]["policy"]["frame_pairs"] == 9


def test_a_video_one_frame_longer_is_reported(tmp_path):
    from turbo_cli.eval.networks import Backbones
    from turbo_cli.eval.video_eval import evaluate_video

    frames = texture_frames(6, h=32, w=32)
    src = write_video(tmp_path / "in.mp4", frames)
    out = write_video(tmp_path / "out.mp4", [255 - f for f in frames[:5]])
    rep = evaluate_video(src, out, backbones=Backbones(), metrics={"flicker", "edges"})
    assert rep.counts.frames == 5 and rep.metric("flicker").policy["frame_pairs"] == 4
    assert any(w.startswith("--source has more frames") for w in rep.warnings), rep.warnings
