"""The compiled path, proven on the CPU with a cheap backend (issue #13): one graph, no recompiles, a safety net.

- Each family's generator (CycleGAN, pix2pix, the twin-conv stochastic model) traces as ONE graph with
  `torch.compile(fullgraph=True)`: no graph break and nothing that syncs with the host (an `.item()` or a
  data-dependent branch would break the graph), so CUDA graphs (`--compile-mode reduce-overhead`) are possible.
- A run compiles once per model shape: batches are formed by the size the model runs at and the last, partial
  batch is padded, for `turbo translate` (mixed input sizes) and `turbo video`, in both CycleGAN directions.
- A half-precision batch that comes out non-finite is redone in fp32, with a notice.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from turbo_cli.cli.main import app

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def compiles(monkeypatch):
    """The image-batch shape of every graph torch.compile builds in a run (dynamo with its eager backend: real
    tracing and guards, no code generation)."""
    shapes: list[tuple] = []
    real_compile = torch.compile

    def backend(gm, example_inputs):
        inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
        shapes.extend(tuple(t.shape) for n, t in zip(inputs, example_inputs) if n.lower().startswith("l_x"))
        return gm.forward

    def counting_compile(model, **kwargs):
        kwargs.pop("mode", None)  # modes belong to inductor; the eager backend takes none
        return real_compile(model, backend=backend, **kwargs)

    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", counting_compile)
    yield shapes
    torch._dynamo.reset()


@pytest.fixture()
def model_calls(monkeypatch):
    """A cheaper witness than tracing, for the paths that only need the shapes the compiled model is CALLED with:
    with `dynamic=False` dynamo compiles once per distinct shape (the test above proves it on the real tracer)."""
    shapes: list[tuple] = []

    def recording_compile(model, **kwargs):
        def call(x, *args, **kw):
            shapes.append(tuple(x.shape))
            return model(x, *args, **kw)
        return call

    monkeypatch.setattr(torch, "compile", recording_compile)
    return shapes


@pytest.mark.parametrize("family", ["cyclegan", "twin"])  # pix2pix is the twin model without its twin conv
def test_each_family_is_one_graph(tiny_base, family):
    from turbo_cli.engine.base import load_base
    from turbo_cli.engine.generator import build_cyclegan, build_pix2pix

    base = load_base(tiny_base, with_text_encoder=False)
    gen = (build_cyclegan(base, 4, 4) if family == "cyclegan" else
           build_pix2pix(base, 4, 4, twin_conv=family == "twin")).eval()
    noise = None
    if family == "twin":
        gen.set_r(0.4)
        noise = torch.randn(2, 4, 8, 8)
    torch._dynamo.reset()
    compiled = torch.compile(gen, fullgraph=True, backend="eager", dynamic=False)  # raises on any graph break
    x, emb = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(1, 77, 32)
    with torch.inference_mode():
        out = compiled(x, emb, direction="b2a" if family == "cyclegan" else None, noise=noise)
        ref = gen(x, emb, direction="b2a" if family == "cyclegan" else None, noise=noise)
    torch.testing.assert_close(out, ref)
    torch._dynamo.reset()


def _mixed_folder(folder, sizes):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_a_mixed_size_folder_compiles_once(tmp_path, tiny_cyclegan, compiles):
    # five sizes, one model size (resize_64x64), batches of 2: 2 + 2 + a partial 1 -> one graph
    _mixed_folder(tmp_path / "in", [(40, 30), (64, 64), (100, 70), (64, 48), (90, 90)])
    res = CliRunner().invoke(app, ["translate", str(tmp_path / "in"), str(tmp_path / "out"), "--model", tiny_cyclegan,
                                   "--compile", "--batch-size", "2", "--image-prep", "resize_64x64"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 5
    assert compiles == [(2, 3, 64, 64)], compiles


def test_two_model_shapes_and_b2a_and_the_padding_changes_nothing(tmp_path, tiny_cyclegan, model_calls):
    _mixed_folder(tmp_path / "in", [(64, 48), (64, 64), (67, 49), (70, 70), (64, 50)])  # 64x48 x3, 64x64 x2
    args = ["translate", str(tmp_path / "in"), "--model", tiny_cyclegan, "--batch-size", "2", "-d", "b2a"]
    assert CliRunner().invoke(app, [*args[:2], str(tmp_path / "c"), *args[2:], "--compile"]).exit_code == 0
    assert sorted(set(model_calls)) == [(2, 3, 48, 64), (2, 3, 64, 64)], model_calls  # partial batches padded
    assert CliRunner().invoke(app, [*args[:2], str(tmp_path / "e"), *args[2:], "--no-compile"]).exit_code == 0
    for f in sorted((tmp_path / "e").iterdir()):  # padding the partial batch changed nothing but CPU kernels'
        # rounding for another batch size (one level at most; a frame's position in a batch changes nothing)
        a, b = np.asarray(Image.open(f)).astype(int), np.asarray(Image.open(tmp_path / "c" / f.name)).astype(int)
        assert np.abs(a - b).max() <= 1, f.name


def test_a_video_with_a_partial_last_batch_compiles_once(tmp_path, tiny_cyclegan, model_calls):
    from tests._video_helpers import make_video

    make_video(tmp_path / "in.mp4", frames=7, size=(64, 48))
    res = CliRunner().invoke(app, ["video", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--model",
                                   tiny_cyclegan, "--compile", "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    assert set(model_calls) == {(3, 3, 48, 64)} and len(model_calls) == 3, model_calls  # 3 + 3 + 1 padded


def test_a_non_finite_half_precision_batch_is_redone_in_fp32(tiny_cyclegan):
    """bf16 keeps fp32's exponent range, so an overflow is provoked: a huge first encoder conv makes fp16
    activations overflow to inf (then NaN through the norms); fp32 normalises them away."""
    from turbo_cli.jobs.loading import ModelOptions, build_translator

    notes: list[str] = []

    class Notes:  # a Progress that records notices
        def notice(self, message):
            notes.append(message)

    options = ModelOptions(model=str(tiny_cyclegan), device="cpu", dtype="fp16")
    translator = build_translator(options, Notes())
    with torch.no_grad():
        translator.generator.vae.encoder.conv_in.weight.mul_(1e5)
    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    out = translator.translate_frames(frames)
    assert out.shape == frames.shape and out.std() > 1
    assert notes and "non-finite in fp16; redone in fp32" in notes[0], notes
    # the fp32 redo is the fp32 model's answer
    fp32 = build_translator(ModelOptions(model=str(tiny_cyclegan), device="cpu", dtype="fp32"))
    with torch.no_grad():
        fp32.generator.vae.encoder.conv_in.weight.mul_(1e5)
    assert np.abs(fp32.translate_frames(frames).astype(int) - out.astype(int)).max() <= 1


def test_compile_mode_reaches_torch_compile_and_bad_modes_are_one_line(tmp_path, tiny_cyclegan, monkeypatch):
    seen = {}

    def recording_compile(model, **kwargs):
        seen.update(kwargs)
        return model

    monkeypatch.setattr(torch, "compile", recording_compile)
    _mixed_folder(tmp_path / "in", [(64, 48)])
    args = ["translate", str(tmp_path / "in"), str(tmp_path / "o"), "--model", tiny_cyclegan, "--compile"]
    assert CliRunner().invoke(app, [*args, "--compile-mode", "reduce-overhead"]).exit_code == 0
    assert seen == {"dynamic": False, "fullgraph": True, "mode": "reduce-overhead"}
    res = CliRunner().invoke(app, [*args, "--compile-mode", "fastest", "--overwrite"])
    assert res.exit_code == 2 and "--compile-mode fastest: valid values are" in res.output
