"""merge_datasets.py OUT LABEL=DIR... [--shared-subjects]: one training folder over several
`ct2mri preprocess` folders.

OUT gets a manifest only; its cases point into the given folders (relative paths), named
LABEL_CASE. A case keeps the subject its folder gives it, else it is its own subject
(LABEL_CASE). With --shared-subjects, cases of the same name are one subject in every folder: the
same synthetic subject imaged by two CT models (`synthesize` with one seed and one source list,
`--ct-model mixing` and `--ct-model projection`), so that validation holds out both or neither.
The folders must share their preprocessing settings.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.preprocessing.config import PreprocessConfig
from ct2mri_cli.preprocessing.pairs import CASE_FILES, read_manifest, write_manifest


def merged_cases(target: Path, sources: list[str], shared_subjects: bool) -> tuple[dict[str, Any], list[dict]]:
    """(preprocessing settings, case entries) of the folders given as LABEL=DIR."""
    settings: dict[str, Any] | None = None
    cases: list[dict] = []
    seen: set[str] = set()
    for source in sources:
        label, _, folder = source.partition("=")
        if not label or not folder:
            raise Ct2mriError(f"{source}: expected LABEL=DIR")
        manifest = read_manifest(folder)
        if settings is None:
            settings = manifest["preprocess"]
        elif manifest["preprocess"] != settings:
            raise Ct2mriError(f"{folder}: preprocessing settings differ from the first folder's")
        relative = Path(os.path.relpath(folder, target))
        for entry in manifest["cases"]:
            name = f"{label}_{entry['case']}"
            if name in seen:
                raise Ct2mriError(f"{folder}: case {name!r} is already listed")
            seen.add(name)
            subject = entry.get("subject") or (entry["case"] if shared_subjects else name)
            case = dict(entry, case=name, subject=subject)
            for key in CASE_FILES:
                if isinstance(entry.get(key), str):
                    case[key] = str(relative / entry[key])
            cases.append(case)
    assert settings is not None
    return settings, cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("folders", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--shared-subjects", action="store_true", help="same case name, same subject in every folder")
    args = parser.parse_args()
    try:
        settings, cases = merged_cases(args.out, args.folders, args.shared_subjects)
        path = write_manifest(args.out, PreprocessConfig.from_dict(settings), cases)
    except Ct2mriError as exc:
        sys.exit(f"error: {exc}")
    print(f"{path}: {len(cases)} cases from {len(args.folders)} folders")


if __name__ == "__main__":
    main()
