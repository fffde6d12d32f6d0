"""Finding the images to evaluate: scan a folder (counting what is skipped), pair outputs with their sources."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from turbo_cli.errors import InputError
from turbo_cli.io.images import ImageJob, discover_images, is_image_path


@dataclass
class ImageSet:
    """The images of one folder (sorted by relative path) and how many other files were skipped."""

    root: Path
    jobs: list[ImageJob]
    skipped_files: int  # non-image files (counted so a user sees that e.g. 40 .txt files were ignored)


def _count_non_images(root: Path) -> int:
    n = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        n += sum(1 for f in filenames if not f.startswith(".") and not is_image_path(f))
    return n


def scan_folder(path: str | Path, option: str) -> ImageSet:
    """Images under a folder; `option` (e.g. "--reference") names the option in errors."""
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"{option} {path}: no such folder")
    if not root.is_dir():
        raise InputError(f"{option} {path}: not a folder")
    skipped = _count_non_images(root)
    try:
        jobs = discover_images(root)
    except InputError:
        extra = f" ({skipped} non-image files skipped)" if skipped else ""
        raise InputError(f"{option} {path}: no images found{extra}") from None
    return ImageSet(root=root, jobs=jobs, skipped_files=skipped)


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class Pairing:
    """Outputs matched with their sources, and the names left without a partner on either side."""

    pairs: list[tuple[ImageJob, ImageJob]]  # (source, output)
    outputs_without_source: list[str] = field(default_factory=list)
    sources_without_output: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        w = []
        if self.outputs_without_source:
            w.append(f"{len(self.outputs_without_source)} output(s) have no source partner and are not evaluated: "
                     f"{_names(self.outputs_without_source)}")
        if self.sources_without_output:
            w.append(f"{len(self.sources_without_output)} source(s) have no output (not translated yet?): "
                     f"{_names(self.sources_without_output)}")
        return w


def pair_by_relpath(sources: ImageSet, outputs: ImageSet) -> Pairing:
    """Pair by relative path without the extension (translate may write .png for a .jpg input).

    When several outputs share a stem (a.png and a.jpg), the one with the source's extension wins and the
    others are listed as unpaired, so nothing is silently ignored.
    """
    by_stem: dict[str, list[ImageJob]] = {}
    for job in outputs.jobs:
        by_stem.setdefault(job.rel.with_suffix("").as_posix(), []).append(job)
    pairs, used = [], set()
    missing = []
    for src in sources.jobs:
        cands = by_stem.get(src.rel.with_suffix("").as_posix(), [])
        cands = [c for c in cands if c.rel not in used]
        if not cands:
            missing.append(src.rel.as_posix())
            continue
        same = [c for c in cands if c.rel.suffix.lower() == src.rel.suffix.lower()]
        out = (same or cands)[0]
        used.add(out.rel)
        pairs.append((src, out))
    orphans = [job.rel.as_posix() for job in outputs.jobs if job.rel not in used]
    if not pairs:
        raise InputError(f"--output {outputs.root}: no output has a source partner in --source {sources.root} "
                         f"(paired by relative path, any extension); unpaired outputs: {_names(orphans)}")
    return Pairing(pairs=pairs, outputs_without_source=orphans, sources_without_output=missing)
