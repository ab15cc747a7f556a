"""A shard's jobs through ``translate``: checked as a whole, then each translated, skipped or failed.

:mod:`.plan` turns a request into jobs and a loaded model.  This module refuses, before anything
runs or is recorded, a run that would replace files it was not asked to replace; then runs the
jobs through :func:`ct2mri_cli.batch.run_pipeline` (pipelined: reading and writing overlap
sampling; else one stage after another), skips the jobs finished earlier or taken by another run,
and records every case in the shard's status file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..batch import BatchOutcome, EventCallback, SkipCase, run_pipeline
from ..errors import Ct2mriError
from ..style.sources import check_style_distance, resolve_style
from .claims import CaseClaims
from .jobs import Job, ReadCase, read_job, write_job
from .status import StatusFile
from .translator import Translation, Translator

ProgressFactory = Callable[[Job], Callable[[int, int], None] | None]


@dataclass
class StyleBook:
    """Style keys by ``--style`` value, resolved once each (cases of a list may name their own)."""

    default_spec: str | None
    default_key: torch.Tensor
    mask_path: Path | None = None
    keys: dict[str | None, tuple[torch.Tensor, str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, spec: str | None) -> tuple[torch.Tensor, str, float]:
        """(key, source description, distance from the model's key) of a case's style."""
        spec = spec if spec is not None else self.default_spec
        with self.lock:  # the pipeline's reader and this thread both ask
            if spec not in self.keys:
                mask = self.mask_path if spec == self.default_spec else None
                key, source = resolve_style(spec, self.default_key, mask)
                self.keys[spec] = (key, source, check_style_distance(key, self.default_key, source))
            return self.keys[spec]


@dataclass
class CohortResult:
    outcome: BatchOutcome
    flagged: dict[str, list[str]]  # case -> names of the scan checks that did not pass
    sampling_seconds: float
    wall_seconds: float


def translate_cohort(
    jobs: list[Job],
    translator: Translator,
    styles: StyleBook,
    *,
    status: StatusFile | None = None,
    claims_in: Path | None = None,
    series_uid: str | None = None,
    skip_existing: bool = False,
    force: bool = False,
    explicitly_named: bool = False,
    load_seconds: float = 0.0,
    pipelined: bool = True,
    isolate: bool = True,
    on_event: EventCallback | None = None,
    on_result: Callable[[Job, Translation], None] | None = None,
    progress: ProgressFactory | None = None,
) -> CohortResult:
    """Translate ``jobs`` (one shard's share) and record each in ``status``.

    Outputs that exist refuse the whole run, before anything runs or is recorded, unless ``force``,
    ``skip_existing`` (a finished job is skipped, an interrupted one redone) or ``explicitly_named``
    (the user named the output file: it and its own sidecar are replaced, another ``.json`` in the
    sidecar's place still refuses the run).  A skipped job keeps its earlier status line (or gets a
    "done" line when an interrupted run lost it).
    With ``claims_in`` (a cohort's output folder) each case is claimed before it is read and the
    claims are held until the run ends, so runs started side by side translate each case once: a
    case that another live run holds, or that another run finished while this one went on, is left
    to it (and to its status line).
    """
    with CaseClaims(claims_in) if claims_in is not None else nullcontext() as claims:
        return _translate(
            jobs,
            translator,
            styles,
            claims,
            status,
            series_uid,
            skip_existing,
            force,
            explicitly_named,
            load_seconds,
            pipelined,
            isolate,
            on_event,
            on_result,
            progress,
        )


def _translate(
    jobs: list[Job],
    translator: Translator,
    styles: StyleBook,
    claims: CaseClaims | None,
    status: StatusFile | None,
    series_uid: str | None,
    skip_existing: bool,
    force: bool,
    explicitly_named: bool,
    load_seconds: float,
    pipelined: bool,
    isolate: bool,
    on_event: EventCallback | None,
    on_result: Callable[[Job, Translation], None] | None,
    progress: ProgressFactory | None,
) -> CohortResult:
    elsewhere = {job.case for job in jobs if claims is not None and claims.holder(claims.path(job.case))}
    refuse_existing(
        [job for job in jobs if job.case not in elsewhere],
        force=force,
        skip_existing=skip_existing,
        explicitly_named=explicitly_named,
    )
    finished_before = {job.case for job in jobs if job.finished}
    left_to_others: set[str] = set()  # cases another run records
    by_case = {job.case: job for job in jobs}
    if status is not None:
        status.plan([_status_line(job, "pending") for job in jobs])
    flagged: dict[str, list[str]] = {}
    sampling = [0.0]
    started = time.perf_counter()

    def prepare(job: Job) -> ReadCase:
        if claims is not None:
            taken_by_other = _taken_by_another_run(
                job, claims, job.case in elsewhere or job.case not in finished_before
            )
            if taken_by_other is not None:
                left_to_others.add(job.case)
                raise SkipCase(taken_by_other)
        if skip_existing and job.finished:
            raise SkipCase(_finished_earlier(job))
        styles.key_for(job.style)  # a bad style fails the case before it is sampled
        return read_job(job, translator, series_uid)

    def process(job: Job, read: ReadCase) -> tuple[ReadCase, Translation]:
        key = styles.key_for(job.style)[0]
        result = translator.translate_view(read.view, key, progress(job) if progress else None)
        sampling[0] += result.seconds["sampling"]
        return read, result

    def finish(job: Job, done: tuple[ReadCase, Translation]) -> str:
        read, result = done
        _, source, distance = styles.key_for(job.style)
        seconds = write_job(job, translator, read, result, source, distance, load_seconds)
        flagged[job.case] = [c.name for c in result.checks if c.verdict != "pass"]
        if on_result is not None:
            on_result(job, result)
        if status is not None:
            case_seconds = round(sum(v for k, v in seconds.items() if k != "load_model"), 3)
            status.record(_status_line(job, "done", checks=flagged[job.case], seconds=case_seconds))
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
        return f"{job.case}: wrote {job.output} ({result.evaluations} window evaluations, {timings})"

    def record_event(case: str, kind: str, message: str) -> None:
        if status is not None and kind in ("failed", "skipped") and case not in left_to_others:
            _record_failed_or_skipped(status, by_case[case], kind == "failed", message)
        if on_event is not None:
            on_event(case, kind, message)

    outcome = run_pipeline(
        jobs, lambda job: job.case, prepare, process, finish, record_event, isolate=isolate, pipelined=pipelined
    )
    return CohortResult(outcome, flagged, sampling[0], time.perf_counter() - started)


def _record_failed_or_skipped(status: StatusFile, job: Job, failed: bool, message: str) -> None:
    """A failure's status line, or a skipped case's "done" line when a finished case lost its own."""
    if failed:
        status.record(_status_line(job, "failed", checks=[], error=message))
    elif (previous := status.previous(job.case)) is None or previous.get("state") != "done":
        status.record(_status_line(job, "done"))


def _taken_by_another_run(job: Job, claims: CaseClaims, not_ours: bool) -> str | None:
    """Why another run sharing the folder has this case (``not_ours``: its finished output was not
    there when this run started, or another run held it then), or None when it is this run's."""
    holder = claims.take(job.case)
    if holder is not None:
        return f"{job.case}: being translated by another run ({holder}); left to it"
    if job.finished and not_ours:
        return f"{job.case}: translated by another run meanwhile ({job.output}); left as it is"
    return None


def _finished_earlier(job: Job) -> str:
    """Why ``--skip-existing`` skips a finished case, and which of the asked-for extras it lacks."""
    extras = job.missing_extras
    missing = f"; {', '.join(map(str, extras))} not made (a finished case is not redone: --force redoes it)"
    return f"{job.case}: finished earlier ({job.sidecar}), skipped" + (missing if extras else "")


def refuse_existing(jobs: list[Job], *, force: bool, skip_existing: bool, explicitly_named: bool) -> None:
    """Refuse, before anything runs or is recorded, a run that would replace files the user did not
    name: outputs of a cohort folder without ``force`` or ``skip_existing``, and, beside an output
    the user named, a ``.json`` that is not this output's own sidecar."""
    if force:
        return
    if explicitly_named:
        for job in jobs:
            if job.sidecar.exists() and not _is_own_sidecar(job.sidecar, job.output):
                raise Ct2mriError(
                    f"{job.sidecar} exists and is not the sidecar of {job.output}; the sidecar would "
                    "replace it (move it, or use --force)"
                )
        return
    if skip_existing:
        return
    existing = [t for job in jobs for t in job.targets if t.exists()]
    if existing:
        cases = sum(1 for job in jobs if any(t.exists() for t in job.targets))
        raise Ct2mriError(
            f"{existing[0]} exists ({cases} of {len(jobs)} cases have outputs already); "
            "use --skip-existing to finish the run, or --force to redo it"
        )


def _is_own_sidecar(path: Path, output: Path) -> bool:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (
        isinstance(content, dict)
        and content.get("synthetic") is True
        and Path(str(content.get("output"))).name == output.name
    )


def _status_line(
    job: Job, state: str, checks: list[str] | None = None, seconds: float | None = None, error: str | None = None
) -> dict:
    """One case's line in its shard's status file."""
    return {
        "case": job.case,
        "input": str(job.ct),
        "output": str(job.output),
        "state": state,
        "checks": checks,
        "seconds": seconds,
        "error": error,
    }
