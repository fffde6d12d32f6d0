"""turbo: one-step image translation (pix2pix-turbo / CycleGAN-turbo) for datasets and videos.

The public Python API (docs: README "Python"): `turbo_cli.load_model(...)` -> a `TurboModel`, callable on images,
with `.translate_folder` and `.translate_video`; errors are `turbo_cli.errors.TurboError`s. It is loaded on first
use, so `import turbo_cli` and the CLI's `--help` stay fast.

Layers (docs/CONTRIBUTING.md, enforced by tests/test_layers.py): this package's `__init__` is the API facade over
`jobs/`; `cli/` -> `jobs/` -> `engine/`, `io/`, `eval/`, `train/`. The root modules here are shared by all of them:
`errors` (TurboError and its exit codes), `atomic` (every atomic write), `hub` (the cache folder, the one offline
rule, Hub snapshots and their errors), `progress` (how lower layers report progress), `device` (device, dtype and
thread choice), `config` (TOML -> typed dataclasses, `--set` overrides).
"""

__version__ = "0.1.0"
__all__ = ["load_model", "TurboModel", "__version__"]


def __getattr__(name: str):
    if name in ("load_model", "TurboModel"):
        from turbo_cli.jobs import model

        return getattr(model, name)
    raise AttributeError(f"module 'turbo_cli' has no attribute {name!r}")
