"""DINO-Struct-Dist on a tiny random ViT against a direct implementation; loading the metric networks from local
folders and the offline messages."""

import numpy as np
import pytest
import torch

from tests._eval_helpers import scene, tiny_backbones
from turbo_cli.errors import OfflineError
from turbo_cli.eval import networks as B
from turbo_cli.eval.dino import IMAGENET_MEAN, IMAGENET_STD, DinoKeys


def _tiny_vit(seed=0):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    image_size=64, patch_size=8)
    return ViTModel(cfg, add_pooling_layer=False).eval()


def _direct_struct_dist(model, a, b):
    """The formula written out: ImageNet-normalise, run the blocks by hand, last block's key projection of the
    layer-normed tokens (incl. CLS), cosine self-similarity, MSE. Images already have short side 64 (no resize)."""

    def keys(rgb):
        x = (rgb.astype(np.float64) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        x = torch.tensor(x, dtype=torch.float32).permute(2, 0, 1)[None]
        with torch.no_grad():
            h = model.embeddings(x, interpolate_pos_encoding=True)
            for layer in model.layers[:-1]:
                h = layer(h)
            last = model.layers[-1]
            return last.attention.k_proj(last.layernorm_before(h))[0].double().numpy()

    def selfsim(k):
        t = len(k)
        s = np.zeros((t, t))
        for i in range(t):
            for j in range(t):
                s[i, j] = k[i] @ k[j] / (np.linalg.norm(k[i]) * np.linalg.norm(k[j]))
        return s

    return float(np.mean((selfsim(keys(a)) - selfsim(keys(b))) ** 2))


def test_dino_struct_matches_direct_formula_and_properties():
    model = _tiny_vit()
    dino = DinoKeys(model, id="tiny", short_side=64)
    assert dino.layer_name == "layers.1.attention.k_proj"
    a, b = scene(64, 80, shift=0, seed=1), scene(64, 80, shift=0, tint=(30, -10, 0), seed=2)
    ours = dino.struct_dist(a, b)
    assert ours == pytest.approx(_direct_struct_dist(model, a, b), rel=1e-4, abs=1e-7)
    assert dino.keys(a).shape == (1 + 8 * 10, 32)  # CLS + 8x10 patches, 4 heads x 8 concatenated
    assert dino.struct_dist(a, a) == 0.0
    assert dino.struct_dist(b, a) == pytest.approx(ours, rel=1e-6)
    # Grows with the amount of change: slight noise < strong noise < a different layout.
    rng = np.random.default_rng(0)
    noisy = lambda s: np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8)  # noqa: E731
    d_small, d_big = dino.struct_dist(a, noisy(2)), dino.struct_dist(a, noisy(40))
    d_moved = dino.struct_dist(a, scene(64, 80, shift=14, seed=1)[:, ::-1].copy())
    assert 0 < d_small < d_big
    assert d_small < d_moved


def test_dino_resize_keeps_aspect_without_crop():
    dino = DinoKeys(_tiny_vit(), id="tiny", short_side=64)
    x = dino.preprocess(np.zeros((96, 128, 3), np.uint8))
    assert tuple(x.shape) == (1, 3, 64, 85)
    assert dino.keys(np.zeros((96, 128, 3), np.uint8)).shape[0] == 1 + 8 * 10  # 85 px -> 10 patches of 8


def test_load_dino_from_weights_dir(tmp_path):
    _tiny_vit(seed=3).save_pretrained(tmp_path / "dino-vitb8")
    dino = B.load_dino(tmp_path)
    assert dino.id == str(tmp_path / "dino-vitb8")
    assert dino.short_side == 224  # the real policy, whatever the checkpoint
    assert dino.struct_dist(scene(), scene()) == 0.0


def test_load_dino_refuses_a_checkpoint_that_leaves_weights_random(tmp_path):
    from safetensors.torch import load_file, save_file

    from turbo_cli.errors import ModelError

    folder = tmp_path / "dino-vitb8"
    _tiny_vit().save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    # Saved in the hub layout (encoder.layer.N.attention.attention.key): drop the key projections.
    kept = {k: v for k, v in weights.items() if ".key." not in k and "k_proj" not in k}
    assert len(kept) < len(weights)
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match="weights missing"):
        B.load_dino(tmp_path)


def test_load_lpips_vgg_trunk_from_weights_dir(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["D"])  # vgg16.features without the big classifier: same keys, fast to build
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / B.VGG_FILE)
    lp = B.load_lpips(tmp_path)
    # The trunk really holds the file's weights (conv 0 and conv 28 of vgg16.features).
    np.testing.assert_array_equal(lp.net.net.slice1[0].weight.detach().numpy(), features[0].weight.detach().numpy())
    np.testing.assert_array_equal(getattr(lp.net.net.slice5, "28").weight.detach().numpy(),
                                  features[28].weight.detach().numpy())
    a = scene(48, 48)
    assert lp(a, a) == pytest.approx(0.0, abs=1e-6)
    assert lp(a, 255 - a) > 0


def test_load_inception_from_weights_dir(tmp_path):
    # A stand-in with the TorchScript layout clean-fid's InceptionV3W expects: `.layers` giving 2048 features.
    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = torch.nn.AdaptiveAvgPool2d(1)
            self.proj = torch.nn.Conv2d(3, 2048, 1)

        def forward(self, x):
            return self.proj(self.pool(x))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x):
            return self.layers(x)

    torch.jit.script(Net()).save(str(tmp_path / B.INCEPTION_FILE))
    inc = B.load_inception(tmp_path)
    feats = inc.embed([inc.prepare(scene()), inc.prepare(scene(shift=5))])
    assert feats.shape == (2, 2048)
    assert inc.prepare(scene()).shape == (299, 299, 3)


def test_offline_gives_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.setenv("TURBO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torchhub"))
    monkeypatch.setattr(B, "_find_file", lambda name, folders: None)  # ignore a clean-fid copy in /tmp
    for load, what in ((B.load_inception, "Inception"), (B.load_dino, "dino-vitb8"), (B.load_lpips, "VGG16")):
        with pytest.raises(OfflineError) as e:
            load()
        assert what in str(e.value) and "\n" not in str(e.value)
    nets = B.load_backbones({"fid", "dino_struct", "lpips"}, device="cpu")
    assert all(isinstance(n, B.Unavailable) for n in (nets.inception, nets.dino, nets.lpips))


def test_tiny_backbones_only_what_is_asked():
    nets = tiny_backbones({"dino_struct"})
    assert nets.inception is None and nets.lpips is None and isinstance(nets.dino, DinoKeys)
