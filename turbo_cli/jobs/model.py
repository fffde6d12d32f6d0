"""turbo as a library: `turbo_cli.load_model(...)` returns a `TurboModel`, the same objects the CLI runs.

    import turbo_cli
    model = turbo_cli.load_model("demo", direction="night", device="cpu")
    night = model(pil_image)                       # PIL in -> PIL out; uint8 HxWx3 numpy -> numpy;
    nights = model([img1, img2])                   # float (B,3,H,W) tensors in [0,1] -> tensors; lists batched
    model.translate_folder("frames/", "night/")    # `turbo translate`'s job (atomic writes, resume)
    model.translate_video("in.mp4", "out.mp4")     # `turbo video`'s job (audio and timestamps kept)

Every option means what the CLI option of the same name means (`--gamma` is `gamma`); errors are the same typed
`turbo_cli.errors.TurboError`s the CLI turns into exit codes. Progress is off unless a `Progress` is passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from turbo_cli.errors import InputError
from turbo_cli.jobs.loading import ModelOptions, build_translator
from turbo_cli.progress import QUIET, Progress


def load_model(model: str | Path, *, direction: str | None = None, prompt: str | None = None,
               base_model: str | None = None, device: str = "auto", dtype: str = "auto", compile: bool | None = None,
               image_prep: str | None = None, gamma: float | None = None, seed: int = 42,
               batch_size: int | None = None, progress: Progress = QUIET) -> "TurboModel":
    """Load a model once, ready to translate images, folders and videos.

    model: a published name (`day_to_night`, `edge_to_image`, ...), `demo`, a turbo `.safetensors` (or its folder,
    or a training run folder), an original img2img-turbo `.pkl`, or a Hub repo id `owner/name[@revision]`.
    direction: `a2b`/`b2a`, or a target domain (`night`, `day`, `rainy`, `clear`). gamma: the stochastic models'
    strength r. The rest as the CLI's options of the same names.
    """
    options = ModelOptions(model=str(model) if model is not None else None, direction=direction, prompt=prompt,
                           base_model=base_model, device=device, dtype=dtype, compile=compile,
                           image_prep=image_prep, r=gamma, seed=seed, batch_size=batch_size)
    return TurboModel(build_translator(options, progress), options)


class TurboModel:
    """A loaded model. Call it on images; `translate_folder` / `translate_video` run the CLI's jobs."""

    def __init__(self, translator, options: ModelOptions):
        self.translator = translator
        self.options = options

    @property
    def info(self):
        """What the checkpoint says it is (`engine.checkpoint.ModelInfo`: kind, captions, direction, image prep)."""
        return self.translator.info

    def __repr__(self) -> str:
        t = self.translator
        return (f"TurboModel({t.info.name!r}, kind={t.info.kind.value}, direction={t.direction}, "
                f"device={t.device}, dtype={str(t.dtype).removeprefix('torch.')})")

    # ---- images in memory ---------------------------------------------------------------------------------------
    def __call__(self, images: Any) -> Any:
        """Translate one image or a list: PIL -> PIL (mode RGB), uint8 HxWx3 numpy -> numpy, float (B,3,H,W) or
        (3,H,W) tensors in [0, 1] -> tensors of the same shape. Lists are batched (by size) and keep their order."""
        if isinstance(images, (list, tuple)):
            return self._translate_list(list(images))
        if getattr(images, "dim", lambda: 0)() == 4:  # a (B, 3, H, W) tensor batch -> the same
            import torch

            return torch.cat(self._translate_list([images[i:i + 1] for i in range(len(images))]))
        return self._translate_list([images])[0]

    def _translate_list(self, images: list) -> list:
        arrays, kinds = zip(*(_to_array(im) for im in images)) if images else ((), ())
        results: list[np.ndarray | None] = [None] * len(arrays)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(arrays):
            by_size.setdefault(a.shape[:2], []).append(i)
        for size, indices in by_size.items():
            step = self.translator.batch_size_for(*size)
            for k in range(0, len(indices), step):
                chunk = indices[k:k + step]
                for i, out in zip(chunk, self.translator.translate_frames(np.stack([arrays[i] for i in chunk]))):
                    results[i] = out
        return [_from_array(out, kind) for out, kind in zip(results, kinds)]

    # ---- the CLI's jobs -------------------------------------------------------------------------------------------
    def translate_folder(self, src: str | Path, dst: str | Path, *, fmt: str | None = None, overwrite: bool = False,
                         workers: int = 4, progress: Progress = QUIET):
        """`turbo translate SRC DST`: every image under `src` into `dst` (relative paths mirrored, atomic writes,
        existing outputs skipped unless `overwrite`). Returns the run's `TranslateSummary`."""
        from turbo_cli.jobs.translate import check_paths, translate_folder

        check_paths(str(src), dst)
        return translate_folder(str(src), dst, self.translator, fmt=fmt, overwrite=overwrite, workers=workers,
                                progress=progress)

    def translate_video(self, src: str | Path, dst: str | Path, *, overwrite: bool = False, crf: int | None = None,
                        codec: str | None = None, start: float | None = None, end: float | None = None,
                        max_frames: int | None = None, progress: Progress = QUIET):
        """`turbo video SRC DST` (a video, or a folder of videos): decoded, translated and re-encoded with audio
        and timestamps kept. Returns the list of `VideoResult`s."""
        from dataclasses import replace

        from turbo_cli.io.video_writer import EncodeSettings, check_settings
        from turbo_cli.jobs.video import check_paths, translate_videos
        from turbo_cli.jobs.video_pipeline import VideoJobOptions

        encode = EncodeSettings()
        encode = replace(encode, **{k: v for k, v in (("crf", crf), ("codec", codec)) if v is not None})
        check_settings(encode)
        options = VideoJobOptions(encode=encode, start=start, end=end, max_frames=max_frames, overwrite=overwrite)
        check_paths(Path(src), Path(dst), options)
        return translate_videos(src, dst, self.translator, options, progress=progress)


def _to_array(image) -> tuple[np.ndarray, tuple]:
    """(H, W, 3) uint8 and how to give the result back."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB")), ("pil",)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"a numpy image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return image, ("numpy",)
    import torch

    if isinstance(image, torch.Tensor):
        if not image.is_floating_point() or image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise InputError(f"a tensor image must be float (3, H, W) or (B, 3, H, W) in [0, 1], got "
                             f"{tuple(image.shape)} {image.dtype}")
        chw = image.reshape(3, *image.shape[-2:])
        rgb = (chw.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return rgb, ("tensor", image.dim(), image.dtype, image.device)
    raise InputError(f"cannot translate a {type(image).__name__}: pass PIL images, uint8 numpy arrays or float tensors")


def _from_array(rgb: np.ndarray, kind: tuple):
    if kind[0] == "pil":
        from PIL import Image

        return Image.fromarray(rgb, "RGB")
    if kind[0] == "numpy":
        return rgb
    import torch

    _, dim, dtype, device = kind
    out = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(device=device, dtype=dtype) / 255
    return out if dim == 3 else out[None]
