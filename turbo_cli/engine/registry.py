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
DEMO_ABOUT = ("a tiny CycleGAN-turbo (a few MB) trained by `turbo train` on synthetic 64x64 street scenes: it shows "
              "the pipeline working on a CPU, not SD-Turbo quality")


def demo_checkpoint(assets: Path | None = None) -> Path:
    """The bundled demo checkpoint, or one line saying it is missing from this installation."""
    path = (assets or DEMO_ASSETS) / DEMO_CHECKPOINT
    if not path.is_file():
        raise ModelError(f"{path}: the demo model is not bundled with this installation (rebuild it with "
                         f"scripts/train_demo.py, or reinstall turbo with its package data)")
    return path


def model_names() -> list[str]:
    """Every name `--model` knows: the published models and the demo."""
    return [*PUBLISHED, DEMO]
