"""The typed errors of video reading and writing: each is an `InputError` the user can fix, one line naming the file
(or the option) at fault, so the CLI prints it as is and exits with the input-error code."""

from __future__ import annotations

from turbo_cli.errors import InputError


class VideoError(InputError):
    """A video file that cannot be read or written as asked."""


class VideoNotFoundError(VideoError):
    """The path does not exist."""


class NotAVideoError(VideoError):
    """Not a media file FFmpeg can open, or a media file without a video stream."""


class StillImageError(NotAVideoError):
    """A still image (a .jpg, or a container holding a single picture): `turbo translate` is the verb for it."""


class UndecodableVideoError(VideoError):
    """The video stream's codec has no decoder here, or not one frame decodes."""


class TruncatedVideoError(VideoError):
    """Fewer frames decoded than the file announces (cut short or corrupt). Raised after the last good frame."""

    def __init__(self, message: str, *, decoded: int, expected: int | None):
        super().__init__(message)
        self.decoded = decoded
        self.expected = expected
        # The video job still writes the frames that did decode and attaches its VideoResult here, so a caller
        # can report what was written and still exit non-zero (typed loosely: io/ does not import jobs/).
        self.result: object | None = None


class EncoderError(VideoError):
    """An encoder, pixel format or container that cannot produce the requested output."""
