"""It learns: CycleGAN-turbo on a tiny synthetic colour-shift dataset, a few dozen CPU steps."""

from __future__ import annotations

import pytest
import torch

from tests._train_helpers import RECIPE, make_unpaired, tiny_models, tiny_overrides
from turbo_cli.train.data import UnpairedDataset
from turbo_cli.train.loop import Trainer
from turbo_cli.train.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 20


def red_minus_blue(x: torch.Tensor) -> float:
    """Mean R - mean B in [-1, 1] units: domain B has red +90 and blue -90 (of 255) compared with A."""
    return (x[:, 0].mean() - x[:, 2].mean()).item()


@torch.no_grad()
def a2b_outputs(trainer: Trainer, images: torch.Tensor) -> torch.Tensor:
    trainer.gen.eval()
    out = trainer.translate(images, "a2b")
    trainer.gen.train()
    return out


def test_cyclegan_turbo_learns_the_colour_shift(tmp_path):
    models = tiny_models(tmp_path / "models")
    data = make_unpaired(tmp_path / "data", n_train=6, n_test=4, size=32, seed=1)
    cfg = load_recipe(RECIPE, tiny_overrides(models, data, tmp_path / "out", train__max_steps=STEPS,
                                             train__checkpoint_every=STEPS))
    trainer = Trainer(cfg)
    trainer.setup()
    test = UnpairedDataset(data, "test", "no_resize")
    a = torch.stack([test[i]["a"] for i in range(4)])
    b = torch.stack([test[i]["b"] for i in range(4)])
    target = red_minus_blue(b)
    gap_before = abs(red_minus_blue(a2b_outputs(trainer, a)) - target)

    result = trainer.run()

    gap_after = abs(red_minus_blue(a2b_outputs(trainer, a)) - target)
    assert red_minus_blue(b) - red_minus_blue(a) > 1.0  # the dataset really has the shift
    # a2b outputs moved most of the way toward domain B's colour statistics
    assert gap_after < 0.35 * gap_before, (gap_before, gap_after)
    cycle = [h["cycle"] for h in result.history]
    first, last = sum(cycle[:3]) / 3, sum(cycle[-4:]) / 4
    assert last < 0.7 * first, cycle  # the cycle loss falls clearly
