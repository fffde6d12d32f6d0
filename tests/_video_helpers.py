"""Small test videos made with PyAV in code: constant/variable frame rate, AAC audio, odd sizes, rotation,
a subtitle track, a truncated copy. Each maker returns what it wrote so tests compare against it. Plus `Notices`,
a progress sink that keeps the notices the video code gives."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from turbo_cli.progress import Progress

# Frame durations (in 1/1000 s) cycled through for variable frame rate: 30, 50 and 20 ms.
VFR_STEPS_MS = (30, 50, 20)


@dataclass
class Made:
    path: Path
    size: tuple[int, int]  # (width, height)
    times: list[Fraction]  # presentation time of each frame, seconds
    audio_packets: int = 0
    audio_duration: Fraction = Fraction(0)  # seconds, sum of packet durations


class Notices(Progress):
    """Shows nothing; keeps every notice, in order."""

    def __init__(self):
        self.messages: list[str] = []

    def notice(self, message: str) -> None:
        self.messages.append(message)


def pattern(i: int, width: int, height: int) -> np.ndarray:
    """A smooth frame that changes with i (gradients + a moving block): compresses well, frames differ."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    b = np.full((height, width), (i * 37) % 256, np.uint8)
    rgb = np.stack([r, g, b], axis=-1)
    bx, by = (i * 5) % max(width - 8, 1), (i * 3) % max(height - 8, 1)
    rgb[by:by + 8, bx:bx + 8] = 255
    return rgb


def make_video(
    path: Path,
    *,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    rate: int = 24,
    vfr: bool = False,
    audio: bool = False,
    audio_codec: str = "aac",
    rotation: int = 0,
    subtitles: bool = False,
    faststart: bool = False,
) -> Made:
    width, height = size
    odd = width % 2 or height % 2
    options = {"movflags": "faststart"} if faststart else {}
    tb = Fraction(1, 1000) if vfr else Fraction(1, rate)
    times: list[Fraction] = []
    with av.open(str(path), "w", options=options) as c:
        v = c.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "20"})
        v.width, v.height = width, height
        v.pix_fmt = "yuv444p" if odd else "yuv420p"  # 4:2:0 cannot hold odd sizes
        v.time_base = tb
        v.codec_context.time_base = tb
        if rotation:
            v.set_display_rotation(rotation)
        a = c.add_stream(audio_codec, rate=44100, layout="mono") if audio else None
        sub = None
        if subtitles:  # one cue, muxed as a ready-made packet (mov_text in mp4, srt in mkv)
            sub = c.add_mux_stream("mov_text" if path.suffix in (".mp4", ".mov") else "subrip")
            sub.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            f.pts, f.time_base = pts, tb
            times.append(pts * tb)
            pts += VFR_STEPS_MS[i % len(VFR_STEPS_MS)] if vfr else 1
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if sub is not None:
            text = b"turbo"
            p = av.Packet((len(text).to_bytes(2, "big") + text) if path.suffix in (".mp4", ".mov") else text)
            p.stream, p.pts, p.dts, p.duration, p.time_base = sub, 0, 0, 100, Fraction(1, 1000)
            c.mux(p)
        if a is not None:
            n = int(pts * tb * 44100)
            for k in range(0, n, 1024):
                m = min(1024, n - k)
                wave = 0.3 * np.sin(np.arange(k, k + m, dtype=np.float32) * 0.05)[None]
                af = av.AudioFrame.from_ndarray(wave.astype(np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 44100, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    made = Made(path=path, size=size, times=times)
    if audio:
        made.audio_packets, made.audio_duration = audio_stats(path)
    return made


def make_undecodable(path: Path, frames: int = 5) -> Path:
    """A well-formed container whose MJPEG video packets are random bytes: opens fine, no frame decodes."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_mux_stream("mjpeg", rate=25, width=64, height=48)
        s.time_base = Fraction(1, 25)
        for i in range(frames):
            p = av.Packet(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base = s, i, i, Fraction(1, 25)
            c.mux(p)
    return path


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=44100, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 44100, 0
        for p in [*a.encode(f), *a.encode()]:
            c.mux(p)
    return path


def truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """Copy the first `keep` of the bytes (a download cut short)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def frame_times(path: Path) -> list[Fraction]:
    """Presentation time (seconds, exact) of every decoded video frame."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [f.pts * s.time_base for f in c.decode(s)]


def audio_stats(path: Path) -> tuple[int, Fraction]:
    """(number of audio packets, their total duration in seconds) of the first audio stream."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0, Fraction(0)
        a = c.streams.audio[0]
        packets = [p for p in c.demux(a) if p.dts is not None]
        return len(packets), sum((p.duration for p in packets), 0) * a.time_base


def stream_summary(path: Path) -> dict:
    """Video size, rotation, codec, pixel format and the kinds of streams of a file."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        first = next(c.decode(s))
        return {
            "size": (first.width, first.height),
            "rotation": first.rotation,
            "codec": s.codec_context.name,
            "pix_fmt": first.format.name,
            "types": [st.type for st in c.streams],
            "audio_codec": c.streams.audio[0].codec_context.name if c.streams.audio else None,
        }
