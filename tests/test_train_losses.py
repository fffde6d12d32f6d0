"""Objectives: DiffAugment, the vision-aided CLIP discriminator, LPIPS, CLIP similarity, backbone loading errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests._train_helpers import save_random_lpips_trunk, save_tiny_clip, save_tiny_clip_vision, tiny_vision_config
from turbo_cli.errors import ModelError, OfflineError
from turbo_cli.train import diffaug
from turbo_cli.train.discriminator import VisionAidedDiscriminator, multilevel_sigmoid_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"disc": save_tiny_clip_vision(root / "clip_vision"), "clip": save_tiny_clip(root / "clip")}


# ----------------------------------------------------------------------------- DiffAugment


def test_diffaug_ops():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    out = diffaug.translation(x)
    assert out.shape == x.shape
    # each image is its own shift of the input: every non-zero output pixel value exists in the input image
    for i in range(4):
        vals = set(x[i, 0].flatten().tolist())
        assert all(v in vals for v in out[i, 0].flatten().tolist() if v != 0.0)
    cut = diffaug.cutout(torch.ones(4, 3, 16, 16))
    zero_frac = (cut[:, 0] == 0).float().mean(dim=(1, 2))
    assert ((zero_frac > 0.05) & (zero_frac <= 0.25 + 1e-6)).all()  # an 8x8 square, clipped at the border
    assert (cut[:, 0] == cut[:, 2]).all()  # the same mask on every channel
    col = diffaug.contrast(x)
    # contrast keeps each image's mean
    assert torch.allclose(col.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    g = torch.Generator().manual_seed(3)
    a = diffaug.diff_augment(x, generator=g)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(a, diffaug.diff_augment(x, generator=g))  # seeded: reproducible
    xg = x.clone().requires_grad_(True)
    diffaug.diff_augment(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'blur'"):
        diffaug.diff_augment(x, "color,blur")


# ----------------------------------------------------------------------------- discriminator


def test_discriminator_levels_and_frozen_backbone(models):
    torch.manual_seed(0)
    d = VisionAidedDiscriminator.from_pretrained(str(models["disc"]))
    assert d.image_size == 32 and d.grid == 4  # from the vision config, not a hard-coded 224
    x = (torch.rand(2, 3, 48, 48) * 2 - 1).requires_grad_(True)
    logits = d(x)
    assert [tuple(lv.shape) for lv in logits] == [(2, 4), (2, 4), (2, 1)]  # 4x4 maps -> 2x2 logits; CLS -> 1
    loss = d.loss(x, real=True)
    loss.backward()
    assert all(p.grad is None for p in d.backbone.parameters())
    assert all(p.grad is not None for p in d.heads())
    assert x.grad.abs().sum() > 0  # G gets gradients through the frozen backbone
    assert not d.backbone.training and d.train().backbone.training is False
    # features: the tapped blocks are hidden_states[4] and [8] (patch tokens only), plus the projected CLS
    d.diffaug = ""
    feats = d.features(x.detach())
    px = F.interpolate(x.detach() * 0.5 + 0.5, size=(32, 32), mode="area")
    px = (px - d.mean) / d.std
    ref = d.backbone(pixel_values=px, output_hidden_states=True)
    assert torch.allclose(feats[0], ref.hidden_states[4][:, 1:].transpose(1, 2).reshape(2, 32, 4, 4))
    assert torch.allclose(feats[1], ref.hidden_states[8][:, 1:].transpose(1, 2).reshape(2, 32, 4, 4))
    assert torch.allclose(feats[2], ref.image_embeds)
    # only the heads are in the head state dict, and it round-trips
    state = d.head_state_dict()
    assert state and not any(k.startswith("backbone.") for k in state)
    d2 = VisionAidedDiscriminator.from_pretrained(str(models["disc"]))
    d2.load_head_state_dict(state)
    d2.diffaug = ""
    d.eval(), d2.eval()
    assert all(torch.allclose(a, b) for a, b in zip(d(x.detach()), d2(x.detach())))


def test_multilevel_sigmoid_loss_is_bce_summed_over_levels():
    logits = [torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 1)]
    real = sum(F.binary_cross_entropy_with_logits(lv, torch.ones_like(lv)) for lv in logits)
    fake = sum(F.binary_cross_entropy_with_logits(lv, torch.zeros_like(lv)) for lv in logits)
    assert torch.allclose(multilevel_sigmoid_loss(logits, True), real)
    assert torch.allclose(multilevel_sigmoid_loss(logits, False), fake)
    # softplus identities: BCE(l, 1) = softplus(-l), BCE(l, 0) = softplus(l)
    assert torch.allclose(real, sum(F.softplus(-lv).mean() for lv in logits))


def test_discriminator_heads_learn_to_separate(models):
    torch.manual_seed(0)
    d = VisionAidedDiscriminator.from_pretrained(str(models["disc"]), diffaug="translation")
    opt = torch.optim.Adam(d.heads(), lr=2e-3)
    red = torch.tensor([0.8, -0.8, -0.8]).view(1, 3, 1, 1)
    blue = torch.tensor([-0.8, -0.8, 0.8]).view(1, 3, 1, 1)

    def batch(colour):
        return (colour + 0.2 * torch.randn(4, 3, 32, 32)).clamp(-1, 1)

    losses = []
    for _ in range(30):
        loss = d.loss(batch(red), real=True) + d.loss(batch(blue), real=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_discriminator_needs_enough_blocks():
    from transformers import CLIPVisionModelWithProjection

    with pytest.raises(ValueError, match="has 4 blocks"):
        VisionAidedDiscriminator(CLIPVisionModelWithProjection(tiny_vision_config(num_hidden_layers=4)))


# ----------------------------------------------------------------------------- LPIPS and CLIP similarity


def test_lpips_with_a_local_trunk_file(tmp_path):
    from turbo_cli.train.losses import LPIPS

    trunk = save_random_lpips_trunk(tmp_path / "vgg_random.pth", net="vgg")
    torch.manual_seed(0)
    lp = LPIPS("vgg", trunk_weights=trunk)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.5 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    assert lp(x, x).item() == pytest.approx(0.0, abs=1e-6)
    d = lp(x, y)
    assert d.item() > 0
    d.backward()
    assert y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in lp.parameters())
    # the trunk is the file's, layer for layer (lpips keeps torchvision's `features` index as the layer name)
    saved = torch.load(trunk, weights_only=True)
    assert torch.equal(getattr(lp.net.net.slice1, "0").weight, saved["features.0.weight"])
    assert torch.equal(getattr(lp.net.net.slice5, "28").bias, saved["features.28.bias"])
    # a folder holding torchvision's file name works too
    (tmp_path / "hub").mkdir()
    trunk.rename(tmp_path / "hub" / "vgg16-397923af.pth")
    from_folder = LPIPS("vgg", trunk_weights=tmp_path / "hub")
    assert torch.equal(getattr(from_folder.net.net.slice1, "0").weight, saved["features.0.weight"])


def test_lpips_weights_errors_are_one_line(tmp_path):
    from turbo_cli.errors import InputError
    from turbo_cli.train.losses import LPIPS

    with pytest.raises(InputError, match=r"\[loss\] lpips_weights = .*alexnet-owt-7be5be79\.pth.*not found"):
        LPIPS("alex", trunk_weights=tmp_path)  # a folder without the file
    alex = save_random_lpips_trunk(tmp_path / "alex.pth", net="alex")
    with pytest.raises(ModelError) as e:
        LPIPS("squeeze", trunk_weights=alex)  # another network's weights
    assert "\n" not in str(e.value) and "[loss] lpips_weights" in str(e.value) and "squeezenet1_1" in str(e.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"lpips_weights"):
        LPIPS("alex", trunk_weights=tmp_path / "junk.pth")


def test_lpips_offline_is_one_line_error(tmp_path, monkeypatch):
    from turbo_cli.train.losses import LPIPS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached: torchvision must download
    with pytest.raises(OfflineError) as e:
        LPIPS("vgg")
    assert "\n" not in str(e.value) and "lpips_net" in str(e.value)


def test_clip_similarity_loss(models):
    from transformers import CLIPModel

    from turbo_cli.train.losses import ClipSimilarityLoss

    torch.manual_seed(0)
    x = (torch.rand(3, 3, 40, 40) * 2 - 1).requires_grad_(True)
    caps = ["a red square", "a blue disc", "a green line"]
    model = CLIPModel.from_pretrained(models["clip"]).eval()
    own = ClipSimilarityLoss.from_pretrained(str(models["clip"]), pairs="own_caption")
    px = (F.interpolate(x.detach() * 0.5 + 0.5, size=(32, 32), mode="bilinear") - own.mean) / own.std
    tok = own.tokenizer(caps, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    # the original: `1 - net_clip(x, caption_tokens)[0].mean() / 100`, CLIP's logits_per_image over all B x B pairs;
    # here transformers' own CLIPModel forward computes those logits
    out = model(input_ids=tok.input_ids, attention_mask=tok.attention_mask, pixel_values=px)
    assert out.logits_per_image.shape == (3, 3)
    loss_fn = ClipSimilarityLoss.from_pretrained(str(models["clip"]))  # default: the original's all_pairs
    loss = loss_fn(x, caps)
    assert loss.item() == pytest.approx(1 - out.logits_per_image.mean().item() / 100, abs=1e-5)
    # own_caption: 1 - mean_i cos(img_i, txt_i)
    ref = 1 - F.cosine_similarity(out.image_embeds, out.text_embeds).mean()
    assert own(x, caps).item() == pytest.approx(ref.item(), abs=1e-5)
    loss.backward()
    assert x.grad.abs().sum() > 0
    assert set(loss_fn._text) == set(caps)  # caption embeddings cached
    with pytest.raises(ValueError, match="clipsim_pairs"):
        ClipSimilarityLoss(model, own.tokenizer, pairs="diagonal")


def test_backbone_loading_errors(tmp_path, monkeypatch):
    from turbo_cli.train.losses import ClipSimilarityLoss

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OfflineError) as e:
        VisionAidedDiscriminator.from_pretrained("openai/clip-vit-base-patch32")
    msg = str(e.value)
    assert "\n" not in msg and "[loss] disc_backbone" in msg and "openai/clip-vit-base-patch32" in msg
    with pytest.raises(OfflineError, match=r"\[loss\] clip_model"):
        ClipSimilarityLoss.from_pretrained("openai/clip-vit-base-patch32")
    bad = tmp_path / "not_a_model"
    bad.mkdir()
    with pytest.raises(ModelError, match=r"not_a_model: cannot load CLIPVisionModelWithProjection"):
        VisionAidedDiscriminator.from_pretrained(str(bad))
