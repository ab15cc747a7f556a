"""What ``ct2mri translate`` does, as Python: a request of plain values, its plan, and the run.

:func:`plan_translation` reads a :class:`TranslateRequest` the way the command reads its options
(``INPUT OUTPUT``, or inputs and ``--list`` with an output folder), checks it before anything is
loaded, picks this process's share of the cases from the launcher's variables, and loads the
model; :func:`run_translation` translates that share.  :func:`translate_files` does both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..batch import EventCallback
from ..bundled import default_weights
from ..device import CPU_FALLBACK, resolve_device
from ..errors import Ct2mriError
from ..io.atomic import check_folder_possible, ensure_folder
from ..io.cases import CaseSpec, case_name, expand_inputs, read_case_list
from ..launcher import local_rank
from ..reporting import notice
from ..settings import SamplingConfig
from ..shards import Shard, resolve_shard
from ..threads import cpu_budget
from ..weights import load_weights
from .cohort import CohortResult, ProgressFactory, StyleBook, translate_cohort
from .jobs import Job, check_outputs, plan_jobs
from .status import StatusFile
from .translator import Translation, Translator

ShareCallback = Callable[[Shard, list[Job], list[Job]], None]


@dataclass
class TranslateRequest:
    """The options of ``ct2mri translate`` as plain values; None takes the default the option names.

    ``inputs`` are ``INPUT OUTPUT`` when ``output`` and ``case_list`` are None, else the input CTs
    (files, DICOM folders, folders of cases, globs) whose outputs go to the folder ``output``
    (or to the file ``output`` for one input).  ``report`` asks for the folder's QC page after the
    run, which :func:`ct2mri_cli.reports.write_report` writes; a named output file refuses it.
    """

    inputs: list[Path] = field(default_factory=list)
    output: Path | None = None
    case_list: Path | None = None
    weights: Path | None = None
    style: str | None = None
    steps: int | None = None
    corrections: int | None = None
    step_size: float | None = None
    sampler: str | None = None
    correction_cap: float | None = None
    paper: bool = False
    device: str = "auto"
    batch_size: int | None = None
    precision: str = "auto"
    compile_network: bool = False
    mask: Path | None = None
    save_mask: Path | None = None
    qc: Path | None = None
    trust_map: Path | None = None
    output_format: str = "nifti"
    style_mask: Path | None = None
    series: str | None = None
    shard: str | None = None
    skip_existing: bool = False
    force: bool = False
    native_axes: bool = False
    strict: bool = False
    threads: int | None = None
    pipeline: bool | None = None
    report: bool = False


@dataclass
class TranslationPlan:
    """A checked request with its model loaded: every job, this process's share, and how to run it."""

    request: TranslateRequest
    jobs: list[Job]  # every case of the run
    shard: Shard
    mine: list[Job]  # this process's share of ``jobs``
    named_file: bool  # the user named the one output file: translated whole, replaced when it exists
    cohort_folder: Path | None  # the output folder of a cohort (status files, claims); None for a named file
    weights_path: Path
    device: torch.device
    cpu_fallback: bool  # "auto" found no GPU: said when a case is sampled, not for a run of skips
    sampling: SamplingConfig
    styles: StyleBook
    translator: Translator
    load_seconds: float
    pipelined: bool


def _case_specs(request: TranslateRequest) -> list[CaseSpec]:
    """The request's cases; for ``INPUT OUTPUT`` the second spec is the output."""
    given = list(request.inputs)
    if request.output is None and request.case_list is None and len(given) == 2:  # INPUT OUTPUT
        return [CaseSpec(case_name(given[0]), given[0]), CaseSpec("", given[1])]
    if request.output is None:
        raise Ct2mriError("give INPUT OUTPUT, or inputs (or --list) with -o OUTDIR")
    specs = [CaseSpec(case_name(p), p) for p in expand_inputs(given)]
    specs += read_case_list(request.case_list) if request.case_list else []
    if not specs:
        raise Ct2mriError("no inputs: give CT files or folders, or --list")
    return specs


def _torch_device(spec: str, env: Mapping[str, str]) -> torch.device:
    """The device of ``spec``; under torchrun, ``auto`` is ``cuda:LOCAL_RANK`` (even for a file translated whole)."""
    gpu = local_rank(env)
    if spec == "auto" and gpu is not None and torch.cuda.is_available():
        spec = f"cuda:{gpu % torch.cuda.device_count()}"
    return resolve_device(spec, announce=False)


def plan_translation(
    request: TranslateRequest,
    env: Mapping[str, str] = os.environ,
    on_share: ShareCallback | None = None,
) -> TranslationPlan:
    """Check ``request``, share its cases out and load the model, as ``ct2mri translate`` does.

    Options nothing can run with, outputs that would overwrite inputs or each other and output
    folders that cannot be written fail before anything is read or loaded.  A SLURM array or
    torchrun (their variables in ``env``) shares out a cohort folder's cases; a file the user named
    is translated whole.  ``on_share(shard, mine, jobs)`` hears this process's share before the
    model loads.  The cohort folder exists when the plan is returned.
    """
    SamplingConfig().with_overrides(
        request.steps, request.corrections, request.step_size, request.sampler, request.correction_cap
    ).check()
    cpu_budget(request.threads)
    output = request.output
    jobs = _checked_jobs(request)
    named_file = len(jobs) == 1 and (output is None or jobs[0].output == output)
    if request.report and named_file:
        raise Ct2mriError("--report writes the QC page of an output folder: give the inputs with -o OUTDIR")
    cohort_folder = None if named_file else output
    shard = resolve_shard(request.shard, env if cohort_folder is not None else {})
    mine = shard.select(jobs, lambda job: job.case)
    if on_share is not None:
        on_share(shard, mine, jobs)

    started = time.perf_counter()
    weights_path = request.weights or default_weights()
    if request.weights is None and not weights_path.is_file():
        raise Ct2mriError(f"the bundled model {weights_path} is missing; pass --weights")
    device = _torch_device(request.device, env)
    cpu_fallback = request.device == "auto" and device.type == "cpu"
    bundle = load_weights(weights_path, device="cpu")
    base = bundle.sampling.as_paper() if request.paper else bundle.sampling
    sampling = base.with_overrides(
        request.steps, request.corrections, request.step_size, request.sampler, request.correction_cap
    )
    styles = StyleBook(request.style, bundle.default_style_key, request.style_mask)
    styles.key_for(None)  # the run's own style fails the run, not each case
    translator = Translator(
        bundle,
        device,
        sampling,
        request.batch_size,
        request.precision,
        compile=request.compile_network,
        strict=request.strict,
        native_axes=request.native_axes,
        threads=request.threads,
    )
    load_seconds = time.perf_counter() - started
    if cohort_folder is not None:
        ensure_folder(cohort_folder)
    pipelined = request.pipeline if request.pipeline is not None else device.type != "cpu"
    return TranslationPlan(
        request,
        jobs,
        shard,
        mine,
        named_file,
        cohort_folder,
        weights_path,
        device,
        cpu_fallback,
        sampling,
        styles,
        translator,
        load_seconds,
        pipelined,
    )


def _checked_jobs(request: TranslateRequest) -> list[Job]:
    """The request's jobs, refused when an output would overwrite an input or another output, or
    lies in a folder that cannot be written."""
    jobs = plan_jobs(
        _case_specs(request), request.output, request.save_mask, request.qc, request.output_format, request.trust_map
    )
    style_file = [Path(request.style)] if request.style is not None and Path(request.style).is_file() else []
    given_inputs = (
        ([request.mask] if request.mask is not None else [])
        + style_file
        + ([request.weights] if request.weights else [])
    )
    check_outputs(jobs, given_inputs)
    if request.mask is not None:
        if len(jobs) > 1:
            raise Ct2mriError("--mask applies to one input only")
        jobs[0].mask_in = request.mask
    for folder in sorted({target.parent for job in jobs for target in job.targets}):
        check_folder_possible(folder)
    return jobs


def run_translation(
    plan: TranslationPlan,
    *,
    on_event: EventCallback | None = None,
    on_result: Callable[[Job, Translation], None] | None = None,
    progress: ProgressFactory | None = None,
) -> CohortResult:
    """Translate this process's share of a plan; a cohort folder records it in the shard's status file.

    ``on_event(case, kind, message)`` hears each case start, finish, be skipped or fail,
    ``on_result(job, translation)`` each translation written, and ``progress(job)`` may return a
    callback of the windows sampled.  With several jobs a failing case is recorded and the others
    go on; a single job's failure is raised.
    """
    request = plan.request

    def sampling_progress(job: Job) -> Callable[[int, int], None] | None:
        if plan.cpu_fallback:
            notice(CPU_FALLBACK)
        return progress(job) if progress is not None else None

    status = StatusFile(plan.cohort_folder, plan.shard) if plan.cohort_folder is not None else None
    return translate_cohort(
        plan.mine,
        plan.translator,
        plan.styles,
        status=status,
        claims_in=plan.cohort_folder,
        series_uid=request.series,
        skip_existing=request.skip_existing,
        force=request.force,
        explicitly_named=plan.named_file,
        load_seconds=plan.load_seconds,
        pipelined=plan.pipelined,
        isolate=len(plan.jobs) > 1,
        on_event=on_event,
        on_result=on_result,
        progress=sampling_progress,
    )


def translate_files(
    request: TranslateRequest,
    env: Mapping[str, str] = os.environ,
    *,
    on_share: ShareCallback | None = None,
    on_event: EventCallback | None = None,
    on_result: Callable[[Job, Translation], None] | None = None,
    progress: ProgressFactory | None = None,
) -> CohortResult:
    """Translate the CT files of ``request`` as ``ct2mri translate`` does: :func:`plan_translation`, then
    :func:`run_translation`.  The result lists the cases done, skipped and failed."""
    plan = plan_translation(request, env, on_share)
    return run_translation(plan, on_event=on_event, on_result=on_result, progress=progress)
