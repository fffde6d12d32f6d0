"""Issue #13 item 4, overlap: the engine keeps one batch in flight (`Translator.pipelined`: on CUDA batch k's copy
back overlaps batch k+1's model, from reused pinned host buffers), and the jobs run only the model on the model's
thread (prep on the decode side, restore on the write/encode side). On the CPU the same code runs with the
streams and events as no-ops, so these tests, on the real tiny engine, cover the control flow and the buffer pool.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from tests._video_helpers import make_video
from turbo_cli.engine.translator import _DeviceSync, _HostBuffers
from turbo_cli.io.video import read_frames
from turbo_cli.io.video_writer import VideoWriter
from turbo_cli.jobs.translate import translate_folder
from turbo_cli.jobs.video_pipeline import VideoJobOptions, translate_video

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def translator(tiny_cyclegan):
    from turbo_cli.jobs.loading import ModelOptions, build_translator

    return build_translator(ModelOptions(model=str(tiny_cyclegan), device="cpu", image_prep="resize_64x64"))


def frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


class ThreadsOf:
    """A FramePrep that records the threads its prep and restore run on (the prep itself is the real one)."""

    def __init__(self, prep):
        self.prep = prep
        self.to_model_threads: set[int] = set()
        self.from_model_threads: set[int] = set()

    def model_size(self, height, width):
        return self.prep.model_size(height, width)

    def to_model(self, rgb):
        self.to_model_threads.add(threading.get_ident())
        return self.prep.to_model(rgb)

    def from_model(self, rgb, height, width):
        self.from_model_threads.add(threading.get_ident())
        return self.prep.from_model(rgb, height, width)


def model_threads(translator):
    """(the threads the model's forward runs on, the hook recording them: remove it when done)."""
    seen: set[int] = set()
    handle = translator.generator.register_forward_pre_hook(lambda module, args: seen.add(threading.get_ident()))
    return seen, handle


# ------------------------------------------------------------------------------------------------- the engine


def test_pipelined_is_translate_prepared_batch_by_batch_in_order(translator):
    batches = [("a", frames(3, 48, 64, 0)), ("b", frames(2, 48, 64, 1)), ("c", frames(2, 32, 40, 2)),
               ("d", frames(1, 48, 64, 3))]  # sizes change, the last batch is partial
    want = [translator.translate_prepared(b) for _, b in batches]
    before = translator.stats.frames
    got = list(translator.pipelined(iter(batches)))
    assert [tag for tag, _ in got] == ["a", "b", "c", "d"]
    for (_, out), expected in zip(got, want):
        assert out.dtype == np.uint8 and out.shape == expected.shape and np.array_equal(out, expected)
    assert translator.stats.frames - before == 8 and translator.stats.model_seconds > 0


def test_batch_k_keeps_its_outputs_while_k_plus_1_runs(translator):
    """Batch k is collected after k+1 was launched, with k+1's staging buffers taken from the same pool: k's outputs
    must still be k's, and stay so after its buffers are reused by k+2."""
    a, b, c = frames(2, 48, 64, 10), frames(2, 48, 64, 11), 255 - frames(2, 48, 64, 10)
    want = {tag: translator.translate_prepared(x) for tag, x in (("a", a), ("b", b), ("c", c))}
    assert not np.array_equal(want["a"], want["b"])
    translator._pool.free.clear()
    launched = []

    def batches():
        for tag, x in (("a", a), ("b", b), ("c", c)):
            launched.append(tag)
            yield tag, x

    outs = {}
    for tag, out in translator.pipelined(batches()):
        outs[tag] = out
        if tag == "a":
            assert launched == ["a", "b"]  # one batch in flight: a is handed over after b was launched
        assert np.array_equal(out, want[tag]), tag
    assert all(np.array_equal(outs[tag], want[tag]) for tag in outs)  # not views of reused buffers
    assert len(translator._pool.free) == 4  # two per kind: c reused a's buffers instead of new ones


def test_the_pool_reuses_a_free_buffer_and_never_one_in_flight():
    pool = _HostBuffers(pin=False)
    flat_a, a = pool.take((2, 8, 8, 3))
    flat_b, b = pool.take((2, 8, 8, 3))
    assert flat_a.data_ptr() != flat_b.data_ptr()  # both in flight: two buffers
    pool.give(flat_a)
    flat_c, c = pool.take((1, 8, 8, 3))  # fits in a's
    assert flat_c.data_ptr() == flat_a.data_ptr() and c.shape == (1, 8, 8, 3)
    pool.give(flat_c)
    flat_d, d = pool.take((4, 8, 8, 3))  # too small: replaced by a bigger one
    assert d.shape == (4, 8, 8, 3) and pool.free == []
    flag = pool.take((), torch.bool)[1]
    assert flag.shape == () and flag.dtype == torch.bool


def test_an_error_while_the_next_batch_comes_still_hands_over_the_one_in_flight(translator):
    a = frames(2, 48, 64, 20)
    want = translator.translate_prepared(a)

    def batches():
        yield "a", a
        raise KeyboardInterrupt  # Ctrl-C while the next batch is read

    got = []
    with pytest.raises(KeyboardInterrupt):
        for tag, out in translator.pipelined(batches()):
            got.append((tag, out))
    assert len(got) == 1 and got[0][0] == "a" and np.array_equal(got[0][1], want)


def test_a_caller_that_stops_early_gives_the_buffers_back(translator):
    translator._pool.free.clear()
    gen = translator.pipelined((str(i), frames(2, 48, 64, i)) for i in range(3))
    assert next(gen)[0] == "0"  # batch 1 is in flight now
    gen.close()
    assert len(translator._pool.free) == 4  # batch 0's two and batch 1's two


def test_on_the_cpu_the_device_sync_does_nothing_but_copy():
    sync = _DeviceSync(torch.device("cpu"))
    assert sync.copy_stream is None
    start = sync.mark()
    host, device = torch.zeros(3, dtype=torch.uint8), torch.arange(3, dtype=torch.uint8)
    done = sync.copy_back([(host, device)])
    assert done is None and host.tolist() == [0, 1, 2]  # copied at once: nothing to wait for
    sync.wait(done)
    assert sync.seconds(start, sync.mark()) >= 0


# --------------------------------------------------------------------------------------------------- the jobs


def test_translate_runs_the_model_through_the_pipeline_and_prep_elsewhere(tmp_path, translator, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    images = frames(5, 40, 48, 30)
    for i, rgb in enumerate(images):
        Image.fromarray(rgb).save(src / f"{i}.png")
    monkeypatch.setattr(translator, "fixed_batch_size", 2)
    want = np.concatenate([translator.translate_frames(images[i:i + 2]) for i in (0, 2, 4)])
    prep = ThreadsOf(translator.frame_prep)
    monkeypatch.setattr(translator, "frame_prep", prep)
    calls = []
    real = translator.pipelined

    def counting(batches):
        calls.append(1)
        return real(batches)

    monkeypatch.setattr(translator, "pipelined", counting)
    seen, hook = model_threads(translator)
    try:
        summary = translate_folder(src, tmp_path / "out", translator)
    finally:
        hook.remove()
    assert summary.done == 5 and not summary.failed and calls == [1]
    for i in range(5):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")), want[i]), i
    assert seen == {threading.get_ident()}
    assert prep.to_model_threads and not prep.to_model_threads & seen
    assert prep.from_model_threads and not prep.from_model_threads & seen


def test_video_prep_and_restore_run_off_the_model_thread_with_the_same_frames(tmp_path, translator, monkeypatch):
    made = make_video(tmp_path / "in.mp4", frames=7, size=(48, 40))  # not the model's 64x64: resized in and out
    decoded = np.stack([f.rgb for f in read_frames(made.path)])
    padded = np.concatenate([decoded, decoded[-1:], decoded[-1:]])  # 3 + 3 + (1 padded to 3), as the job does
    want = np.concatenate([translator.translate_frames(padded[i:i + 3]) for i in (0, 3, 6)])[:7]

    written = []
    real_write = VideoWriter.write

    def recording_write(self, rgb, pts=None):
        written.append(rgb.copy())
        return real_write(self, rgb, pts)

    monkeypatch.setattr(VideoWriter, "write", recording_write)
    prep = ThreadsOf(translator.frame_prep)
    monkeypatch.setattr(translator, "frame_prep", prep)
    seen, hook = model_threads(translator)
    try:
        result = translate_video(made.path, tmp_path / "out.mp4", translator, VideoJobOptions(batch_size=3))
    finally:
        hook.remove()
    assert result.frames_out == 7 and result.model_s > 0
    assert len(written) == 7 and all(np.array_equal(w, x) for w, x in zip(written, want))
    assert seen == {threading.get_ident()}  # the model ran on the caller's thread, and only there
    assert prep.to_model_threads and not prep.to_model_threads & seen  # the decode side
    assert prep.from_model_threads and not prep.from_model_threads & seen  # the encode side

    # A translator with only translate_frames (benchmarks' stand-ins) still works: same frames, prep inside it.
    class Plain:
        batch_size = 3

        def translate_frames(self, x):
            return translator.translate_frames(x)

    written.clear()
    translate_video(made.path, tmp_path / "plain.mp4", Plain())
    assert len(written) == 7 and all(np.array_equal(w, x) for w, x in zip(written, want))
