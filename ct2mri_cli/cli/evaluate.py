"""``ct2mri evaluate``: score synthetic MRIs against reference MRIs (one pair, folders or a CSV)."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ..errors import Ct2mriError
from . import common

_COLUMNS = (
    ("mae", "MAE", "{:.4f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("nrmse", "NRMSE", "{:.4f}"),
    ("flicker", "flicker", "{:.3g}"),
    ("z_gradient_ratio", "z-grad ratio", "{:.3g}"),
    ("wasserstein", "W1", "{:.4f}"),
)


def evaluate(
    inputs: list[Path] | None = typer.Argument(
        None, metavar="PRED REF", help="A synthetic MRI and its reference MRI on the same grid.", show_default=False
    ),
    mask: Path | None = typer.Option(None, "--mask", help="Brain mask on the same grid (with PRED REF)."),
    pred_dir: Path | None = typer.Option(
        None, "--pred-dir", help="Folder of synthetic MRIs (matched to --ref-dir by case name)."
    ),
    ref_dir: Path | None = typer.Option(None, "--ref-dir", help="Folder of reference MRIs."),
    mask_dir: Path | None = typer.Option(
        None, "--mask-dir", help="Folder of brain masks (<case> or <case>_brainmask)."
    ),
    csv_file: Path | None = typer.Option(None, "--csv", help="CSV with columns case, pred, ref[, mask]."),
    whole_volume: bool = typer.Option(
        False, "--whole-volume", help="Score every voxel (the paper's unmasked variant) instead of the mask's."
    ),
    normalise: str = typer.Option(
        "auto",
        "--normalise",
        help="auto: keep volumes already in [0, 1], else robust min-max in the mask; robust; none.",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the table to this .csv or .json file."),
) -> None:
    """Score synthetic MRIs against references: MAE, PSNR, SSIM, NRMSE, slice consistency, W1."""
    from ..batch import run_batch
    from ..evaluation.metrics import NORMALISE_MODES
    from ..evaluation.scoring import check_output_name, evaluate_case, write_results

    if normalise not in NORMALISE_MODES:
        raise Ct2mriError(f"--normalise must be auto, robust or none, not {normalise!r}")
    cases, failures, batch = _plan(list(inputs or []), mask, pred_dir, ref_dir, mask_dir, csv_file)
    if out is not None:
        check_output_name(out)
        sources = [p for c in cases for p in (c.pred, c.ref, c.mask) if p is not None]
        common.check_named_output(out, sources + ([csv_file] if csv_file is not None else []))

    scores = []

    def work(case) -> str:
        score = evaluate_case(case, whole_volume=whole_volume, normalise=normalise)
        for note in score.notes:
            common.warn(note)
        scores.append(score)
        return f"{case.case}: PSNR {score.metrics['psnr']:.2f} dB, SSIM {score.metrics['ssim']:.4f}"

    def on_event(name: str, kind: str, message: str) -> None:
        if kind == "done":
            common.info(message)
        elif kind == "failed":
            common.console.print(f"[red]error:[/red] {message}", soft_wrap=True)

    failures += run_batch(cases, lambda case: case.case, work, on_event, isolate=batch).failures
    if scores:
        _print_table(scores, batch, whole_volume)
    if out is not None:
        write_results(out, scores, failures, whole_volume, normalise, with_mean=batch)
        common.info(f"wrote {out}")
    if batch:
        summary = f"{len(scores)} evaluated, {len(failures)} failed"
        if failures:
            common.console.print(f"[red]{summary}[/red]")
        else:
            common.info(summary)
        for case_name, message in failures:
            common.console.print(f"  [red]failed[/red] {case_name}: {message}", soft_wrap=True)
    if failures:
        raise typer.Exit(code=1)


def _plan(inputs, mask, pred_dir, ref_dir, mask_dir, csv_file):
    """The cases to score, the failures found while pairing, and whether this is a batch."""
    from ..evaluation.scoring import EvalCase, cases_from_csv, cases_from_dirs
    from ..io.cases import case_name

    forms = sum([bool(inputs), pred_dir is not None or ref_dir is not None, csv_file is not None])
    if forms != 1:
        raise Ct2mriError("give PRED REF, or --pred-dir DIR --ref-dir DIR, or --csv FILE (exactly one of them)")
    if mask is not None and not inputs:
        raise Ct2mriError("--mask goes with PRED REF; use --mask-dir with folders or a mask column in --csv")
    if mask_dir is not None and pred_dir is None:
        raise Ct2mriError("--mask-dir goes with --pred-dir and --ref-dir")
    if inputs:
        if len(inputs) != 2:
            raise Ct2mriError(f"give exactly two files, PRED REF (got {len(inputs)})")
        return [EvalCase(case_name(inputs[0]), inputs[0], inputs[1], mask)], [], False
    if csv_file is not None:
        return cases_from_csv(csv_file), [], True
    if pred_dir is None or ref_dir is None:
        raise Ct2mriError("--pred-dir and --ref-dir go together")
    cases, failures = cases_from_dirs(pred_dir, ref_dir, mask_dir)
    for _, message in failures:
        common.console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return cases, list(failures), True


def _fmt(template: str, value: float) -> str:
    return template.format(value) if math.isfinite(value) else str(value)


def _print_table(scores, batch: bool, whole_volume: bool) -> None:
    from ..evaluation.scoring import mean_metrics

    title = (
        "whole volume"
        if whole_volume
        else "inside the mask"
        if any(s.case.mask for s in scores)
        else "whole volume (no mask)"
    )
    table = Table(title=f"ct2mri evaluate: {title}", title_justify="left")
    table.add_column("case", overflow="fold")
    for _, header, _ in _COLUMNS:
        table.add_column(header, justify="right", overflow="fold")
    for score in scores:
        table.add_row(score.case.case, *(_fmt(t, score.metrics[k]) for k, _, t in _COLUMNS))
    if batch:
        mean = mean_metrics(scores)
        table.add_section()
        table.add_row(f"mean ({len(scores)})", *(_fmt(t, mean[k]) for k, _, t in _COLUMNS), style="bold")
    console = common.stdout
    natural = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
    if not console.is_terminal and natural > console.width:
        # a file or pipe has no width of its own: keep every digit rather than fit 80 columns
        console = Console(file=console.file, width=natural, highlight=False)
    console.print(table)
