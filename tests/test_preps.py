"""Image preps (turbo_cli/io/preps.py): sizes, parity with the original's torchvision pipelines, seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from turbo_cli.errors import ConfigError
from turbo_cli.io.preps import PREP_NAMES, build_transform, is_random


def _img(w=300, h=200, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "name, size_in, size_out",
    [
        ("resized_crop_512", (300, 200), (512, 512)),
        ("resized_crop_512", (200, 300), (512, 512)),
        ("resize_286_randomcrop_256x256_hflip", (300, 200), (256, 256)),
        ("resize_256", (300, 200), (256, 256)),
        ("resize_512", (300, 200), (512, 512)),
        ("resize_512x512", (300, 200), (512, 512)),
        ("no_resize", (300, 200), (300, 200)),
        ("resize_64", (300, 200), (64, 64)),
        ("resize_96x64", (300, 200), (96, 64)),
        ("resized_crop_48", (300, 200), (48, 48)),
        ("resize_72_randomcrop_64x48", (300, 200), (64, 48)),
        ("resize_72_randomcrop_64x64_hflip", (30, 20), (64, 64)),
    ],
)
def test_output_sizes(name, size_in, size_out):
    prep = build_transform(name, rng=random.Random(0))
    assert prep(_img(*size_in)).size == size_out
    assert prep.size in (size_out, None)


def test_all_original_names_build():
    for name in PREP_NAMES:
        build_transform(name)
    assert is_random("resize_286_randomcrop_256x256_hflip")
    assert is_random("resize_72_randomcrop_64x64")
    assert not any(is_random(n) for n in ("resized_crop_512", "resize_256", "no_resize", "resize_64x32"))


def test_deterministic_preps_match_torchvision():
    T = pytest.importorskip("torchvision.transforms")
    lanczos = T.InterpolationMode.LANCZOS
    img = _img(301, 203)
    cases = {
        "resized_crop_512": T.Compose([T.Resize(512, interpolation=lanczos), T.CenterCrop(512)]),
        "resized_crop_128": T.Compose([T.Resize(128, interpolation=lanczos), T.CenterCrop(128)]),
        "resize_256": T.Resize((256, 256), interpolation=lanczos),
        "resize_96x64": T.Resize((64, 96), interpolation=lanczos),  # torchvision takes (H, W)
    }
    for name, ref in cases.items():
        ours = np.asarray(build_transform(name)(img))
        assert np.array_equal(ours, np.asarray(ref(img))), name
    assert np.array_equal(np.asarray(build_transform("no_resize")(img)), np.asarray(img))


def test_random_prep_is_a_crop_of_the_resize_and_is_seeded():
    img = _img()
    resized = np.asarray(img.resize((286, 286), Image.Resampling.LANCZOS))
    name = "resize_286_randomcrop_256x256_hflip"

    def windows(out: np.ndarray) -> bool:
        for cand in (out, out[:, ::-1]):
            for top in range(31):
                for left in range(31):
                    if np.array_equal(resized[top : top + 256, left : left + 256], cand):
                        return True
        return False

    a = [np.asarray(build_transform(name, rng=random.Random(7))(img)) for _ in range(2)]
    assert np.array_equal(a[0], a[1])  # same seed -> same crop and flip
    prep = build_transform(name, rng=random.Random(7))
    outs = [np.asarray(prep(img)) for _ in range(8)]
    assert np.array_equal(outs[0], a[0])
    assert len({o.tobytes() for o in outs}) > 1  # the stream advances
    assert all(windows(o) for o in outs[:3])
    # A per-call rng overrides the built-in one: a sample's augmentation can depend only on its own seed.
    per_call = [np.asarray(prep(img, rng=random.Random(123))) for _ in range(2)]
    assert np.array_equal(per_call[0], per_call[1])


def test_hflip_happens_about_half_the_time():
    prep = build_transform("resize_8_randomcrop_8x8_hflip", rng=random.Random(0))
    img = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))  # asymmetric, crop == image
    flips = sum(prep(img).getpixel((0, 0)) != 0 for _ in range(200))
    assert 60 < flips < 140


def test_bad_names_raise_config_error():
    with pytest.raises(ConfigError, match="unknown image prep 'resize_big'.*resized_crop_512"):
        build_transform("resize_big")
    with pytest.raises(ConfigError, match="larger than the resize"):
        build_transform("resize_64_randomcrop_128x128")
    with pytest.raises(ConfigError, match="positive"):
        build_transform("resize_0")
