"""turbo: one-step image translation (pix2pix-turbo / CycleGAN-turbo) for datasets and videos.

Layers (docs/CONTRIBUTING.md, enforced by tests/test_layers.py): `cli/` -> `jobs/` -> `engine/`, `io/`, `eval/`,
`train/`. The root modules here are shared by all of them: `errors` (TurboError and its exit codes), `atomic`
(every atomic write), `hub` (the cache folder and the one offline rule), `progress` (how lower layers report
progress), `device` (device and dtype choice), `config` (TOML -> typed dataclasses, `--set` overrides).
"""

__version__ = "0.1.0"
