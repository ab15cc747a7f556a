"""Translation jobs: which outputs each input CT gets; reading one (up to its model slices) and writing one."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import Ct2mriError
from ..evaluation.qc import pair_montage, pose_caption, write_png
from ..io.atomic import atomic_output, remove_stale_temporaries, same_file
from ..io.cases import CaseSpec
from ..io.dicom import write_dicom_series
from ..io.volumes import NIFTI_SUFFIXES, Volume, read_volume, write_nifti
from ..preprocessing.model_view import CtView
from .sidecar import build_sidecar, sidecar_path
from .translator import DESCRIP, Translation, Translator

OUTPUT_FORMATS = ("nifti", "dicom")


@dataclass
class Job:
    """One input and where its results go: ``mask_in`` (a brain mask to use) and ``style`` are the
    case's own inputs (a case list, ``--mask``); ``mask_out`` is where the brain mask used is written."""

    case: str
    ct: Path
    output: Path
    sidecar: Path
    mask_out: Path | None
    qc: Path | None
    mask_in: Path | None = None
    style: str | None = None
    output_format: str = "nifti"
    trust_map: Path | None = None

    @property
    def targets(self) -> list[Path]:
        """Every file the job writes; the sidecar, written last, marks the job finished."""
        return [p for p in (self.output, self.mask_out, self.qc, self.trust_map, self.sidecar) if p is not None]

    @property
    def finished(self) -> bool:
        """Whether an earlier run finished this case: its synthetic T1 and, written last, its sidecar
        exist (an interrupted run left no sidecar).  Extra files asked of a rerun (``--qc``,
        ``--save-mask``) do not make a finished case unfinished."""
        return self.output.exists() and self.sidecar.is_file()

    @property
    def missing_extras(self) -> list[Path]:
        """The mask, QC picture or trust map this run asks for that a finished case does not have."""
        return [p for p in (self.mask_out, self.qc, self.trust_map) if p is not None and not p.exists()]


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def plan_jobs(
    specs: list[CaseSpec],
    output: Path | None,
    save_mask: Path | None,
    qc: Path | None,
    output_format: str = "nifti",
    trust_map: Path | None = None,
) -> list[Job]:
    """Turn ``INPUT OUTPUT`` (two ``specs`` and ``output`` None: the second spec is the output)
    or cases with ``-o OUTDIR`` (``-o FILE.nii.gz`` for one case) into jobs, one per input CT."""
    if output_format not in OUTPUT_FORMATS:
        raise Ct2mriError(f"--output-format {output_format!r}: expected nifti or dicom")
    dicom = output_format == "dicom"
    positional = output is None  # INPUT OUTPUT
    if output is None:
        if len(specs) != 2:
            raise Ct2mriError("give INPUT OUTPUT, or several inputs with -o OUTDIR")
        specs, output = [specs[0]], specs[1].ct
        if not dicom and not is_nifti_name(output):
            raise Ct2mriError(f"{output}: the output must end in .nii or .nii.gz (or use -o OUTDIR)")
    # a DICOM series is a folder: one only when named as INPUT OUTPUT; -o is the folder of outputs
    single_file = len(specs) == 1 and (positional if dicom else is_nifti_name(output))
    if dicom and single_file and is_nifti_name(output):
        raise Ct2mriError(f"{output}: a DICOM series is a folder; name one without .nii / .nii.gz")
    if not single_file:
        if output.exists() and not output.is_dir():
            raise Ct2mriError(f"{output}: not a folder (several inputs need -o OUTDIR)")
        if is_nifti_name(output):
            raise Ct2mriError(f"{output}: names a file, but {len(specs)} inputs need a folder (-o OUTDIR)")
    if positional:  # one output file named: its mask and QC picture are files too
        if qc is not None and not qc.name.lower().endswith(".png"):
            raise Ct2mriError(f"--qc {qc}: the QC picture of one output is a .png file")
        for option, path in (("--save-mask", save_mask), ("--trust-map", trust_map)):
            if path is not None and not is_nifti_name(path):
                raise Ct2mriError(f"{option} {path}: for one output it names a .nii or .nii.gz file")
    jobs = []
    for spec in specs:
        case = spec.case
        out = spec.output or (output if single_file else output / (f"{case}_synT1" + ("" if dicom else ".nii.gz")))
        mask_out = qc_out = None
        if save_mask is not None:
            mask_out = save_mask if single_file and is_nifti_name(save_mask) else save_mask / f"{case}_brainmask.nii.gz"
        if qc is not None:
            qc_out = qc if single_file and qc.name.lower().endswith(".png") else qc / f"{case}_qc.png"
        trust_out = None
        if trust_map is not None:
            trust_out = trust_map if single_file and is_nifti_name(trust_map) else trust_map / f"{case}_trust.nii.gz"
        jobs.append(
            Job(
                case, spec.ct, out, sidecar_path(out), mask_out, qc_out, spec.mask, spec.style, output_format, trust_out
            )
        )
    cases = [j.case for j in jobs]
    duplicates = sorted({c for c in cases if cases.count(c) > 1})
    if duplicates:
        raise Ct2mriError(f"several inputs share the case name {duplicates[0]!r}; their outputs would collide")
    return jobs


def check_outputs(jobs: list[Job], inputs: list[Path]) -> None:
    """Refuse a run in which an output is an input, or two outputs are one file."""
    inputs = inputs + [p for job in jobs for p in (job.ct, job.mask_in) if p is not None]
    outputs = [
        (job.case, role, path)
        for job in jobs
        for role, path in (
            ("synthetic T1", job.output),
            ("brain mask", job.mask_out),
            ("QC picture", job.qc),
            ("trust map", job.trust_map),
            ("sidecar", job.sidecar),
        )
        if path is not None
    ]
    for _, role, path in outputs:
        for source in inputs:
            if same_file(path, source):
                raise Ct2mriError(f"{path}: the {role} output would overwrite the input {source}")
    for i, (case, role, path) in enumerate(outputs):
        for other_case, other_role, other in outputs[i + 1 :]:
            if same_file(path, other):
                raise Ct2mriError(f"{path}: named as both the {role} of {case} and the {other_role} of {other_case}")


@dataclass
class ReadCase:
    """A job's CT read and on the model grid, ready to sample."""

    ct: Volume
    view: CtView
    mask_path: Path | None
    seconds: dict[str, float]


def read_job(job: Job, translator: Translator, series_uid: str | None = None) -> ReadCase:
    """Read a job's CT (and its mask) and prepare the model's view of it (no sampling)."""
    for target in job.targets:
        remove_stale_temporaries(target)
    started = time.perf_counter()
    ct = read_volume(job.ct, series_uid=series_uid)
    given_mask = None
    if job.mask_in is not None:
        given_mask = np.asarray(read_volume(job.mask_in).data) > 0
    read_seconds = time.perf_counter() - started
    view = translator.prepare(ct, given_mask)
    return ReadCase(ct, view, job.mask_in, {"read": read_seconds})


def write_job(
    job: Job,
    translator: Translator,
    read: ReadCase,
    result: Translation,
    style_source: str,
    style_distance: float | None = None,
    load_seconds: float = 0.0,
) -> dict[str, float]:
    """Write a job's synthetic T1 (NIfTI or DICOM), mask, QC picture and sidecar; returns the seconds
    per stage.  Every file goes to a temporary name first and they are renamed together at the
    end (a DICOM series as soon as it is whole), the sidecar last, so a job is finished exactly
    when its sidecar exists."""
    started = time.perf_counter()
    ct = read.ct
    with contextlib.ExitStack() as stack:
        sidecar_tmp = stack.enter_context(atomic_output(job.sidecar))
        if job.output_format == "dicom":  # the series folder renames itself into place; the sidecar comes last
            comments = (
                f"Synthetic T1 made by ct2mri {__version__} from the CT {ct.description or job.ct.name}; "
                f"weights sha256 {translator.bundle.sha256}; NOT FOR DIAGNOSIS"
            )
            write_dicom_series(
                result.mri01,
                ct,
                job.output,
                description="SYNTHETIC T1 (ct2mri) - NOT FOR DIAGNOSIS",
                comments=comments,
                software=f"ct2mri {__version__}",
            )
        else:
            write_nifti(result.mri01, stack.enter_context(atomic_output(job.output)), ct, descrip=DESCRIP)
        if job.mask_out is not None:
            mask_tmp = stack.enter_context(atomic_output(job.mask_out))
            write_nifti(result.mask.astype(np.uint8), mask_tmp, ct, descrip="ct2mri brain mask", dtype=np.uint8)
        if job.trust_map is not None:
            write_nifti(
                result.expected_error01,
                stack.enter_context(atomic_output(job.trust_map)),
                ct,
                descrip="ct2mri trust map: expected |error|",
            )
        if job.qc is not None:
            picture = pair_montage(
                result.ct_model01,
                result.mri_model01,
                result.mask_model,
                titles=("CT", "SYNTHETIC T1", "CHECKERBOARD", "EXPECTED ERROR"),
                min_side=480,
                caption=pose_caption(result.pose),
                trust=result.expected_error_model,
            )
            write_png(picture, stack.enter_context(atomic_output(job.qc)))
        seconds = {"load_model": load_seconds, **read.seconds, **result.seconds, "write": time.perf_counter() - started}
        sidecar = build_sidecar(
            ct_path=job.ct,
            ct=ct,
            output=job.output,
            translator=translator,
            result=result,
            style_source=style_source,
            style_distance=style_distance,
            mask_path=read.mask_path,
            seconds=seconds,
            qc_path=job.qc,
            trust_map_path=job.trust_map,
        )
        sidecar_tmp.write_text(json.dumps(sidecar, indent=2) + "\n")
    return seconds
