"""Per-case claims in a cohort's output folder, so that runs started side by side share the cases.

Before a run translates a case it creates ``OUTDIR/.ct2mri_claims/<case>.claim`` (atomically: the
file is written whole under a private name and hard-linked into place, which fails if a claim is
there).  A claim names its run, process and host; the run keeps ``run-<id>.alive`` fresh while it
works.  A claim is honoured while its run lives: on this host, while its process exists and its
run file is there; elsewhere (a shared file system), while the run file was touched within
:data:`STALE_SECONDS`.  A claim left by a killed run is taken over.  A run removes its claims and
its run file when it ends (and the run files of dead runs on this host).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

CLAIMS_FOLDER = ".ct2mri_claims"
STALE_SECONDS = 120.0
HEARTBEAT_SECONDS = 20.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _read_record(path: Path) -> dict[str, Any] | None:
    """A claim's or run file's record (run, pid, host); None when missing or unreadable."""
    try:
        record = json.loads(path.read_text())
        return {"run": str(record["run"]), "pid": int(record["pid"]), "host": str(record["host"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


class CaseClaims:
    """The claims one run holds in an output folder (a context manager: the heartbeat runs inside)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / CLAIMS_FOLDER
        self.run = uuid.uuid4().hex[:12]
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- the run's own file and heartbeat --------------------------------------------------------
    @property
    def run_file(self) -> Path:
        return self.folder / f"run-{self.run}.alive"

    def __enter__(self) -> CaseClaims:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.run_file.write_text(json.dumps(self._record()))
        self._beat = threading.Thread(target=self._heartbeat, name="ct2mri-claims", daemon=True)
        self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        for case in list(self.held):
            self.release(case)
        self.run_file.unlink(missing_ok=True)
        for other in self.folder.glob("run-*.alive"):
            if not self._alive(other):
                other.unlink(missing_ok=True)
        try:
            self.folder.rmdir()  # only when no other run has claims or a run file there
        except OSError:
            pass

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.run_file)
            except OSError:
                pass

    def _record(self) -> dict[str, Any]:
        return {"run": self.run, "pid": self.pid, "host": self.host, "started": time.time()}

    # -- claims ------------------------------------------------------------------------------
    def path(self, case: str) -> Path:
        return self.folder / f"{_UNSAFE.sub('_', case)}.claim"

    def take(self, case: str) -> str | None:
        """Claim ``case``: None when this run now holds it, else who does (one line)."""
        if case in self.held:
            return None
        target = self.path(case)
        private = self.folder / f".{target.name}.{self.run}"
        private.write_text(json.dumps(self._record()))
        try:
            for _ in range(3):
                try:
                    os.link(private, target)
                except FileExistsError:
                    holder = self.holder(target)
                    if holder is not None:
                        return holder
                    try:  # left by a run that is gone: set it aside and try again
                        os.replace(target, self.folder / f".stale.{target.name}.{uuid.uuid4().hex[:8]}")
                    except FileNotFoundError:
                        pass
                    continue
                self.held.add(case)
                return None
            return "a claim that keeps changing hands"
        finally:
            private.unlink(missing_ok=True)
            for stale in self.folder.glob(f".stale.{target.name}.*"):
                stale.unlink(missing_ok=True)

    def holder(self, claim: Path) -> str | None:
        """Who holds ``claim`` while its run lives; None for no claim, or one of a run that is gone."""
        record = _read_record(claim)
        if record is None or record["run"] == self.run:
            return None
        alive = self._alive(self.folder / f"run-{record['run']}.alive", record)
        return f"process {record['pid']} on {record['host']}" if alive else None

    def _alive(self, run_file: Path, record: dict[str, Any] | None = None) -> bool:
        """Whether the run of ``run_file`` still works: by its process on this host, else by its heartbeat."""
        record = record or _read_record(run_file)
        if record is None:
            return False
        if record["host"] == self.host:
            return run_file.exists() and _process_exists(record["pid"])
        try:
            return time.time() - run_file.stat().st_mtime < STALE_SECONDS
        except OSError:
            return False

    def release(self, case: str) -> None:
        if case in self.held:
            self.path(case).unlink(missing_ok=True)
            self.held.discard(case)
