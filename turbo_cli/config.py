"""TOML -> typed dataclasses, with `--set section.key=value` overrides. Stdlib only.

Precedence: dataclass defaults < the TOML file < `--set` overrides. Every value is checked against
the field's type annotation; an unknown key or a wrong type raises ConfigError naming the file and
the key, e.g. `recipes/x.toml: [optim] lr: expected float, got str "abc"`.

Supported annotations: bool, int, float (an int widens to float), str, Path, Optional[X] / X | None,
Literal[...] (value checked), list[X], tuple[X, ...] / tuple[X, Y], and nested dataclasses (TOML tables).

    cfg = load_config(Recipe, Path("recipes/horse2zebra.toml"), ["optim.lr=2e-5"])
    save_config(cfg, out_dir / "recipe.toml")   # the resolved recipe, reloadable by load_config
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from turbo_cli import atomic
from turbo_cli.errors import ConfigError

T = TypeVar("T")

_NONE_WORDS = ("none", "null")  # `--set model.x=none` clears an Optional (TOML itself has no null)


# ----------------------------------------------------------------------------- reading


def load_config(cls: type[T], path: Path | str | None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build `cls` from the TOML file at `path` (None: defaults only) with `--set` overrides applied."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: recipe file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        data = _relative_to(cls, data, path.resolve().parent)
    cfg = from_dict(cls, data, source=source)
    return _absolute(apply_overrides(cfg, overrides), Path.cwd())


def _absolute(cfg: Any, folder: Path) -> Any:
    """Paths still relative (defaults, `--set` values: meant from the current directory) made absolute, so a
    resolved config means the same wherever it is read again (beside a checkpoint, say)."""
    before = to_dict(cfg)
    data = _relative_to(type(cfg), before, folder)
    return from_dict(type(cfg), data, source="<resolved>") if data != before else cfg


def _relative_to(cls: Any, data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Paths written in a config file are relative to that file (so a recipe runs from any directory): a relative
    value of a `Path` field, and any string value starting with `./` or `../` (fields that take a hub id or a
    folder), become absolute. `--set` values are relative to the current directory, as a shell user expects."""
    if not dataclasses.is_dataclass(cls) or not isinstance(data, dict):
        return data
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for name, value in data.items():
        tp = hints.get(name)
        if tp is None:
            continue  # unknown keys: from_dict reports them
        inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        if isinstance(value, dict) and dataclasses.is_dataclass(inner[0]):
            out[name] = _relative_to(inner[0], value, folder)
        elif isinstance(value, str) and value:
            if Path in inner and not Path(value).expanduser().is_absolute() and not value.startswith("~"):
                out[name] = str((folder / value).resolve())
            elif value.startswith(("./", "../")):
                out[name] = str((folder / value).resolve())
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """`optim.lr=1e-4` -> (["optim", "lr"], 1e-4). The value is read as TOML, else kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"--set {text}: expected section.key=value")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words (`kind=paired`, paths) need no quotes on the command line
    return [p.strip() for p in key.split(".")], value


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Return a copy of `cfg` with each `section.key=value` applied (type-checked like the file)."""
    for text in overrides:
        keys, value = parse_override(text)
        cfg = _set_path(cfg, keys, value, source=f"--set {text}", done=[])
    return cfg


def _set_path(obj: Any, keys: list[str], value: Any, source: str, done: list[str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    name = keys[0]
    if name not in fields:
        raise ConfigError(f"{source}: {_where(done)}unknown key {name!r}{_suggest(name, fields)}")
    hints = typing.get_type_hints(type(obj))
    if len(keys) == 1:
        if isinstance(value, str) and value.lower() in _NONE_WORDS and _is_optional(hints[name]):
            new = None
        else:
            new = _convert(hints[name], value, source, done + [name])
    else:
        child = getattr(obj, name)
        if not dataclasses.is_dataclass(child):
            raise ConfigError(f"{source}: {_where(done + [name])}is a value, not a section")
        new = _set_path(child, keys[1:], value, source, done + [name])
    try:
        return dataclasses.replace(obj, **{name: new})
    except (ValueError, TypeError) as e:  # a __post_init__ check in the dataclass
        raise ConfigError(f"{source}: {_where(done)}{e}") from None


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<dict>", _path: list[str] | None = None) -> T:
    """Build dataclass `cls` from a plain dict (parsed TOML or JSON), checking keys and types."""
    path = _path or []
    if not isinstance(data, dict):
        where = f"{_where(path[:-1])}{path[-1]}: " if path else ""
        raise ConfigError(f"{source}: {where}expected a table, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{source}: {_where(path)}unknown key {key!r}{_suggest(key, fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _convert(hints[key], value, source, path + [key]) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # a __post_init__ check in the dataclass
        raise ConfigError(f"{source}: {_where(path)}{e}") from None


def _convert(tp: Any, value: Any, source: str, path: list[str]) -> Any:
    """Check `value` against annotation `tp` and return it in the annotated type."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {_where(path[:-1])}{path[-1]}: expected {expected}, got {_describe(value)}")

    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, path)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, path)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise fail(" or ".join(_type_name(a) for a in args if a is not type(None)))
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(choices[0]):
            raise fail("one of " + ", ".join(json.dumps(c) for c in choices))
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise fail(f"a list of {_type_name(item_tp)}")
        return [_convert(item_tp, v, source, path[:-1] + [f"{path[-1]}[{i}]"]) for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise fail(f"a list of {len(args)} values" if Ellipsis not in args else "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            raise fail(f"a list of {len(args)} values")
        return tuple(_convert(a, v, source, path[:-1] + [f"{path[-1]}[{i}]"])
                     for i, (a, v) in enumerate(zip(args, value)))
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("int")
        return value
    if tp is float:
        # TOML writes `1` for an integer; an int is a fine float (widening), a bool is not.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("float")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail("str")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise fail("a path (string)")
        return Path(value)
    raise ConfigError(f"{source}: {_where(path[:-1])}{path[-1]}: unsupported annotation {tp!r}")


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _where(path: list[str]) -> str:
    """`[optim] ` for a key inside section optim; '' at the top level."""
    return f"[{'.'.join(path)}] " if path else ""


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return " (known: " + ", ".join(known) + ")"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a table"
    shown = json.dumps(value) if isinstance(value, str) else repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} {shown}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# ----------------------------------------------------------------------------- writing


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain dict of TOML/JSON-friendly values (Path -> str, tuple -> list)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def to_toml(cfg: Any) -> str:
    """Serialise a dataclass (or a plain dict) as TOML. None values are left out (TOML has no null),
    which reloads to the same config as long as None is the field's default."""
    data = cfg if isinstance(cfg, dict) else to_dict(cfg)
    lines: list[str] = []
    _write_table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _write_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for k, v in scalars.items():
        lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in tables.items():
        _write_table(v, path + [k], lines)


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return json.dumps(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # repr keeps a '.' or an exponent, so it reads back as a float
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes (\" \\ \n \uXXXX) are valid TOML basic-string escapes
    if isinstance(v, Path):
        return json.dumps(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def save_config(cfg: Any, path: Path | str) -> Path:
    """Write the resolved config atomically: TOML for `.toml`, JSON for anything else."""
    path = Path(path)
    text = to_toml(cfg) if path.suffix == ".toml" else json.dumps(to_dict(cfg), indent=2) + "\n"
    atomic.write_text(path, text)
    return path


