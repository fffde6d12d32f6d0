"""Every training output is usable at once: a checkpoint from each family (and each shipped recipe's image prep)
runs in `turbo translate`, `turbo video` and `turbo eval` with no extra flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests._train_helpers import RECIPE, make_paired, make_unpaired, tiny_models, tiny_overrides
from turbo_cli.cli.main import app
from turbo_cli.train.checkpoints import newest_checkpoint
from turbo_cli.train.loop import train
from turbo_cli.train.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPES = sorted(Path(RECIPE).parent.glob("*.toml"))


def cli(*args):
    return CliRunner().invoke(app, [*map(str, args)])


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_records_an_inference_prep(path):
    from turbo_cli.io.frames import check_image_prep

    r = load_recipe(path)
    prep = r.data.inference_prep()
    assert check_image_prep(prep) == prep  # what translate/video/eval accept
    if r.paired:  # trained on 512 crops; the original's inference_paired.py runs at the input's own size
        assert r.data.val_prep == "resized_crop_512" and prep == "no_resize"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One step of each family, validating with a training-only prep as the shipped paired recipes do."""
    root = tmp_path_factory.mktemp("runs")
    models = tiny_models(root / "models")
    unpaired, paired = make_unpaired(root / "unpaired", n_train=2), make_paired(root / "paired", n_train=2)
    out = {}
    for kind, data in (("unpaired", unpaired), ("paired", paired), ("paired_stochastic", paired)):
        sets = dict(train__max_steps=1, model__kind=kind)
        if kind != "unpaired":
            sets.update(data__val_prep="resized_crop_32", loss__lambda_clipsim=5.0)
        out[kind] = train(load_recipe(RECIPE, tiny_overrides(models, data, root / kind, **sets))).checkpoint
    return {"ckpt": out, "unpaired": unpaired, "paired": paired}


@pytest.mark.parametrize("kind", ["unpaired", "paired", "paired_stochastic"])
def test_checkpoint_translates_with_no_flags(runs, tmp_path, kind):
    from turbo_cli.engine.checkpoint import read_turbo_info

    ckpt = runs["ckpt"][kind]
    info = read_turbo_info(ckpt / "model.safetensors")
    assert info.image_prep == "no_resize"  # paired: val_prep resized_crop_32 is training-only
    src = runs["unpaired" if kind == "unpaired" else "paired"] / "test_A"
    # a pix2pix model translates a condition INTO a caption: --prompt is its input (as the original's
    # inference_paired.py), not a repair
    prompt = [] if kind == "unpaired" else ["--prompt", "shapes"]
    r = cli("translate", "--model", ckpt, "--device", "cpu", *prompt, src, tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == sorted(p.stem for p in src.iterdir())


@pytest.mark.parametrize("kind", ["unpaired", "paired"])
def test_checkpoint_runs_video_with_no_flags(runs, tmp_path, kind):
    from tests._video_helpers import make_video

    video = make_video(tmp_path / "in.mp4", frames=3, size=(32, 24)).path
    prompt = [] if kind == "unpaired" else ["--prompt", "shapes"]
    r = cli("video", "--model", runs["ckpt"][kind], "--device", "cpu", *prompt, video, tmp_path / "out.mp4")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.mp4").stat().st_size > 0


@pytest.mark.parametrize("kind", ["unpaired", "paired"])
def test_checkpoint_runs_eval_with_no_flags(runs, tmp_path, kind, monkeypatch):
    from tests._eval_helpers import use_tiny_backbones

    use_tiny_backbones(monkeypatch)
    rep = tmp_path / "rep"
    # no --prompt: a paired model takes each test image's own caption from test_prompts.json
    r = cli("eval", "--model", runs["ckpt"][kind], "--dataset", runs[kind], "--report", rep, "--device", "cpu",
            "--metrics", "color")
    assert r.exit_code == 0, r.output
    assert json.loads((rep / "metrics.json").read_text())["kind"] == "model"


def test_newest_checkpoint_of_a_run_folder(runs, tmp_path):
    ckpt = runs["ckpt"]["unpaired"]
    run_folder = ckpt.parent.parent
    assert newest_checkpoint(run_folder) == ckpt / "model.safetensors"
    assert newest_checkpoint(tmp_path) is None  # not a training output


def test_translate_takes_a_run_folder_and_names_the_checkpoint(runs, tmp_path):
    ckpt = runs["ckpt"]["unpaired"]
    src = runs["unpaired"] / "test_A"
    r = cli("translate", "--model", ckpt.parent.parent, "--device", "cpu", src, tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "step_000001" in r.output  # the log says which checkpoint of the run it loaded
    assert len(list((tmp_path / "out").iterdir())) == len(list(src.iterdir()))
