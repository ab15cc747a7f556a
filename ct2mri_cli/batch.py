"""The loops of every batch command: a failing case is recorded and the others go on.

:func:`run_batch` runs cases one after another (``preprocess``, ``evaluate``, ``synthesize
--model-space``); :func:`run_pipeline` overlaps the reading, the processing and the writing of
neighbouring cases (``translate``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import Ct2mriError

Case = TypeVar("Case")
EventCallback = Callable[[str, str, str], None]


class SkipCase(Exception):
    """Raised by a case's work to skip it (e.g. its outputs exist); the message says why."""


@dataclass
class BatchOutcome:
    """What a batch did: the cases finished, skipped and failed (case name, message)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def failure_message(case: str, exc: BaseException) -> str:
    """One line for a failed case: a :class:`Ct2mriError` speaks for itself, anything else is named."""
    if isinstance(exc, Ct2mriError):
        return str(exc)
    return f"{case}: {type(exc).__name__}: {exc}"


def run_batch(
    cases: Iterable[Case],
    name_of: Callable[[Case], str],
    work: Callable[[Case], str | None],
    on_event: EventCallback | None = None,
    isolate: bool = True,
) -> BatchOutcome:
    """Run ``work`` on every case in order.

    ``work`` returns an optional message for the "done" event, or raises :class:`SkipCase`.
    ``on_event(case, kind, message)`` hears "start", "done", "skipped" and "failed".  With
    ``isolate`` a failure is recorded and the batch goes on; without, it propagates (one case:
    the user sees the error itself).
    """
    emit = on_event or (lambda case, kind, message: None)
    outcome = BatchOutcome()
    for case in cases:
        name = name_of(case)
        emit(name, "start", "")
        try:
            message = work(case)
        except SkipCase as skip:
            outcome.skipped.append(name)
            emit(name, "skipped", str(skip))
            continue
        except Exception as exc:  # one broken case must not stop a batch
            if not isolate:
                raise
            text = failure_message(name, exc)
            outcome.failures.append((name, text))
            emit(name, "failed", text)
            continue
        outcome.done.append(name)
        emit(name, "done", message or "")
    return outcome


Prepared = TypeVar("Prepared")
Processed = TypeVar("Processed")


def _completed(function: Callable[..., Any], *args: Any) -> Future:
    """A future already holding what ``function(*args)`` returned or raised (no thread)."""
    future: Future = Future()
    try:
        future.set_result(function(*args))
    except BaseException as exc:  # handed to whoever reads the future, as a worker would
        future.set_exception(exc)
    return future


def run_pipeline(
    cases: Sequence[Case],
    name_of: Callable[[Case], str],
    prepare: Callable[[Case], Prepared],
    process: Callable[[Case, Prepared], Processed],
    finish: Callable[[Case, Processed], str | None],
    on_event: EventCallback | None = None,
    isolate: bool = True,
    pipelined: bool = True,
) -> BatchOutcome:
    """Run every case through three stages, overlapped: while case i is processed here, case i+1
    is prepared by a worker and case i-1 finished by another.

    For ``translate``: prepare reads and checks a CT and cuts its model slices, process samples
    (the accelerator's work), finish writes the outputs, so the accelerator need not wait for
    disk or registration.  Any stage may raise :class:`SkipCase`; a failure is recorded per case
    as in :func:`run_batch` (with ``isolate``), and the cases' outcomes (done, skipped, failed)
    are told in case order.  Without ``pipelined`` the stages run one after another on this
    thread (the same results).
    """
    emit = on_event or (lambda case, kind, message: None)
    outcome = BatchOutcome()
    cases = list(cases)

    def settle(name: str, future: Future) -> None:
        try:
            message = future.result()
        except SkipCase as skip:
            outcome.skipped.append(name)
            emit(name, "skipped", str(skip))
        except Exception as exc:
            if not isolate:
                raise
            text = failure_message(name, exc)
            outcome.failures.append((name, text))
            emit(name, "failed", text)
        else:
            outcome.done.append(name)
            emit(name, "done", message or "")

    with ThreadPoolExecutor(1, "ct2mri-prepare") as reader, ThreadPoolExecutor(1, "ct2mri-finish") as writer:

        def start(function: Callable[..., Any], *args: Any) -> Future:
            return (
                (reader if function is prepare else writer).submit(function, *args)
                if pipelined
                else _completed(function, *args)
            )

        ahead = start(prepare, cases[0]) if cases else None
        writing: tuple[str, Future] | None = None
        for i, case in enumerate(cases):
            name = name_of(case)
            emit(name, "start", "")
            prepared_future, ahead = ahead, (start(prepare, cases[i + 1]) if i + 1 < len(cases) else None)
            processing = _completed(lambda: process(case, prepared_future.result()))  # type: ignore[union-attr]  # noqa: B023  # run at once
            if processing.exception() is not None:
                if writing is not None:  # keep outcomes in case order
                    settle(*writing)
                    writing = None
                settle(name, processing)
                continue
            if writing is not None:
                settle(*writing)
            writing = (name, start(finish, case, processing.result()))
        if writing is not None:
            settle(*writing)
    return outcome
