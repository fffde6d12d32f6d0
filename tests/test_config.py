"""turbo_cli.config: TOML -> typed dataclasses, overrides, errors naming file and key, round trips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from turbo_cli.config import from_dict, load_config, parse_override, save_config, to_dict, to_toml
from turbo_cli.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "constant"
    clip: Optional[float] = None

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclass
class Inner:
    depth: int = 2


@dataclass
class Model:
    name: str = "m"
    out: Path = Path("runs/x")
    layers: list[int] = field(default_factory=lambda: [1, 2])
    tags: list[str] = field(default_factory=list)
    caption: str | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


@dataclass
class Cfg:
    title: str = "t"
    optim: Optim = field(default_factory=Optim)
    model: Model = field(default_factory=Model)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


def test_defaults_file_and_overrides_precedence(tmp_path):
    p = write(tmp_path, '[optim]\nlr = 2\nschedule = "cosine"\n'
                        '[model]\nlayers = [3]\nout = "a/b"\n[model.inner]\ndepth = 5\n')
    cfg = load_config(Cfg, p, ["optim.lr=5e-4", "model.name=bare words", "model.inner.depth=7", "model.flag=true"])
    assert cfg.optim.lr == 5e-4 and isinstance(cfg.optim.lr, float)  # --set beats the file
    assert cfg.optim.schedule == "cosine"  # the file beats the default
    assert cfg.optim.betas == (0.9, 0.999)  # default kept
    assert cfg.model.layers == [3] and cfg.model.out == (p.parent / "a/b").resolve()  # relative to the file (issue #15)
    assert cfg.model.name == "bare words"  # not TOML -> kept as a string
    assert cfg.model.inner.depth == 7 and cfg.model.flag is True
    # int widens to float from the file too
    assert load_config(Cfg, p, []).optim.lr == 2.0


def test_wrong_type_names_file_section_key_and_value(tmp_path):
    p = write(tmp_path, '[optim]\nlr = "abc"\n')
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, p, [])
    assert str(e.value) == f'{p}: [optim] lr: expected float, got str "abc"'


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[optim]\nlrr = 1.0\n", "[optim] unknown key 'lrr' (did you mean 'lr'?)"),
        ("[nope]\nx = 1\n", "unknown key 'nope'"),
        ('[optim]\nschedule = "linear"\n', '[optim] schedule: expected one of "constant", "cosine", got str "linear"'),
        ("[optim]\nbetas = [0.9]\n", "[optim] betas: expected a list of 2 values"),
        ('[model]\nlayers = [1, "x"]\n', '[model] layers[1]: expected int, got str "x"'),
        ("[model]\nflag = 1\n", "[model] flag: expected true or false, got int 1"),
        ("[model.inner]\ndepth = 1.5\n", "[model.inner] depth: expected int, got float 1.5"),
        ("optim = 3\n", "optim: expected a table"),
        ("[optim]\nlr = -1.0\n", "[optim] lr must be > 0"),
        ("[optim\n", "not valid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, p, [])
    assert str(e.value).startswith(f"{p}: ")
    assert needle in str(e.value)


def test_override_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match=r"--set optim\.lr=abc: \[optim\] lr: expected float, got str \"abc\""):
        load_config(Cfg, None, ["optim.lr=abc"])
    with pytest.raises(ConfigError, match=r"--set optim\.nope=1: \[optim\] unknown key 'nope'"):
        load_config(Cfg, None, ["optim.nope=1"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(Cfg, None, ["optim.lr"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(Cfg, None, ["title.x=1"])
    with pytest.raises(ConfigError, match="lr must be > 0"):
        load_config(Cfg, None, ["optim.lr=0.0"])
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(Cfg, tmp_path / "missing.toml", [])


def test_parse_override_values():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a.b = 'q'") == (["a", "b"], "q")
    assert parse_override("a.b=x=y") == (["a", "b"], "x=y")
    assert parse_override("a.b=") == (["a", "b"], "")


def test_optional_none_override_and_values():
    cfg = load_config(Cfg, None, ["optim.clip=1", "model.caption=hello"])
    assert cfg.optim.clip == 1.0 and cfg.model.caption == "hello"
    cfg = load_config(Cfg, None, ["optim.clip=none"])
    assert cfg.optim.clip is None


def test_toml_and_json_round_trip(tmp_path):
    cfg = load_config(Cfg, None, ['title=a "quoted"\\ title\nline', "optim.clip=2.5", "model.tags=['x', 'ü']",
                                  "optim.lr=1e-05"])
    for name in ("saved.toml", "saved.json"):
        out = save_config(cfg, tmp_path / name)
        again = load_config(Cfg, out, []) if name.endswith(".toml") else from_dict(Cfg, json.loads(out.read_text()))
        assert again == cfg, name
    assert to_dict(cfg)["model"]["out"] == str(Path.cwd() / "runs/x")  # resolved: a default means the cwd
    text = to_toml(cfg)
    assert "[model.inner]" in text and "depth = 2" in text and "lr = 1e-05" in text
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_shipped_recipes_load_and_round_trip(tmp_path):
    from turbo_cli.train.recipe import Recipe, load_recipe

    recipes = sorted(Path(__file__).resolve().parents[1].glob("recipes/*.toml"))
    names = {p.stem for p in recipes}
    assert {"horse2zebra", "day2night", "fill50k", "sketch_stochastic", "tiny-cpu"} <= names
    for p in recipes:
        r = load_recipe(p)
        assert isinstance(r, Recipe)
        assert load_recipe(save_config(r, tmp_path / f"{p.stem}.toml")) == r
    h2z = load_recipe(Path(__file__).resolve().parents[1] / "recipes/horse2zebra.toml")
    assert (h2z.optim.lr, h2z.model.rank_unet, h2z.loss.cycle_lpips, h2z.train.max_steps) == (1e-5, 128, 10.0, 25000)
    fill = load_recipe(Path(__file__).resolve().parents[1] / "recipes/fill50k.toml")
    assert (fill.model.kind, fill.optim.lr, fill.optim.grad_clip, fill.train.batch_size) == ("paired", 5e-6, 1.0, 2)  # the published command


def test_recipe_validation_messages(tmp_path):
    from turbo_cli.train.recipe import load_recipe

    kinds = r'expected one of "unpaired", "paired", "paired_stochastic"'
    with pytest.raises(ConfigError, match=r"\[model\] kind: " + kinds):
        load_recipe(None, ["model.kind=cyclegan"])
    with pytest.raises(ConfigError, match=r"\[train\] r_range must satisfy"):
        load_recipe(None, ["train.r_range=[0.5, 0.2]"])
    with pytest.raises(ConfigError, match=r"\[loss\] diffaug: unknown policy 'blur'"):
        load_recipe(None, ["loss.diffaug=color,blur"])


def test_recipe_paths_are_relative_to_the_recipe_file(tmp_path, monkeypatch):
    """A recipe runs from any directory: its relative paths mean its own folder; `--set` paths mean the cwd."""
    from turbo_cli.train.recipe import load_recipe

    (tmp_path / "project" / "recipes").mkdir(parents=True)
    recipe = tmp_path / "project" / "recipes" / "r.toml"
    recipe.write_text('[model]\nbase_model = "../models/base"\n[data]\ndataset = "../data/tiny"\n'
                      '[train]\noutput_dir = "../runs/r"\n[loss]\ndisc_backbone = "openai/clip-vit-base-patch32"\n')
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    r = load_recipe(Path("project/recipes/r.toml"), ["loss.lpips_weights=weights/alex.pth"])
    root = (tmp_path / "project").resolve()
    assert r.model.base_model == str(root / "models" / "base")
    assert r.data.dataset == root / "data" / "tiny" and r.train.output_dir == root / "runs" / "r"
    assert r.loss.disc_backbone == "openai/clip-vit-base-patch32"  # a hub id stays a hub id
    assert r.loss.lpips_weights == tmp_path.resolve() / "weights" / "alex.pth"  # --set: from the cwd


def test_the_shipped_small_recipes_point_at_files_a_clone_has():
    """recipes/tiny-cpu.toml and demo-day2night.toml: their base model and data paths resolve inside the clone."""
    from turbo_cli.train.recipe import load_recipe

    repo = Path(__file__).resolve().parents[1]
    tiny = load_recipe(repo / "recipes" / "tiny-cpu.toml")
    assert Path(tiny.model.base_model).is_dir()  # the bundled demo base ships with turbo
    assert tiny.data.dataset == repo / "data" / "tiny"  # `turbo data synth data/tiny`, as its header says
    demo = load_recipe(repo / "recipes" / "demo-day2night.toml")
    assert demo.data.dataset == repo / "runs" / "demo-day2night" / "data"  # scripts/train_demo.py prepare
