"""It learns: CycleGAN-turbo on a tiny synthetic colour-shift dataset and pix2pix-turbo on tiny synthetic pairs, with
each of vision-aided's GAN loss types, a few dozen CPU steps (scripts/train_switches.py measures more)."""

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


@pytest.mark.parametrize("gan_loss", ["multilevel_sigmoid", "multilevel_sigmoid_s"])
def test_cyclegan_turbo_learns_the_colour_shift(tmp_path, gan_loss):
    models = tiny_models(tmp_path / "models")
    data = make_unpaired(tmp_path / "data", n_train=6, n_test=4, size=32, seed=1)
    cfg = load_recipe(RECIPE, tiny_overrides(models, data, tmp_path / "out", train__max_steps=STEPS,
                                             train__checkpoint_every=STEPS, loss__gan_loss=gan_loss))
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


@torch.no_grad()
def paired_l2(trainer: Trainer, test) -> float:
    trainer.gen.eval()
    errs = [torch.mean((trainer.gen(it["condition"][None], trainer.prompts(it["caption"])) - it["target"][None]) ** 2)
            for it in (test[i] for i in range(len(test)))]
    trainer.gen.train()
    return float(sum(errs) / len(errs))


@pytest.mark.parametrize("gan_loss", ["multilevel_sigmoid_s", "multilevel_sigmoid"])
def test_pix2pix_turbo_learns_the_targets(tmp_path, gan_loss):
    from tests._train_helpers import make_paired
    from turbo_cli.train.data import PairedDataset

    models = tiny_models(tmp_path / "models")
    data = make_paired(tmp_path / "data", n_train=6, n_test=4, size=32, seed=1)
    cfg = load_recipe(RECIPE, tiny_overrides(models, data, tmp_path / "out", model__kind="paired",
                                             train__max_steps=30, train__checkpoint_every=30, train__batch_size=2,
                                             loss__lambda_clipsim=5.0, loss__gan_loss=gan_loss))
    trainer = Trainer(cfg)
    trainer.setup()
    test = PairedDataset(data, "test", "no_resize")
    before = paired_l2(trainer, test)
    result = trainer.run()
    after = paired_l2(trainer, test)
    assert after < 0.8 * before, (before, after)  # test L2 to the targets (the task metric) falls
    rec = [h["rec"] for h in result.history]
    assert sum(rec[-3:]) / 3 < sum(rec[:3]) / 3, rec  # and the reconstruction loss with it
