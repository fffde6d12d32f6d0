"""`turbo eval` on folders (and a model on a dataset) end to end, with tiny random backbones and offline."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests._eval_helpers import save_png, scene, tiny_backbones, use_tiny_backbones
from turbo_cli.cli.main import app
from turbo_cli.errors import InputError
from turbo_cli.eval.folder_eval import evaluate_folders
from turbo_cli.eval.names import Metric, parse_metrics
from turbo_cli.eval.networks import Backbones, InceptionFeatures, Unavailable


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TURBO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _make_folders(root: Path, n: int = 5) -> tuple[Path, Path, Path]:
    src, out, ref = root / "src", root / "out", root / "ref"
    for i in range(n):
        s = scene(shift=i, seed=i)
        save_png(src / "sub" / f"im{i}.png", s) if i == 0 else save_png(src / f"im{i}.png", s)
        dark = (s * 0.4).astype(np.uint8)
        if i == 1:  # a translator that changed the size: handled by resizing to the source's size
            import cv2

            dark = cv2.resize(dark, (160, 128))
        rel = Path("sub") / "im0.jpg" if i == 0 else Path(f"im{i}.jpg")  # other extension than the source
        out.joinpath(rel.parent).mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(dark).save(out / rel, quality=95)
        save_png(ref / f"r{i}.png", (scene(shift=3 - i, seed=10 + i) * 0.3).astype(np.uint8))
    (src / "notes.txt").write_text("not an image")
    (ref / "README.md").write_text("not an image")
    save_png(out / "orphan.png", scene())
    return src, out, ref


def _run(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


def test_folders_end_to_end(tmp_path, monkeypatch):
    use_tiny_backbones(monkeypatch)
    src, out, ref = _make_folders(tmp_path)
    json_copy = tmp_path / "copy" / "m.json"
    r = _run("--source", src, "--output", out, "--reference", ref, "--metrics", "all", "--json", json_copy)
    assert r.exit_code == 0, r.output
    rep = tmp_path / "out-eval"  # default: beside the output folder
    data = json.loads((rep / "metrics.json").read_text())
    assert json.loads(json_copy.read_text())["metrics"].keys() == data["metrics"].keys()
    m = data["metrics"]
    assert set(m) == {"fid", "kid", "dino_struct", "lpips", "color", "edges", "brightness"}
    assert all(v["status"] == "ok" and np.isfinite(v["value"]) for v in m.values()), m
    assert m["fid"]["policy"]["mode"] == "clean" and m["fid"]["policy"]["output_images"] == 5
    assert m["fid"]["policy"]["reference_images"] == 5 and "299" in m["fid"]["policy"]["resize"]
    assert "x100" in m["dino_struct"]["policy"]["scale"] and "k_proj" in m["dino_struct"]["policy"]["layer"]
    assert m["dino_struct"]["value"] == pytest.approx(100 * m["dino_struct"]["extra"]["raw"])
    assert m["brightness"]["extra"]["output"] < m["brightness"]["extra"]["source"]
    assert m["color"]["value"] < m["color"]["extra"]["source"]  # darkened outputs are closer to the dark refs
    c = data["counts"]
    assert (c["pairs"], c["outputs_without_source"], c["resized_outputs"]) == (5, 1, 1)
    assert c["non_image_files_skipped"] == {"source": 1, "output": 0, "reference": 1}
    assert any("orphan.png" in w for w in data["warnings"])
    assert data["ranking"]["metric"] == "dino_struct"
    dinos = [it["dino_struct"] for it in data["items"]]
    assert dinos == sorted(dinos)  # best first
    assert {it["name"] for it in data["items"]} == {"sub/im0.png", "im1.png", "im2.png", "im3.png", "im4.png"}
    html = (rep / "index.html").read_text()
    assert "grid.png" in html and "DINO-Struct-Dist" in html
    from PIL import Image

    grid = Image.open(rep / "grid.png")
    assert grid.height > 5 * 192  # five source|output rows
    assert "FID vs reference" in r.output and "orphan.png" in r.output


def test_offline_metric_reported_with_reason_others_still_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    src, out, ref = _make_folders(tmp_path)
    rep = tmp_path / "rep"
    r = _run("--source", src, "--output", out, "--reference", ref, "--report", rep,
             "--metrics", "dino_struct,edges,color,brightness", "--device", "cpu")
    assert r.exit_code == 0, r.output
    m = json.loads((rep / "metrics.json").read_text())["metrics"]
    assert m["dino_struct"]["status"] == "unavailable" and "offline" in m["dino_struct"]["reason"]
    assert m["dino_struct"]["value"] is None
    for key in ("edges", "color", "brightness"):
        assert m[key]["status"] == "ok" and m[key]["value"] is not None
    data = json.loads((rep / "metrics.json").read_text())
    assert data["ranking"]["metric"] == "edges" and "unavailable" in data["ranking"]["note"]
    assert "n/a" in r.output and "offline" in r.output
    assert (rep / "grid.png").is_file()


def _counting_backbones(calls: list[int]) -> Backbones:
    nets = tiny_backbones({"fid", "kid"})
    inner = nets.inception.fn

    def fn(x):
        calls.append(len(x))
        return inner(x)

    nets.inception = InceptionFeatures(fn, id=nets.inception.id)
    return nets


def test_reference_statistics_are_cached(tmp_path):
    src, out, ref = _make_folders(tmp_path)
    calls: list[int] = []
    nets = _counting_backbones(calls)
    first = evaluate_folders(src, out, ref, backbones=nets, metrics={"fid", "kid", "color"})
    assert sum(calls) == 10  # 5 outputs + 5 references
    assert first.counts.reference_cache == []
    calls.clear()
    second = evaluate_folders(src, out, ref, backbones=nets, metrics={"fid", "kid", "color"})
    assert sum(calls) == 5  # only the outputs
    assert second.counts.reference_cache == ["inception features", "colour statistics"]
    for key in ("fid", "kid", "color"):
        assert second.metric(key).value == pytest.approx(first.metric(key).value)
    # Changing the reference folder invalidates the entry.
    save_png(ref / "r_new.png", scene(seed=99))
    calls.clear()
    third = evaluate_folders(src, out, ref, backbones=nets, metrics={"fid"})
    assert sum(calls) == 11 and third.counts.reference_images == 6


def test_too_few_images_missing_reference_and_broken_backbone(tmp_path):
    src, out = tmp_path / "s", tmp_path / "o"
    save_png(src / "a.png", scene())
    save_png(out / "a.png", scene(tint=(0, 20, 0)))
    ref = tmp_path / "r"
    save_png(ref / "x.png", scene(seed=3))
    save_png(ref / "y.png", scene(seed=4))
    nets = tiny_backbones({"fid", "kid"})
    nets.dino = Unavailable("DINO-Struct-Dist: pretend it could not load")
    rep = evaluate_folders(src, out, ref, backbones=nets, metrics={"fid", "kid", "dino_struct", "edges"})
    assert "at least 2 images" in rep.metric("fid").reason and "outputs: 1" in rep.metric("fid").reason
    assert not rep.metric("kid").ok
    assert rep.metric("dino_struct").reason == "DINO-Struct-Dist: pretend it could not load"
    assert rep.metric("edges").ok
    no_ref = evaluate_folders(src, out, None, backbones=nets, metrics={"fid", "color"})
    assert "--reference" in no_ref.metric("fid").reason and "--reference" in no_ref.metric("color").reason


def test_bad_inputs(tmp_path, monkeypatch):
    use_tiny_backbones(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    src, out, ref = _make_folders(tmp_path)
    r = _run("--source", empty, "--output", out)
    assert r.exit_code == 2 and "--source" in r.output and "no images" in r.output and "1 non-image" in r.output
    other = tmp_path / "other"
    save_png(other / "zzz.png", scene())
    r = _run("--source", src, "--output", other)
    assert r.exit_code == 2 and "zzz.png" in r.output and "no output has a source partner" in r.output
    r = _run("--source", src, "--output", out, "--metrics", "fid,bogus")
    assert r.exit_code == 2 and "bogus" in r.output and "is not a metric" in r.output
    r = _run("--source", src)
    assert r.exit_code == 2 and "--output" in r.output
    with pytest.raises(InputError, match="no such folder"):
        evaluate_folders(tmp_path / "nope", out, backbones=Backbones())


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    src, out, ref = _make_folders(tmp_path)
    (out / "im3.jpg").write_bytes(b"not really a jpeg")
    (ref / "r0.png").write_bytes(b"\x89PNG broken")
    rep = evaluate_folders(src, out, ref, backbones=tiny_backbones({"fid"}), metrics={"fid", "edges"})
    assert rep.counts.pairs == 4 and rep.counts.unreadable_skipped == 2
    assert rep.metric("fid").ok and rep.metric("fid").policy["reference_images"] == 4
    assert any("im3.jpg" in w for w in rep.warnings)


def _dataset(root: Path, n: int = 3, size: int = 32) -> Path:
    for split, tint in (("test_A", (0, 0, 0)), ("test_B", (-20, -20, 10))):
        for i in range(n):
            save_png(root / split / f"{i:03d}.png", scene(size, size, shift=i % 3, tint=tint, seed=i))
    return root


def test_model_mode_cyclegan_both_directions(tmp_path, tiny_cyclegan, monkeypatch):
    use_tiny_backbones(monkeypatch)
    ds = _dataset(tmp_path / "ds")
    rep = tmp_path / "rep"
    r = _run("--model", tiny_cyclegan, "--dataset", ds, "--report", rep, "--device", "cpu",
             "--max-images", "2", "--metrics", "fid,dino_struct,edges,color")
    assert r.exit_code == 0, r.output
    data = json.loads((rep / "metrics.json").read_text())
    assert data["kind"] == "model" and set(data["directions"]) == {"a2b", "b2a"}
    for direction, other in (("a2b", "test_B"), ("b2a", "test_A")):
        d = data["directions"][direction]
        assert d["inputs"]["reference"].endswith(other) and d["counts"]["translated"] == 2
        assert d["metrics"]["fid"]["status"] == "ok" and d["metrics"]["dino_struct"]["status"] == "ok"
        assert len(list((rep / "translations" / direction).glob("*.png"))) == 2
        assert (rep / f"grid-{direction}.png").is_file()
    assert "a2b" in (rep / "index.html").read_text()


def test_model_mode_needs_dataset(tmp_path):
    r = _run("--model", "demo")
    assert r.exit_code == 2 and "--dataset" in r.output


def test_one_metric_vocabulary():
    # The --metrics names are the metrics.json keys; a near miss names the right one.
    assert parse_metrics("fid, DINO_STRUCT ,edges", {"fid", "dino_struct", "edges"}, ()) == {
        Metric.FID, Metric.DINO_STRUCT, Metric.EDGES}
    assert parse_metrics(None, (), {"fid"}) == {Metric.FID}
    with pytest.raises(InputError, match="'dino' is not a metric; did you mean dino_struct"):
        parse_metrics("dino", {"fid", "dino_struct"}, ())
    with pytest.raises(InputError, match="'flicker' does not apply here"):
        parse_metrics("flicker", {"fid"}, ())


def test_file_names_are_printed_as_they_are(tmp_path, monkeypatch):
    # rich markup in a file name is text, not markup: "[bold]" stays in the output
    use_tiny_backbones(monkeypatch)
    src, out, ref = _make_folders(tmp_path)
    save_png(out / "[bold]odd[/bold].png", scene())
    r = _run("--source", src, "--output", out, "--metrics", "edges")
    assert r.exit_code == 0, r.output
    assert "[bold]odd[/bold].png" in r.output.replace("\n", "")


def test_an_edge_free_pair_has_no_edge_score_and_never_ranks_best(tmp_path):
    """A flat image translated to a flat image has no structure to keep: it is left out of edge F1 (counted in the
    policy), not scored 1.0 and ranked first."""
    from turbo_cli.eval import metrics as M

    src, out = tmp_path / "src", tmp_path / "out"
    flat = np.full((64, 64, 3), 120, np.uint8)
    save_png(src / "flat.png", flat)
    save_png(out / "flat.png", flat + 10)
    a = scene()
    b = np.roll(a, 6, axis=1)  # edges moved beyond the tolerance: a real, imperfect score
    save_png(src / "edgy.png", a)
    save_png(out / "edgy.png", b)
    r = _run("--source", src, "--output", out, "--metrics", "edges")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "out-eval" / "metrics.json").read_text())
    edges = data["metrics"]["edges"]
    assert edges["value"] == pytest.approx(M.edge_f1(a, b)) and edges["value"] < 1.0
    assert edges["policy"]["edge_free_pairs_skipped"] == 1 and edges["policy"]["images"] == 1
    assert data["items"][0]["name"] == "edgy.png"  # ranked first: the pair with a score
