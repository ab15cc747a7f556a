"""Translation jobs: which outputs each input CT gets, and one job run from reading to writing."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import Ct2mriError
from ..evaluation.qc import pair_montage, pose_caption, write_png
from ..io.atomic import atomic_output, remove_stale_temporaries, same_file
from ..io.cases import case_name
from ..io.volumes import NIFTI_SUFFIXES, read_volume, write_nifti
from .sidecar import build_sidecar, sidecar_path
from .translator import DESCRIP, Translation, Translator


@dataclass
class Job:
    """One input and where its results go."""

    case: str
    ct: Path
    output: Path
    sidecar: Path
    mask: Optional[Path]
    qc: Optional[Path]

    @property
    def targets(self) -> list[Path]:
        """Every file the job writes; the sidecar, written last, marks the job finished."""
        return [p for p in (self.output, self.mask, self.qc, self.sidecar) if p is not None]

    @property
    def finished(self) -> bool:
        """Whether an earlier run wrote every file of this job (an interrupted one did not)."""
        return all(p.is_file() for p in self.targets)


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def plan_jobs(inputs: list[Path], output: Optional[Path], save_mask: Optional[Path], qc: Optional[Path]) -> list[Job]:
    """Turn ``INPUT OUTPUT`` (or several inputs and ``-o OUTDIR``) into jobs, one per input CT."""
    if output is None:
        if len(inputs) != 2:
            raise Ct2mriError("give INPUT OUTPUT, or several inputs with -o OUTDIR")
        inputs, output = [inputs[0]], inputs[1]
        if not is_nifti_name(output):
            raise Ct2mriError(f"{output}: the output must end in .nii or .nii.gz (or use -o OUTDIR)")
    single_file = len(inputs) == 1 and is_nifti_name(output)
    if not single_file:
        if output.exists() and not output.is_dir():
            raise Ct2mriError(f"{output}: not a folder (several inputs need -o OUTDIR)")
    jobs = []
    for ct in inputs:
        case = case_name(ct)
        out = output if single_file else output / f"{case}_synT1.nii.gz"
        mask_out = qc_out = None
        if save_mask is not None:
            mask_out = save_mask if single_file and is_nifti_name(save_mask) else save_mask / f"{case}_brainmask.nii.gz"
        if qc is not None:
            qc_out = qc if single_file and qc.name.lower().endswith(".png") else qc / f"{case}_qc.png"
        jobs.append(Job(case, ct, out, sidecar_path(out), mask_out, qc_out))
    cases = [j.case for j in jobs]
    duplicates = sorted({c for c in cases if cases.count(c) > 1})
    if duplicates:
        raise Ct2mriError(f"several inputs share the case name {duplicates[0]!r}; their outputs would collide")
    return jobs


def check_outputs(jobs: list[Job], inputs: list[Path]) -> None:
    """Refuse a run in which an output is an input, or two outputs are one file."""
    outputs = [(job.case, role, path) for job in jobs
               for role, path in (("synthetic T1", job.output), ("brain mask", job.mask), ("QC picture", job.qc),
                                  ("sidecar", job.sidecar)) if path is not None]
    for _, role, path in outputs:
        for source in inputs:
            if same_file(path, source):
                raise Ct2mriError(f"{path}: the {role} output would overwrite the input {source}")
    for i, (case, role, path) in enumerate(outputs):
        for other_case, other_role, other in outputs[i + 1:]:
            if same_file(path, other):
                raise Ct2mriError(f"{path}: named as both the {role} of {case} and the {other_role} of {other_case}")


def run_job(
    job: Job,
    translator: Translator,
    style: torch.Tensor,
    style_source: str,
    mask_path: Optional[Path] = None,
    series_uid: Optional[str] = None,
    load_seconds: float = 0.0,
    progress: Optional[Callable[[int, int], None]] = None,
    style_distance: Optional[float] = None,
) -> tuple[Translation, dict[str, float]]:
    """Read, translate and write one job (synthetic T1, mask, QC picture, sidecar); returns the
    translation and the seconds spent per stage."""
    for target in job.targets:
        remove_stale_temporaries(target)
    started = time.perf_counter()
    ct = read_volume(job.ct, series_uid=series_uid)
    read_seconds = time.perf_counter() - started
    given_mask = None
    if mask_path is not None:
        given_mask = np.asarray(read_volume(mask_path).data) > 0
    result = translator.translate(ct, style, given_mask, progress=progress)

    started = time.perf_counter()
    # Every file goes to a temporary name first; they are renamed together at the end, the
    # sidecar last, so a job is finished exactly when its sidecar exists.
    with contextlib.ExitStack() as stack:
        sidecar_tmp = stack.enter_context(atomic_output(job.sidecar))
        write_nifti(result.mri01, stack.enter_context(atomic_output(job.output)), ct, descrip=DESCRIP)
        if job.mask is not None:
            mask_tmp = stack.enter_context(atomic_output(job.mask))
            write_nifti(result.mask.astype(np.uint8), mask_tmp, ct, descrip="ct2mri brain mask", dtype=np.uint8)
        if job.qc is not None:
            picture = pair_montage(result.ct_model01, result.mri_model01, result.mask_model,
                                   titles=("CT", "SYNTHETIC T1", "CHECKERBOARD"), min_side=480,
                                   caption=pose_caption(result.pose))
            write_png(picture,
                      stack.enter_context(atomic_output(job.qc)))
        seconds = {"load_model": load_seconds, "read": read_seconds, **result.seconds,
                   "write": time.perf_counter() - started}
        sidecar = build_sidecar(
            ct_path=job.ct, ct=ct, output=job.output, translator=translator,
            result=result, style_source=style_source, style_distance=style_distance, mask_path=mask_path,
            seconds=seconds,
        )
        sidecar_tmp.write_text(json.dumps(sidecar, indent=2) + "\n")
    return result, seconds
