"""``ct2mri translate``: native CT volumes in, synthetic T1 volumes on the same grids out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import Ct2mriError
from . import common

if TYPE_CHECKING:
    from ..inference.cohort import CohortResult
    from ..inference.jobs import Job
    from ..inference.plan import TranslationPlan
    from ..inference.translator import Translation
    from ..shards import Shard


def translate(
    inputs: list[Path] | None = typer.Argument(
        None, help="INPUT OUTPUT, or input CTs (files, DICOM folders, folders of cases, quoted globs) with -o OUTDIR."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file (one input) or folder."),
    case_list: Path | None = typer.Option(
        None,
        "--list",
        help="Case list: a text file with one input per line, or a CSV with columns case,ct[,mask,style,output].",
    ),
    weights: Path | None = typer.Option(
        None, "--weights", "-w", help="Weights file.", show_default="the bundled model"
    ),
    style: str | None = typer.Option(
        None,
        "--style",
        "-s",
        help="MRI volume, style key file, or bundled key name (average, colin27).",
        show_default="the model's default key",
    ),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps S.", show_default="the model's"),
    corrections: int | None = typer.Option(
        None, "--corrections", help="ISTA corrections M per step.", show_default="the model's"
    ),
    step_size: float | None = typer.Option(
        None, "--step-size", help="ISTA correction step size lambda.", show_default="the model's"
    ),
    sampler: str | None = typer.Option(
        None, "--sampler", help="ista, coprediction or independent.", show_default="the model's"
    ),
    correction_cap: float | None = typer.Option(
        None,
        "--correction-cap",
        help="Most one ISTA correction moves a pixel, as a share of the image range (0: no cap).",
        show_default="the model's, else 0.02",
    ),
    paper: bool = typer.Option(
        False,
        "--paper",
        help="The paper's sampler: ISTA, 50 steps, one correction of lambda 0.5, Eq. 5's step scale "
        "(capped); the sampler options above override its parts.",
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (under torchrun: cuda:LOCAL_RANK), cpu, cuda, cuda:N or mps."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Windows per network call.", show_default="8 on CPUs, every window on GPUs"
    ),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA), fp32 or bf16."),
    compile_network: bool = typer.Option(False, "--compile", help="torch.compile the network (CUDA; slow first call)."),
    mask: Path | None = typer.Option(
        None, "--mask", help="Brain mask on the CT grid instead of automatic extraction (one input)."
    ),
    save_mask: Path | None = typer.Option(
        None, "--save-mask", help="Write the brain mask (file for one input, else folder)."
    ),
    qc: Path | None = typer.Option(None, "--qc", help="Write a QC montage PNG (file for one input, else folder)."),
    trust_map: Path | None = typer.Option(
        None, "--trust-map", help="Write the trust map, each voxel's expected error (file for one input, else folder)."
    ),
    output_format: str = typer.Option(
        "nifti", "--output-format", help="nifti, or dicom: a series in the CT's study, one folder per case."
    ),
    style_mask: Path | None = typer.Option(
        None, "--style-mask", help="Brain mask of the --style MRI (else found by registration)."
    ),
    series: str | None = typer.Option(
        None, "--series", help="DICOM series UID when a folder holds several.", show_default="the axial CT series"
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="K/N: translate share K of N of the cases (split by case name).",
        show_default="SLURM_ARRAY_TASK_ID/COUNT, else all; under torchrun a share per process",
    ),
    status: Path | None = typer.Option(
        None, "--status", help="Summarise the status files of an output folder, and exit."
    ),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose output exists."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs in an output folder."),
    native_axes: bool = typer.Option(
        False, "--native-axes", help="Cut slices along the scan's axes, not in the head's canonical frame."
    ),
    strict: bool = typer.Option(False, "--strict", help="A scan check's warning fails the case (nothing is written)."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="CPU threads (fewer than the CPUs is much faster beside other busy jobs).",
        show_default="OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the CPUs this process may use",
    ),
    pipeline: bool | None = typer.Option(
        None,
        "--pipeline/--no-pipeline",
        help="Read the next case and write the last one while a case samples.",
        show_default="on GPUs; off on CPUs, where it slows sampling more than it hides",
    ),
    report: bool = typer.Option(
        False, "--report", help="At the end, (re)write the folder's HTML QC report, OUTDIR/report.html."
    ),
) -> None:
    """Translate brain CT volumes into synthetic T1 MRI on the same grid (NOT for diagnosis)."""
    if status is not None:
        if inputs or case_list is not None:
            raise Ct2mriError("--status reads an output folder; give no inputs with it")
        _print_status(status)
        return
    from ..inference.plan import TranslateRequest, plan_translation

    request = TranslateRequest(
        inputs=list(inputs or []),
        output=output,
        case_list=case_list,
        weights=weights,
        style=style,
        steps=steps,
        corrections=corrections,
        step_size=step_size,
        sampler=sampler,
        correction_cap=correction_cap,
        paper=paper,
        device=device,
        batch_size=batch_size,
        precision=precision,
        compile_network=compile_network,
        mask=mask,
        save_mask=save_mask,
        qc=qc,
        trust_map=trust_map,
        output_format=output_format,
        style_mask=style_mask,
        series=series,
        shard=shard,
        skip_existing=skip_existing,
        force=force,
        native_axes=native_axes,
        strict=strict,
        threads=threads,
        pipeline=pipeline,
        report=report,
    )
    plan = plan_translation(request, on_share=_print_share)

    result = _run_with_progress(plan)
    _print_summary(plan, result)
    if report and plan.cohort_folder is not None:
        from ..reports import write_report

        written = write_report(plan.cohort_folder, force=True)
        common.info(
            f"wrote {written.path} ({written.size_bytes / 1e6:.1f} MB; shards still running are shown as they stand)"
        )
    if result.outcome.failures:
        raise typer.Exit(code=1)


def _run_with_progress(plan: TranslationPlan) -> CohortResult:
    """Run the plan with a progress bar per case, saying each case's outcome and notes."""
    from ..inference.plan import run_translation

    def on_event(case: str, kind: str, message: str) -> None:
        if kind in ("done", "skipped"):
            common.info(message)
        elif kind == "failed":
            common.console.print(f"[red]error:[/red] {message}", soft_wrap=True)

    bar = common.progress_bar("windows", remaining=True)

    def progress(job: Job) -> Callable[[int, int], None]:
        task = bar.add_task(job.case, total=None)
        return lambda done, total: bar.update(task, completed=done, total=total, visible=done < (total or 1))

    def on_result(job: Job, translation: Translation) -> None:
        for note in translation.notes:
            common.warn(note)

    with bar:
        return run_translation(plan, on_event=on_event, on_result=on_result, progress=progress)


def _print_summary(plan: TranslationPlan, result: CohortResult) -> None:
    """The counts of a run of several cases, then the cases with checks and the failures."""
    outcome, chosen = result.outcome, plan.shard
    if len(plan.jobs) <= 1:
        return
    with_checks = {case: names for case, names in result.flagged.items() if names}
    common.info(
        f"{len(outcome.done)} translated ({len(with_checks)} with scan-check warnings or corrections), "
        f"{len(outcome.skipped)} skipped, {len(outcome.failures)} failed of {len(plan.mine)}"
        + (f" (shard {chosen.index + 1} of {chosen.count})" if chosen.count > 1 else "")
        + f"; {result.wall_seconds:.1f} s, {100 * result.sampling_seconds / max(result.wall_seconds, 1e-9):.0f}% sampling"
    )
    for case, names in with_checks.items():
        common.console.print(f"  [yellow]checks[/yellow] {case}: {', '.join(names)}", soft_wrap=True)
    for case, message in outcome.failures:
        common.console.print(f"  [red]failed[/red] {case}: {message}", soft_wrap=True)


def _print_share(shard: Shard, mine: list[Job], jobs: list[Job]) -> None:
    """Say which share of the cases this process runs, when the cohort is shared out."""
    if shard.count > 1:
        message = f"shard {shard.index + 1} of {shard.count} ({shard.source}): {len(mine)} of {len(jobs)} cases"
        if mine:
            common.info(message)
        else:
            common.warn(message + "; nothing to do")


def _print_status(folder: Path) -> None:
    """The summary of a cohort's status files: cases per state and shard, failures, missing shards."""
    from ..inference.status import read_cohort_status

    cohort = read_cohort_status(folder)
    for label, entries in cohort.shards.items():
        states = [e.get("state") for e in entries.values()]
        common.stdout.print(
            f"shard {label}: {states.count('done')} done, {states.count('failed')} failed, "
            f"{states.count('pending')} pending"
        )
        for case, entry in entries.items():
            if entry.get("state") == "failed":
                common.stdout.print(f"  failed {case}: {entry.get('error')}", soft_wrap=True)
            elif entry.get("state") == "pending":
                common.stdout.print(f"  pending {case} (not translated: the run was stopped?)", soft_wrap=True)
    for label in cohort.missing_shards:
        common.stdout.print(f"shard {label}: no status file (not started?)")
    if len({label.split("-of-")[1] for label in cohort.shards}) > 1:
        common.warn(f"{folder}: status files of runs split in different numbers of shards; remove the old ones")
    flagged = sum(1 for e in cohort.latest().values() if e.get("checks"))
    common.stdout.print(
        f"{len(cohort.cases)} cases: {cohort.count('done')} done ({flagged} with scan-check notes), "
        f"{cohort.count('failed')} failed, {cohort.count('pending')} pending"
        + (f"; {len(cohort.missing_shards)} shard(s) missing" if cohort.missing_shards else "")
    )
    if not cohort.complete:
        raise typer.Exit(code=1)
