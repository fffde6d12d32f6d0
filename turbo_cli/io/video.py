"""Video files in, on PyAV: which paths are videos, what a file holds (`probe`), and its frames as numpy RGB with
their timestamps (`read_frames`, `iter_rgb`). Frames stay in the stored (coded) orientation: the rotation is
metadata that `video_writer.VideoWriter` copies, so players turn the output exactly like the input. A file cut
short yields every frame that decodes, then raises `TruncatedVideoError`: with how many were lost when the
container's index counts its frames (mp4, mov), else with how far it got (an mkv's count is only an estimate).
A still image (by suffix, or an image demuxer such as FFmpeg's jpeg_pipe) is refused by `probe`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from turbo_cli.io.images import is_image_path
from turbo_cli.io.video_errors import (NotAVideoError, StillImageError, TruncatedVideoError, UndecodableVideoError,
                                        VideoNotFoundError)

# Suffixes treated as videos when INPUT is a folder (anything FFmpeg reads works as a single file).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".wmv", ".flv", ".3gp")


def is_video_path(path: str | Path) -> bool:
    """Whether a path names a video by its suffix (the one list `turbo video`, `turbo eval` and `translate` share)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def set_codec_threads(stream, threads: int) -> None:
    """Decoder or encoder threads. 0: FFmpeg's frame + slice threads (codecs are then rarely the bottleneck). A fixed
    count keeps codec threads from competing with a CPU model for the same cores (OpenMP threads slow down badly
    when oversubscribed)."""
    if threads:
        stream.thread_count = threads
    else:
        stream.thread_type = "AUTO"


# ---------------------------------------------------------------------------------------------- probe


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    frames: int | None  # from the container's index; None when it does not say (mkv, ts)
    duration: float | None  # seconds of the video stream (container duration as a fallback)
    start_time: float  # seconds; usually 0, not for cut MPEG-TS
    time_base: Fraction
    average_rate: Fraction | None  # mean frames/s; the real timestamps may be variable
    rotation: int  # degrees counter-clockwise from the display matrix (PyAV's VideoFrame.rotation)
    codec: str
    pix_fmt: str | None
    has_audio: bool
    audio_codec: str | None
    other_streams: tuple[str, ...] = ()  # "subtitle:mov_text", "data:bin_data", extra audio/video tracks
    metadata: dict[str, str] | None = None  # the container's tags, keys lower-cased (mkv upper-cases them)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def exact_frames(self, start: float | None = None, end: float | None = None) -> int | None:
        """The frame count the container's index states, for the whole file only; None where only an estimate
        exists (mkv, ts, webm; any --start/--end range). Only this number may back a "frames lost" claim."""
        return self.frames if start is None and end is None and self.frames else None

    def expected_frames(self, start: float | None = None, end: float | None = None) -> int | None:
        """Frames in [start, end): exact for a whole indexed file, else estimated from the mean rate (good enough
        for a progress bar's total, not for saying frames were lost: a variable rate makes it wrong)."""
        if start is None and end is None and self.frames:
            return self.frames
        if self.duration is None or not self.average_rate:
            return None
        lo = max(start or 0.0, 0.0)
        hi = self.duration if end is None else min(end - self.start_time, self.duration)
        return max(0, round((hi - lo) * float(self.average_rate)))


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # (H, W, 3) uint8, stored orientation
    pts: int  # in VideoInfo.time_base units
    time: float  # seconds


def _open_input(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise VideoNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise NotAVideoError(f"{path}: is a folder, expected a video file")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as e:
        raise NotAVideoError(
            f"{path}: not a readable media file ({e.strerror}); a file cut short before its index looks like this too"
        ) from None


# FFmpeg demuxers that read one picture (a .jpg renamed .mp4 still opens with jpeg_pipe).
_IMAGE_DEMUXERS = ("image2", "apng")
_IMAGE_CODECS = ("mjpeg", "png", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegxl", "qoi", "ppm", "pgm")


def _still_image_error(path: Path) -> StillImageError:
    return StillImageError(f"{path}: a still image, not a video; translate it with `turbo translate {path} OUTPUT`")


def _video_stream(container, path: Path) -> av.video.stream.VideoStream:
    videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not videos:
        kinds = ", ".join(s.type for s in container.streams) or "no streams"
        raise NotAVideoError(f"{path}: no video stream ({kinds})")
    stream = videos[0]
    if stream.codec_context is None:
        raise UndecodableVideoError(f"{path}: no decoder for the video codec in this FFmpeg build")
    return stream


def _rotation_from_metadata(stream) -> int | None:
    # Old FFmpeg builds and some demuxers export a clockwise "rotate" tag instead of a display matrix.
    tag = stream.metadata.get("rotate")
    try:
        return -int(float(tag)) if tag is not None else None
    except ValueError:
        return None


def _normalise_degrees(deg: float) -> int:
    d = int(round(deg)) % 360
    return d - 360 if d > 180 else d


def probe(path: str | Path) -> VideoInfo:
    """Describe a video file. Decodes at most a few packets (the rotation lives on decoded frames)."""
    path = Path(path)
    if is_image_path(path) and path.is_file():
        raise _still_image_error(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        fmt = container.format.name
        single = stream.frames == 1 and stream.codec_context.name in _IMAGE_CODECS
        if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe") or single:
            raise _still_image_error(path)
        tb = stream.time_base or Fraction(1, 90000)
        duration = None
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
        start_time = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        audio = list(container.streams.audio)
        others = [f"{s.type}:{s.codec_context.name if s.codec_context else '?'}" for s in container.streams
                  if s is not stream and not (audio and s is audio[0])]

        rotation = _rotation_from_metadata(stream)
        width, height, pix_fmt = stream.codec_context.width, stream.codec_context.height, stream.codec_context.pix_fmt
        if rotation is None or not width:
            for frame in _decode(container, stream, _DecodeStats(), max_packets=64):
                if rotation is None:
                    rotation = frame.rotation
                width, height, pix_fmt = frame.width, frame.height, frame.format.name
                break
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            frames=stream.frames or None,
            duration=duration,
            start_time=start_time,
            time_base=tb,
            average_rate=stream.average_rate or stream.guessed_rate,
            rotation=_normalise_degrees(rotation or 0),
            codec=stream.codec_context.name,
            pix_fmt=pix_fmt,
            has_audio=bool(audio),
            audio_codec=audio[0].codec_context.name if audio and audio[0].codec_context else None,
            other_streams=tuple(others),
            metadata={k.lower(): v for k, v in container.metadata.items()},
        )


# ------------------------------------------------------------------------------------------- reading


@dataclass
class _DecodeStats:
    errors: int = 0  # packets the decoder rejected
    demux_error: str | None = None  # the demuxer gave up (file cut short)
    last_error: str | None = None


def _decode(container, stream, stats: _DecodeStats, max_packets: int | None = None) -> Iterator[av.VideoFrame]:
    """Decode one stream, skipping packets the decoder rejects (counted) instead of stopping at the first."""
    packets = 0
    flushed = False
    try:
        for packet in container.demux(stream):
            flushed = packet.dts is None and packet.size == 0
            try:
                yield from stream.decode(packet)
            except av.error.FFmpegError as e:
                stats.errors += 1
                stats.last_error = e.strerror
            packets += 1
            if max_packets is not None and packets >= max_packets:
                return
    except av.error.FFmpegError as e:
        stats.demux_error = e.strerror
    if not flushed:  # the demuxer stopped early: drain what the decoder still holds
        try:
            yield from stream.decode(None)
        except av.error.FFmpegError as e:
            stats.errors += 1
            stats.last_error = e.strerror


def read_frames(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    threads: int = 0,
) -> Iterator[Frame]:
    """Yield the frames of the first video stream with time in [start, end) seconds, at most max_frames.

    `threads`: decoder threads; 0 lets FFmpeg choose (frame + slice threads).

    A file that ends early still yields every frame that decodes, then raises TruncatedVideoError saying
    how many frames were expected and how many decoded.
    """
    path = Path(path)
    info = probe(path)
    tb = info.time_base
    default_step = max(1, round(1 / (float(info.average_rate) * tb))) if info.average_rate else 1
    frame_s = 1 / float(info.average_rate) if info.average_rate else 0.1
    with contextlib.ExitStack() as stack:
        container, stream, stats, decoded = _start_decoding(path, info, start, stack, threads)
        first = next(decoded, None)
        if start is not None and start > 0 and (first is None or _seconds(first, tb, info) > start + 1.5 * frame_s):
            # The seek overshot (MPEG-TS and files without an index seek by bytes): decode from the top instead.
            stack.close()
            container, stream, stats, decoded = _start_decoding(path, info, None, stack, threads)
            first = next(decoded, None)
        n = 0
        last_pts: int | None = None
        last_time: float | None = None
        stopped = False
        for frame in itertools.chain([first] if first is not None else [], decoded):
            pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + default_step)
            time = float(pts * tb) - info.start_time
            if start is not None and time < start - 1e-6:
                continue
            if end is not None and time >= end - 1e-9:
                stopped = True
                break
            yield Frame(rgb=frame.to_ndarray(format="rgb24"), pts=pts, time=time)
            n += 1
            last_pts, last_time = pts, time
            if max_frames is not None and n >= max_frames:
                stopped = True
                break
        if stopped:
            return
        if n == 0 and (stats.errors or stats.demux_error):
            raise UndecodableVideoError(
                f"{path}: no frame of the {info.codec} video stream decodes ({stats.last_error or stats.demux_error})")
        _check_complete(info, n, last_time, start, end, stats)


def _seconds(frame: av.VideoFrame, tb: Fraction, info: VideoInfo) -> float:
    return float(frame.pts * tb) - info.start_time if frame.pts is not None else 0.0


def _start_decoding(path: Path, info: VideoInfo, start: float | None, stack: contextlib.ExitStack, threads: int = 0):
    """Open the file (closed by `stack`), seek to the keyframe at or before `start`, return a frame iterator."""
    container = stack.enter_context(_open_input(path))
    stream = _video_stream(container, path)
    set_codec_threads(stream, threads)
    if start is not None and start > 0:
        try:
            container.seek(int((start + info.start_time) / info.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            pass  # not seekable: decode from the top (frames before `start` are skipped)
    stats = _DecodeStats()
    return container, stream, stats, _decode(container, stream, stats)


def _check_complete(info: VideoInfo, decoded: int, last_time: float | None, start, end, stats: _DecodeStats) -> None:
    exact = info.exact_frames(start, end)
    if exact is not None and decoded >= exact:
        return
    # Where the stream should end: the file's duration, or --end when that comes first.
    stream_end = info.duration
    if end is not None and stream_end is not None:
        stream_end = min(stream_end, end - info.start_time)
    frame_s = 1 / float(info.average_rate) if info.average_rate else 0.1
    # Container frame counts include samples an edit list hides; only call it truncated when the decoded
    # frames also stop well before the stream's end (or the decoder/demuxer complained).
    reached = last_time is not None and stream_end is not None and last_time + 2.5 * frame_s >= stream_end
    complained = bool(stats.errors or stats.demux_error)
    if stream_end is not None and start is not None and start >= stream_end - 1e-6 and not complained:
        return  # the range lies past the end: nothing was there to decode
    if exact is None:
        # No index count (mkv, ts, webm, a range): a duration x mean-rate estimate is wrong for a variable rate
        # (a 90-frame clip "expected" 181), so say how far decoding got, never how many frames were lost.
        if (reached or stream_end is None) and not complained:
            return
        where = f"{last_time:.2f} s" if last_time is not None else "its start"
        of = f" of the {stream_end:.2f} s the file announces" if stream_end is not None else ""
        raise TruncatedVideoError(f"{info.path}: truncated or corrupt: decoded {decoded} frames, up to {where}{of}",
                                  decoded=decoded, expected=None)
    if reached and not complained:
        return
    raise TruncatedVideoError(
        f"{info.path}: truncated or corrupt: decoded {decoded} of {exact} frames ({exact - decoded} lost)",
        decoded=decoded,
        expected=exact,
    )


# Container tags a trimmed `turbo video` OUTPUT carries: where its time 0 lies in the input (seconds from the input
# video stream's start) and where it was cut off (--end), so evaluation pairs frames by time, not by position.
SOURCE_START_TAG = "turbo_source_start"
SOURCE_END_TAG = "turbo_source_end"


def source_range(info: VideoInfo) -> tuple[float, float | None]:
    """(start, end) in the source's seconds that an OUTPUT made by `turbo video --start/--end` covers; (0, None)
    for any other file."""
    def tag(key: str) -> float | None:
        try:
            return float((info.metadata or {})[key])
        except (KeyError, ValueError):
            return None
    return tag(SOURCE_START_TAG) or 0.0, tag(SOURCE_END_TAG)


def iter_rgb(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Just the (H, W, 3) uint8 frames, in order (for metrics such as temporal flicker)."""
    for frame in read_frames(path, max_frames=max_frames):
        yield frame.rgb

