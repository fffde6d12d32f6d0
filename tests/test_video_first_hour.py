"""Issue #15, the video part ("a new user's first hour"): each case through `turbo video` / `turbo eval` on the CLI.
Refusals are checked with a model path that does not exist, so they must come before a model loads; the runs that
translate use conftest's tiny random CycleGAN-turbo checkpoint. Videos are made in code by tests/_video_helpers.py."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from tests._video_helpers import Notices, audio_stats, frame_times, make_video, stream_summary, truncate
from turbo_cli.jobs.video_pipeline import VideoJobOptions, translate_video
from turbo_cli.progress import Bar, Progress


def turbo(*args):
    from typer.testing import CliRunner

    from turbo_cli.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def one_line(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


class Identity:
    batch_size = 4

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        return frames.copy()


# ------------------------------------------------------------------------------------------------ 1. audio codec


@pytest.mark.parametrize("audio_codec, suffix", [("aac", ".mp4"), ("pcm_s16le", ".mov")])
def test_webm_output_reencodes_audio_webm_cannot_hold(tmp_path, tiny_cyclegan, audio_codec, suffix):
    made = make_video(tmp_path / f"in{suffix}", frames=6, audio=True, audio_codec=audio_codec)
    r = turbo("video", made.path, tmp_path / "out.webm", "--codec", "libvpx-vp9", "--model", tiny_cyclegan,
              "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert f"webm cannot hold {audio_codec} audio: re-encoded to Opus" in one_line(r.output)
    summary = stream_summary(tmp_path / "out.webm")
    assert summary["codec"] == "vp9" and summary["audio_codec"] == "opus"
    assert len(frame_times(tmp_path / "out.webm")) == 6
    _, seconds = audio_stats(tmp_path / "out.webm")
    assert float(seconds) == pytest.approx(float(made.audio_duration), abs=0.03)


def test_codec_the_container_cannot_hold_is_refused_before_the_model(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=2, audio=True)
    r = turbo("video", made.path, tmp_path / "out.webm", "--model", tmp_path / "none.safetensors")  # libx264
    assert r.exit_code == 2 and "webm container cannot hold h264 video" in one_line(r.output)
    assert "Traceback" not in r.output and not (tmp_path / "out.webm").exists()


# -------------------------------------------------------------------------------------- 2. --max-frames and audio


def test_max_frames_cuts_the_audio_to_the_video_written(tmp_path, tiny_cyclegan):
    made = make_video(tmp_path / "in.mp4", frames=48, rate=24, audio=True)  # 2 s of video and of audio
    r = turbo("video", made.path, tmp_path / "out.mp4", "--max-frames", "5", "--model", tiny_cyclegan,
              "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert len(frame_times(tmp_path / "out.mp4")) == 5  # 5/24 = 0.21 s of video
    _, seconds = audio_stats(tmp_path / "out.mp4")
    assert 5 / 24 - 0.01 <= float(seconds) <= 5 / 24 + 0.05  # ends with the video (a packet is 23 ms), not at 2 s


# ------------------------------------------------------------------------------------------------- 3. still images


def test_still_images_are_refused_pointing_to_translate(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.jpg")
    (tmp_path / "photo_as.mp4").write_bytes((tmp_path / "photo.jpg").read_bytes())  # a JPEG named .mp4
    for src in (tmp_path / "photo.jpg", tmp_path / "photo_as.mp4"):
        r = turbo("video", src, tmp_path / "out.mp4", "--model", tmp_path / "none.safetensors")
        text = one_line(r.output)
        assert r.exit_code == 2 and f"{src.name}: a still image, not a video" in text, r.output
        assert "turbo translate" in text and not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------ 4. eval of a trimmed output


def test_eval_pairs_a_trimmed_output_with_the_frames_it_came_from(tmp_path, monkeypatch):
    from tests._eval_helpers import texture_frames, use_tiny_backbones, write_video

    monkeypatch.setenv("TURBO_CACHE", str(tmp_path / "cache"))
    use_tiny_backbones(monkeypatch)
    # Moving texture: frame k and frame k+6 differ by 9 px of pan, so pairing by position scores badly.
    src = write_video(tmp_path / "in.mp4", texture_frames(24, h=64, w=64, step=1.5), fps=12)
    opts = VideoJobOptions(start=0.5, end=1.5)  # frames 6..17, written from time 0
    translate_video(src, tmp_path / "cut.mp4", Identity(), opts)
    assert frame_times(tmp_path / "cut.mp4")[0] == 0
    r = turbo("eval", "--source", src, "--output", tmp_path / "cut.mp4", "--report", tmp_path / "rep",
              "--metrics", "lpips")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert data["counts"]["frames"] == 12
    assert data["inputs"]["source_start"] == "0.5" and data["inputs"]["source_end"] == "1.5"
    good = data["metrics"]["lpips"]["value"]  # the same frames (through the encoder): a small distance
    assert not any("more frames" in w for w in data["warnings"]), data["warnings"]

    # The same clip without the tags (trimmed elsewhere) is paired from the top: frames 9 px apart, far larger.
    with av.open(str(tmp_path / "cut.mp4")) as c:
        assert c.metadata["turbo_source_start"] == "0.500000"
    notag = write_video(tmp_path / "notag.mp4", texture_frames(24, h=64, w=64, step=1.5)[6:18], fps=12)
    r = turbo("eval", "--source", src, "--output", notag, "--report", tmp_path / "rep2", "--metrics", "lpips")
    assert r.exit_code == 0, r.output
    bad = json.loads((tmp_path / "rep2" / "metrics.json").read_text())["metrics"]["lpips"]["value"]
    assert bad > 3 * good, (good, bad)


def test_eval_skips_a_dropped_frame_instead_of_shifting_every_pair(tmp_path):
    from turbo_cli.eval.video_eval import _Pairing, pair_by_time
    from turbo_cli.io.video import Frame

    def frames(times):
        return iter([Frame(rgb=np.full((2, 2, 3), round(t * 100), np.uint8), pts=0, time=t) for t in times])

    tally = _Pairing()
    src = [k / 10 for k in range(6)]
    out = [t for t in src if t != 0.2]  # the output lost one frame
    pairs = list(pair_by_time(frames(src), frames(out), 0.0, 0.01, tally))
    assert [int(s[0, 0, 0]) for s, _ in pairs] == [int(o[0, 0, 0]) for _, o in pairs] == [0, 10, 30, 40, 50]
    assert (tally.source_only, tally.output_only, tally.longer) == (1, 0, None)


# ------------------------------------------------------------------------ 5. no loss claims from estimated counts


def test_mkv_without_a_frame_count_reports_no_false_loss(tmp_path, tiny_cyclegan):
    made = make_video(tmp_path / "in.mkv", frames=30, rate=30, vfr=True)
    (tmp_path / "outdir").mkdir()
    # 7. a single video into an existing folder: written there under the input's name
    r = turbo("video", made.path, tmp_path / "outdir", "--model", tiny_cyclegan, "--device", "cpu")
    assert r.exit_code == 0, r.output
    text = one_line(r.output)
    assert "expected" not in text and "announces" not in text and "lost" not in text, r.output
    assert len(frame_times(tmp_path / "outdir" / "in.mkv")) == 30


def test_truncated_vfr_mkv_says_how_far_it_got_not_how_many_were_lost(tmp_path, tiny_cyclegan):
    full = make_video(tmp_path / "full.mkv", frames=90, vfr=True)
    cut = truncate(full.path, tmp_path / "cut.mkv", keep=0.5)
    r = turbo("video", cut, tmp_path / "o.mkv", "--model", tiny_cyclegan, "--device", "cpu")
    text = one_line(r.output)
    assert r.exit_code == 2 and "truncated or corrupt: decoded" in text, r.output
    assert "lost" not in text and "expected" not in text
    n = len(frame_times(tmp_path / "o.mkv"))
    assert 0 < n < 90 and f"decoded {n} frames, up to" in text


# ------------------------------------------------------------------------------ 6. containers without timestamps


@pytest.mark.parametrize("suffix", [".avi", ".mpg"])
def test_output_containers_that_lose_timestamps_are_refused(tmp_path, suffix):
    made = make_video(tmp_path / "in.mp4", frames=2, vfr=True)
    r = turbo("video", made.path, tmp_path / f"out{suffix}", "--model", tmp_path / "none.safetensors")
    text = one_line(r.output)
    assert r.exit_code == 2 and "cannot keep per-frame timestamps" in text and ".mp4 or .mkv" in text, r.output
    assert not (tmp_path / f"out{suffix}").exists()


def test_a_folder_of_avi_clips_is_written_as_mkv(tmp_path):
    from turbo_cli.jobs.video import translate_videos

    (tmp_path / "clips").mkdir()
    made = make_video(tmp_path / "clips" / "a.mp4", frames=3)
    with av.open(str(tmp_path / "clips" / "b.avi"), "w") as c:  # a real AVI (mpeg4 in avi)
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            f.pts = i
            for p in [*s.encode(f)]:
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    notices = Notices()
    results = translate_videos(tmp_path / "clips", tmp_path / "out", Identity(), progress=notices)
    assert sorted(r.output.name for r in results) == ["a.mp4", "b.mkv"]
    assert any("b.avi" in m and "writing b.mkv" in m for m in notices.messages), notices.messages
    assert len(frame_times(tmp_path / "out" / "b.mkv")) == 3 and made.path.exists()


# ------------------------------------------------------------------------------------- 7. folder in, file name out


def test_folder_input_to_a_video_file_name_is_refused(tmp_path):
    (tmp_path / "clips").mkdir()
    make_video(tmp_path / "clips" / "a.mp4", frames=2)
    r = turbo("video", tmp_path / "clips", tmp_path / "out.mp4", "--model", tmp_path / "none.safetensors")
    text = one_line(r.output)
    assert r.exit_code == 2 and "OUTPUT must be a folder, not a .mp4 file name" in text, r.output
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------------------ 8. the bar's last state


class LastState(Progress):
    """Keeps the bar's count and total as the pipeline leaves them."""

    def __init__(self):
        self.state = {}

    def bar(self, total, unit="it", description="", *, transient=False, bytes_=False):
        state = self.state
        state.update(total=total, completed=0, closed=False)

        class B(Bar):
            def advance(self, n=1):
                state["completed"] += n

            def update(self, *, completed=None, total=None):
                if completed is not None:
                    state["completed"] = completed
                if total is not None:
                    state["total"] = total

            def close(self):
                state["closed"] = True

        return B()


def test_the_bar_ends_on_the_true_count_when_the_estimate_was_wrong(tmp_path):
    made = make_video(tmp_path / "in.mkv", frames=30, rate=30, vfr=True)  # estimate from duration x mean rate
    progress = LastState()
    result = translate_video(made.path, tmp_path / "out.mkv", Identity(), progress=progress)
    assert result.frames_out == 30
    assert progress.state == {"total": 30, "completed": 30, "closed": True}
    assert result.expected_frames is None  # no index count: nothing to compare against
    assert Fraction(0) == frame_times(tmp_path / "out.mkv")[0]
