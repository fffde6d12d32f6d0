"""The named models `--model` accepts: the published img2img-turbo checkpoints (docs/design.md), the demo model
bundled with turbo, and the words `--direction` accepts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from turbo_cli.engine.families import Kind, defaults
from turbo_cli.errors import ModelError

# Overridable so tests (and mirrors) can serve the files from elsewhere.
DEFAULT_URL_BASE = "https://www.cs.cmu.edu/~img2img-turbo/models/"

DAY, NIGHT, RAIN = "driving in the day", "driving in the night", "driving in heavy rain"


@dataclass(frozen=True)
class PublishedModel:
    name: str
    filename: str
    kind: Kind
    direction: str | None = None  # CycleGAN: the direction this name means
    captions: dict = field(default_factory=dict)  # CycleGAN: caption of the target domain, per direction
    preprocess: str = "none"  # pix2pix conditioning: canny edges / binarised sketch
    image_prep: str = "no_resize"
    stochastic: bool = False
    r: float = 1.0  # the stochastic strength (the CLI's --gamma)

    @property
    def url(self) -> str:
        return os.environ.get("TURBO_MODELS_URL", DEFAULT_URL_BASE).rstrip("/") + "/" + self.filename


_CYC = dict(kind=Kind.CYCLEGAN, image_prep="resize_512x512")  # trained and evaluated at 512x512 (BDD100k)
PUBLISHED: dict[str, PublishedModel] = {m.name: m for m in [
    PublishedModel("day_to_night", "day2night.pkl", direction="a2b", captions={"a2b": NIGHT, "b2a": DAY}, **_CYC),
    PublishedModel("night_to_day", "night2day.pkl", direction="b2a", captions={"a2b": NIGHT, "b2a": DAY}, **_CYC),
    PublishedModel("clear_to_rainy", "clear2rainy.pkl", direction="a2b", captions={"a2b": RAIN, "b2a": DAY}, **_CYC),
    PublishedModel("rainy_to_clear", "rainy2clear.pkl", direction="b2a", captions={"a2b": RAIN, "b2a": DAY}, **_CYC),
    PublishedModel("edge_to_image", "edge_to_image_loras.pkl", kind=Kind.PIX2PIX, preprocess="canny"),
    PublishedModel("sketch_to_image_stochastic", "sketch_to_image_stochastic_lora.pkl", kind=Kind.PIX2PIX,
                   preprocess="sketch", stochastic=True, r=defaults(Kind.PIX2PIX, True).r),
]}

# Target-domain words for --direction: they pick the published model that translates INTO that domain.
DIRECTION_WORDS = {"night": "day_to_night", "day": "night_to_day", "rainy": "clear_to_rainy",
                   "rain": "clear_to_rainy", "clear": "rainy_to_clear"}


# The bundled demo model: a tiny CycleGAN-turbo trained by `turbo train` on synthetic 64x64 day/night street scenes
# (scripts/train_demo.py, docs/demo.md). A turbo checkpoint whose base_model "./base" is the tiny base beside it.
DEMO = "demo"
DEMO_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "demo"
DEMO_CHECKPOINT = "day2night.safetensors"
# The demo's input size. The bundled file says no_resize (how it was validated, on 64x64 scenes), but at full
# resolution a 1080p photo takes minutes on a CPU for a model that only knows tiny synthetic scenes. At 128x128
# (2x its 64x64 training scenes) it keeps the demo clip's quality (edge F1 0.797 vs 0.799 at full size) and runs
# any image in about 0.1 s; outputs are resized back to the input's size. `--image-prep no_resize` restores it.
DEMO_IMAGE_PREP = "resize_128x128"
# Target-domain words for --direction with `--model demo` (it holds both directions: A = day, B = night).
DEMO_DIRECTION_WORDS = {"night": "a2b", "day": "b2a"}
DEMO_ABOUT = ("a tiny CycleGAN-turbo (a few MB) trained by `turbo train` on synthetic 64x64 street scenes: it shows "
              "the pipeline working on a CPU, not SD-Turbo quality")


def demo_checkpoint(assets: Path | None = None) -> Path:
    """The bundled demo checkpoint, or one line saying it is missing from this installation."""
    path = (assets or DEMO_ASSETS) / DEMO_CHECKPOINT
    if not path.is_file():
        raise ModelError(f"{path}: the demo model is not bundled with this installation (rebuild it with "
                         f"scripts/train_demo.py, or reinstall turbo with its package data)")
    return path


def direction_for(model: str | None, word: str) -> tuple[str, str] | None:
    """(model, a2b|b2a) for a target-domain --direction word, or None when the word means nothing here.

    With no --model (or the published model the word names) the word picks a published model; with the demo it
    picks the demo's own direction. Any other model: None (the caller explains)."""
    if model == DEMO:
        return (DEMO, DEMO_DIRECTION_WORDS[word]) if word in DEMO_DIRECTION_WORDS else None
    name = DIRECTION_WORDS.get(word)
    if name is None or model not in (None, name):
        return None
    return name, PUBLISHED[name].direction


def default_image_prep(model: str | None) -> str | None:
    """The image prep a named model runs at unless --image-prep says otherwise (None: the checkpoint's own)."""
    return DEMO_IMAGE_PREP if model == DEMO else None


def model_names() -> list[str]:
    """Every name `--model` knows: the published models and the demo."""
    return [*PUBLISHED, DEMO]
