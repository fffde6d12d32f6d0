"""`turbo export`: a Hub-ready folder that loads back bit-identically (issue #14)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from turbo_cli.cli.main import app

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)))


@pytest.fixture()
def image(tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "in" / "x.png")
    return tmp_path / "in"


def test_export_loads_back_bit_identically(tmp_path, tiny_cyclegan, image):
    res = run("export", tiny_cyclegan, tmp_path / "shared")
    assert res.exit_code == 0, res.output
    folder = tmp_path / "shared"
    assert (folder / "model.safetensors").read_bytes() == open(tiny_cyclegan, "rb").read()
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: turbo\n") and "pipeline_tag: image-to-image" in card
    assert "- cyclegan-turbo" in card and "| a2b | a street at night |" in card
    assert "turbo translate photos/ out/ --model OWNER/shared" in card
    for model, out in ((tiny_cyclegan, "a"), (folder, "b")):
        assert run("translate", image, tmp_path / out, "--model", model).exit_code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a" / "x.png")),
                                  np.asarray(Image.open(tmp_path / "b" / "x.png")))
    # an existing folder is not replaced without --overwrite; nothing half-written is left
    res = run("export", tiny_cyclegan, folder)
    assert res.exit_code == 2 and "already exists (pass --overwrite" in res.output
    assert run("export", tiny_cyclegan, folder, "--overwrite").exit_code == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_demo_exports_with_its_base_and_loads_offline(tmp_path, image):
    res = run("export", "demo", tmp_path / "demo-export")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo-export" / "base" / "unet").is_dir()  # its relative "./base" travels with it
    res = run("translate", image, tmp_path / "o", "--model", tmp_path / "demo-export", "-d", "a2b")
    assert res.exit_code == 0, res.output


def test_a_training_run_exports_its_recipe_samples_and_steps(tmp_path, tiny_cyclegan):
    """A run folder's layout (checkpoints/step_N/{model.safetensors, recipe.toml}, val/step_N.png)."""
    import shutil

    run_dir = tmp_path / "run"
    step = run_dir / "checkpoints" / "step_000004"
    step.mkdir(parents=True)
    shutil.copyfile(tiny_cyclegan, step / "model.safetensors")
    (step / "recipe.toml").write_text('[model]\nkind = "unpaired"\n')
    (run_dir / "val").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(run_dir / "val" / "step_000004.png")
    res = run("export", run_dir, tmp_path / "exported")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "exported").iterdir())
    assert names == ["README.md", "model.safetensors", "recipe.toml", "samples.png"]
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "![validation samples](samples.png)" in card and 'kind = "unpaired"' in card


def test_push_offline_is_one_line(tmp_path, tiny_cyclegan, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = run("export", tiny_cyclegan, tmp_path / "x", "--push", "me/model")
    assert res.exit_code == 4
    assert "--push me/model: HF_HUB_OFFLINE is set" in res.output.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()
    assert run("export", tiny_cyclegan, tmp_path / "x", "--push", "not a repo").exit_code == 2
