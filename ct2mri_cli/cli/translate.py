"""``ct2mri translate``: native CT volumes in, synthetic T1 volumes on the same grids out."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import Ct2mriError
from . import common

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class Job:
    """One input and where its results go."""

    case: str
    ct: Path
    output: Path
    sidecar: Path
    mask: Optional[Path]
    qc: Optional[Path]


def _is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _sidecar_for(output: Path) -> Path:
    name = output.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else output.stem
    return output.with_name(stem + ".json")


def _plan(inputs: List[Path], output: Optional[Path], save_mask: Optional[Path], qc: Optional[Path]) -> list[Job]:
    """Turn the positional arguments and ``-o`` into jobs (one per input CT)."""
    from ..preprocessing.pairs import case_name

    if output is None:
        if len(inputs) != 2:
            raise Ct2mriError("give INPUT OUTPUT, or several inputs with -o OUTDIR")
        inputs, output = [inputs[0]], inputs[1]
        if not _is_nifti_name(output):
            raise Ct2mriError(f"{output}: the output must end in .nii or .nii.gz (or use -o OUTDIR)")
    single_file = len(inputs) == 1 and _is_nifti_name(output)
    if not single_file:
        if output.exists() and not output.is_dir():
            raise Ct2mriError(f"{output}: not a folder (several inputs need -o OUTDIR)")
        if not output.parent.is_dir():
            raise Ct2mriError(f"{output}: the folder {output.parent} does not exist")
    jobs = []
    for ct in inputs:
        case = case_name(ct)
        out = output if single_file else output / f"{case}_synT1.nii.gz"
        mask_out = qc_out = None
        if save_mask is not None:
            mask_out = save_mask if single_file and _is_nifti_name(save_mask) else save_mask / f"{case}_brainmask.nii.gz"
        if qc is not None:
            qc_out = qc if single_file and qc.name.lower().endswith(".png") else qc / f"{case}_qc.png"
        jobs.append(Job(case, ct, out, _sidecar_for(out), mask_out, qc_out))
    cases = [j.case for j in jobs]
    duplicates = sorted({c for c in cases if cases.count(c) > 1})
    if duplicates:
        raise Ct2mriError(f"several inputs share the case name {duplicates[0]!r}; their outputs would collide")
    return jobs


def _targets(job: Job) -> list[Path]:
    return [p for p in (job.output, job.sidecar, job.mask, job.qc) if p is not None]


def translate(
    inputs: List[Path] = typer.Argument(..., help="INPUT OUTPUT, or several input CTs with -o OUTDIR."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (one input) or folder."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights file [default: the bundled model]."),
    style: Optional[str] = typer.Option(
        None, "--style", "-s", help="MRI volume, style key file, or bundled key name (average, colin27) [default: the model's]."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps S [default: the model's]."),
    corrections: Optional[int] = typer.Option(None, "--corrections", help="ISTA corrections M per step."),
    step_size: Optional[float] = typer.Option(None, "--step-size", help="ISTA correction step size lambda."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="ista, coprediction or independent."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per network call [default: automatic]."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA), fp32 or bf16."),
    compile_network: bool = typer.Option(False, "--compile", help="torch.compile the network (CUDA; slow first call)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Brain mask on the CT grid instead of automatic extraction (one input)."),
    save_mask: Optional[Path] = typer.Option(None, "--save-mask", help="Write the brain mask (file for one input, else folder)."),
    qc: Optional[Path] = typer.Option(None, "--qc", help="Write a QC montage PNG (file for one input, else folder)."),
    series: Optional[str] = typer.Option(None, "--series", help="DICOM series UID when a folder holds several."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose output exists."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs in an output folder."),
) -> None:
    """Translate brain CT volumes into synthetic T1 MRI on the same grid (NOT for diagnosis)."""
    from ..bundled import default_weights
    from ..device import resolve_device
    from ..style.sources import resolve_style
    from ..inference.translator import SamplerOptions, Translator
    from ..weights import load_weights

    jobs = _plan(list(inputs), output, save_mask, qc)
    if mask is not None and len(jobs) > 1:
        raise Ct2mriError("--mask applies to one input only")
    for job in jobs:
        for target in _targets(job):
            if target.parent != output and not target.parent.is_dir():  # an -o folder is created
                raise Ct2mriError(f"{target}: the folder {target.parent} does not exist")

    started = time.perf_counter()
    weights_path = weights or default_weights()
    if weights is None and not weights_path.is_file():
        raise Ct2mriError(f"the bundled model {weights_path} is missing; pass --weights")
    torch_device = resolve_device(device)
    bundle = load_weights(weights_path, device="cpu")
    options = SamplerOptions.from_config(bundle.sampling, steps, corrections, step_size, sampler)
    style_key, style_source = resolve_style(style, bundle.default_style_key)
    translator = Translator(bundle, torch_device, options, batch_size, precision, compile=compile_network)
    load_seconds = time.perf_counter() - started
    if output is not None and not _is_nifti_name(output):
        output.mkdir(exist_ok=True)

    failures: list[tuple[str, str]] = []
    done = skipped = 0
    for job in jobs:
        existing = [t for t in _targets(job) if t.exists()]
        if job.output.exists() and skip_existing:
            common.info(f"{job.case}: {job.output} exists, skipped")
            skipped += 1
            continue
        explicitly_named = len(jobs) == 1 and (output is None or _is_nifti_name(output))  # the user named the file
        if existing and not (force or explicitly_named):
            failures.append((job.case, f"{existing[0]} exists (use --force or --skip-existing)"))
            common.console.print(f"[red]error:[/red] {job.case}: {failures[-1][1]}")
            continue
        try:
            _run_job(job, translator, bundle, style_key, style_source, mask, series, load_seconds, torch_device)
            done += 1
        except Ct2mriError as exc:
            if len(jobs) == 1:
                raise
            failures.append((job.case, str(exc)))
            common.console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        except Exception as exc:  # one case must not stop a batch
            if len(jobs) == 1:
                raise
            failures.append((job.case, f"{type(exc).__name__}: {exc}"))
            common.console.print(f"[red]error:[/red] {job.case}: {type(exc).__name__}: {exc}", soft_wrap=True)
    if len(jobs) > 1:
        common.info(f"{done} translated, {skipped} skipped, {len(failures)} failed of {len(jobs)}")
        for case, message in failures:
            common.console.print(f"  [red]failed[/red] {case}: {message}", soft_wrap=True)
    if failures:
        raise typer.Exit(code=1)


def _run_job(job, translator, bundle, style_key, style_source, mask_path, series, load_seconds, device) -> None:  # noqa: ANN001
    import numpy as np
    from .. import __version__
    from ..evaluation.qc import enlarge, pair_montage, write_png
    from ..inference.translator import DESCRIP
    from ..io.volumes import read_volume, write_nifti

    started = time.perf_counter()
    ct = read_volume(job.ct, series_uid=series)
    read_seconds = time.perf_counter() - started
    given_mask = None
    if mask_path is not None:
        given_mask = np.asarray(read_volume(mask_path).data) > 0

    with common.progress_bar("windows", remaining=True) as bar:
        task = bar.add_task(job.case, total=None)
        result = translator.translate(
            ct, style_key, given_mask, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    for note in result.notes:
        common.warn(note)

    started = time.perf_counter()
    write_nifti(result.mri01, job.output, ct, descrip=DESCRIP)
    if job.mask is not None:
        write_nifti(result.mask.astype(np.uint8), job.mask, ct, descrip="ct2mri brain mask", dtype=np.uint8)
    if job.qc is not None:
        write_png(enlarge(pair_montage(result.ct_model01, result.mri_model01, result.mask_model)), job.qc)
    seconds = {"load_model": load_seconds, "read": read_seconds, **result.seconds, "write": time.perf_counter() - started}
    o = translator.options
    sidecar = {
        "synthetic": True,
        "not_for_diagnosis": True,
        "input": str(job.ct),
        "input_description": ct.description,
        "output": str(job.output),
        "ct2mri_version": __version__,
        "weights": str(bundle.path),
        "weights_sha256": bundle.sha256,
        "weights_provenance": bundle.provenance,
        "style_source": style_source,
        "sampler": {"mode": o.mode, "steps": o.steps, "corrections": o.corrections, "step_size": o.step_size,
                    "correction_norm": o.correction_norm},
        "network_evaluations": result.evaluations,
        "batch_size": result.batch_size,
        "device": str(device),
        "precision": "bf16" if translator.autocast is not None else "fp32",
        "channels_last": translator.channels_last,
        "brain_mask": str(mask_path) if mask_path is not None else "automatic",
        "model_grid": result.record.to_dict(),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "host": platform.node(),
        "notes": result.notes,
    }
    from ..io.atomic import atomic_output

    with atomic_output(job.sidecar) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2) + "\n")
    common.info(
        f"{job.case}: wrote {job.output} ({result.evaluations} window evaluations, "
        + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
        + ")"
    )
