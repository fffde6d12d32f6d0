"""The video job (decode -> model -> encode, overlapped) with deterministic numpy translators, then the real tiny
engine through `turbo video`. Videos are made in code by tests/_video_helpers.py."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import turbo_cli.jobs.video_pipeline as pipeline
from tests._video_helpers import Notices, audio_stats, frame_times, make_video, pattern, stream_summary, truncate
from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.video import iter_rgb, probe
from turbo_cli.io.video_errors import TruncatedVideoError
from turbo_cli.io.video_writer import EncodeSettings, VideoWriter
from turbo_cli.jobs.video import translate_videos
from turbo_cli.jobs.video_pipeline import VideoJobOptions, translate_video
from turbo_cli.progress import Bar, Progress


class Invert:
    """Deterministic per-pixel translator: output i depends only on input i."""

    def __init__(self, batch_size: int = 4):
        self.batch_size = batch_size
        self.batches: list[int] = []

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        self.batches.append(len(frames))
        return 255 - frames


class InterruptAt(Invert):
    """Ctrl-C arriving while the model works on batch `at`."""

    def __init__(self, at: int, batch_size: int = 2):
        super().__init__(batch_size)
        self.at = at

    def translate_frames(self, frames):
        if len(self.batches) == self.at:
            raise KeyboardInterrupt
        return super().translate_frames(frames)



def pipeline_threads() -> list[str]:
    """The video pipeline's own threads still alive (other tests' daemon threads don't count)."""
    return [t.name for t in threading.enumerate() if t.name in ("turbo-decode", "turbo-encode") and t.is_alive()]

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def assert_inverted_in_order(src: Path, out: Path, start: int = 0):
    """Output frame k is the inverse of input frame start+k (and not of its neighbour)."""
    for k, rgb in enumerate(iter_rgb(out)):
        i = start + k
        h, w = rgb.shape[:2]
        want = 255 - pattern(i, w, h).astype(int)
        err = np.abs(rgb.astype(int) - want).mean()
        assert err < 6, (k, err)
        assert err < np.abs(rgb.astype(int) - (255 - pattern(i + 1, w, h).astype(int))).mean()


# ------------------------------------------------------------------------------------------- pipeline


def test_frames_timestamps_and_audio_survive_the_pipeline(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=23, vfr=True, audio=True)
    model = Invert(batch_size=4)
    result = translate_video(made.path, tmp_path / "out.mp4", model)
    assert result.frames_in == result.frames_out == 23 and result.expected_frames == 23
    assert model.batches == [4, 4, 4, 4, 4, 4]  # the last 3 frames padded to a full batch (same kernels)
    assert frame_times(tmp_path / "out.mp4") == made.times
    assert audio_stats(tmp_path / "out.mp4") == (made.audio_packets, made.audio_duration)
    assert_inverted_in_order(made.path, tmp_path / "out.mp4")
    assert result.duration == pytest.approx(float(made.times[-1]) + float(1 / probe(made.path).average_rate))
    assert result.model_fps > 0 and result.fps > 0 and "23 frames" in result.summary()
    assert leftovers(tmp_path) == []


def test_batch_size_does_not_change_the_output(tmp_path):
    # 128x96, not the usual 64x48: libx264 (PyAV 18.1 wheels) is not reproducible run to run on frames of a few
    # macroblocks (psy-rd / B-frame analysis), even single-threaded; from 128x96 up the same frames encode the same.
    made = make_video(tmp_path / "in.mp4", frames=11, size=(128, 96))
    for b in (1, 3, 11):
        translate_video(made.path, tmp_path / f"b{b}.mp4", Invert(), VideoJobOptions(batch_size=b))
    frames = {b: np.stack(list(iter_rgb(tmp_path / f"b{b}.mp4"))) for b in (1, 3, 11)}
    assert np.array_equal(frames[1], frames[3]) and np.array_equal(frames[1], frames[11])


def test_rotation_and_odd_size_are_kept(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=5, size=(65, 47), rotation=90)
    notices = Notices()
    result = translate_video(made.path, tmp_path / "out.mp4", Invert(), progress=notices)
    notes = notices.messages
    summary = stream_summary(tmp_path / "out.mp4")
    assert summary["rotation"] == 90 and summary["size"] == (66, 48)
    assert any("padded to 66x48" in n for n in notes) and result.notices == notes
    out = translate_video(made.path, tmp_path / "exact.mp4", Invert(),
                              VideoJobOptions(encode=EncodeSettings(pix_fmt="yuv444p")))
    assert stream_summary(out.output)["size"] == (65, 47)
    frame = next(iter_rgb(out.output))
    assert np.abs(frame.astype(int) - (255 - pattern(0, 65, 47).astype(int))).mean() < 4


def test_start_end_and_max_frames(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=24, rate=24, audio=True)
    result = translate_video(made.path, tmp_path / "cut.mp4", Invert(),
                                 VideoJobOptions(start=0.25, end=0.75))
    assert result.frames_out == 12 and result.expected_frames is None  # a range's count is only an estimate
    # timestamps restart at 0 (the clip starts at --start), spacing kept
    assert frame_times(tmp_path / "cut.mp4") == [Fraction(k, 24) for k in range(12)]
    assert_inverted_in_order(made.path, tmp_path / "cut.mp4", start=6)
    packets, seconds = audio_stats(tmp_path / "cut.mp4")
    assert 0 < packets < made.audio_packets and float(seconds) == pytest.approx(0.5, abs=0.05)
    result = translate_video(made.path, tmp_path / "few.mp4", Invert(), VideoJobOptions(max_frames=7))
    assert result.frames_out == 7 and len(frame_times(tmp_path / "few.mp4")) == 7
    with pytest.raises(InputError, match="no frames between --start 5"):
        translate_video(made.path, tmp_path / "none.mp4", Invert(), VideoJobOptions(start=5.0))
    assert not (tmp_path / "none.mp4").exists() and leftovers(tmp_path) == []


def test_start_on_a_stream_that_does_not_start_at_zero(tmp_path):
    made = make_video(tmp_path / "in.ts", frames=24, rate=24, audio=True)  # MPEG-TS: clock starts past 0
    assert probe(made.path).start_time > 0
    result = translate_video(made.path, tmp_path / "cut.mp4", Invert(), VideoJobOptions(start=0.25, end=0.5))
    assert result.frames_out == 6
    assert [float(t) for t in frame_times(tmp_path / "cut.mp4")] == pytest.approx([k / 24 for k in range(6)], abs=2e-3)
    assert_inverted_in_order(made.path, tmp_path / "cut.mp4", start=6)
    packets, seconds = audio_stats(tmp_path / "cut.mp4")
    assert packets > 0 and float(seconds) == pytest.approx(0.25, abs=0.05)


def test_size_option_resizes_the_output(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=3, size=(64, 48))
    translate_video(made.path, tmp_path / "out.mp4", Invert(), VideoJobOptions(size=(32, 24)))
    assert stream_summary(tmp_path / "out.mp4")["size"] == (32, 24)


def test_ctrl_c_leaves_no_output_and_no_temp_file(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=20, audio=True)
    with pytest.raises(KeyboardInterrupt):
        translate_video(made.path, tmp_path / "out.mp4", InterruptAt(3))
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []
    # an existing OUTPUT being replaced (--overwrite) is left exactly as it was
    (tmp_path / "old.mp4").write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        translate_video(made.path, tmp_path / "old.mp4", InterruptAt(2), VideoJobOptions(overwrite=True))
    assert (tmp_path / "old.mp4").read_bytes() == b"previous result" and leftovers(tmp_path) == []
    assert pipeline_threads() == []  # decode and encode threads stopped


def test_a_broken_translator_or_encoder_leaves_nothing(tmp_path, monkeypatch):
    made = make_video(tmp_path / "in.mp4", frames=10)

    class WrongShape(Invert):
        def translate_frames(self, frames):
            return frames[:, ::2]

    with pytest.raises(TurboError, match="translator returned"):
        translate_video(made.path, tmp_path / "a.mp4", WrongShape())

    def failing_write(self, rgb, pts=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr(VideoWriter, "write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        translate_video(made.path, tmp_path / "b.mp4", Invert(batch_size=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert pipeline_threads() == []


def test_existing_output_needs_overwrite(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=3)
    (tmp_path / "out.mp4").write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists .*--overwrite"):
        translate_video(made.path, tmp_path / "out.mp4", Invert())
    assert (tmp_path / "out.mp4").read_bytes() == b"keep me"
    translate_video(made.path, tmp_path / "out.mp4", Invert(), VideoJobOptions(overwrite=True))
    assert len(frame_times(tmp_path / "out.mp4")) == 3
    with pytest.raises(InputError, match="OUTPUT is the INPUT"):
        translate_video(made.path, made.path, Invert(), VideoJobOptions(overwrite=True))


def test_truncated_input_is_written_then_reported(tmp_path):
    full = make_video(tmp_path / "full.mp4", frames=48, faststart=True, audio=True)
    cut = truncate(full.path, tmp_path / "cut.mp4")
    with pytest.raises(TruncatedVideoError) as e:
        translate_video(cut, tmp_path / "out.mp4", Invert())
    n = e.value.decoded
    assert 0 < n < 48 and e.value.expected == 48 and e.value.result.frames_out == n
    assert f"{48 - n} lost" in str(e.value) and "out.mp4" in str(e.value)
    assert frame_times(tmp_path / "out.mp4") == full.times[:n]
    assert leftovers(tmp_path) == []


def test_memory_stays_flat_decoder_waits_for_the_model(tmp_path, monkeypatch):
    """The decoder never runs more than the bounded queues ahead of the model, however long the video."""
    made = make_video(tmp_path / "in.mp4", frames=40)
    decoded = [0]
    real_read = pipeline.read_frames

    def counting_read(*args, **kwargs):
        for frame in real_read(*args, **kwargs):
            decoded[0] += 1
            yield frame

    monkeypatch.setattr(pipeline, "read_frames", counting_read)
    ahead = []

    class Slow(Invert):
        def translate_frames(self, frames):
            threading.Event().wait(0.02)  # give the decoder every chance to run ahead
            ahead.append(decoded[0] - sum(self.batches) - len(frames))
            return super().translate_frames(frames)

    opts = VideoJobOptions(batch_size=2, queue_batches=2)
    translate_video(made.path, tmp_path / "out.mp4", Slow(), opts)
    # queue of 2 batches (4 frames) + the frame the decoder holds while blocked on the full queue
    assert max(ahead) <= 2 * 2 + 1
    assert max(ahead) >= 3  # and it does work ahead (the overlap)


class Recorder(Progress):
    """Keeps every progress call: which bar opened (total, unit, name), each advance, the bar closing."""

    def __init__(self):
        self.events = []

    def bar(self, total, unit="it", description="", *, transient=False, bytes_=False):
        self.events.append(("start", description, total, unit))
        events = self.events

        class RecordingBar(Bar):
            def advance(self, n=1):
                events.append(("advance", n))

            def close(self):
                events.append(("finish",))

        return RecordingBar()


def test_progress_sees_every_frame(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=6)
    rec = Recorder()
    translate_video(made.path, tmp_path / "out.mp4", Invert(), progress=rec)
    assert rec.events[0] == ("start", "in.mp4", 6, "frames") and rec.events[-1] == ("finish",)
    assert sum(e[1] for e in rec.events if e[0] == "advance") == 6


def test_folder_in_folder_out_mirrors_names_and_reports_failures(tmp_path):
    src = tmp_path / "clips"
    (src / "sub").mkdir(parents=True)
    a = make_video(src / "a.mp4", frames=4)
    b = make_video(src / "sub" / "b.mkv", frames=5, vfr=True)
    (src / "notes.txt").write_text("not a video")
    results = translate_videos(src, tmp_path / "out", Invert())
    assert [r.output for r in results] == [tmp_path / "out" / "a.mp4", tmp_path / "out" / "sub" / "b.mkv"]
    assert len(frame_times(tmp_path / "out" / "a.mp4")) == 4
    assert [float(t) for t in frame_times(tmp_path / "out" / "sub" / "b.mkv")] == pytest.approx(
        [float(t) for t in b.times], abs=1e-3)
    # one truncated and one junk file: the good one is still done, both failures named, non-zero
    full = make_video(tmp_path / "full.mp4", frames=48, faststart=True)
    truncate(full.path, src / "c.mp4")
    (src / "d.mp4").write_bytes(b"junk" * 50)
    done = []
    with pytest.raises(InputError) as e:
        translate_videos(src, tmp_path / "out2", Invert(), on_result=done.append)
    assert str(e.value).startswith("2 of 4 videos failed") and "c.mp4" in str(e.value) and "d.mp4" in str(e.value)
    assert sorted(r.output.name for r in done) == ["a.mp4", "b.mkv", "c.mp4"]
    assert a.path.exists()


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        translate_videos(tmp_path / "nope.mp4", tmp_path / "o.mp4", Invert())


# --------------------------------------------------------------------- the real tiny engine, `turbo video`


@pytest.fixture(scope="module")
def tiny_translator(tiny_cyclegan):
    """The engine's Translator on conftest's tiny random CycleGAN-turbo checkpoint (built from configs, offline)."""
    from turbo_cli.jobs.loading import ModelOptions, build_translator

    return build_translator(ModelOptions(model=str(tiny_cyclegan), device="cpu"))


def turbo(*args: str):
    from typer.testing import CliRunner

    from turbo_cli.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_engine_output_does_not_depend_on_batch_position(tiny_translator):
    """No flicker from the engine: a frame's output is the same wherever it sits in a batch. Across batch SIZES CPU
    kernels may differ by 1 level on a few pixels, which is why the video job pads its last batch: every frame of a
    video then goes through the same batch shape."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    a = frames[0]
    for batch in (2, 3, 4):
        outs = []
        for pos in range(batch):
            others = list(frames[1:batch])
            outs.append(tiny_translator.translate_frames(np.stack(others[:pos] + [a] + others[pos:]))[pos])
        same = tiny_translator.translate_frames(np.stack([a] * batch))
        assert all(np.array_equal(o, outs[0]) for o in [*outs, *same]), batch
        if batch == 2:
            ref = outs[0]
        assert np.abs(outs[0].astype(int) - ref).max() <= 1 and (outs[0] != ref).mean() < 1e-3


def test_static_scene_stays_still_through_the_pipeline(tmp_path, tiny_translator):
    """Identical input frames give identical model outputs, whatever batch they fall in (7 frames, batches of 3)."""
    import av

    path = tmp_path / "still.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"qp": "0", "preset": "ultrafast"})  # lossless: equal frames
        s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
        for i in range(7):
            f = av.VideoFrame.from_ndarray(pattern(0, 64, 48), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    decoded = list(iter_rgb(path))
    assert all(np.array_equal(f, decoded[0]) for f in decoded)  # lossless: the model sees 7 equal frames
    seen = []

    class Spy:
        batch_size = 3

        def translate_frames(self, frames):
            out = tiny_translator.translate_frames(frames)
            seen.extend(out)
            return out

    result = translate_video(path, tmp_path / "out.mp4", Spy(), VideoJobOptions(batch_size=3))
    assert result.frames_out == 7 and len(seen) == 9  # 3 + 3 + (1 padded to 3)
    assert not np.array_equal(seen[0], pattern(0, 64, 48))  # the model did something
    assert all(np.array_equal(o, seen[0]) for o in seen)


def test_turbo_video_end_to_end_on_the_tiny_model(tmp_path, tiny_cyclegan):
    made = make_video(tmp_path / "in.mp4", frames=10, size=(64, 48), vfr=True, audio=True, rotation=90)
    r = turbo("video", made.path, tmp_path / "out.mp4", "--model", tiny_cyclegan, "--device", "cpu",
              "--batch-size", "4", "--crf", "20")
    assert r.exit_code == 0, r.output
    assert "frames/s (model only)" in r.output and "frames/s (end to end)" in r.output
    assert frame_times(tmp_path / "out.mp4") == made.times
    assert audio_stats(tmp_path / "out.mp4") == (made.audio_packets, made.audio_duration)
    summary = stream_summary(tmp_path / "out.mp4")
    assert summary["size"] == (64, 48) and summary["rotation"] == 90
    # the model changed the frames
    first = next(iter_rgb(tmp_path / "out.mp4")).astype(int)
    assert np.abs(first - pattern(0, 64, 48)).mean() > 10

    # time range + size + codec options, and an existing output needs --overwrite
    r = turbo("video", made.path, tmp_path / "out.mp4", "--model", tiny_cyclegan, "--device", "cpu",
              "--start", "0.1", "--end", "0:00.3", "--size", "32x24", "--audio", "drop")
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    r = turbo("video", made.path, tmp_path / "out.mp4", "--model", tiny_cyclegan, "--device", "cpu",
              "--start", "0.1", "--end", "0:00.3", "--size", "32x24", "--audio", "drop", "--overwrite")
    assert r.exit_code == 0, r.output
    want = [t - made.times[3] for t in made.times if Fraction(1, 10) <= t < Fraction(3, 10)]
    assert frame_times(tmp_path / "out.mp4") == want
    assert stream_summary(tmp_path / "out.mp4")["size"] == (32, 24)
    assert stream_summary(tmp_path / "out.mp4")["types"] == ["video"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--size", "big"], "--size big"),
        (["--start", "1h"], "--start 1h"),
        (["--codec", "nope264"], "--codec nope264"),
        (["--audio", "keep"], "--audio keep"),
    ],
)
def test_turbo_video_rejects_bad_options_before_loading_a_model(tmp_path, args, words):
    made = make_video(tmp_path / "in.mp4", frames=2)
    # the model path does not exist: these errors must come first
    r = turbo("video", made.path, tmp_path / "out.mp4", "--model", tmp_path / "none.safetensors", *args)
    assert r.exit_code == 2 and words in r.output and not (tmp_path / "out.mp4").exists()


def test_turbo_video_bad_and_truncated_inputs(tmp_path, tiny_cyclegan):
    r = turbo("video", tmp_path / "missing.mp4", tmp_path / "o.mp4", "--model", tiny_cyclegan)
    assert r.exit_code == 2 and "missing.mp4: no such file" in r.output
    full = make_video(tmp_path / "full.mp4", frames=48, faststart=True)
    cut = truncate(full.path, tmp_path / "cut.mp4")
    r = turbo("video", cut, tmp_path / "o.mp4", "--model", tiny_cyclegan, "--device", "cpu")
    assert r.exit_code == 2 and "truncated" in r.output and "lost" in r.output
    n = len(frame_times(tmp_path / "o.mp4"))
    assert 0 < n < 48 and f"decoded {n} of 48" in r.output


def test_turbo_video_prints_file_names_as_they_are(tmp_path, tiny_cyclegan):
    """User-supplied names are text, not rich markup: the brackets of `bad [copy].mp4` are printed."""
    made = make_video(tmp_path / "bad [copy].mp4", frames=2, size=(32, 32))
    r = turbo("video", made.path, tmp_path / "out [1].mp4", "--model", tiny_cyclegan, "--device", "cpu")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())  # table cells and wrapped lines to plain words
    assert "video: bad [copy].mp4" in text and "[1].mp4" in text  # (the long OUTPUT path is elided in the middle)
