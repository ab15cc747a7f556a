"""Cases as users list them: names from file names, folders of images, CSV case tables."""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import Ct2mriError
from .dicom import is_dicom_file
from .volumes import IMAGE_SUFFIXES


def read_case_csv(
    path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()
) -> list[dict[str, str]]:
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


@dataclass
class CaseSpec:
    """One case of a cohort: its input CT and, from a case list, its own mask, style and output."""

    case: str
    ct: Path
    mask: Path | None = None
    style: str | None = None
    output: Path | None = None


def holds_dicom_files(folder: Path) -> bool:
    """Whether ``folder`` itself holds DICOM files (a series or a study), not a folder of cases."""
    return any(entry.is_file() and is_dicom_file(entry) for entry in folder.iterdir())


def expand_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Inputs as users give them, one path per case: files, DICOM folders, folders of cases
    (their NIfTI and other image files and DICOM sub-folders), and quoted globs."""
    found: list[Path] = []
    for given in inputs:
        text = str(given)
        if not given.exists() and glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text))
            if not matches:
                raise Ct2mriError(f"{text}: the pattern matches no file")
            found.extend(expand_inputs(matches))
        elif given.is_dir() and not holds_dicom_files(given):
            # a folder of cases: its image files and the sub-folders holding DICOM files (not,
            # say, an output folder inside it)
            cases = [p for p in scan_images(given, "", folders=True).values() if p.is_file() or holds_dicom_files(p)]
            if not cases:
                raise Ct2mriError(f"{given}: holds no images or DICOM series folders")
            found.extend(cases)
        else:
            found.append(given)
    return found


def read_case_list(path: Path) -> list[CaseSpec]:
    """A case list: a CSV with columns case, ct[, mask, style, output] (paths relative to the CSV),
    or any other text file with one input per line (blank lines and ``#`` comments skipped)."""
    if path.suffix.lower() == ".csv":
        specs = []
        for row in read_case_csv(path, ("case", "ct"), ("mask", "style", "output")):
            check_case_name(row["case"], f"{path}: line {row['_line']}")
            style = row.get("style") or None
            if style is not None and (Path(style).suffix or "/" in style):  # a file, not a bundled key name
                style = str(relative_to_table(path, style))
            specs.append(
                CaseSpec(
                    case=row["case"],
                    ct=relative_to_table(path, row["ct"]),
                    mask=relative_to_table(path, row["mask"]) if row.get("mask") else None,
                    style=style,
                    output=relative_to_table(path, row["output"]) if row.get("output") else None,
                )
            )
        return specs
    if not path.is_file():
        raise Ct2mriError(f"{path}: no such file")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise Ct2mriError(f"{path}: cannot read the case list ({exc})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise Ct2mriError(f"{path}: the case list names no inputs")
    return [CaseSpec(case_name(p), p) for p in expand_inputs([relative_to_table(path, e) for e in entries])]
