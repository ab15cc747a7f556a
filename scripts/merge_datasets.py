"""merge_datasets.py OUT LABEL=DIR...: one training folder over several `ct2mri preprocess` folders.

OUT gets a manifest only; its cases point into the given folders (relative paths), named
LABEL_CASE. A case keeps its subject (its own name when it has none), so the same synthetic subject
imaged by two CT models (`synthesize --seed S` with `--ct-model mixing` and with `--ct-model
projection`) stays one subject: validation holds out both or neither. The folders must share their
preprocessing settings.
"""

import json
import os
import sys
from pathlib import Path

from ct2mri_cli.preprocessing.pairs import MANIFEST_NAME, read_manifest

out, *sources = sys.argv[1:]
if not sources:
    sys.exit(__doc__.splitlines()[0])
target = Path(out)
merged: dict | None = None
seen: set[str] = set()
for source in sources:
    label, _, folder = source.partition("=")
    if not folder:
        sys.exit(f"{source}: expected LABEL=DIR")
    manifest = read_manifest(folder)
    if merged is None:
        merged = {**manifest, "cases": []}
    elif manifest["preprocess"] != merged["preprocess"]:
        sys.exit(f"{folder}: preprocessing settings differ from the first folder's")
    relative = Path(os.path.relpath(folder, target))
    for entry in manifest["cases"]:
        case = dict(entry, case=f"{label}_{entry['case']}", subject=entry.get("subject") or entry["case"])
        if case["case"] in seen:
            sys.exit(f"{folder}: case {case['case']!r} is already listed")
        seen.add(case["case"])
        for key in ("ct", "mri", "mask", "style_key", "qc"):
            if isinstance(entry.get(key), str):
                case[key] = str(relative / entry[key])
        merged["cases"].append(case)
target.mkdir(parents=True, exist_ok=True)
temporary = target / f".{MANIFEST_NAME}.tmp"
temporary.write_text(json.dumps(merged, indent=1))
os.replace(temporary, target / MANIFEST_NAME)
print(f"{target / MANIFEST_NAME}: {len(seen)} cases from {len(sources)} folders")
