"""turbo's discriminator heads and GAN losses against vision-aided-loss 0.1.0's own classes (the package the
original img2img-turbo trains with): the same weights and features give the same logits and loss values.

vision-aided-loss is a test dependency (the `dev` extra). Its heads (`cv_discriminator.MultiLevelDViT`), blur
(`blurpool.BlurPool`) and losses (`cv_losses`) are plain torch; its module of backbones (`cvmodel`, imported by the
package's __init__) imports timm, gdown (which needs setuptools' pkg_resources) and antialiased_cnns and downloads
weights, so a stand-in for that one module lets the package import here (the backbones are not compared: turbo's
CLIP features are tested in test_train_losses.py).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from unittest import mock

import pytest
import torch

from turbo_cli.train.discriminator import (GAN_LOSSES, BlurPool, MultiLevelHeads, VisionAidedDiscriminator,
                                           multilevel_sigmoid_loss)

if importlib.util.find_spec("vision_aided_loss") is None:
    pytest.skip("vision-aided-loss 0.1.0 is not installed (pip install -e .[dev])", allow_module_level=True)


def _import_vision_aided():
    stub = types.ModuleType("vision_aided_loss.cvmodel")
    stub.CVBackbone = None  # the backbones: not used by the heads and losses
    with mock.patch.dict(sys.modules):
        for name in [m for m in sys.modules if m == "vision_aided_loss" or m.startswith("vision_aided_loss.")]:
            del sys.modules[name]
        sys.modules["vision_aided_loss.cvmodel"] = stub
        from vision_aided_loss import blurpool, cv_discriminator, cv_losses
    return blurpool, cv_discriminator, cv_losses


va_blurpool, va_discriminator, cv_losses = _import_vision_aided()

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-6


def multilevel_dvit():
    return va_discriminator.MultiLevelDViT


def paired_heads(channels: int, embed: int, seed: int = 0):
    """turbo's heads with random weights, and vision-aided's MultiLevelDViT holding the same state."""
    torch.manual_seed(seed)
    ours = MultiLevelHeads(channels, embed)
    with torch.no_grad():  # spectral norm's power iteration settles (as in training): logits of order 1
        for _ in range(20):
            ours([torch.randn(2, channels, 7, 7), torch.randn(2, channels, 7, 7), torch.randn(2, embed)])
    theirs = multilevel_dvit()(level=3, in_ch1=channels, in_ch2=embed, out_ch=256)
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["decoder.0.3.filt", "decoder.1.3.filt"]  # its blur's buffer
    # and back: a vision-aided state dict (the original's discriminator) loads into turbo's heads
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if not k.endswith(".filt")}, strict=True)
    return ours, theirs


def test_blurpool_is_vision_aided_default():
    x = torch.randn(2, 256, 7, 7)
    theirs = va_blurpool.BlurPool(256, pad_type="zero", stride=1)  # as MultiLevelDViT builds it: filt_size 4
    ours = BlurPool(256)
    out = ours(x)
    assert out.shape == (2, 256, 6, 6)
    assert (out - theirs(x)).abs().max().item() < TOL
    assert torch.allclose(ours.filt[0, 0], theirs.filt[0, 0])


@pytest.mark.parametrize("train_mode", [True, False])
def test_clip_heads_give_vision_aided_logits(train_mode):
    """ViT-B/32's sizes: two 768x7x7 token maps and the 512-d projected embedding -> 3x3, 3x3 and 1 logits."""
    ours, theirs = paired_heads(768, 512)
    ours.train(train_mode), theirs.train(train_mode)
    torch.manual_seed(1)
    for _ in range(2):  # in training mode spectral norm's power iteration advances: twice, still equal
        feats = [torch.randn(2, 768, 7, 7), torch.randn(2, 768, 7, 7), torch.randn(2, 512)]
        a, b = ours(feats), theirs(feats)
        assert [tuple(t.shape) for t in a] == [(2, 9), (2, 9), (2, 1)]
        assert [tuple(t.shape) for t in b] == [(2, 3, 3), (2, 3, 3), (2, 1)]
        for x, y in zip(a, b):
            assert (x - y.reshape(x.shape)).abs().max().item() < TOL


@pytest.mark.parametrize("loss_type", sorted(GAN_LOSSES))
def test_gan_losses_are_vision_aided(loss_type):
    """vision-aided's `losses_list(loss_type)` on its heads' output, averaged over the batch as the original does
    (`net_disc(x, for_G=True).mean()`), equals turbo's loss on turbo's logits: for G, for real and for fake."""
    ours, theirs = paired_heads(768, 512, seed=2)
    ours.eval(), theirs.eval()
    torch.manual_seed(3)
    feats = [torch.randn(4, 768, 7, 7), torch.randn(4, 768, 7, 7), torch.randn(4, 512)]
    with torch.no_grad():
        logits, ref_logits = ours(feats), theirs(feats)
    ref = cv_losses.losses_list(loss_type=loss_type)
    for kwargs, real in (({"for_G": True}, True), ({"for_real": True}, True), ({"for_real": False}, False)):
        want = ref([ref_logits], **kwargs).mean().item()
        got = multilevel_sigmoid_loss(logits, real, loss_type).item()
        assert 0.1 < got < 100  # logits of order 1: an absolute 1e-6 is meaningful
        assert abs(got - want) < TOL, (loss_type, kwargs, got, want)
    # the smoothed type really differs (target 0.8), and only for real/G
    if loss_type == "multilevel_sigmoid_s":
        assert abs(multilevel_sigmoid_loss(logits, True, loss_type).item()
                   - multilevel_sigmoid_loss(logits, True).item()) > 1e-3


@pytest.mark.parametrize("loss_type", sorted(GAN_LOSSES))
def test_discriminator_loss_matches_vision_aided_on_its_features(tmp_path, loss_type):
    """The whole turbo discriminator (tiny CLIP tower, no DiffAugment) against vision-aided's heads and loss on
    the same features."""
    from tests._train_helpers import save_tiny_clip_vision

    torch.manual_seed(0)
    d = VisionAidedDiscriminator.from_pretrained(str(save_tiny_clip_vision(tmp_path / "clip")), diffaug="",
                                                 gan_loss=loss_type)
    with torch.no_grad():  # spectral norm's power iteration settles (as in training): logits of order 1
        for _ in range(20):
            d.train()(torch.rand(2, 3, 32, 32) * 2 - 1)
    d.eval()
    theirs = multilevel_dvit()(level=3, in_ch1=32, in_ch2=16, out_ch=256).eval()
    theirs.load_state_dict(d.head.state_dict(), strict=False)
    x = torch.rand(3, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        feats = d.features(x)
        ref = cv_losses.losses_list(loss_type=loss_type)([theirs(feats)], for_real=False).mean().item()
        assert 0.1 < ref < 100
        assert abs(d.loss(x, real=False).item() - ref) < TOL
        ref = cv_losses.losses_list(loss_type=loss_type)([theirs(feats)], for_G=True).mean().item()
        assert abs(d.loss(x, real=True).item() - ref) < TOL
