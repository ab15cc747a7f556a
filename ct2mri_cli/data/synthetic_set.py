"""A folder of N exactly aligned synthetic CT/T1 pairs made from real T1 brains (``ct2mri synthesize``).

Layout of OUTDIR::

    case_0000/ct_hu.nii.gz       CT in HU (int16) on the T1's grid
    case_0000/t1.nii.gz          T1 (int16, arbitrary scanner units)
    case_0000/brain_mask.nii.gz  intracranial mask (uint8)
    pairs.csv                    case,ct,mri,mask,source,seed (input of `ct2mri preprocess --csv`)
    synthesis.json               generation settings and the parameters drawn for every case
    MNI_LICENSE.txt              the MNI template notice (when MNI cases are present)
    NOTICE_<source>.txt          the notice of every other source brain that has one
    model/                       with --model-space: `ct2mri preprocess` output, ready for `train`

``pairs.csv`` and ``synthesis.json`` are rewritten after every case, so an interrupted run
leaves them matching the files on disk.  Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..errors import Ct2mriError
from ..io.atomic import atomic_output, check_folder_possible, ensure_folder
from ..io.volumes import Volume, write_nifti
from .sources import SOURCES, get_source, source_notice
from .synthesis import CT_MODELS, MAX_FINE_WARP_MM, VARIETIES, case_seed, generate_pair, prepare_anatomy

SOURCE_GROUPS = {"both": ("mni", "colin27"), "all": SOURCES}
SYNTHETIC_CASE_FILES = {"ct": "ct_hu.nii.gz", "mri": "t1.nii.gz", "mask": "brain_mask.nii.gz"}
PAIRS_CSV = "pairs.csv"
SYNTHESIS_RECORD = "synthesis.json"
LICENCE_FILE = "MNI_LICENSE.txt"
MODEL_DIR = "model"
SYNTHESIS_FORMAT = "ct2mri-synthetic-pairs"
_DESCRIP_SUFFIX = "synthetic, not for diagnosis"


def synthetic_case_name(index: int) -> str:
    """The folder name of the ``index``-th pair."""
    return f"case_{index:04d}"


def parse_sources(choice: str, exclude: str = "") -> list[str]:
    """Source names from a comma-separated list of registry names and groups (``both``: MNI and
    Colin27; ``all``: every source), less those in ``exclude``; in the order given."""

    def names(text: str) -> list[str]:
        out: list[str] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            group = SOURCE_GROUPS.get(item)
            if group is None:
                try:
                    get_source(item)
                except Ct2mriError:
                    raise Ct2mriError(
                        f"--source {item!r}: choose from {', '.join(SOURCES)} or {', '.join(SOURCE_GROUPS)}"
                    ) from None
                group = (item,)
            out += [name for name in group if name not in out]
        return out

    left_out = names(exclude)
    chosen = [name for name in names(choice) if name not in left_out]
    if not chosen:
        raise Ct2mriError(f"--source {choice!r} less --exclude {exclude!r} leaves no source brain")
    return chosen


def sources_for(choice: str, n: int, exclude: str = "") -> list[str]:
    """The source of each case: the chosen sources in turn (``both``: MNI, Colin27, MNI...)."""
    chosen = parse_sources(choice, exclude)
    return [chosen[i % len(chosen)] for i in range(n)]


def notice_file(source: str) -> str:
    return LICENCE_FILE if source == "mni" else f"NOTICE_{source}.txt"


def planned_outputs(out_dir: Path, n: int, plan: list[str] | None = None) -> list[Path]:
    """Every path a run would create or replace (what --force is needed for)."""
    notices = {notice_file(name) for name in (plan or ["mni"])}
    paths = [out_dir / PAIRS_CSV, out_dir / SYNTHESIS_RECORD] + [out_dir / name for name in sorted(notices)]
    for i in range(n):
        paths += [out_dir / synthetic_case_name(i) / name for name in SYNTHETIC_CASE_FILES.values()]
    return paths


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _pairs_csv(entries: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case", "ct", "mri", "mask", "source", "seed"])
    for e in entries:
        writer.writerow([e["case"], e["ct"], e["mri"], e["mask"], e["source"], e["seed"]])
    return buffer.getvalue()


def _manifest(settings: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    data = {
        "format": SYNTHESIS_FORMAT,
        "version": 1,
        "generator": {
            "ct2mri": __version__,
            "numpy": np.__version__,
            "SimpleITK": sitk.Version.VersionString(),
            "python": platform.python_version(),
        },
        "settings": settings,
        "cases": entries,
    }
    return json.dumps(data, indent=2) + "\n"


def write_synthetic_case(out_dir: Path, case: str, pair: Any) -> dict[str, Any]:
    """Write one pair's three NIfTI files into ``out_dir/case/`` and return its manifest entry."""

    folder = out_dir / case
    folder.mkdir(exist_ok=True)
    reference = Volume(data=np.broadcast_to(np.uint8(0), pair.ct.shape), affine=pair.affine, description=case)
    source = pair.params.source
    tag = f"ct2mri synthesize {source} seed {pair.seed}"
    write_nifti(
        pair.ct,
        folder / SYNTHETIC_CASE_FILES["ct"],
        reference,
        descrip=f"{tag}: CT HU; {_DESCRIP_SUFFIX}",
        dtype=np.int16,
    )
    write_nifti(
        pair.t1,
        folder / SYNTHETIC_CASE_FILES["mri"],
        reference,
        descrip=f"{tag}: T1; {_DESCRIP_SUFFIX}",
        dtype=np.int16,
    )
    write_nifti(
        pair.mask, folder / SYNTHETIC_CASE_FILES["mask"], reference, descrip=f"{tag}: intracranial mask", dtype=np.uint8
    )
    spacing = np.linalg.norm(pair.affine[:3, :3], axis=0)
    return {
        "case": case,
        "source": source,
        "seed": int(pair.seed),
        **{key: f"{case}/{name}" for key, name in SYNTHETIC_CASE_FILES.items()},
        "shape": [int(n) for n in pair.ct.shape],
        "spacing_mm": [round(float(s), 6) for s in spacing],
        "intracranial_ml": round(float(pair.mask.sum() * np.prod(spacing) / 1000.0), 3),
        "params": pair.params.to_dict(),
        **({} if pair.scanner is None else {"scanner": pair.scanner.to_dict()}),
    }


def check_request(
    out_dir: Path,
    n: int,
    source: str,
    spacing_mm: float | None,
    force: bool,
    exclude: str = "",
    variety: str = "wide",
    ct_model: str = "mixing",
    fine_warp_mm: float = 0.0,
) -> list[str]:
    """Validate a request before any work; returns the source of each case."""
    if n < 1:
        raise Ct2mriError(f"-n {n}: need at least one pair")
    if spacing_mm is not None and not 0.25 <= spacing_mm <= 8.0:
        raise Ct2mriError(f"--spacing {spacing_mm:g}: use a voxel size between 0.25 and 8 mm")
    if variety not in VARIETIES:
        raise Ct2mriError(f"--variety {variety!r}: choose from {', '.join(VARIETIES)}")
    if ct_model not in CT_MODELS:
        raise Ct2mriError(f"--ct-model {ct_model!r}: choose from {', '.join(CT_MODELS)}")
    if not 0.0 <= fine_warp_mm <= MAX_FINE_WARP_MM:
        raise Ct2mriError(f"--fine-warp {fine_warp_mm:g}: use an RMS between 0 and {MAX_FINE_WARP_MM:g} mm")
    plan = sources_for(source, n, exclude)
    if out_dir.exists() and not out_dir.is_dir():
        raise Ct2mriError(f"{out_dir}: exists and is not a folder")
    check_folder_possible(out_dir.parent)
    if not force:
        existing = [p for p in planned_outputs(out_dir, n, plan) if p.exists()]
        if existing:
            raise Ct2mriError(f"{existing[0]} exists (use --force to overwrite)")
    return plan


EventCallback = Callable[[str, str, str], None]


def write_pairs(
    out_dir: Path,
    n: int,
    seed: int,
    source: str = "both",
    spacing_mm: float | None = None,
    force: bool = False,
    on_event: EventCallback | None = None,
    exclude: str = "",
    variety: str = "wide",
    ct_model: str = "mixing",
    fine_warp_mm: float = 0.0,
) -> list[dict[str, Any]]:
    """Generate ``n`` pairs into ``out_dir``; returns the manifest entries.

    ``source`` and ``exclude`` are comma-separated source names or groups
    (:func:`parse_sources`); ``variety`` the ranges subjects are drawn from; ``ct_model`` how the
    CTs are made (the same seed gives the same subjects, T1s and masks with either);
    ``fine_warp_mm`` the largest RMS of each subject's fine warp (0: none).
    ``on_event(case, kind, message)`` gets kind "prepare" (a source's anatomy is being built),
    "start" and "done".  Refuses to replace existing outputs unless ``force``.
    """

    emit = on_event or (lambda case, kind, message: None)
    plan = check_request(out_dir, n, source, spacing_mm, force, exclude, variety, ct_model, fine_warp_mm)
    for name in sorted(set(plan)):  # fail early (missing templates) before writing anything
        emit(name, "prepare", "")
        prepare_anatomy(name)
    ensure_folder(out_dir)

    settings: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "source": source,
        "exclude": exclude,
        "variety": variety,
        "ct_model": ct_model,
        "spacing_mm": spacing_mm,
        "files": dict(SYNTHETIC_CASE_FILES),
    }
    if fine_warp_mm:
        settings["fine_warp_mm"] = fine_warp_mm
    notices = {}
    for name in sorted(set(plan)):
        text = source_notice(name)
        if text is not None:
            _write_text(out_dir / notice_file(name), text)
            notices[name] = notice_file(name)
    if notices:
        settings["notices"] = notices
        if "mni" in notices:
            settings["licence"] = LICENCE_FILE
    entries: list[dict[str, Any]] = []
    for index, name in enumerate(plan):
        case = synthetic_case_name(index)
        emit(case, "start", name)
        started = time.perf_counter()
        pair = generate_pair(
            name, case_seed(seed, index), spacing_mm, variety=variety, ct_model=ct_model, fine_warp_mm=fine_warp_mm
        )
        entries.append(write_synthetic_case(out_dir, case, pair))
        _write_text(out_dir / PAIRS_CSV, _pairs_csv(entries))
        _write_text(out_dir / SYNTHESIS_RECORD, _manifest(settings, entries))
        emit(case, "done", f"{time.perf_counter() - started:.1f} s")
    return entries
