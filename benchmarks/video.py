"""Benchmark: `turbo video` end to end vs the model alone on the same decoded frames, in one run.

The goal is end-to-end time <= 1.15x model-only time: decoding and encoding hidden behind the model.

    python benchmarks/video.py                           # tiny random model on CPU, 128x128, 120 frames
    python benchmarks/video.py --model ckpt.safetensors  # a real turbo checkpoint (--base-model DIR offline)
    python benchmarks/video.py --full-size --size 512x512 --device cuda   # SD-Turbo-sized random weights (GPU)
    python benchmarks/video.py --stand-in 0.05           # no torch: a numpy model sleeping 50 ms per batch

Reported per row: frames/s end to end (decode + model + encode, file to file, including opening the files and
flushing the encoder), frames/s of the model alone on the same frames in the same batches, their time ratio, the
model's own time inside the end-to-end run (robust to other load on a shared machine: same run, same moment), and
decode-only / encode-only frames/s for context (what a serial loop would add). End-to-end and model-only runs
alternate, best of --repeats. Prints a table and writes JSON (benchmarks/results/video*.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turbo_cli.io.video import iter_rgb, probe  # noqa: E402
from turbo_cli.io.video_writer import EncodeSettings, VideoWriter  # noqa: E402
from turbo_cli.jobs.video import fit_codec_threads  # noqa: E402
from turbo_cli.jobs.video_pipeline import VideoJobOptions, translate_video  # noqa: E402

GOAL = 1.15


def make_clip(path: Path, frames: int, size: tuple[int, int], fps: int = 30) -> Path:
    """A moving-gradient clip with AAC audio (what a phone or dashcam gives), encoded once up front."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=44100, layout="stereo")
        for i in range(frames):
            rgb = np.stack([(x * 3 + i * 4) % 256, (y * 2 + i) % 256, ((x + y) + i * 7) % 256], -1).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        n = frames * 44100 // fps
        for k in range(0, n, 1024):
            m = min(1024, n - k)
            wave = (0.2 * np.sin(np.arange(k, k + m) * 0.03)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 44100, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return path


class StandIn:
    """A numpy 'model' that takes a fixed time per batch (sleeping releases the GIL, like a GPU kernel does)."""

    def __init__(self, seconds_per_batch: float, batch_size: int):
        self.seconds, self.batch_size = seconds_per_batch, batch_size

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return 255 - frames


def build_model(args):
    if args.stand_in is not None:
        return StandIn(args.stand_in, args.batch_size or 8), "numpy stand-in", "cpu"
    import torch

    from turbo_cli.engine.tiny import build_tiny_base, make_random_checkpoint
    from turbo_cli.jobs.loading import ModelOptions, build_translator

    checkpoint = args.model
    if checkpoint is None:
        work = Path(tempfile.mkdtemp(prefix="turbo-bench-model-"))
        base = build_tiny_base(work / "base", full_size=args.full_size)
        checkpoint = make_random_checkpoint(base, work / "model.safetensors", "cyclegan",
                                            rank_unet=128 if args.full_size else 4)
    translator = build_translator(ModelOptions(model=str(checkpoint), base_model=args.base_model, device=args.device,
                                               dtype=args.dtype, compile=args.compile, batch_size=args.batch_size))
    device = str(translator.device)
    name = torch.cuda.get_device_name() if translator.device.type == "cuda" else (platform.processor() or "cpu")
    label = ("SD-Turbo-sized random weights" if args.full_size else "tiny random model") if args.model is None \
        else Path(args.model).name
    return translator, f"{label}, {translator.dtype}".replace("torch.", ""), f"{device} ({name})"


def batch_for(translator, size: tuple[int, int]) -> int:
    by_size = getattr(translator, "batch_size_for", None)
    return by_size(size[1], size[0]) if callable(by_size) else translator.batch_size


def model_only(translator, frames: list[np.ndarray], batch: int) -> float:
    """Seconds for the model alone on the decoded frames, same batches (last one padded) as the video job.

    turbo's Translator: the frames are prepared for the model (resize, conditioning) before the clock starts and
    the outputs are not resized back, since the video job does both on its decode and encode threads; a stand-in
    without `frame_prep` is timed through `translate_frames`."""
    prep = getattr(translator, "frame_prep", None)
    if prep is not None:
        frames = [prep.to_model(f) for f in frames]
    run = translator.translate_prepared if prep is not None else translator.translate_frames
    sync = _sync(translator)
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        chunk = np.stack(frames[i:i + batch])
        if len(chunk) < batch and i > 0:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        run(chunk)
    sync()
    return time.perf_counter() - start


def _sync(translator):
    device = getattr(translator, "device", None)
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def decode_only(clip: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in iter_rgb(clip))
    return n / (time.perf_counter() - start)


def encode_only(frames: list[np.ndarray], out: Path, settings: EncodeSettings) -> float:
    h, w = frames[0].shape[:2]
    start = time.perf_counter()
    with VideoWriter(out, width=w, height=h, time_base=Fraction(1, 30), rate=Fraction(30), settings=settings) as wr:
        for i, f in enumerate(frames):
            wr.write(f, i)
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", default="128x128", help="clip size WxH")
    ap.add_argument("--model", default=None, help="a turbo checkpoint; default: a tiny random one built here")
    ap.add_argument("--base-model", default=None, help="base model folder for --model (offline use)")
    ap.add_argument("--full-size", action="store_true", help="SD-Turbo-sized random weights (use a GPU)")
    ap.add_argument("--stand-in", type=float, default=None, metavar="SECONDS",
                    help="no model: a numpy stand-in sleeping SECONDS per batch (shows the overlap alone)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--codec", default="libx264")
    ap.add_argument("--preset", default=None, help="encoder preset (libx264 default: medium)")
    ap.add_argument("--repeats", type=int, default=3, help="alternate end-to-end and model-only runs; best of N")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (fewer than the cores leaves room for decode/encode; steadier when shared)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    w, h = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="turbo-bench-video-"))
    clip = make_clip(work / "clip.mp4", args.frames, (w, h))
    info = probe(clip)
    frames = list(iter_rgb(clip))
    translator, model_label, device = build_model(args)
    batch = args.batch_size or batch_for(translator, (w, h))
    settings = EncodeSettings(codec=args.codec, preset=args.preset)

    # Warm-up (allocator, cuDNN autotune, torch.compile) is paid once per run, not per frame: excluded from both.
    translator.translate_frames(np.stack(frames[:batch]))
    _sync(translator)()

    e2e_s, model_s, inside_s = [], [], []
    for r in range(args.repeats):
        job = VideoJobOptions(encode=settings, batch_size=batch, overwrite=True)
        fit_codec_threads(job, translator)  # what `turbo video` does: codec threads fitted to the model's device
        result = translate_video(clip, work / f"out{r}.mp4", translator, job)
        assert result.frames_out == len(frames), (result.frames_out, len(frames))
        e2e_s.append(result.wall_s)
        inside_s.append(result.model_s)
        model_s.append(model_only(translator, frames, batch))
    best = min(range(args.repeats), key=lambda i: e2e_s[i])
    e2e, model, inside = e2e_s[best], min(model_s), inside_s[best]
    dec_fps = decode_only(clip)
    enc_fps = encode_only(frames, work / "enc.mp4", settings)
    n = len(frames)
    row = dict(size=f"{w}x{h}", frames=n, batch=batch, model=model_label, device=device, codec=args.codec,
               preset=args.preset or "default", e2e_fps=n / e2e, model_fps=n / model, ratio=e2e / model,
               decode_fps=dec_fps, encode_fps=enc_fps, serial_estimate_fps=1 / (1 / dec_fps + model / n + 1 / enc_fps),
               inside_ratio=e2e / inside, e2e_s_runs=e2e_s, model_s_runs=model_s, model_in_e2e_s_runs=inside_s,
               goal=GOAL, met=e2e / model <= GOAL,
               audio=info.has_audio)

    import torch

    print(f"\nturbo video benchmark - {n} frames {w}x{h} (+AAC audio), {model_label}, device {device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, av {av.__version__}")
    print(f"{'batch':>5} {'end-to-end f/s':>15} {'model-only f/s':>15} {'e2e/model':>10} {'goal':>6} "
          f"{'e2e/model in run':>17} {'decode f/s':>11} {'encode f/s':>11} {'serial est. f/s':>16}")
    print(f"{batch:>5} {row['e2e_fps']:15.2f} {row['model_fps']:15.2f} {row['ratio']:9.3f}x "
          f"{'ok' if row['met'] else 'MISS':>6} {row['inside_ratio']:16.3f}x {dec_fps:11.1f} {enc_fps:11.1f} "
          f"{row['serial_estimate_fps']:16.2f}")
    print("runs (s): end-to-end " + ", ".join(f"{t:.2f}" for t in e2e_s) + " | model-only "
          + ", ".join(f"{t:.2f}" for t in model_s))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "video_standin.json" if args.stand_in is not None else "video_full.json" if args.full_size else "video.json"
    (args.out / name).write_text(json.dumps(row, indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
