"""``ct2mri translate``: native CT volumes in, synthetic T1 volumes on the same grids out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import Ct2mriError
from . import common


def translate(
    inputs: List[Path] = typer.Argument(..., help="INPUT OUTPUT, or several input CTs with -o OUTDIR."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (one input) or folder."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights file.", show_default="the bundled model"),
    style: Optional[str] = typer.Option(
        None, "--style", "-s", help="MRI volume, style key file, or bundled key name (average, colin27).",
        show_default="the model's default key",
    ),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps S.", show_default="the model's"),
    corrections: Optional[int] = typer.Option(None, "--corrections", help="ISTA corrections M per step.", show_default="the model's"),
    step_size: Optional[float] = typer.Option(None, "--step-size", help="ISTA correction step size lambda.", show_default="the model's"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="ista, coprediction or independent.", show_default="the model's"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per network call.", show_default="8 on CPUs, every window on GPUs"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA), fp32 or bf16."),
    compile_network: bool = typer.Option(False, "--compile", help="torch.compile the network (CUDA; slow first call)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Brain mask on the CT grid instead of automatic extraction (one input)."),
    save_mask: Optional[Path] = typer.Option(None, "--save-mask", help="Write the brain mask (file for one input, else folder)."),
    qc: Optional[Path] = typer.Option(None, "--qc", help="Write a QC montage PNG (file for one input, else folder)."),
    style_mask: Optional[Path] = typer.Option(None, "--style-mask", help="Brain mask of the --style MRI (else found by registration)."),
    series: Optional[str] = typer.Option(None, "--series", help="DICOM series UID when a folder holds several."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose output exists."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs in an output folder."),
    native_axes: bool = typer.Option(False, "--native-axes", help="Cut slices along the scan's axes, not in the head's canonical frame."),
    strict: bool = typer.Option(False, "--strict", help="A scan check's warning fails the case (nothing is written)."),
) -> None:
    """Translate brain CT volumes into synthetic T1 MRI on the same grid (NOT for diagnosis)."""
    from ..batch import SkipCase, run_batch
    from ..bundled import default_weights
    from ..device import resolve_device
    from ..inference.jobs import check_outputs, is_nifti_name, plan_jobs, run_job
    from ..inference.translator import Translator
    from ..io.atomic import check_folder_possible, ensure_folder
    from ..style.sources import check_style_distance, resolve_style
    from ..weights import load_weights

    jobs = plan_jobs(list(inputs), output, save_mask, qc)
    style_file = [Path(style)] if style is not None and Path(style).is_file() else []
    check_outputs(jobs, [job.ct for job in jobs] + ([mask] if mask is not None else []) + style_file + ([weights] if weights else []))
    if mask is not None and len(jobs) > 1:
        raise Ct2mriError("--mask applies to one input only")
    for job in jobs:
        for target in job.targets:
            check_folder_possible(target.parent)

    started = time.perf_counter()
    weights_path = weights or default_weights()
    if weights is None and not weights_path.is_file():
        raise Ct2mriError(f"the bundled model {weights_path} is missing; pass --weights")
    torch_device = resolve_device(device)
    bundle = load_weights(weights_path, device="cpu")
    sampling = bundle.sampling.with_overrides(steps, corrections, step_size, sampler)
    style_key, style_source = resolve_style(style, bundle.default_style_key, style_mask)
    style_distance = check_style_distance(style_key, bundle.default_style_key, style_source)
    translator = Translator(bundle, torch_device, sampling, batch_size, precision, compile=compile_network, strict=strict,
                            native_axes=native_axes)
    load_seconds = time.perf_counter() - started
    if output is not None and not is_nifti_name(output):
        ensure_folder(output)
    explicitly_named = len(jobs) == 1 and (output is None or is_nifti_name(output))  # the user named the file

    def work(job) -> str:  # noqa: ANN001
        existing = [t for t in job.targets if t.exists()]
        if skip_existing and job.finished:
            raise SkipCase(f"{job.case}: finished earlier ({job.sidecar}), skipped")
        interrupted = skip_existing and existing  # what an interrupted run left is completed
        if existing and not (force or explicitly_named or interrupted):
            raise Ct2mriError(f"{existing[0]} exists (use --force or --skip-existing)")
        with common.progress_bar("windows", remaining=True) as bar:
            task = bar.add_task(job.case, total=None)
            result, seconds = run_job(
                job, translator, style_key, style_source, mask, series, load_seconds, style_distance=style_distance,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        for note in result.notes:
            common.warn(note)
        flagged[job.case] = [c.name for c in result.checks if c.verdict != "pass"]
        return (
            f"{job.case}: wrote {job.output} ({result.evaluations} window evaluations, "
            + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
            + ")"
        )

    def on_event(case: str, kind: str, message: str) -> None:
        if kind in ("done", "skipped"):
            common.info(message)
        elif kind == "failed":
            common.console.print(f"[red]error:[/red] {message}", soft_wrap=True)

    flagged: dict[str, list[str]] = {}
    outcome = run_batch(jobs, lambda job: job.case, work, on_event, isolate=len(jobs) > 1)
    if len(jobs) > 1:
        with_checks = {case: names for case, names in flagged.items() if names}
        common.info(
            f"{len(outcome.done)} translated ({len(with_checks)} with scan-check warnings or corrections), "
            f"{len(outcome.skipped)} skipped, {len(outcome.failures)} failed of {len(jobs)}"
        )
        for case, names in with_checks.items():
            common.console.print(f"  [yellow]checks[/yellow] {case}: {', '.join(names)}", soft_wrap=True)
        for case, message in outcome.failures:
            common.console.print(f"  [red]failed[/red] {case}: {message}", soft_wrap=True)
    if outcome.failures:
        raise typer.Exit(code=1)
