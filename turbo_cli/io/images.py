"""Image files: find them, decode them to 8-bit RGB (+ alpha), write results atomically.

Everything the model sees goes through `read_image`, so the odd corners of real photo folders are handled
here once: EXIF orientation, alpha, greyscale, palette, CMYK, 16-bit, 1-bit, truncated and non-image files.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from turbo_cli.atomic import atomic_path
from turbo_cli.errors import InputError, TurboError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

# --format value -> (suffix, PIL format name, keeps alpha)
OUTPUT_FORMATS = {
    "png": (".png", "PNG", True),
    "jpg": (".jpg", "JPEG", False),
    "jpeg": (".jpeg", "JPEG", False),
    "webp": (".webp", "WEBP", True),
    "bmp": (".bmp", "BMP", False),
    "tif": (".tif", "TIFF", True),
    "tiff": (".tiff", "TIFF", True),
}
_SUFFIX_FORMAT = {suffix: (fmt, alpha) for suffix, fmt, alpha in OUTPUT_FORMATS.values()}

TMP_SUFFIX = ".tmp"


# ----------------------------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class ImageJob:
    """One input image: where it is, and the relative path its output mirrors."""

    src: Path
    rel: Path


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def _skipped(rel: Path) -> bool:
    # Hidden files/folders, and our own in-flight temp files (".name.xxxx.tmp"), are never inputs.
    return any(part.startswith(".") for part in rel.parts) or rel.name.endswith(TMP_SUFFIX)


def _is_under(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _walk_folder(root: Path, exclude: Path | None) -> list[ImageJob]:
    jobs = []
    seen_dirs: set[str] = set()
    # Follow symlinked folders (datasets are often linked in) but never loop.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs or _is_under(Path(dirpath), exclude):
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            src = Path(dirpath) / name
            rel = src.relative_to(root)
            if is_image_path(name) and not _skipped(rel):
                jobs.append(ImageJob(src, rel))
    return jobs


def _glob_root(pattern: str) -> Path:
    """The part of a glob pattern before the first component with a wildcard: rel paths start there."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def discover_images(input: str | Path, exclude: str | Path | None = None) -> list[ImageJob]:
    """INPUT is an image file, a folder (searched recursively) or a glob pattern (`**` allowed).

    Returns jobs sorted by relative path. `exclude` is a folder whose contents are never inputs (the output
    folder, when a user writes results inside the input folder and runs again).
    """
    text = str(input)
    path = Path(text).expanduser()
    excl = Path(exclude).expanduser().resolve() if exclude is not None else None
    if path.is_file():
        if not is_image_path(path):
            raise InputError(f"{text}: not a supported image type (use {', '.join(sorted(IMAGE_EXTS))})")
        jobs = [ImageJob(path, Path(path.name))]
    elif path.is_dir():
        jobs = _walk_folder(path, excl)
    elif glob.has_magic(text):
        root = _glob_root(os.path.expanduser(text))
        jobs = []
        for match in glob.glob(os.path.expanduser(text), recursive=True):
            src = Path(match)
            if not src.is_file() or not is_image_path(src) or _is_under(src, excl):
                continue
            rel = src.relative_to(root) if root != Path(".") else src
            if not _skipped(rel):
                jobs.append(ImageJob(src, rel))
    else:
        raise InputError(f"{text}: no such file or folder")
    if not jobs:
        raise InputError(f"{text}: no images found (looked for {', '.join(sorted(IMAGE_EXTS))})")
    # Dedupe (a glob like "a/**/*.png" can list a file once per matching route) and sort for a stable order.
    unique = {job.rel.as_posix(): job for job in jobs}
    return [unique[key] for key in sorted(unique)]


# ----------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image in the one layout the rest of turbo uses."""

    rgb: np.ndarray  # (H, W, 3) uint8, upright (EXIF orientation applied)
    alpha: np.ndarray | None  # (H, W) uint8, or None when the file has no transparency
    path: Path
    mode: str  # PIL mode of the file, for messages ("I;16", "CMYK", ...)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), like PIL."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


def _high_depth_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (or 32-bit int / float) greyscale -> 8 bit by scaling the full range, never by clipping."""
    if mode == "F":
        # Float images are taken as [0, 1] (what image tools write); anything else is clipped to it.
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    wide = np.clip(arr.astype(np.int64), 0, 65535)
    # Exact rounding of v * 255 / 65535: 65535 -> 255, 32768 -> 128, 257 -> 1.
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        grey = _high_depth_to_uint8(np.asarray(im), mode)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    # RGB, L, 1, P (opaque), CMYK, YCbCr, ...: PIL's own conversion is right for all of them.
    return np.asarray(im.convert("RGB")), None


def read_image(path: str | Path) -> DecodedImage:
    """Decode an image file to upright 8-bit RGB plus optional alpha. Bad files raise InputError naming the path."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            # PIL decodes lazily: load() now so a truncated file fails here, with its path, not later.
            im.load()
            mode = im.mode
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # a corrupt EXIF block should not cost the pixels; keep the stored orientation
                pass
            rgb, alpha = _to_arrays(im)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{path}: not an image (or an unsupported format)") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated"), SyntaxError (broken PNG
        # chunks) or ValueError (bad headers).
        raise InputError(f"{path}: cannot decode image ({e})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"{path}: unsupported image layout {rgb.shape} (mode {mode})")
    return DecodedImage(rgb=rgb, alpha=alpha, path=path, mode=mode)


# ----------------------------------------------------------------------------------------------- writing


def normalize_format(fmt: str | None) -> str | None:
    """A --format value -> key of OUTPUT_FORMATS (or None to keep each input's format)."""
    if fmt is None:
        return None
    key = fmt.lower().lstrip(".")
    if key not in OUTPUT_FORMATS:
        raise InputError(f"--format {fmt}: unknown format (use one of {', '.join(OUTPUT_FORMATS)})")
    return key


def output_file(input: str | Path, output: str | Path, fmt: str | None = None) -> Path | None:
    """The file OUTPUT names, when it names one (None: OUTPUT is a folder), checked against INPUT and --format.

    OUTPUT names a file when it has an image suffix (`out.png`) or is an existing file; an existing folder stays
    a folder whatever its name. Only a single image may go to a file: a folder or a glob into a file is refused
    here, before any model is loaded (it would translate everything and then fail every write)."""
    out = Path(output).expanduser()
    if out.is_dir():
        return None
    if not out.is_file() and not is_image_path(out):
        return None
    if not is_image_path(out):
        raise InputError(f"{output}: exists and is not an image file or a folder; give an output folder "
                         f"or an image file name ({', '.join(sorted(_SUFFIX_FORMAT))})")
    src = Path(input).expanduser()
    if not src.is_file():
        kind = "a folder" if src.is_dir() else "a glob pattern" if glob.has_magic(str(input)) else "not one image"
        raise InputError(f"{output}: names an image file, but {input} is {kind}; give an output folder")
    if out.exists() and out.resolve() == src.resolve():
        raise InputError(f"{output}: is the input itself; give another output file or a folder")
    key = normalize_format(fmt)
    if key is not None and OUTPUT_FORMATS[key][1] != _SUFFIX_FORMAT[out.suffix.lower()][0]:
        raise InputError(f"--format {fmt} disagrees with {output}: the output's suffix picks its format; drop "
                         f"--format or change the suffix")
    return out


def output_path(job: ImageJob, out_dir: str | Path, fmt: str | None = None) -> Path:
    """Where the output of `job` goes: `out_dir / job.rel`, with the suffix of `fmt` when one is given."""
    key = normalize_format(fmt)
    target = Path(out_dir) / job.rel
    if key is not None:
        target = target.with_suffix(OUTPUT_FORMATS[key][0])
    return target


def is_complete_output(path: str | Path) -> bool:
    """An output counts as done when it exists and is non-empty (writes are atomic, so nothing is half-written)."""
    try:
        return Path(path).stat().st_size > 0
    except OSError:
        return False


def write_image_atomic(
    path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None, quality: int = 95
) -> Path:
    """Write an (H, W, 3) uint8 image (+ optional (H, W) alpha) atomically (`turbo_cli.atomic`).

    The format follows the suffix. Alpha is kept for PNG/WebP/TIFF and dropped for JPEG/BMP. A reader never
    sees a partial file, and the temp file is removed if anything fails (including Ctrl-C).
    """
    path = Path(path)
    fmt_alpha = _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt_alpha is None:
        raise InputError(f"{path}: cannot write this image type (use {', '.join(sorted(_SUFFIX_FORMAT))})")
    pil_format, keeps_alpha = fmt_alpha
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_image_atomic wants (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]):
        raise ValueError(f"alpha must be (H, W) uint8 matching rgb, got {alpha.shape} {alpha.dtype}")

    if alpha is not None and keeps_alpha:
        im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    save_kw: dict = {}
    if pil_format in ("JPEG", "WEBP"):
        save_kw["quality"] = quality

    try:
        with atomic_path(path) as tmp:  # hidden and ending in .tmp: discover_images never picks it up
            im.save(tmp, format=pil_format, **save_kw)
    except OSError as e:
        raise TurboError(f"{path}: cannot write image ({e.strerror or e})") from e
    return path


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to size=(width, height) for viewing and measuring (frames, thumbnails,
    grids): area filter down, bicubic up. Not the model's resize (that is the original's, in io/preps)."""
    import cv2

    w, h = size
    if rgb.shape[1] == w and rgb.shape[0] == h:
        return rgb
    shrink = w * h < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def image_grid(rows: list[list[np.ndarray]], *, pad: int = 2, scale: int = 1, background: int = 255) -> np.ndarray:
    """Rows of (H, W, 3) uint8 images -> one padded uint8 grid. Every cell takes the first cell's size (resized
    with `resize_rgb`), then is enlarged `scale` times by pixel repetition (nearest: the pixels stay visible)."""
    h, w = rows[0][0].shape[:2]
    H, W = h * scale, w * scale
    ncol = max(len(r) for r in rows)
    grid = np.full((len(rows) * (H + pad) + pad, ncol * (W + pad) + pad, 3), background, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            cell = resize_rgb(img, (w, h))
            if scale > 1:
                cell = cell.repeat(scale, axis=0).repeat(scale, axis=1)
            y, x = pad + i * (H + pad), pad + j * (W + pad)
            grid[y:y + H, x:x + W] = cell
    return grid
