"""Cases as users list them: names from file names, folders of images, CSV case tables."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

from ..errors import Ct2mriError
from .volumes import IMAGE_SUFFIXES


def read_case_csv(path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()) -> list[dict[str, str]]:
    """Rows of a case CSV as ``{column: value}`` (stripped; column names case-insensitive).

    ``required`` columns must exist and be non-empty on every row (the first is the case name,
    unique); ``optional`` columns may be missing or empty.  Blank rows are skipped; a CSV without
    cases, or any problem, is a one-line :class:`Ct2mriError` naming the file (and line).
    """
    path = Path(path)
    if not path.is_file():
        raise Ct2mriError(f"{path}: no such file")
    wanted = ", ".join(required) + "".join(f"[, {c}]" for c in optional)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields = {(name or "").strip().lower(): name for name in (reader.fieldnames or [])}
            missing = [c for c in required if c not in fields]
            if missing:
                raise Ct2mriError(f"{path}: the CSV needs the columns {wanted} (missing: {', '.join(missing)})")
            rows = [(reader.line_num, row) for row in reader]  # line_num: the file's line, blank lines counted
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise Ct2mriError(f"{path}: cannot read the CSV ({exc})") from None
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    key = required[0]
    for number, row in rows:
        values = {c: (row.get(fields[c]) or "").strip() for c in (*required, *optional) if c in fields}
        if not any(values.values()):
            continue
        if not all(values[c] for c in required):
            raise Ct2mriError(f"{path}: line {number} has an empty {' or '.join(required)}")
        if values[key] in seen:
            raise Ct2mriError(f"{path}: {key} {values[key]} appears twice")
        seen.add(values[key])
        out.append({"_line": str(number), **values})
    if not out:
        raise Ct2mriError(f"{path}: the CSV lists no cases")
    return out


def relative_to_table(table: str | os.PathLike, value: str) -> Path:
    """A path from a case table: absolute as written, else relative to the table's folder."""
    p = Path(value)
    return p if p.is_absolute() else Path(table).parent / p


def case_name(path: str | os.PathLike) -> str:
    """A case's name: the file name without its image extension (a folder's own name)."""
    name = Path(path).name
    lower = name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_case_name(case: str, source: str) -> None:
    """Refuse a case name that cannot name a folder of its own in an output folder."""
    if not case or case in (".", "..") or case.startswith(".") or "/" in case or "\\" in case:
        raise Ct2mriError(f"{source}: {case!r} is not a usable case name (it names a folder in the output)")


def scan_images(folder: Path, what: str, folders: bool = False) -> dict[str, Path]:
    """Images of a folder by case name (hidden entries skipped); with ``folders``, sub-folders
    count too (DICOM series).  Two entries with one case name are an error."""
    if not folder.is_dir():
        raise Ct2mriError(f"{folder}: no such folder{f' ({what})' if what else ''}")
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not ((folders and entry.is_dir()) or (entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES))):
            continue
        name = case_name(entry)
        if name in found:
            raise Ct2mriError(f"{folder}: two inputs are named {name} ({found[name].name}, {entry.name})")
        found[name] = entry
    return found
