"""Video files out, on PyAV: `EncodeSettings` (codec, quality, pixel format, audio mode), `check_settings` and
`check_output` (fail fast, before a model loads or a frame decodes) and `VideoWriter`, which encodes RGB frames at
the timestamps it is given (the input's, so a variable frame rate stays variable), copies the input's audio packets
without re-encoding when the output container accepts the codec (else re-encodes to one it takes: Opus for webm,
AAC elsewhere), keeps the rotation, and always flushes the encoder on close.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from turbo_cli.io.video import set_codec_threads
from turbo_cli.io.video_errors import EncoderError
from turbo_cli.progress import QUIET, Progress

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


# Audio encoders tried, in order, when the output container refuses the input's audio codec (webm takes only
# Opus/Vorbis; mp4 and mov prefer AAC). Each: (FFmpeg encoder, codec name the container reports, label).
_AUDIO_TARGETS = (("aac", "aac", "AAC"), ("libopus", "opus", "Opus"), ("opus", "opus", "Opus"),
                  ("libvorbis", "vorbis", "Vorbis"), ("libmp3lame", "mp3", "MP3"), ("flac", "flac", "FLAC"))
_OPUS_RATES = (48000, 24000, 16000, 12000, 8000)
# AVFMT_VARIABLE_FPS: the muxer stores a timestamp per frame. Without it (avi, mpeg-ps, asf) FFmpeg itself makes
# the frame rate constant, so a variable-rate input would play at the wrong times.
_VARIABLE_FPS = 0x0400


def _audio_target(container) -> tuple[str, str] | None:
    """(encoder, label) for re-encoding audio into `container`, or None when no encoder here fits it."""
    for encoder, name, label in _AUDIO_TARGETS:
        if encoder in av.codecs_available and name in container.supported_codecs:
            return encoder, label
    return None


@dataclass(frozen=True)
class OutputPlan:
    """What `check_output` found out about an OUTPUT: its container and what becomes of the audio."""

    container: str  # FFmpeg's muxer name (mp4, matroska, webm, ...)
    audio: str | None  # "copy", "drop", an encoder name ("aac", "libopus"), or None without input audio


@functools.lru_cache(maxsize=64)
def keeps_timestamps(suffix: str) -> bool:
    """Whether the container a suffix picks stores a timestamp per frame (False for .avi, .mpg; True for unknown
    suffixes, which fail later with their own error)."""
    with tempfile.TemporaryDirectory(prefix="turbo-check-") as tmp:
        try:
            container = av.open(str(Path(tmp) / f"check{suffix}"), "w")
        except ValueError:
            return True
        try:
            return bool(container.format.flags & _VARIABLE_FPS)
        finally:
            container.close()


def _container_error(name: str, path: Path) -> EncoderError:
    return EncoderError(f"{name}: unknown container for suffix {path.suffix!r} (use e.g. .mp4, .mkv, .mov)")


def check_output(path: str | Path, settings: EncodeSettings, audio_codec: str | None = None, *,
                 name: str | Path | None = None) -> OutputPlan:
    """Everything about OUTPUT that can be checked without a frame: the container its suffix picks, that it takes
    the video codec and per-frame timestamps, and what happens to an input audio codec `audio_codec` (copied,
    re-encoded, or no encoder fits: an error). Opens a throw-away file of the same suffix in a temp folder."""
    path = Path(path)
    name = str(name or path)
    check_settings(settings)
    with tempfile.TemporaryDirectory(prefix="turbo-check-") as tmp:
        try:
            container = av.open(str(Path(tmp) / f"check{path.suffix}"), "w")
        except ValueError:
            raise _container_error(name, path) from None
        try:
            return _plan(container, settings, audio_codec, name)
        finally:
            container.close()


def _plan(container, s: EncodeSettings, audio_codec: str | None, name: str) -> OutputPlan:
    fmt = container.format
    if not fmt.flags & _VARIABLE_FPS:
        raise EncoderError(f"{name}: the {fmt.name} container cannot keep per-frame timestamps (frames would play "
                           f"at the wrong times); write .mp4 or .mkv instead")
    canonical = av.Codec(s.codec, "w").canonical_name
    if canonical not in container.supported_codecs:
        raise EncoderError(f"{name}: the {fmt.name} container cannot hold {canonical} video (--codec {s.codec}); "
                           f"pick another suffix or codec")
    if audio_codec is None:
        return OutputPlan(fmt.name, None)
    if s.audio == "drop":
        return OutputPlan(fmt.name, "drop")
    if audio_codec in container.supported_codecs:
        return OutputPlan(fmt.name, "copy")
    target = _audio_target(container)
    if target is None:
        raise EncoderError(f"{name}: the {fmt.name} container cannot hold {audio_codec} audio and no encoder here "
                           f"makes one it takes; use --audio drop or another suffix")
    return OutputPlan(fmt.name, target[0])


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
    audio: str = "copy"  # "copy": remux the input's audio (re-encoded if the container refuses it); "drop"
    options: dict[str, str] = field(default_factory=dict)  # extra encoder options, passed through to FFmpeg
    threads: int = 0  # encoder threads; 0 lets FFmpeg choose


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
    `audio_start`/`audio_end` (source seconds) bound the audio copied; `limit_audio` lowers the end once the
    video stops early (--max-frames). `metadata`: container tags (mp4/mov write custom keys as mdta tags).
    Notices (odd size padded, audio re-encoded, streams dropped) go to `progress.notice` and are kept in
    `self.notices`.
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
        progress: Progress = QUIET,
        name: str | Path | None = None,
        metadata: dict[str, str] | None = None,
    ):
        self.path = Path(path)
        self.name = str(name or path)  # what messages call the file (the final OUTPUT, not its temp file)
        self.settings = s = settings or EncodeSettings()
        self.width, self.height = width, height
        self.time_base = Fraction(time_base)
        self.notices: list[str] = []
        self._progress = progress
        self._offset_pts = round(Fraction(time_offset) / self.time_base) if time_offset else 0
        self._time_offset = time_offset
        self._last_pts: int | None = None
        self.frames_written = 0
        self.retimed = 0  # frames whose timestamp had to be nudged to stay strictly increasing
        self._closed = False
        self._audio_in = None
        self.audio_mode: str | None = None  # "copy" or "encode" while source audio remains to be written
        self.audio_packets = 0
        self.audio_duration = 0  # copied audio, in the input audio stream's time base
        self._audio_start: float | None = None
        self._audio_end: float | None = None
        self.container = None

        check_settings(s)
        # mp4/mov keep only their known tags unless told to write the others as mdta keys.
        options = {"movflags": "use_metadata_tags"} if metadata and self.path.suffix.lower() in (
            ".mp4", ".m4v", ".mov") else {}
        try:
            self.container = av.open(str(self.path), "w", format=format, options=options)
        except ValueError:
            raise _container_error(self.name, self.path) from None
        try:
            for key, value in (metadata or {}).items():
                self.container.metadata[key] = value
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
        self._progress.notice(message)

    # -- setup

    def _setup_video(self, rate: Fraction | None, rotation: int) -> None:
        s = self.settings
        _plan(self.container, s, None, self.name)  # the same container/codec checks as check_output
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
        set_codec_threads(stream, s.threads)
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
            target = _audio_target(self.container)
            if target is None:
                raise EncoderError(f"{self.name}: the {self.container.format.name} container cannot hold {name} "
                                   f"audio and no encoder here makes one it takes; use --audio drop")
            encoder, label = target
            rate = a.codec_context.sample_rate
            if encoder in ("libopus", "opus") and rate not in _OPUS_RATES:
                rate = 48000  # Opus runs at 48 kHz (and a few lower rates); the encoder resamples
            self._say(f"{source.name}: {self.container.format.name} cannot hold {name} audio: "
                      f"re-encoded to {label}")
            self._aout = self.container.add_stream(encoder, rate=rate, layout=a.codec_context.layout)
            self.audio_mode = "encode"
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

    def limit_audio(self, end: float) -> None:
        """Copy no audio from `end` (source seconds) on: the video stopped early (--max-frames) and the audio
        ends with it instead of running on over a frozen last frame."""
        self._audio_end = end if self._audio_end is None else min(self._audio_end, end)

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
        if self.audio_mode == "encode":
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
