"""Evaluating a folder of translated images: against their sources (paired by relative path) for the per-pair
metrics, and against a reference folder of real target-domain images for FID, KID and the colour distance.

    from turbo_cli.eval.folder_eval import evaluate_folders
    from turbo_cli.eval.networks import load_backbones
    report = evaluate_folders("photos", "photos-night", "night-refs", backbones=load_backbones(metrics),
                              metrics=metrics)
    report.metric(Metric.FID).value

A metric that cannot run (no weights offline, too few images, no reference) comes back unavailable with a
one-line reason; the others still give numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from turbo_cli.errors import InputError, TurboError
from turbo_cli.eval.names import DEFAULT_FOLDER_METRICS, Metric
from turbo_cli.eval.paired import PairAccumulator, match_size
from turbo_cli.eval.pairing import pair_by_relpath, scan_folder
from turbo_cli.eval.networks import Backbones
from turbo_cli.eval.ranking import choose_ranking, grid_rows, sort_items
from turbo_cli.eval.reference import color_vs_reference, fid_kid, reference_stats
from turbo_cli.eval.results import EvalReport, FolderCounts, MetricResult, PairScores, SkippedFiles
from turbo_cli.io.images import read_image
from turbo_cli.progress import QUIET, Progress


def evaluate_folders(
    source: str | Path,
    output: str | Path,
    reference: str | Path | None = None,
    *,
    backbones: Backbones,
    metrics: Iterable[Metric | str] = DEFAULT_FOLDER_METRICS,
    max_images: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress = QUIET,
) -> EvalReport:
    """Evaluate translated images in OUTPUT against their sources (paired by relative path, any extension) and,
    for FID/KID/colour, against REFERENCE (real images of the target domain)."""
    chosen = {Metric(m) for m in metrics}
    if max_images is not None and max_images < 1:
        raise InputError(f"--max-images {max_images}: must be at least 1")
    src_set = scan_folder(source, "--source")
    out_set = scan_folder(output, "--output")
    ref_set = scan_folder(reference, "--reference") if reference is not None else None
    pairing = pair_by_relpath(src_set, out_set)
    warnings = pairing.warnings()
    pairs = pairing.pairs
    if max_images is not None and len(pairs) > max_images:
        warnings.append(f"--max-images {max_images}: evaluating the first {max_images} of {len(pairs)} pairs")
        pairs = pairs[:max_images]
    if ref_set is not None and max_images is not None and len(ref_set.jobs) > max_images:
        ref_set.jobs = ref_set.jobs[:max_images]

    acc = PairAccumulator(chosen, backbones)
    unreadable = []
    with progress.bar(len(pairs), "pair", "pairs", transient=True) as bar:
        for sjob, ojob in pairs:
            bar.advance()
            try:
                src = read_image(sjob.src).rgb
                out = read_image(ojob.src).rgb
            except TurboError as e:
                unreadable.append(str(e))
                continue
            acc.add(PairScores(sjob.rel.as_posix(), source=str(sjob.src), output=str(ojob.src)), src, out)
    if not acc.items:
        raise InputError(f"--output {output}: none of the {len(pairs)} paired images could be read "
                         f"({unreadable[0] if unreadable else 'no pairs'})")
    if unreadable:
        warnings.append(f"{len(unreadable)} pair(s) skipped, unreadable: {unreadable[0]}"
                        + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""))
    if acc.resized:
        warnings.append(f"{acc.resized} output(s) differ in size from their source: resized to the source's size "
                        f"for the paired metrics (FID uses them as they are)")

    out_feats = acc.feats.result()
    ref = None
    no_ref = None if ref_set is not None else "needs --reference (real images of the target domain)"
    if ref_set is not None:
        ref = reference_stats(ref_set, chosen, acc.inception, progress=progress,
                              cache_root=Path(cache_dir) if cache_dir is not None else None)
        if ref.skipped_unreadable:
            warnings.append(f"{len(ref.skipped_unreadable)} reference image(s) unreadable, skipped: "
                            f"{ref.skipped_unreadable[0]}")

    results: list[MetricResult] = fid_kid(chosen, out_feats, ref, acc.inception, no_ref)
    results += acc.per_pair_metrics()
    if Metric.COLOR in chosen:
        results.append(color_vs_reference(acc, ref, no_ref))
    b = acc.brightness(ref.brightness if ref is not None else None, ref.count if ref is not None else 0)
    if b is not None:
        results.append(b)

    ranking = choose_ranking(results)
    items = sort_items(acc.items, ranking)

    def pictures(item: PairScores):
        try:
            src = read_image(item.source).rgb
            return src, match_size(read_image(item.output).rgb, src.shape)
        except TurboError:
            return None

    counts = FolderCounts(
        pairs=len(acc.items),
        source_images=len(src_set.jobs),
        output_images=len(out_set.jobs),
        reference_images=ref.count if ref is not None else 0,
        outputs_without_source=len(pairing.outputs_without_source),
        sources_without_output=len(pairing.sources_without_output),
        non_image_files_skipped=SkippedFiles(src_set.skipped_files, out_set.skipped_files,
                                             ref_set.skipped_files if ref_set else 0),
        unreadable_skipped=len(unreadable) + (len(ref.skipped_unreadable) if ref else 0),
        resized_outputs=acc.resized,
        reference_cache=ref.cached if ref is not None else [],
    )
    return EvalReport(
        kind="folders",
        inputs={"source": str(source), "output": str(output), "reference": str(reference) if reference else None},
        counts=counts,
        metrics=results,
        items=items,
        ranking=ranking,
        warnings=warnings,
        grid_rows=grid_rows(items, ranking, pictures),
    )
