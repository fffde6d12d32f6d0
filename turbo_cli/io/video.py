"""Video in and out on PyAV: numpy RGB frames with their timestamps, audio remuxed, metadata kept.

Reading: `probe(path)` describes a file, `read_frames(path)` yields `Frame(rgb, pts, time)` in decode
order, `iter_rgb(path)` yields just the arrays. Frames stay in the stored (coded) orientation; the
rotation is metadata that the writer copies, so players turn the output exactly like the input.

Writing: `VideoWriter` encodes RGB frames at the timestamps you give it (the input's, so a variable
frame rate stays variable), copies the input's audio packets without re-encoding when the output
container accepts the codec, and always flushes the encoder on close.

Every problem the user can fix is an `InputError` subclass with one line naming the file.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from turbo_cli.errors import InputError

# Suffixes treated as videos when INPUT is a folder (anything FFmpeg reads works as a single file).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".wmv", ".flv", ".3gp")


def is_video_path(path: str | Path) -> bool:
    """Whether a path names a video by its suffix (the one list `turbo video`, `turbo eval` and `translate` share)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# Encoders that take a constant-quality value, and the option name each uses for it.
_QUALITY_OPTIONS = {
    "libx264": {"crf": "{crf}"},
    "libx264rgb": {"crf": "{crf}"},
    "libx265": {"crf": "{crf}", "x265-params": "log-level=error"},
    "libvpx-vp9": {"crf": "{crf}", "b": "0"},
    "libsvtav1": {"crf": "{crf}"},
    "h264_nvenc": {"rc": "vbr", "cq": "{crf}"},
    "hevc_nvenc": {"rc": "vbr", "cq": "{crf}"},
    "av1_nvenc": {"rc": "vbr", "cq": "{crf}"},
    "h264_qsv": {"global_quality": "{crf}"},
    "hevc_qsv": {"global_quality": "{crf}"},
}
_HARDWARE_ENCODERS = ("h264_nvenc", "hevc_nvenc", "av1_nvenc", "h264_qsv", "hevc_qsv", "h264_amf", "hevc_amf",
                      "h264_videotoolbox", "hevc_videotoolbox", "h264_vaapi", "hevc_vaapi")


# --------------------------------------------------------------------------------------------- errors


class VideoError(InputError):
    """A video file that cannot be read or written as asked."""


class VideoNotFoundError(VideoError):
    pass


class NotAVideoError(VideoError):
    """Not a media file FFmpeg can open, or a media file without a video stream."""


class UndecodableVideoError(VideoError):
    """The video stream's codec has no decoder here, or not one frame decodes."""


class TruncatedVideoError(VideoError):
    """Fewer frames decoded than the file announces (cut short or corrupt). Raised after the last good frame."""

    def __init__(self, message: str, *, decoded: int, expected: int | None):
        super().__init__(message)
        self.decoded = decoded
        self.expected = expected
        self.result = None  # set by the video job: what it wrote from the frames that did decode


class EncoderError(VideoError):
    """An encoder, pixel format or container that cannot produce the requested output."""


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

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def expected_frames(self, start: float | None = None, end: float | None = None) -> int | None:
        """Frames in [start, end): exact for a whole indexed file, else estimated from the mean rate."""
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
    with _open_input(path) as container:
        stream = _video_stream(container, path)
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
    _set_threads(stream, threads)
    if start is not None and start > 0:
        try:
            container.seek(int((start + info.start_time) / info.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            pass  # not seekable: decode from the top (frames before `start` are skipped)
    stats = _DecodeStats()
    return container, stream, stats, _decode(container, stream, stats)


def _check_complete(info: VideoInfo, decoded: int, last_time: float | None, start, end, stats: _DecodeStats) -> None:
    expected = info.expected_frames(start, end)
    if expected is None or decoded >= expected:
        return
    # Container frame counts include samples an edit list hides; only call it truncated when the decoded
    # frames also stop well before the stream's end (or the decoder/demuxer complained).
    frame_s = 1 / float(info.average_rate) if info.average_rate else 0.1
    reached = last_time is not None and info.duration is not None and last_time + 2.5 * frame_s >= info.duration
    if reached and not stats.errors and not stats.demux_error:
        return
    approx = "" if (start is None and end is None and info.frames) else "~"
    raise TruncatedVideoError(
        f"{info.path}: truncated or corrupt: decoded {decoded} of {approx}{expected} frames "
        f"({expected - decoded} lost)",
        decoded=decoded,
        expected=expected,
    )


def iter_rgb(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Just the (H, W, 3) uint8 frames, in order (for metrics such as temporal flicker)."""
    for frame in read_frames(path, max_frames=max_frames):
        yield frame.rgb


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame to size=(width, height): area filter down, bicubic up."""
    import cv2

    w, h = size
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return rgb
    shrink = w * h < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


# ------------------------------------------------------------------------------------------- writing


def available_encoders() -> list[str]:
    """Video encoders this FFmpeg build has that are worth offering (hardware ones need their device too)."""
    wanted = ["libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4", *_HARDWARE_ENCODERS]
    return [c for c in wanted if c in av.codecs_available]


def _needs_even(pix_fmt: str) -> tuple[bool, bool]:
    """Whether a pixel format subsamples chroma horizontally / vertically (then sizes must be even)."""
    fmt = av.VideoFormat(pix_fmt)
    return fmt.chroma_width(64) < 64, fmt.chroma_height(64) < 64


@dataclass
class EncodeSettings:
    codec: str = "libx264"  # plays everywhere; libx265 / hardware encoders on request
    crf: int | None = 18  # visually lossless for x264; lower = bigger and better
    pix_fmt: str = "yuv420p"  # what players and browsers decode; yuv444p keeps full chroma
    preset: str | None = None  # encoder speed preset (libx264's default "medium" when None)
    audio: str = "copy"  # "copy": remux the input's audio (re-encode to AAC if the container refuses it); "drop"
    options: dict[str, str] = field(default_factory=dict)  # extra encoder options, passed through to FFmpeg
    threads: int = 0  # encoder threads; 0 lets FFmpeg choose


def _set_threads(stream, threads: int) -> None:
    """0: FFmpeg's frame + slice threads (codecs are then rarely the bottleneck). A fixed count keeps codec threads
    from competing with a CPU model for the same cores (OpenMP threads slow down badly when oversubscribed)."""
    if threads:
        stream.thread_count = threads
    else:
        stream.thread_type = "AUTO"


def check_settings(s: EncodeSettings) -> None:
    """Fail fast on a codec, pixel format or audio mode that cannot work (before a model is loaded)."""
    if s.codec not in av.codecs_available:
        raise EncoderError(f"--codec {s.codec}: no such encoder in this FFmpeg build "
                           f"(available: {', '.join(available_encoders())})")
    try:
        kind = av.Codec(s.codec, "w").type
    except (ValueError, av.error.FFmpegError):
        kind = None
    if kind != "video":
        raise EncoderError(f"--codec {s.codec}: not a video encoder (available: {', '.join(available_encoders())})")
    if s.audio not in ("copy", "drop"):
        raise EncoderError(f"--audio {s.audio}: expected copy or drop")
    try:
        av.VideoFormat(s.pix_fmt)
    except (ValueError, av.error.FFmpegError):
        raise EncoderError(f"--pix-fmt {s.pix_fmt}: unknown pixel format") from None
    if s.crf is not None and not 0 <= s.crf <= 63:
        raise EncoderError(f"--crf {s.crf}: expected 0..63 (18 is visually lossless for libx264)")


class VideoWriter:
    """Encode RGB frames at given timestamps into a new file, with the source's audio and rotation.

        with VideoWriter(out, width=w, height=h, time_base=info.time_base, rate=info.average_rate,
                         rotation=info.rotation, audio_source=info.path) as writer:
            for frame in read_frames(info.path):
                writer.write(f(frame.rgb), frame.pts)

    `name` is what messages call the file (the final name when `path` is a temp file beside it).
    `time_offset` (seconds) is subtracted from every timestamp, video and audio (used by --start);
    `audio_start`/`audio_end` (source seconds) bound the audio copied. Notices (odd size padded, audio
    re-encoded, streams dropped) go to `notice` and are kept in `self.notices`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction | None = None,
        rotation: int = 0,
        settings: EncodeSettings | None = None,
        audio_source: str | Path | None = None,
        audio_start: float | None = None,
        audio_end: float | None = None,
        time_offset: float = 0.0,
        format: str | None = None,
        notice: Callable[[str], None] | None = None,
        name: str | Path | None = None,
    ):
        self.path = Path(path)
        self.name = str(name or path)  # what messages call the file (the final OUTPUT, not its temp file)
        self.settings = s = settings or EncodeSettings()
        self.width, self.height = width, height
        self.time_base = Fraction(time_base)
        self.notices: list[str] = []
        self._notice = notice
        self._offset_pts = round(Fraction(time_offset) / self.time_base) if time_offset else 0
        self._time_offset = time_offset
        self._last_pts: int | None = None
        self.frames_written = 0
        self.retimed = 0  # frames whose timestamp had to be nudged to stay strictly increasing
        self._closed = False
        self._audio_in = None
        self.audio_mode: str | None = None  # "copy" or "aac" while source audio remains to be written
        self.audio_packets = 0
        self.audio_duration = 0  # copied audio, in the input audio stream's time base
        self.container = None

        check_settings(s)
        try:
            self.container = av.open(str(self.path), "w", format=format)
        except ValueError:
            raise EncoderError(f"{self.name}: unknown container for suffix {self.path.suffix!r} "
                               f"(use e.g. .mp4, .mkv, .mov)") from None
        try:
            self._setup_video(rate, rotation)
            if audio_source is not None:
                self._setup_audio(Path(audio_source), audio_start, audio_end)
            # Open the encoders and write the header now: a bad codec/option fails here, before any work.
            self.container.start_encoding()
        except av.error.FFmpegError as e:
            self.abort()
            hint = " (a hardware encoder needs its GPU and driver)" if s.codec in _HARDWARE_ENCODERS else ""
            raise EncoderError(f"{self.name}: cannot open encoder {s.codec} with pix_fmt {s.pix_fmt}: "
                               f"{e.strerror}{hint}") from None
        except BaseException:
            self.abort()
            raise

    def _say(self, message: str) -> None:
        self.notices.append(message)
        if self._notice is not None:
            self._notice(message)

    # -- setup

    def _setup_video(self, rate: Fraction | None, rotation: int) -> None:
        s = self.settings
        codec = av.Codec(s.codec, "w")
        if codec.canonical_name not in self.container.supported_codecs:
            raise EncoderError(f"{self.name}: the {self.container.format.name} container cannot hold "
                               f"{codec.canonical_name} video (--codec {s.codec}); pick another suffix or codec")
        even_w, even_h = _needs_even(s.pix_fmt)
        self.pad_w = self.width % 2 if even_w else 0
        self.pad_h = self.height % 2 if even_h else 0
        if self.pad_w or self.pad_h:
            # 4:2:0 chroma needs even sizes; H.264 cannot crop a single pixel back (its crop unit is 2).
            self._say(f"{self.width}x{self.height} is odd and {s.pix_fmt} needs even sizes: padded to "
                      f"{self.width + self.pad_w}x{self.height + self.pad_h} by repeating the last "
                      f"{'column' if self.pad_w else 'row'}{' and row' if self.pad_w and self.pad_h else ''} "
                      f"(--pix-fmt yuv444p keeps the exact size)")
        options = {k: v.format(crf=s.crf) for k, v in _QUALITY_OPTIONS.get(s.codec, {}).items()
                   if s.crf is not None}
        if s.preset:
            options["preset"] = s.preset
        options.update(s.options)
        stream = self.container.add_stream(s.codec, rate=rate or Fraction(25), options=options)
        stream.width = self.width + self.pad_w
        stream.height = self.height + self.pad_h
        stream.pix_fmt = s.pix_fmt
        # Timestamps are the caller's (the input's): same time base for the encoder and the stream.
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        _set_threads(stream, s.threads)
        if rotation:
            stream.set_display_rotation(rotation)
        self.stream = stream

    def _setup_audio(self, source: Path, start: float | None, end: float | None) -> None:
        self._audio_start, self._audio_end = start, end
        src = av.open(str(source), "r")
        self._audio_in = src
        audios = list(src.streams.audio)
        dropped = [s for s in src.streams if s.type not in ("video", "audio")]
        if dropped:
            kinds = ", ".join(f"{s.type} ({s.codec_context.name if s.codec_context else '?'})" for s in dropped)
            self._say(f"{source.name}: dropped {len(dropped)} stream(s) turbo does not carry over: {kinds}")
        if len(audios) > 1:
            self._say(f"{source.name}: kept the first of {len(audios)} audio tracks")
        if not audios:
            return
        if self.settings.audio == "drop":
            self._say(f"{source.name}: audio dropped (--audio drop)")
            return
        a = audios[0]
        self._ain = a
        name = a.codec_context.name if a.codec_context else None
        if name and name in self.container.supported_codecs:
            self._aout = self.container.add_stream_from_template(a)
            self.audio_mode = "copy"
        else:
            if a.codec_context is None:
                self._say(f"{source.name}: audio codec has no decoder here; audio dropped")
                return
            self._say(f"{source.name}: {self.container.format.name} cannot hold {name} audio: re-encoded to AAC")
            self._aout = self.container.add_stream("aac", rate=a.codec_context.sample_rate,
                                                   layout=a.codec_context.layout)
            self.audio_mode = "aac"
        self._apackets = src.demux(a)
        self._apending = None  # next packet, read ahead to compare its time with the video's

    # -- writing

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one (height, width, 3) uint8 frame at `pts` (time_base units; None = previous + 1 frame)."""
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame {rgb.shape} {rgb.dtype}: expected ({self.height}, {self.width}, 3) uint8")
        if self.pad_w or self.pad_h:
            rgb = np.pad(rgb, ((0, self.pad_h), (0, self.pad_w), (0, 0)), mode="edge")
        if pts is None:
            pts = (self._last_pts + self._frame_step()) if self._last_pts is not None else self._offset_pts
        pts -= self._offset_pts
        if self._last_pts is not None and pts <= self._last_pts:
            # Muxers refuse equal/decreasing timestamps; nudge instead of dropping the frame.
            pts = self._last_pts + 1
            self.retimed += 1
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames_written += 1
        if self._audio_in is not None and self.audio_mode:
            self._pump_audio(until=float(pts * self.time_base))

    def _frame_step(self) -> int:
        rate = self.stream.codec_context.framerate or Fraction(25)
        return max(1, round(1 / (rate * self.time_base)))

    def _pump_audio(self, until: float | None) -> None:
        """Mux source audio up to `until` output seconds (None: to the end), keeping the file interleaved."""
        a = self._ain
        tb = a.time_base
        offset = round(Fraction(self._time_offset) / tb) if self._time_offset else 0
        while True:
            packet = self._apending
            if packet is None:
                packet = next(self._apackets, None)
                if packet is None:
                    break
                if packet.dts is None:  # demuxer flush packet: nothing to mux
                    continue
            t_src = float(packet.pts * tb) if packet.pts is not None else float(packet.dts * tb)
            if until is not None and t_src - self._time_offset > until:
                self._apending = packet
                return
            self._apending = None
            if self._audio_start is not None and t_src < self._audio_start:
                continue
            if self._audio_end is not None and t_src >= self._audio_end:
                continue
            if self.audio_mode == "copy":
                if packet.pts is not None:
                    packet.pts -= offset
                packet.dts -= offset
                self.audio_packets += 1
                self.audio_duration += packet.duration or 0
                packet.stream = self._aout
                self.container.mux(packet)
            else:
                for frame in a.decode(packet):
                    frame.pts = None  # let the encoder count samples from 0 (timestamps follow the video)
                    for p in self._aout.encode(frame):
                        self.container.mux(p)
        if self.audio_mode == "aac":
            for p in self._aout.encode(None):
                self.container.mux(p)
        self.audio_mode = None  # all audio written

    def close(self) -> None:
        """Flush the encoder(s), copy the rest of the audio and finish the file."""
        if self._closed:
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            if self._audio_in is not None and self.audio_mode:
                self._pump_audio(until=None)
        finally:
            self._closed = True
            self.container.close()
            if self._audio_in is not None:
                self._audio_in.close()

    def abort(self) -> None:
        """Close without flushing (the caller deletes the file)."""
        self._closed = True
        for c in (self.container, self._audio_in):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - a half-written file may fail its trailer; it is discarded
                    pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = [
    "VIDEO_SUFFIXES", "VideoError", "VideoNotFoundError", "NotAVideoError", "UndecodableVideoError",
    "TruncatedVideoError", "EncoderError", "VideoInfo", "Frame", "probe", "read_frames", "iter_rgb",
    "resize_rgb", "available_encoders", "EncodeSettings", "check_settings", "VideoWriter",
]
