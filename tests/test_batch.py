"""The batch loops: failures isolated per case and stage, events in case order, stages overlapped."""

import threading

import pytest

from ct2mri_cli.batch import SkipCase, run_pipeline
from ct2mri_cli.errors import Ct2mriError


def _stages(log):
    def prepare(case):
        log.append(("prepare", case))
        if case == "bad-read":
            raise Ct2mriError(f"{case}: unreadable")
        if case == "old":
            raise SkipCase(f"{case}: finished earlier")
        return case.upper()

    def process(case, prepared):
        log.append(("process", case))
        if case == "bad-sample":
            raise RuntimeError("no memory")
        return prepared + "!"

    def finish(case, processed):
        log.append(("finish", case))
        if case == "bad-write":
            raise Ct2mriError(f"{case}: disk full")
        return f"wrote {processed}"

    return prepare, process, finish


@pytest.mark.parametrize("pipelined", [True, False])
def test_each_stage_fails_alone_and_events_come_in_case_order(pipelined):
    cases = ["a", "bad-read", "old", "b", "bad-sample", "bad-write", "c"]
    log, events = [], []
    outcome = run_pipeline(
        cases, str, *_stages(log), on_event=lambda c, k, m: events.append((c, k, m)), pipelined=pipelined
    )
    assert outcome.done == ["a", "b", "c"]
    assert outcome.skipped == ["old"]
    assert outcome.failures == [
        ("bad-read", "bad-read: unreadable"),
        ("bad-sample", "bad-sample: RuntimeError: no memory"),
        ("bad-write", "bad-write: disk full"),
    ]
    settled = [(c, k) for c, k, _ in events if k != "start"]
    assert [c for c, _ in settled] == cases  # one outcome per case, in order
    assert ("c", "done", "wrote C!") in events
    assert sorted(c for stage, c in log if stage == "prepare") == sorted(cases)


def test_a_single_case_raises_its_error_without_isolation():
    with pytest.raises(RuntimeError, match="no memory"):
        run_pipeline(["bad-sample"], str, *_stages([]), isolate=False)


def test_the_next_case_is_read_and_the_last_written_while_a_case_is_processed():
    """Case b's processing waits until a's writing and c's reading have begun: only overlapped
    stages get there (sequential stages would wait forever, so the wait has a timeout)."""
    read_c, write_a = threading.Event(), threading.Event()
    overlapped = []

    def prepare(case):
        if case == "c":
            read_c.set()
        return case

    def process(case, prepared):
        if case == "b":
            overlapped.append(read_c.wait(5) and write_a.wait(5))
        return prepared

    def finish(case, processed):
        if case == "a":
            write_a.set()
        return ""

    outcome = run_pipeline(["a", "b", "c"], str, prepare, process, finish)
    assert outcome.done == ["a", "b", "c"] and overlapped == [True]
