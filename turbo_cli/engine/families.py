"""The vocabulary of model families and their defaults, the one home for both.

A model is of one `Kind`: `cyclegan` (CycleGAN-turbo: unpaired, one VAE per direction, a2b/b2a) or `pix2pix`
(pix2pix-turbo: paired, one VAE, a prompt). Stochastic is a property of a pix2pix model (the sketch model's twin
conv_in and noise input), not a third kind. Its strength is the paper's `r` (the original scripts and turbo's CLI
call it `--gamma`; inside turbo it is `r` everywhere): LoRA scales x r, skip-connection gain r, noise mix 1 - r.

`defaults(kind, stochastic)` is what a model of that family takes when nothing says otherwise — what the original
code hard-codes for it. Loading an original checkpoint, building a tiny one, saving a trained one and the published
registry all start from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """A model family. A str Enum: it compares equal to, and serialises as, its plain name."""

    CYCLEGAN = "cyclegan"
    PIX2PIX = "pix2pix"

    def __str__(self) -> str:
        return self.value


class InputRange(str, Enum):
    """The pixel range the generator's VAE encoder is fed: CycleGAN-turbo normalises to [-1, 1]; the released
    pix2pix-turbo models take [0, 1] (their training transform stops at ToTensor)."""

    SIGNED = "-1,1"
    UNIT = "0,1"

    def __str__(self) -> str:
        return self.value

    def from_unit(self, x01):
        """A tensor in [0, 1] -> this range."""
        return x01 * 2 - 1 if self is InputRange.SIGNED else x01


@dataclass(frozen=True)
class FamilyDefaults:
    kind: Kind
    stochastic: bool
    input_range: InputRange
    rank_unet: int  # the original's LoRA ranks for the family
    rank_vae: int
    r: float  # default strength; 1.0 = the deterministic model
    preprocess: str  # conditioning the original applies to inputs: none | canny | sketch
    image_prep: str  # inference resize when the checkpoint does not say: what the original script defaults to


_DEFAULTS = {
    # CycleGAN-turbo: rank-128 UNet LoRA (three adapters), rank-4 VAE LoRA, inputs in [-1, 1]; inference at
    # 512x512 (inference_unpaired.py's default --image_prep: the published models were trained and evaluated there).
    (Kind.CYCLEGAN, False): FamilyDefaults(Kind.CYCLEGAN, False, InputRange.SIGNED, 128, 4, 1.0, "none",
                                           "resize_512x512"),
    # pix2pix-turbo: rank-8 UNet LoRA, rank-4 VAE LoRA, inputs in [0, 1]; inference_paired.py resizes DOWN to
    # multiples of 8 (no_resize).
    (Kind.PIX2PIX, False): FamilyDefaults(Kind.PIX2PIX, False, InputRange.UNIT, 8, 4, 1.0, "none", "no_resize"),
    # The stochastic sketch model: pix2pix with a twin conv_in; the original's gradio default r = 0.4 on sketches.
    (Kind.PIX2PIX, True): FamilyDefaults(Kind.PIX2PIX, True, InputRange.UNIT, 8, 4, 0.4, "sketch", "no_resize"),
}


def kind_of(value: str | Kind) -> Kind:
    """A Kind from its name; one line naming the valid ones otherwise."""
    try:
        return Kind(value)
    except ValueError:
        raise ValueError(f"unknown model kind {value!r} (valid: {', '.join(k.value for k in Kind)})") from None


def defaults(kind: str | Kind, stochastic: bool = False) -> FamilyDefaults:
    kind = kind_of(kind)
    if stochastic and kind is Kind.CYCLEGAN:
        raise ValueError("a CycleGAN-turbo model cannot be stochastic")
    return _DEFAULTS[(kind, bool(stochastic))]
