"""The training loop on the tiny CPU recipe: resume == straight, checkpoints, faults, paired modes, CLI, logs."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from tests._train_helpers import (RECIPE, make_paired, make_unpaired, saved_training_state, tiny_models,
                                  tiny_overrides)
from turbo_cli.errors import TurboError
from turbo_cli.train.checkpoints import list_checkpoints
from turbo_cli.train.loop import TrainingDiverged, Trainer, train
from turbo_cli.train.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return {"models": tiny_models(root / "models"), "unpaired": make_unpaired(root / "unpaired", n_train=4),
            "paired": make_paired(root / "paired", n_train=3)}


def recipe(env, out, dataset="unpaired", **sets):
    return load_recipe(RECIPE, tiny_overrides(env["models"], env[dataset], out, **sets))


def lrs(out):
    return {r["step"]: r["lr"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())}


def test_resume_gives_the_same_weights_as_a_straight_run(env, tmp_path):
    warm = dict(optim__lr_scheduler="constant_with_warmup", optim__warmup_steps=3)  # the LR must resume too
    straight = train(recipe(env, tmp_path / "straight", train__max_steps=4, train__checkpoint_every=1, **warm))
    assert straight.step == 4 and [h["step"] for h in straight.history] == [1, 2, 3, 4]
    # keep_last = 2: only the two newest checkpoints stay
    assert [s for s, _ in list_checkpoints(tmp_path / "straight")] == [3, 4]

    first = train(recipe(env, tmp_path / "split", train__max_steps=2, train__checkpoint_every=1, **warm))
    assert first.step == 2
    # a re-run into the same folder with a longer max_steps resumes at step 2
    second = train(recipe(env, tmp_path / "split", train__max_steps=4, train__checkpoint_every=1, **warm))
    assert [h["step"] for h in second.history] == [3, 4]
    lr = 1e-3  # tiny-cpu.toml
    assert lrs(tmp_path / "split") == pytest.approx(lrs(tmp_path / "straight"))
    assert lrs(tmp_path / "straight") == pytest.approx({1: lr * 2 / 3, 2: lr, 3: lr, 4: lr})
    for key in ("cycle", "gan_g", "idt", "d_fake", "d_real"):  # the same batches and random streams
        assert second.history[-1][key] == pytest.approx(straight.history[-1][key], rel=1e-4, abs=1e-5), key

    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(second.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and any("lora_" in k for k in a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    sa, sb = saved_training_state(straight.checkpoint), saved_training_state(second.checkpoint)
    for name in sa["discs"]:
        for k in sa["discs"][name]:
            assert torch.allclose(sa["discs"][name][k], sb["discs"][name][k], atol=1e-6), (name, k)
    # the resolved recipe sits beside every checkpoint and reloads
    assert load_recipe(second.checkpoint / "recipe.toml").train.max_steps == 4


def test_checkpoint_loads_as_a_turbo_model(env, tmp_path):
    from turbo_cli.engine.base import load_base
    from turbo_cli.engine.checkpoint import load_turbo

    # train_all (tiny models): base weights train too, and the checkpoint carries them
    # (and a loader worker process: the dataset must pickle and give the same samples there)
    res = train(recipe(env, tmp_path / "o", train__max_steps=1, model__train_all=True, data__num_workers=1))
    saved = load_file(str(res.checkpoint / "model.safetensors"))
    key = "unet.down_blocks.0.resnets.0.norm1.weight"  # a base weight no LoRA touches
    fresh = load_base(env["models"]["base"]).unet.state_dict()["down_blocks.0.resnets.0.norm1.weight"]
    assert key in saved and not torch.equal(saved[key], fresh)
    loaded = load_turbo(res.checkpoint / "model.safetensors", load_base(env["models"]["base"]))
    assert torch.equal(loaded.generator.state_dict()[key], saved[key])
    info = loaded.info
    assert info.kind == "cyclegan" and info.captions == {"a2b": "a painting", "b2a": "a photo"}
    assert info.extra["step"] == 1 and info.directions == ["a2b", "b2a"]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    from turbo_cli.engine.base import PromptEncoder

    base = load_base(env["models"]["base"])
    emb = PromptEncoder(base.tokenizer, base.text_encoder)("a painting")
    with torch.no_grad():
        y = loaded.generator(x, emb, direction="a2b")
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(env, tmp_path):
    out = tmp_path / "nan"
    t = Trainer(recipe(env, out, train__max_steps=4, train__checkpoint_every=2))

    def on_step(step, total, logs):
        if step == 2:  # a frozen base weight (not in checkpoints) goes bad: step 3's first loss, the cycle's, is NaN
            with torch.no_grad():
                t.gen.unet.down_blocks[0].resnets[0].norm1.weight.fill_(float("nan"))

    t.on_step = on_step
    with pytest.raises(TrainingDiverged) as e:
        t.run()
    msg = str(e.value)
    assert msg.startswith("step 3: cycle loss is nan") and "step_000002" in msg, msg
    assert [s for s, _ in list_checkpoints(out)] == [2]


def test_ctrl_c_saves_a_checkpoint_then_stops(env, tmp_path):
    out = tmp_path / "int"

    def on_step(step, total, logs):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C does

    t = Trainer(recipe(env, out, train__max_steps=4, train__checkpoint_every=100), on_step=on_step)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert [s for s, _ in list_checkpoints(out)] == [1]
    # the handler is restored afterwards
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_failed_save_leaves_the_previous_checkpoint(env, tmp_path, monkeypatch):
    import turbo_cli.engine.checkpoint as ckpt

    real = ckpt.save_turbo

    def flaky(gen, info, path):
        if info.extra["step"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(gen, info, path)

    monkeypatch.setattr(ckpt, "save_turbo", flaky)
    out = tmp_path / "full"
    with pytest.raises(TurboError) as e:
        train(recipe(env, out, train__max_steps=3, train__checkpoint_every=1))
    assert "step 2 (disk full)" in str(e.value) and "step_000001 is intact" in str(e.value)
    assert [s for s, _ in list_checkpoints(out)] == [1]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp folder left
    load_file(str(out / "checkpoints" / "step_000001" / "model.safetensors"))


@pytest.mark.parametrize("kind", ["paired", "paired_stochastic"])
def test_paired_kinds_train_and_save(env, tmp_path, kind):
    from turbo_cli.engine.checkpoint import read_turbo_info

    res = train(recipe(env, tmp_path / kind, dataset="paired", model__kind=kind, loss__lambda_clipsim=5.0,
                       train__max_steps=1, train__r_range=[0.2, 0.6], eval__every=1))
    # validation as the original: L2, LPIPS and CLIP similarity of G(c) against its target, every test pair
    val = json.loads((res.checkpoint / "val_metrics.json").read_text())["val"]
    assert set(val) == {"a2b/l2", "a2b/lpips", "a2b/clipsim"} and all(v == v for v in val.values())
    assert len(list((tmp_path / kind / "val" / "step_000001" / "a2b").glob("*.png"))) == 2
    h = res.history[0]
    assert {"rec", "clipsim", "gan_g", "d_real", "d_fake"} <= set(h)
    assert all(torch.isfinite(torch.tensor(v)) for v in h.values())
    info = read_turbo_info(res.checkpoint / "model.safetensors")
    assert info.kind == "pix2pix" and info.input_range == "0,1"
    assert info.stochastic == (kind == "paired_stochastic") and info.spec.twin_conv == (kind == "paired_stochastic")
    state = load_file(str(res.checkpoint / "model.safetensors"))
    assert any("skip_conv_1" in k and "lora" not in k for k in state)  # pix2pix trains the skip convs


def test_grad_accumulation_equals_the_bigger_batch(env, tmp_path):
    # G's loss is a per-sample mean, so 2 accumulated micro-batches of 1 must give the gradient of one batch of 2
    # (the same samples: sample numbers depend on the step). Only the cycle phase runs: D's DiffAugment draws differ
    # by batch layout, and a second G phase would start from weights that Adam's sign-like first update moved by
    # rounding-level gradient differences.
    # The posterior MEAN: a posterior sample draws its noise per batch layout (one randn of 2 vs two of 1).
    common = dict(train__max_steps=1, loss__lambda_gan=0.0, loss__lambda_idt=0.0, loss__idt_lpips=0.0,
                  model__vae_posterior="mean")
    big = train(recipe(env, tmp_path / "big", train__batch_size=2, **common))
    acc = train(recipe(env, tmp_path / "acc", train__batch_size=1, optim__grad_accumulation=2, **common))
    assert acc.history[0]["cycle"] == pytest.approx(big.history[0]["cycle"], rel=1e-5)
    # Adam's first moment after one step is (1 - beta1) * gradient: compare the gradients themselves (the weights
    # cannot tell: Adam's first update is ~lr * sign(gradient) whatever the gradient's scale)
    ga = saved_training_state(big.checkpoint)["opt_g"]["state"]
    gb = saved_training_state(acc.checkpoint)["opt_g"]["state"]
    assert ga.keys() == gb.keys() and len(ga) > 10
    total = sum(ga[i]["exp_avg"].abs().sum() for i in ga)
    assert total > 0
    diff = sum((ga[i]["exp_avg"] - gb[i]["exp_avg"]).abs().sum() for i in ga)
    assert diff < 1e-2 * total, (diff, total)  # float rounding differs by batch layout; a missing 1/n would be 100%


def test_bf16_with_gradient_checkpointing_runs(env, tmp_path):
    res = train(recipe(env, tmp_path / "bf16", train__max_steps=1, train__mixed_precision="bf16",
                       model__gradient_checkpointing=True))
    assert all(torch.isfinite(torch.tensor(v)) for v in res.history[0].values())
    # trained weights stay fp32 in the checkpoint
    state = load_file(str(res.checkpoint / "model.safetensors"))
    assert all(v.dtype == torch.float32 for k, v in state.items() if "lora_" in k)


def test_cli_train_validation_grid_tensorboard_and_metrics(env, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tests._eval_helpers import use_tiny_backbones
    from turbo_cli.cli.main import app

    use_tiny_backbones(monkeypatch)  # the metric networks: tiny random stand-ins, built offline
    out = tmp_path / "cli"
    sets = tiny_overrides(env["models"], env["unpaired"], tmp_path / "ignored", train__max_steps=1,
                          eval__every=1, eval__num_images=2, eval__metrics=["fid"], log__tensorboard=True)
    args = ["train", str(RECIPE), "--output", str(out)]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    grid = out / "val" / "step_000001.png"
    from PIL import Image

    w, h = Image.open(grid).size
    assert (w, h) == (3 * 34 + 2, 4 * 34 + 2)  # 2 test images x (a->b, b->a) rows; input | output | reconstruction
    assert list((out / "tb").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 1 and "cycle" in records[0]
    # validation as the original: both directions, each against the other domain's T_val(test_*)
    val = [r["val"] for r in records if "val" in r]
    assert val and {"a2b/fid", "b2a/fid"} <= set(val[0]), records
    assert sorted(p.name for p in (out / "val" / "reference").iterdir() if p.is_dir()) == ["A", "B"]
    assert len(list((out / "val" / "step_000001" / "b2a").glob("*.png"))) == 2
    saved = json.loads((out / "checkpoints" / "step_000001" / "val_metrics.json").read_text())
    assert saved["val"] == val[0]  # the numbers beside the checkpoint they describe
    assert (out / "recipe.toml").is_file() and (out / "checkpoints" / "step_000001" / "model.safetensors").is_file()

    # the notices are plain text, not rich markup: a recipe section in brackets prints as it is
    again = CliRunner().invoke(app, args + ["--set", "optim.lr=0.002", "--set", "log.progress=true"])
    assert again.exit_code == 0, again.output
    assert "resuming with changed settings: [optim] lr" in again.output and "nothing to do" in again.output

    # --resume with nothing to resume, and a bad override, are one-line errors with exit codes
    bad = CliRunner().invoke(app, ["train", str(RECIPE), "--output", str(tmp_path / "empty"), "--resume"] +
                             [x for s in sets[:4] for x in ("--set", s)])
    assert bad.exit_code == 2 and "--resume: no checkpoint" in bad.output
    bad = CliRunner().invoke(app, ["train", str(RECIPE), "--set", "optim.lr=fast"])
    assert bad.exit_code == 2 and 'error: --set optim.lr=fast: [optim] lr: expected float, got str "fast"' in bad.output


def test_resume_refuses_a_different_model(env, tmp_path):
    out = tmp_path / "m"
    train(recipe(env, out, train__max_steps=1))
    with pytest.raises(TurboError, match=r"\[model\] rank_unet was 4, the recipe now says 8"):
        train(recipe(env, out, train__max_steps=2, model__rank_unet=8))
