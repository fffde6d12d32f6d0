"""Training datasets: layouts, messages, value ranges, deterministic and resumable order."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from tests._train_helpers import CAPTION_A, CAPTION_B, make_paired, make_unpaired
from turbo_cli.errors import InputError
from turbo_cli.train.data import (PairedDataset, StepBatches, UnpairedDataset, build_dataset, collate,
                                  unpaired_captions)


def batches(ds, sampler):
    return [collate([ds[n] for n in idx]) for idx in sampler]


@pytest.mark.parametrize("cyclegan_names", [False, True])
def test_unpaired_layouts_ranges_and_captions(tmp_path, cyclegan_names):
    root = make_unpaired(tmp_path / "d", n_train=5, size=40, cyclegan_names=cyclegan_names)
    ds = UnpairedDataset(root, "train", "resize_40_randomcrop_32x32_hflip", seed=1)
    item = ds[0]
    assert item["a"].shape == (3, 32, 32) and item["b"].shape == (3, 32, 32)
    assert item["a"].min() >= -1 and item["a"].max() <= 1 and item["a"].min() < -0.2  # [-1, 1], not [0, 1]
    # domain B has the red-up / blue-down shift
    assert item["b"][0].mean() > item["b"][2].mean()
    caps = unpaired_captions(root, None, None)
    assert (caps.a, caps.b) == (CAPTION_A, CAPTION_B)
    assert unpaired_captions(root, "x", None).a == "x"
    test = UnpairedDataset(root, "test", "no_resize")
    assert test[0]["a"].shape == (3, 40, 40)


def test_sizes_crop_to_multiples_of_8(tmp_path):
    root = make_unpaired(tmp_path / "d", n_train=2, size=37)
    assert UnpairedDataset(root, "test", "no_resize")[0]["a"].shape == (3, 32, 32)


def test_paired_ranges_same_augmentation_and_captions(tmp_path):
    root = make_paired(tmp_path / "p", n_train=4, size=48)
    ds = PairedDataset(root, "train", "resize_48_randomcrop_32x32_hflip", seed=3)
    for n in range(6):
        item = ds[n]
        c, t = item["condition"], item["target"]
        assert c.min() >= 0 and c.max() <= 1 and t.min() >= -1 and t.min() < 0
        assert item["caption"].startswith("shapes number")
        # condition = threshold of the target's grey: the same crop/flip keeps them aligned
        grey = ((t + 1) / 2).mean(0)
        agree = ((grey > 0.5) == (c[0] > 0.5)).float().mean()
        assert agree > 0.9, (n, agree)


def test_order_is_deterministic_resumable_and_disjoint_per_rank(tmp_path):
    root = make_unpaired(tmp_path / "d", n_train=5)
    prep = "resize_36_randomcrop_32x32_hflip"
    full = batches(UnpairedDataset(root, "train", prep, seed=7), StepBatches(0, 6, batch_size=2))
    # a fresh dataset object resumed at step 3 gives the same batches 3..5
    resumed = batches(UnpairedDataset(root, "train", prep, seed=7), StepBatches(3, 6, batch_size=2))
    for x, y in zip(full[3:], resumed):
        assert torch.equal(x["a"], y["a"]) and torch.equal(x["b"], y["b"])
    # another seed, another order
    other = batches(UnpairedDataset(root, "train", prep, seed=8), StepBatches(0, 6, batch_size=2))
    assert not all(torch.equal(x["a"], y["a"]) for x, y in zip(full, other))
    # every image of an epoch is used once per epoch (5 images; samples 0..4)
    ds = UnpairedDataset(root, "train", "no_resize", seed=7)
    assert sorted(ds.a.position(n) for n in range(5)) == list(range(5))
    assert [ds.a.position(n) for n in range(5)] != [ds.a.position(n) for n in range(5, 10)]
    # ranks and accumulation micro-batches get disjoint sample numbers
    seen = []
    for rank in range(2):
        for idx in StepBatches(0, 3, batch_size=2, accumulation=2, world=2, rank=rank):
            seen += idx
    assert sorted(seen) == list(range(3 * 2 * 2 * 2))
    assert len(StepBatches(2, 5, 1, accumulation=3)) == 9


def test_missing_folders_and_prompts(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        UnpairedDataset(tmp_path / "nope", "train", "no_resize")
    root = make_unpaired(tmp_path / "d", n_train=2, prompts=False)
    with pytest.raises(InputError, match=r"fixed_prompt_a\.txt: missing"):
        unpaired_captions(root, None, None)
    (root / "train_B").rename(root / "elsewhere")
    with pytest.raises(InputError, match=r"no train_B/ \(or trainB/\) folder"):
        UnpairedDataset(root, "train", "no_resize")
    empty = tmp_path / "e"
    for sub in ("train_A", "train_B"):
        (empty / sub).mkdir(parents=True)
    with pytest.raises(InputError, match=r"train_A: no images"):
        UnpairedDataset(empty, "train", "no_resize")


def test_paired_partner_and_caption_messages(tmp_path):
    root = make_paired(tmp_path / "p", n_train=3)
    (root / "train_B" / "p001.png").unlink()
    with pytest.raises(InputError, match=r"train_B/p001\.png: missing \(the partner of .*train_A/p001\.png"):
        PairedDataset(root, "train", "no_resize")
    root = make_paired(tmp_path / "q", n_train=3)
    caps = json.loads((root / "train_prompts.json").read_text())
    del caps["p002.png"]
    (root / "train_prompts.json").write_text(json.dumps(caps))
    with pytest.raises(InputError, match=r"train_prompts\.json: no caption for p002\.png"):
        PairedDataset(root, "train", "no_resize")
    (root / "train_prompts.json").write_text("{not json")
    with pytest.raises(InputError, match=r"train_prompts\.json: not valid JSON"):
        PairedDataset(root, "train", "no_resize")
    (root / "test_prompts.json").unlink()
    with pytest.raises(InputError, match=r"test_prompts\.json: missing"):
        build_dataset(root, True, "test", "no_resize")


def test_unreadable_images_are_skipped_warned_and_counted(tmp_path, caplog):
    root = make_unpaired(tmp_path / "d", n_train=4)
    (root / "train_A" / "a001.png").write_bytes(b"not a png")
    (root / "train_A" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ds = UnpairedDataset(root, "train", "no_resize", seed=0)
    with caplog.at_level(logging.WARNING, logger="turbo.train"):
        items = [ds[n] for n in range(12)]  # two epochs over 6 files
    assert all(it["a"].shape == (3, 32, 32) for it in items)
    assert ds.num_bad == 2
    assert "a001.png" in caplog.text and "zz_broken.jpg" in caplog.text
    # the same run again gives the same items (skipping is deterministic)
    again = UnpairedDataset(root, "train", "no_resize", seed=0)
    assert all(torch.equal(again[n]["a"], items[n]["a"]) for n in range(12))


def test_all_unreadable_stops_with_a_message(tmp_path):
    root = make_unpaired(tmp_path / "d", n_train=2)
    for p in (root / "train_B").iterdir():
        p.write_bytes(b"broken")
    ds = UnpairedDataset(root, "train", "no_resize")
    with pytest.raises(InputError, match="unreadable images in a row"):
        ds[0]


def test_collate_rejects_mixed_sizes(tmp_path):
    with pytest.raises(InputError, match="different sizes"):
        collate([{"a": torch.zeros(3, 8, 8)}, {"a": torch.zeros(3, 16, 8)}])
