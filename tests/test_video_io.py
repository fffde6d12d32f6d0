"""turbo_cli.io.video: probing, reading (timestamps, ranges, bad files) and writing (timestamps, audio, rotation,
odd sizes, codecs). Videos are made in code by tests/_video_helpers.py."""

from __future__ import annotations

import shutil
from fractions import Fraction

import numpy as np
import pytest

from tests._video_helpers import (
    Notices,
    audio_stats,
    frame_times,
    make_audio_only,
    make_undecodable,
    make_video,
    pattern,
    stream_summary,
    truncate,
)
from turbo_cli.errors import InputError
from turbo_cli.io.video import iter_rgb, probe, read_frames
from turbo_cli.io.video_errors import (
    EncoderError,
    NotAVideoError,
    TruncatedVideoError,
    UndecodableVideoError,
    VideoNotFoundError,
)
from turbo_cli.io.video_writer import EncodeSettings, VideoWriter, available_encoders


def copy_through(src, dst, fn=lambda rgb: rgb, **settings):
    """Read every frame of src, write fn(frame) to dst at the same pts, like the video job does."""
    info = probe(src)
    notices = Notices()
    with VideoWriter(dst, width=info.width, height=info.height, time_base=info.time_base,
                     rate=info.average_rate, rotation=info.rotation, audio_source=src,
                     settings=EncodeSettings(**settings), progress=notices) as writer:
        for frame in read_frames(src):
            writer.write(fn(frame.rgb), frame.pts)
    assert writer.notices == notices.messages  # what the writer said is what it kept
    return writer, notices.messages


# ---------------------------------------------------------------------------------------------------- probe


def test_probe_describes_a_constant_rate_video_with_audio(tmp_path):
    made = make_video(tmp_path / "a.mp4", frames=12, size=(64, 48), rate=24, audio=True)
    info = probe(made.path)
    assert (info.width, info.height) == (64, 48)
    assert info.frames == 12
    assert info.average_rate == 24
    assert info.duration == pytest.approx(0.5, abs=1e-3)
    assert info.codec == "h264" and info.rotation == 0
    assert info.has_audio and info.audio_codec == "aac"
    assert info.other_streams == ()


def test_probe_reads_rotation_and_other_streams(tmp_path):
    made = make_video(tmp_path / "r.mp4", rotation=90, subtitles=True)
    info = probe(made.path)
    assert info.rotation == 90
    assert info.other_streams == ("subtitle:mov_text",)
    assert not info.has_audio


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda p: p / "missing.mp4", VideoNotFoundError, "no such file"),
        (lambda p: (p / "junk.mp4").write_bytes(b"\x00not a video" * 100) and p / "junk.mp4", NotAVideoError,
         "not a readable media file"),
        (lambda p: make_audio_only(p / "song.m4a"), NotAVideoError, "no video stream"),
        (lambda p: p, NotAVideoError, "is a folder"),
    ],
)
def test_bad_inputs_raise_one_line_input_errors(tmp_path, make, error, words):
    path = make(tmp_path)
    with pytest.raises(error) as e:
        probe(path)
    assert isinstance(e.value, InputError)
    assert words in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------- reading


def test_read_frames_keeps_variable_timestamps_and_content(tmp_path):
    made = make_video(tmp_path / "v.mp4", frames=9, vfr=True)
    frames = list(read_frames(made.path))
    assert [Fraction(f.time).limit_denominator(1000) for f in frames] == made.times
    info = probe(made.path)
    assert [f.pts * info.time_base for f in frames] == made.times
    for i, f in enumerate(frames):
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8
        # lossy but close to what was written, and clearly not the neighbour frame
        err = np.abs(f.rgb.astype(int) - pattern(i, 64, 48)).mean()
        assert err < 6, (i, err)
        assert err < np.abs(f.rgb.astype(int) - pattern(i + 1, 64, 48)).mean()


def test_read_frames_range_and_max_frames(tmp_path):
    made = make_video(tmp_path / "c.mp4", frames=24, rate=24)
    times = [f.time for f in read_frames(made.path, start=0.25, end=0.5)]
    assert times == pytest.approx([k / 24 for k in range(6, 12)])
    assert len(list(read_frames(made.path, max_frames=5))) == 5
    assert [f.time for f in read_frames(made.path, start=0.5, max_frames=2)] == pytest.approx([12 / 24, 13 / 24])
    assert len(list(iter_rgb(made.path, max_frames=3))) == 3


def test_range_in_mpeg_ts_where_seeking_is_by_bytes(tmp_path):
    made = make_video(tmp_path / "c.ts", frames=24, rate=24, audio=True)
    info = probe(made.path)
    assert info.frames is None and info.expected_frames() == 24  # no index: estimated from duration x rate
    times = [f.time for f in read_frames(made.path, start=0.25, end=0.5)]
    assert times == pytest.approx([k / 24 for k in range(6, 12)], abs=1e-3)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_file_yields_what_decodes_then_says_how_many_were_lost(tmp_path, suffix):
    full = make_video(tmp_path / f"full{suffix}", frames=48, faststart=True)
    cut = truncate(full.path, tmp_path / f"cut{suffix}", keep=0.6)
    got = []
    with pytest.raises(TruncatedVideoError) as e:
        for frame in read_frames(cut):
            got.append(frame)
    assert 0 < len(got) < 48
    if suffix == ".mp4":  # the index counts the frames: the loss is stated
        assert e.value.decoded == len(got) and e.value.expected == 48
        assert f"decoded {len(got)} of 48 frames ({48 - len(got)} lost)" in str(e.value)
    else:  # mkv has no count, only duration x rate: say how far it got, claim no number lost
        assert e.value.decoded == len(got) and e.value.expected is None
        assert f"decoded {len(got)} frames, up to {float(full.times[len(got) - 1]):.2f} s of the 2.00 s" in str(e.value)
        assert "lost" not in str(e.value)
    # a whole file never raises
    assert len(list(read_frames(full.path))) == 48


def test_truncated_before_the_index_is_not_readable(tmp_path):
    full = make_video(tmp_path / "moov_at_end.mp4", frames=24)  # mp4 index written last
    with pytest.raises(NotAVideoError, match="cut short"):
        probe(truncate(full.path, tmp_path / "cut.mp4", keep=0.6))


def test_undecodable_stream_is_reported(tmp_path):
    path = make_undecodable(tmp_path / "bad.avi")
    with pytest.raises(UndecodableVideoError, match="no frame of the mjpeg video stream decodes"):
        list(read_frames(path))


# ---------------------------------------------------------------------------------------------------- writing


def test_writer_keeps_variable_timestamps_and_copies_audio_packets(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=15, vfr=True, audio=True)
    writer, notices = copy_through(made.path, tmp_path / "out.mp4", lambda rgb: 255 - rgb)
    assert frame_times(tmp_path / "out.mp4") == made.times
    assert audio_stats(tmp_path / "out.mp4") == (made.audio_packets, made.audio_duration)
    assert writer.audio_packets == made.audio_packets and notices == []
    out = list(iter_rgb(tmp_path / "out.mp4"))
    assert np.abs(out[3].astype(int) - (255 - pattern(3, 64, 48))).mean() < 6


def test_writer_mkv_rounds_timestamps_to_its_millisecond_clock(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=9, vfr=True)
    copy_through(made.path, tmp_path / "out.mkv")
    assert [float(t) for t in frame_times(tmp_path / "out.mkv")] == pytest.approx(
        [float(t) for t in made.times], abs=1e-3)


def test_writer_copies_rotation(tmp_path):
    made = make_video(tmp_path / "in.mp4", rotation=90)
    copy_through(made.path, tmp_path / "out.mp4")
    assert stream_summary(tmp_path / "out.mp4")["rotation"] == 90
    assert probe(tmp_path / "out.mp4").rotation == 90


def test_odd_size_is_padded_for_yuv420p_and_kept_for_yuv444p(tmp_path):
    made = make_video(tmp_path / "odd.mp4", size=(65, 47), frames=4)
    _, notices = copy_through(made.path, tmp_path / "o420.mp4")
    assert stream_summary(tmp_path / "o420.mp4")["size"] == (66, 48)
    assert len(notices) == 1 and "65x47" in notices[0] and "66x48" in notices[0]
    # the padding repeats the edge, so the visible part is the frame itself
    first = next(iter_rgb(tmp_path / "o420.mp4"))
    assert np.abs(first[:47, :65].astype(int) - pattern(0, 65, 47)).mean() < 6
    _, notices = copy_through(made.path, tmp_path / "o444.mp4", pix_fmt="yuv444p")
    assert stream_summary(tmp_path / "o444.mp4")["size"] == (65, 47) and notices == []
    assert len(frame_times(tmp_path / "o444.mp4")) == 4


def test_audio_the_container_refuses_is_reencoded_to_aac(tmp_path):
    made = make_video(tmp_path / "in.mov", audio=True, audio_codec="pcm_mulaw", subtitles=True)
    writer, notices = copy_through(made.path, tmp_path / "out.mp4")
    summary = stream_summary(tmp_path / "out.mp4")
    assert summary["audio_codec"] == "aac" and summary["types"] == ["video", "audio"]
    assert any("re-encoded to AAC" in n for n in notices)
    assert any("dropped 1 stream" in n and "subtitle" in n for n in notices)
    _, seconds = audio_stats(tmp_path / "out.mp4")
    assert float(seconds) == pytest.approx(float(made.audio_duration), abs=0.05)


def test_audio_drop(tmp_path):
    made = make_video(tmp_path / "in.mp4", audio=True)
    _, notices = copy_through(made.path, tmp_path / "out.mp4", audio="drop")
    assert stream_summary(tmp_path / "out.mp4")["types"] == ["video"]
    assert any("--audio drop" in n for n in notices)


def test_libx265_and_crf_are_used(tmp_path):
    made = make_video(tmp_path / "in.mp4", frames=4)
    copy_through(made.path, tmp_path / "out.mp4", codec="libx265", crf=30)
    assert stream_summary(tmp_path / "out.mp4")["codec"] == "hevc"
    assert frame_times(tmp_path / "out.mp4") == made.times


@pytest.mark.parametrize(
    "name, settings, words",
    [
        ("out.mp4", {"codec": "nope264"}, "--codec nope264: no such encoder"),
        ("out.webm", {"codec": "libx264"}, "cannot hold h264"),
        ("out.mp4", {"pix_fmt": "nope"}, "--pix-fmt nope"),
        ("out.mp4", {"audio": "keep"}, "--audio keep"),
        ("out.zzz", {}, "unknown container"),
    ],
)
def test_writer_rejects_bad_settings_before_writing(tmp_path, name, settings, words):
    with pytest.raises(EncoderError, match=words):
        VideoWriter(tmp_path / name, width=64, height=48, time_base=Fraction(1, 24),
                    settings=EncodeSettings(**settings))


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine may open NVENC")
def test_hardware_encoder_without_its_device_is_one_clear_error(tmp_path):
    if "h264_nvenc" not in available_encoders():
        pytest.skip("this FFmpeg build has no h264_nvenc")
    with pytest.raises(EncoderError, match="cannot open encoder h264_nvenc.*needs its GPU") as e:
        VideoWriter(tmp_path / ".tmp.mp4", width=64, height=48, time_base=Fraction(1, 24), name=tmp_path / "o.mp4",
                    settings=EncodeSettings(codec="h264_nvenc"))
    assert str(e.value).startswith(str(tmp_path / "o.mp4"))


def test_writer_nudges_repeated_timestamps_instead_of_dropping(tmp_path):
    with VideoWriter(tmp_path / "o.mp4", width=32, height=32, time_base=Fraction(1, 10), rate=Fraction(10)) as w:
        for pts in (0, 1, 1, 2):
            w.write(np.zeros((32, 32, 3), np.uint8), pts)
    # 0, 1, 1 -> 2, 2 -> 3: every frame kept, order kept, timestamps strictly increasing
    assert w.retimed == 2 and frame_times(tmp_path / "o.mp4") == [Fraction(k, 10) for k in range(4)]
