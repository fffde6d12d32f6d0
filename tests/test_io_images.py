"""Image discovery, decoding of awkward files, and atomic writes (turbo_cli/io/images.py)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.images import (
    ImageJob,
    discover_images,
    is_complete_output,
    output_path,
    read_image,
    write_image_atomic,
)


def _save(path: Path, arr: np.ndarray | None = None, mode: str = "RGB", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr is None:
        arr = np.full((8, 8, 3), 100, np.uint8)
    Image.fromarray(arr, mode if arr.ndim == 3 else None).save(path, **kw)
    return path


# ----------------------------------------------------------------------------------------------- discovery


def _tree(root: Path) -> None:
    _save(root / "b.png")
    _save(root / "a.JPG", format="JPEG")
    _save(root / "sub" / "c.webp", format="WEBP")
    _save(root / "sub" / "deeper" / "d.tif", format="TIFF")
    _save(root / ".hidden.png")
    _save(root / ".cache" / "e.png")
    _save(root / "sub" / ".b.png.123.abcd1234.tmp", format="PNG")  # our in-flight temp file
    (root / "notes.txt").write_text("not an image")


def test_discover_folder_recursive_sorted_and_skips_hidden(tmp_path):
    _tree(tmp_path / "in")
    jobs = discover_images(tmp_path / "in")
    assert [j.rel.as_posix() for j in jobs] == ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.tif"]
    assert all(j.src == tmp_path / "in" / j.rel for j in jobs)


def test_discover_single_file_and_glob(tmp_path):
    _tree(tmp_path / "in")
    (job,) = discover_images(tmp_path / "in" / "sub" / "c.webp")
    assert job == ImageJob(tmp_path / "in" / "sub" / "c.webp", Path("c.webp"))

    rels = [j.rel.as_posix() for j in discover_images(f"{tmp_path}/in/**/*.*")]
    assert rels == ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.tif"]
    rels = [j.rel.as_posix() for j in discover_images(f"{tmp_path}/in/sub/*")]
    assert rels == ["c.webp"]


def test_discover_exclude_output_folder(tmp_path):
    _tree(tmp_path / "in")
    _save(tmp_path / "in" / "out" / "b.png")
    rels = [j.rel.as_posix() for j in discover_images(tmp_path / "in", exclude=tmp_path / "in" / "out")]
    assert "out/b.png" not in rels and "b.png" in rels


def test_discover_errors_name_the_input(tmp_path):
    with pytest.raises(InputError, match="nope"):
        discover_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        discover_images(tmp_path / "empty")
    with pytest.raises(InputError, match="no images found"):
        discover_images(f"{tmp_path}/empty/*.png")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="x.txt"):
        discover_images(tmp_path / "x.txt")


# ----------------------------------------------------------------------------------------------- decoding


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # stored: left half red, right half blue
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    img = read_image(path)
    assert img.rgb.shape == (40, 20, 3) and img.size == (20, 40)
    # After a 90-degree clockwise turn the stored left (red) side is on top.
    assert img.rgb[5, 10, 0] > 200 and img.rgb[5, 10, 2] < 60
    assert img.rgb[35, 10, 2] > 200 and img.rgb[35, 10, 0] < 60


def test_16bit_grey_png_and_tiff_scale_not_clip(tmp_path):
    grey = np.array([[0, 257, 32768, 65535]], np.uint16)
    for name in ("g.png", "g.tif"):
        Image.fromarray(grey).save(tmp_path / name)
        img = read_image(tmp_path / name)
        assert img.mode.startswith("I")
        assert img.rgb.dtype == np.uint8 and img.rgb.shape == (1, 4, 3)
        assert img.rgb[0, :, 0].tolist() == [0, 1, 128, 255]
        assert (img.rgb[..., 0] == img.rgb[..., 2]).all()


def test_16bit_rgb_png_and_tiff(tmp_path):
    bgr = np.zeros((2, 3, 3), np.uint16)
    bgr[..., 2] = 65535  # red
    bgr[..., 1] = 32768  # green
    bgr[..., 0] = 257  # blue
    for name in ("c.png", "c.tif"):
        assert cv2.imwrite(str(tmp_path / name), bgr)
        img = read_image(tmp_path / name)
        assert img.rgb[0, 0].tolist() == [255, 128, 1]
        assert img.alpha is None


def test_cmyk_converts(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(tmp_path / "c.tif")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    for name in ("c.tif", "c.jpg"):
        img = read_image(tmp_path / name)
        assert img.mode == "CMYK"
        r, g, b = img.rgb[4, 4].astype(int)
        assert r > 240 and g < 20 and b < 20, (name, r, g, b)


def test_alpha_palette_grey_and_bilevel(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = np.arange(16).reshape(4, 4) * 17
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert (img.alpha == rgba[..., 3]).all() and (img.rgb == rgba[..., :3]).all()

    la = Image.fromarray(np.dstack([np.full((4, 4), 90, np.uint8), np.full((4, 4), 40, np.uint8)]), "LA")
    la.save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert (img.rgb == 90).all() and (img.alpha == 40).all()

    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.alpha is None and img.rgb[1, 1].tolist() == [10, 20, 30] and img.rgb[0, 0].tolist() == [0, 0, 0]
    pal.save(tmp_path / "pt.png", transparency=0)
    img = read_image(tmp_path / "pt.png")
    assert img.alpha[0, 0] == 0 and img.alpha[1, 1] == 255 and img.rgb[1, 1].tolist() == [10, 20, 30]

    Image.fromarray(np.full((3, 5), 77, np.uint8), "L").save(tmp_path / "l.bmp")
    img = read_image(tmp_path / "l.bmp")
    assert img.rgb.shape == (3, 5, 3) and (img.rgb == 77).all()

    bits = Image.new("1", (4, 2), 0)
    bits.putpixel((1, 0), 1)
    bits.save(tmp_path / "one.png")
    img = read_image(tmp_path / "one.png")
    assert img.rgb[0, 1].tolist() == [255, 255, 255] and img.rgb[0, 0].tolist() == [0, 0, 0]


def _noise(h=64, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_raises_input_error_with_path(tmp_path, fmt):
    buf = io.BytesIO()
    Image.fromarray(_noise()).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=str(path)):
        read_image(path)


def test_text_file_with_image_suffix_raises(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("this is not a png")
    with pytest.raises(InputError, match="fake.png.*not an image"):
        read_image(path)
    with pytest.raises(InputError, match="missing.png"):
        read_image(tmp_path / "missing.png")


# ----------------------------------------------------------------------------------------------- writing


def test_output_path_mirrors_and_changes_suffix(tmp_path):
    job = ImageJob(Path("/data/in/sub/x.jpeg"), Path("sub/x.jpeg"))
    assert output_path(job, tmp_path) == tmp_path / "sub" / "x.jpeg"
    assert output_path(job, tmp_path, "png") == tmp_path / "sub" / "x.png"
    assert output_path(job, tmp_path, "JPG") == tmp_path / "sub" / "x.jpg"
    assert output_path(job, tmp_path, ".tiff") == tmp_path / "sub" / "x.tiff"
    with pytest.raises(InputError, match="--format gif"):
        output_path(job, tmp_path, "gif")


def test_write_round_trip_keeps_or_drops_alpha(tmp_path):
    rgb = _noise(16, 24)
    alpha = np.random.default_rng(1).integers(0, 256, (16, 24), dtype=np.uint8)
    for suffix in (".png", ".webp", ".tiff"):
        path = write_image_atomic(tmp_path / "deep" / f"o{suffix}", rgb, alpha, quality=100)
        img = read_image(path)
        assert img.alpha is not None, suffix
        if suffix != ".webp":  # WebP is lossy even at quality 100
            assert (img.rgb == rgb).all() and (img.alpha == alpha).all()
    for suffix in (".jpg", ".bmp"):
        path = write_image_atomic(tmp_path / f"o{suffix}", rgb, alpha)
        assert Image.open(path).mode == "RGB"
        assert read_image(path).alpha is None
    assert (read_image(tmp_path / "o.bmp").rgb == rgb).all()
    assert not list(tmp_path.rglob("*.tmp"))


def test_write_failure_leaves_no_temp_and_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image_atomic(target, _noise(8, 8))
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG partial")  # atomic_path hands PIL the temp file's path
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        write_image_atomic(target, _noise(8, 8, seed=3))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_into_unwritable_place_raises_turbo_error(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(TurboError, match="cannot write"):
        write_image_atomic(tmp_path / "file" / "x.png", _noise(8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_is_complete_output(tmp_path):
    assert not is_complete_output(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    assert not is_complete_output(tmp_path / "empty.png")
    write_image_atomic(tmp_path / "done.png", _noise(4, 4))
    assert is_complete_output(tmp_path / "done.png")


def test_discover_follows_symlinked_folders_without_looping(tmp_path):
    _save(tmp_path / "data" / "x.png")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "data", target_is_directory=True)
    (tmp_path / "data" / "loop").symlink_to(tmp_path / "data", target_is_directory=True)
    rels = [j.rel.as_posix() for j in discover_images(tmp_path / "in")]
    assert rels == ["linked/x.png"]


def test_a_killed_writers_temp_file_is_removed_by_the_next_run(tmp_path):
    """SIGKILL runs no cleanup: the temp file stays. Its name carries its writer, so a later run removes it when
    that process is gone, and leaves a live writer's alone."""
    import os
    import subprocess
    import sys

    from turbo_cli.atomic import atomic_path, remove_stale

    code = ("import os, signal, sys\nfrom turbo_cli.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "sub" / "x.png")])
    left = [p.name for p in (tmp_path / "sub").iterdir()]
    assert len(left) == 1 and left[0].startswith(".x.png.") and left[0].endswith(".tmp"), left
    with atomic_path(tmp_path / "sub" / "y.png") as live:  # this process's own, in flight
        live.write_bytes(b"in flight")
        assert remove_stale(tmp_path) == 1
        assert [p.name for p in (tmp_path / "sub").iterdir()] == [live.name]
    assert sorted(os.listdir(tmp_path / "sub")) == ["y.png"]
