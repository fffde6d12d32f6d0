"""Models by Hugging Face Hub repo id (`--model owner/name[@revision]`), without the network (issue #14).

Resolution runs through huggingface_hub itself: a cache laid out as the Hub's (`models--owner--name/refs/...`,
`snapshots/<commit>/...`) in offline mode, and the errors a user meets first from a stand-in Hub the test starts on
127.0.0.1 (`HF_ENDPOINT`), which answers as the Hub does (HTTP status and `X-Error-Code`): huggingface_hub raises its
own exception classes and turbo turns each into one line.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests._local_server import LocalServer, QuietHandler
from turbo_cli.cli.main import app

pytestmark = pytest.mark.usefixtures("one_thread")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def translate(*args):
    return CliRunner().invoke(app, ["translate", *map(str, args)])


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache for this test (huggingface_hub reads the constant at call time)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def cached_repo(cache, repo_id: str, files: dict, refs=("main",)):
    """Lay `files` (name -> source path) out as the Hub's cache does for `repo_id` at COMMIT."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for name, src in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, snap / name)
    (root / "refs").mkdir()
    for ref in refs:
        (root / "refs" / ref).write_text(COMMIT)
    return snap


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_a_repo_id_loads_from_the_hub_cache_offline(tmp_path, hub_cache, tiny_cyclegan, image, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached_repo(hub_cache, "someone/day2night-tiny", {"model.safetensors": tiny_cyclegan}, refs=("main", "v1"))
    for ref in ("someone/day2night-tiny", "someone/day2night-tiny@v1", f"someone/day2night-tiny@{COMMIT}"):
        res = translate(image, tmp_path / ref.replace("/", "_"), "--model", ref)
        assert res.exit_code == 0, res.output
    assert translate(image, tmp_path / "file", "--model", tiny_cyclegan).exit_code == 0
    ours = np.asarray(Image.open(tmp_path / "someone_day2night-tiny" / "x.png"))
    np.testing.assert_array_equal(ours, np.asarray(Image.open(tmp_path / "file" / "x.png")))


def test_offline_and_not_cached_is_one_line(tmp_path, hub_cache, image, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = translate(image, tmp_path / "o", "--model", "someone/not-downloaded@v2")
    assert res.exit_code == 4
    line = res.output.strip().splitlines()[-1]
    assert "--model someone/not-downloaded@v2: not in the Hugging Face cache and HF_HUB_OFFLINE is set" in line


def test_a_repo_without_a_turbo_checkpoint(tmp_path, hub_cache, image, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    readme = tmp_path / "README.md"
    readme.write_text("# not a turbo model\n")
    cached_repo(hub_cache, "someone/other-model", {"README.md": readme})
    res = translate(image, tmp_path / "o", "--model", "someone/other-model")
    assert res.exit_code == 3
    assert "the Hub repository someone/other-model: expected one turbo .safetensors checkpoint" in res.output


class StandInHub(LocalServer):
    """Answers the Hub's repo-info API with the Hub's error signals for a few repo ids."""

    ANSWERS = {"owner/missing": (404, "RepoNotFound"), "owner/private": (401, "RepoNotFound"),
               "owner/gated": (403, "GatedRepo"), "owner/model": (404, "RevisionNotFound")}

    def __init__(self):
        hub = self
        self.paths: list[str] = []

        class Handler(QuietHandler):
            def do_GET(self):
                hub.paths.append(self.path)
                status, code = next((v for k, v in hub.ANSWERS.items() if f"/{k}/" in self.path), (500, ""))
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": "stand-in"}')

            do_HEAD = do_GET

        super().__init__(Handler)


@pytest.fixture()
def stand_in_hub(monkeypatch, hub_cache):
    import huggingface_hub.constants as constants

    hub = StandInHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once at import; the tests run with it set
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield hub
    hub.close()


@pytest.mark.parametrize("ref, code, message", [
    ("owner/missing", 3, "--model owner/missing: no such repository on the Hub, or a private one you have no token"),
    ("owner/private", 3, "--model owner/private: no such repository on the Hub, or a private one you have no token"),
    ("owner/gated", 3, "--model owner/gated: a gated repository; accept its conditions on its Hub page"),
    ("owner/model@nope", 3, "--model owner/model@nope: the repository has no revision 'nope'"),
])
def test_hub_errors_are_one_line(tmp_path, stand_in_hub, image, ref, code, message):
    res = translate(image, tmp_path / "o", "--model", ref)
    assert res.exit_code == code, res.output
    assert message in res.output.strip().splitlines()[-1]
    assert "Traceback" not in res.output
    assert stand_in_hub.paths  # huggingface_hub really asked the (stand-in) Hub


def test_base_model_hub_errors_say_what_they_are(tmp_path, stand_in_hub, tiny_cyclegan, image):
    res = translate(image, tmp_path / "o", "--model", tiny_cyclegan, "--base-model", "owner/gated")
    assert res.exit_code == 3
    assert "--base-model owner/gated: a gated repository" in res.output  # not "offline", as before
