"""One loop for every batch command: cases run one after another, a failing case is recorded
and the others go on (``preprocess``, ``translate``, ``evaluate``, ``synthesize --model-space``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, TypeVar

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
    work: Callable[[Case], Optional[str]],
    on_event: Optional[EventCallback] = None,
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
