"""What a translation output folder holds, case by case: status, sidecar, pictures and volumes.

The status files say which cases a cohort has and in what state (each case once, as
:meth:`CohortStatus.latest` merges the shards); a finished case's sidecar says how its scan
checks went, its pose, style distance and seconds.  Paths recorded by a run may be relative to
where it ran, or the folder may have moved since: a file not found where it was recorded is
looked for by name in the output folder (outputs and trust maps are looked for there first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..inference.sidecar import sidecar_path as sidecar_file
from ..inference.status import CohortStatus, read_cohort_status


@dataclass
class CaseRecord:
    """One case of the cohort, as its status line and sidecar describe it."""

    case: str
    state: str
    shard: str
    ct: Path | None = None
    output: Path | None = None
    qc_png: Path | None = None
    trust_map: Path | None = None
    sidecar: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None

    @property
    def flagged(self) -> list[str]:
        """Names of the scan checks that did not pass."""
        return [str(c.get("name")) for c in self.checks if c.get("verdict") != "pass"]

    @property
    def category(self) -> str:
        """``done``, ``warning`` (done with a check that did not pass), ``failed``, ``pending`` or
        whatever other state a status file names."""
        if self.state == "done" and self.flagged:
            return "warning"
        return self.state

    def check(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.checks if c.get("name") == name), None)

    @property
    def pose(self) -> dict[str, float] | None:
        pose = self.sidecar.get("head_pose")
        if not isinstance(pose, dict):
            return None
        return {k: pose[k] for k in ("pitch", "roll", "yaw") if isinstance(pose.get(k), (int, float))} or None

    @property
    def brain_volume_ml(self) -> float | None:
        check = self.check("brain_volume")
        value = check.get("value") if check else None
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def style_distance(self) -> float | None:
        value = self.sidecar.get("style_distance_to_default")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def trust(self) -> dict[str, Any] | None:
        trust = self.sidecar.get("trust")
        return trust if isinstance(trust, dict) else None


@dataclass
class Cohort:
    """Every case of an output folder, and the shards whose status file is missing."""

    folder: Path
    cases: list[CaseRecord]
    missing_shards: list[str]
    shard_counts: list[int]

    def count(self, category: str) -> int:
        return sum(1 for c in self.cases if c.category == category)

    @property
    def counts(self) -> dict[str, int]:
        """Cases per category; ``done`` includes those with warnings."""
        counts = {
            "cases": len(self.cases),
            "done": sum(1 for c in self.cases if c.state == "done"),
            "warnings": self.count("warning"),
            "failed": self.count("failed"),
            "pending": self.count("pending"),
        }
        others = len(self.cases) - counts["done"] - counts["failed"] - counts["pending"]
        if others:
            counts["other"] = others
        return counts

    @property
    def check_names(self) -> list[str]:
        """Every scan check any case reports, in the order the sidecars list them."""
        names: list[str] = []
        for record in self.cases:
            names += [str(c.get("name")) for c in record.checks if c.get("name") not in names]
        return names


def find_file(recorded: str | None, folder: Path, base: Path | None = None, here_first: bool = False) -> Path | None:
    """The file a run recorded: where it says (a relative path against ``base``, then the current
    folder), or by its name in ``folder``, that first when ``here_first`` (an output folder that
    was moved or copied holds its own outputs); None when it is nowhere."""
    if not recorded:
        return None
    path = Path(recorded)
    recorded_at = [path] if path.is_absolute() else [*([base / path] if base else []), path]
    candidates = [folder / path.name, *recorded_at] if here_first else [*recorded_at, folder / path.name]
    return next((p for p in candidates if p.exists()), None)


def _read_sidecar(path: Path) -> tuple[dict[str, Any], str | None]:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return {}, f"sidecar {path.name} unreadable ({type(exc).__name__})"
    if not isinstance(content, dict):
        return {}, f"sidecar {path.name} is not a JSON object"
    return content, None


def _trust_map_entry(sidecar: dict[str, Any]) -> str | None:
    trust = sidecar.get("trust")
    if isinstance(trust, dict) and isinstance(trust.get("map"), str):
        return trust["map"]
    value = sidecar.get("trust_map")
    return value if isinstance(value, str) else None


def _checks_from_status(names: Any) -> list[dict[str, Any]]:
    """A status line lists only the names of checks that did not pass."""
    if not isinstance(names, list):
        return []
    return [{"name": str(n), "value": None, "threshold": None, "verdict": "warning", "message": ""} for n in names]


def _seconds(entry: dict[str, Any], sidecar: dict[str, Any]) -> float | None:
    if isinstance(entry.get("seconds"), (int, float)):
        return round(float(entry["seconds"]), 3)
    stages = sidecar.get("seconds")
    if isinstance(stages, dict):
        return round(sum(float(v) for k, v in stages.items() if k != "load_model" and isinstance(v, (int, float))), 3)
    return None


def collect_case(case: str, entry: dict[str, Any], shard: str, folder: Path) -> CaseRecord:
    """One case's record from its status line and, for a finished case, the files beside it (a
    failed or pending case's files, if any, are an earlier run's and not shown)."""
    record = CaseRecord(
        case=case, state=str(entry.get("state") or "unknown"), shard=shard, error=entry.get("error") or None
    )
    record.ct = find_file(entry.get("input"), folder)
    record.checks = _checks_from_status(entry.get("checks"))
    if record.state == "done":
        _read_outputs(record, entry, folder)
    record.seconds = _seconds(entry, record.sidecar)
    return record


def _read_outputs(record: CaseRecord, entry: dict[str, Any], folder: Path) -> None:
    record.output = find_file(entry.get("output"), folder, here_first=True)
    if record.output is None:
        record.notes.append(f"output {entry.get('output')} not found")
        return
    sidecar_path = sidecar_file(record.output)
    if not sidecar_path.is_file():
        record.notes.append(f"no sidecar {sidecar_path.name}")
    else:
        record.sidecar, problem = _read_sidecar(sidecar_path)
        if problem:
            record.notes.append(problem)
        record.ct = record.ct or find_file(record.sidecar.get("input"), folder)
        record.trust_map = find_file(
            _trust_map_entry(record.sidecar), folder, base=sidecar_path.parent, here_first=True
        )
        checks = record.sidecar.get("checks")
        if isinstance(checks, list):
            record.checks = [c for c in checks if isinstance(c, dict)]
    qc = find_file(record.sidecar.get("qc"), folder, base=sidecar_path.parent) if record.sidecar else None
    beside = folder / f"{record.case}_qc.png"
    record.qc_png = qc or (beside if beside.is_file() else None)
    if record.ct is None:
        record.notes.append(f"CT {entry.get('input')} not found: the viewer shows the output only")


def _shard_of(status: CohortStatus, case: str, entry: dict[str, Any]) -> str:
    return next((label for label, entries in status.shards.items() if entries.get(case) is entry), "")


def collect(folder: Path) -> Cohort:
    """Read a translation output folder (one or several status files) into a :class:`Cohort`."""
    folder = Path(folder)
    status = read_cohort_status(folder)
    latest = status.latest()
    cases = [
        collect_case(case, entry, _shard_of(status, case, entry), folder) for case, entry in sorted(latest.items())
    ]
    counts = sorted({int(label.split("-of-")[1]) for label in status.shards})
    return Cohort(folder, cases, status.missing_shards, counts)
