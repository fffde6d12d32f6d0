"""Published checkpoints by name: downloaded once from a server the test starts on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests._local_server import LocalServer, QuietHandler
from turbo_cli.cli.main import app
from turbo_cli.errors import ModelError, OfflineError
from turbo_cli.io.download import download
from turbo_cli.jobs.loading import resolve_checkpoint


class _Server(LocalServer):
    """Serves files from a dict {name: bytes}; `truncate` sends fewer bytes than Content-Length says."""

    def __init__(self, files: dict[str, bytes], truncate: bool = False):
        self.files, self.truncate, self.requests = files, truncate, []
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if server.truncate else body)

        super().__init__(Handler, "/models/")


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TURBO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_published_name_downloads_once_and_translates(fixtures_dir, cache, monkeypatch, tmp_path):
    body = (fixtures_dir / "checkpoints" / "cyclegan_ref.pkl").read_bytes()
    server = _Server({"day2night.pkl": body})
    monkeypatch.setenv("TURBO_MODELS_URL", server.url)
    try:
        path, entry = resolve_checkpoint("day_to_night")
        assert path == cache / "checkpoints" / "day2night.pkl" and path.read_bytes() == body
        assert entry.direction == "a2b" and entry.captions["a2b"] == "driving in the night"
        assert not list(path.parent.glob(".*.tmp"))
        resolve_checkpoint("day_to_night")
        assert len(server.requests) == 1  # cached: no second download
        # --direction night picks day_to_night (a2b, "driving in the night") through the CLI.
        Image.fromarray(np.full((24, 40, 3), 100, np.uint8)).save(tmp_path / "x.png")
        result = CliRunner().invoke(app, ["translate", str(tmp_path / "x.png"), str(tmp_path / "out"),
                                          "--direction", "night", "--base-model", str(fixtures_dir / "base"),
                                          "--image-prep", "resize_32x32"])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / "out" / "x.png").size == (40, 24)
    finally:
        server.close()


def test_truncated_download_leaves_nothing(cache, tmp_path):
    server = _Server({"f.pkl": b"x" * 10000}, truncate=True)
    try:
        with pytest.raises(ModelError, match="incomplete"):
            download(server.url + "f.pkl", tmp_path / "f.pkl")
        assert list(tmp_path.iterdir()) == [cache] or not (tmp_path / "f.pkl").exists()
        assert not list(tmp_path.glob(".f.pkl*"))
    finally:
        server.close()


def test_http_error_and_unreachable_server(tmp_path):
    server = _Server({})
    try:
        with pytest.raises(ModelError, match="HTTP 404"):
            download(server.url + "missing.pkl", tmp_path / "m.pkl")
    finally:
        server.close()
    with pytest.raises(OfflineError, match="are you offline"):
        download(server.url + "missing.pkl", tmp_path / "m.pkl", timeout=2)


def test_download_reports_bytes_to_the_progress_it_is_given(tmp_path):
    from turbo_cli.progress import Bar, Progress

    bars = []

    class Recorder(Progress):
        def bar(self, total, unit="it", description="", *, transient=False, bytes_=False):
            bar = Bar()
            bar.done = 0

            def advance(n=1):
                bar.done += n

            bar.advance = advance
            bars.append((total, unit, description, transient, bytes_, bar))
            return bar

    body = b"y" * 3000
    server = _Server({"w.pt": body})
    try:
        path = download(server.url + "w.pt", tmp_path / "w.pt", progress=Recorder())
    finally:
        server.close()
    assert path.read_bytes() == body
    (total, unit, description, transient, bytes_, bar), = bars
    assert (total, unit, transient, bytes_, bar.done) == (3000, "B", True, True, 3000)
    assert "w.pt" in description
