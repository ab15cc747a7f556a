"""Status files of a cohort: one per shard, JSON lines, one line per case.

``OUTDIR/ct2mri_status_K-of-N.jsonl`` lists what shard K of N did with each of its cases:
``case``, ``input``, ``output``, ``state`` (pending, done or failed), ``checks`` (scan checks that
did not pass), ``seconds``, ``error``.  A shard lists all its cases as pending when it starts, so
a killed run leaves the cases it never reached in the file.  A rerun (``--skip-existing``) keeps the lines of cases it skips
and replaces the others, so a finished cohort lists every case once.  The file is rewritten
atomically after every case: an interrupted shard leaves a valid file of what it finished.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from ..shards import Shard

STATUS_PATTERN = "ct2mri_status_*-of-*.jsonl"
_LABEL = re.compile(r"ct2mri_status_(\d+)-of-(\d+)\.jsonl$")


def status_path(folder: Path, shard: Shard) -> Path:
    return folder / f"ct2mri_status_{shard.label}.jsonl"


def _read_lines(path: Path) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise Ct2mriError(f"{path}: cannot read the status file ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entries[str(entry["case"])] = entry
        except (ValueError, KeyError, TypeError):
            raise Ct2mriError(f"{path}: line {number} is not a status entry") from None
    return entries


class StatusFile:
    """The status file of one shard, rewritten after each case.

    Runs that share an output folder (and so a shard's file) each merge their lines into what the
    file holds at that moment, under a lock, so no run's record is lost to another's rewrite.
    """

    def __init__(self, folder: Path, shard: Shard) -> None:
        self.path = status_path(folder, shard)
        self.entries: dict[str, dict[str, Any]] = _read_lines(self.path) if self.path.is_file() else {}
        self._lock = threading.Lock()  # the pipeline's writer and the main thread both record

    def previous(self, case: str) -> dict[str, Any] | None:
        return self.entries.get(case)

    def plan(self, entries: list[dict[str, Any]]) -> None:
        """List the shard's cases, as pending where no earlier run recorded them, and write the file."""

        def add(current: dict[str, dict[str, Any]]) -> None:
            for entry in entries:
                current.setdefault(str(entry["case"]), entry)

        self._update(add)

    def record(self, entry: dict[str, Any] | None = None) -> None:
        """Add or replace the line of ``entry["case"]`` and rewrite the file (without an entry:
        write the file as it stands, so a shard with no cases is seen to have run)."""

        def put(current: dict[str, dict[str, Any]]) -> None:
            if entry is not None:
                current[str(entry["case"])] = entry

        self._update(put)

    def _update(self, change: Callable[[dict[str, dict[str, Any]]], None]) -> None:
        with self._lock, _folder_lock(self.path.parent):
            current = _read_lines(self.path) if self.path.is_file() else {}
            change(current)
            with atomic_output(self.path) as tmp:
                tmp.write_text("".join(json.dumps(e) + "\n" for e in current.values()))
            self.entries = current


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock between processes on ``folder`` itself (``flock``, which leaves no file
    behind), where the platform has it."""
    try:
        import fcntl
    except ImportError:  # no flock: runs in one folder are not kept apart
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


@dataclass
class CohortStatus:
    """What the status files of an output folder say, all shards together."""

    shards: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # label -> case -> entry
    missing_shards: list[str] = field(default_factory=list)

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each case once: its entry from the shard that says most (done, then failed, then pending),
        so a cohort split anew, whose old status files still lie beside the new, counts no case twice."""
        rank = {"done": 2, "failed": 1}
        merged: dict[str, dict[str, Any]] = {}
        for entries in self.shards.values():
            for case, entry in entries.items():
                if case not in merged or rank.get(str(entry.get("state")), 0) > rank.get(
                    str(merged[case].get("state")), 0
                ):
                    merged[case] = entry
        return merged

    def count(self, state: str) -> int:
        return sum(1 for e in self.latest().values() if e.get("state") == state)

    @property
    def cases(self) -> list[str]:
        return list(self.latest())

    @property
    def complete(self) -> bool:
        """Every shard reported, and every case is done."""
        return not self.missing_shards and bool(self.shards) and self.count("done") == len(self.cases)


def read_cohort_status(folder: Path) -> CohortStatus:
    """Read every status file in ``folder``; shards of the same N that never wrote are listed missing."""
    if not folder.is_dir():
        raise Ct2mriError(f"{folder}: no such folder")
    status = CohortStatus()
    counts: set[int] = set()
    for path in sorted(folder.glob(STATUS_PATTERN)):
        match = _LABEL.search(path.name)
        if not match:
            continue
        counts.add(int(match.group(2)))
        status.shards[f"{match.group(1)}-of-{match.group(2)}"] = _read_lines(path)
    if not status.shards:
        raise Ct2mriError(f"{folder}: no status files ({STATUS_PATTERN}); is it a translate output folder?")
    for n in sorted(counts):
        status.missing_shards += [f"{k}-of-{n}" for k in range(1, n + 1) if f"{k}-of-{n}" not in status.shards]
    return status
