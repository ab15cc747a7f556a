"""Paired CT/MRI preprocessing: from native scans to model-ready volumes plus a manifest.

For one pair: read both scans, take the CT to the model grid as ``translate`` does (scan checks,
brain, head pose, CT window), register the CT to the MRI (rigid or affine; identity for pairs
already aligned in world space), pull the MRI onto the CT's model grid through the inverse
transform, normalise it (robust min-max inside the brain), compute its style key and write, in
``OUTDIR/<case>/``: ``ct.nii.gz``, ``mri.nii.gz`` (float32 in [0, 1]), ``mask.nii.gz`` (uint8),
``style_key.safetensors`` and ``qc.png``.  ``OUTDIR/manifest.json`` lists every case with paths
relative to OUTDIR; :func:`load_case` reads one back as (Z, H, W) arrays for training.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..batch import EventCallback, SkipCase, run_batch
from ..errors import Ct2mriError
from ..io.atomic import atomic_output, ensure_folder
from ..io.cases import check_case_name, read_case_csv, relative_to_table, scan_images
from ..io.volumes import Volume, read_volume, write_nifti
from .config import PreprocessConfig
from .geometry import GridRecord, model_reference, model_to_xyz, resample_onto_model_grid
from .intensity import normalize_mri
from .model_view import view_ct

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "ct2mri-preprocessed"
MANIFEST_VERSION = 1
CASE_FILES = {
    "ct": "ct.nii.gz",
    "mri": "mri.nii.gz",
    "mask": "mask.nii.gz",
    "style_key": "style_key.safetensors",
    "qc": "qc.png",
}
MIN_MRI_COVERAGE = 0.5  # share of the CT's brain the MRI must cover


@dataclass
class CasePair:
    """One CT/MRI pair to preprocess."""

    case: str
    ct: Path
    mri: Path


@dataclass
class PreparedCase:
    """A pair on the model grid, in memory: (Z, H, W) arrays in [0, 1] and a boolean mask."""

    ct01: np.ndarray
    mri01: np.ndarray
    mask: np.ndarray
    record: GridRecord
    style_key: Any
    registration_metric: float | None
    registration: str
    brain_ml: float
    transform: Any = None
    pose: Any = None
    notes: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    """What a batch run did: manifest entries written, failures (case, message), skipped cases."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def prepare_pair(
    ct: Volume,
    mri: Volume,
    config: PreprocessConfig = PreprocessConfig(),
    register: bool = True,
    affine: bool = False,
) -> PreparedCase:
    """Run the whole preprocessing of one pair in memory (no files written).

    The CT goes to the model grid exactly as ``translate`` takes it there
    (:func:`~ct2mri_cli.preprocessing.model_view.view_ct`: checks, brain, pose, one
    interpolation); the MRI is pulled onto that grid through the inverse of the registration,
    then normalised inside the brain.
    """
    from ..style.sources import refuse_ct_as_mri
    from .registration import register_ct_to_mri

    refuse_ct_as_mri(np.asarray(mri.data), mri.name)
    from ..style.key import style_key

    view = view_ct(ct, config)
    notes: list[str] = view.notes + list(mri.notes)
    brain_ml = float(view.mask.sum() * np.prod(view.ct.spacing) / 1000.0)

    metric: float | None = None
    transform = None
    kind = "none"
    if register:
        result = register_ct_to_mri(view.ct, mri, affine=affine)
        transform, metric, kind = result.transform, result.metric, result.kind
    mri_model, inside = resample_onto_model_grid(
        mri, view.record, None if transform is None else transform.GetInverse(), order="linear"
    )
    brain = view.mask_model
    covered = float(inside[brain].mean()) if brain.any() else 0.0
    if covered < MIN_MRI_COVERAGE:
        raise Ct2mriError(
            f"{ct.name}: {100 * covered:.0f}% of the CT's brain lies inside {mri.name} (are they the same head, and registered?)"
        )
    if covered < 1.0:
        notes.append(f"{mri.name}: {100 * (1 - covered):.1f}% of the CT's brain lies outside the MRI; masked out")
        brain = brain & inside
    mri01 = normalize_mri(mri_model, brain, config.mri_percentiles, source=mri.name)
    ct01 = view.ct_model01 * brain
    key = style_key(mri01, brain)
    return PreparedCase(
        ct01=ct01.astype(np.float32),
        mri01=mri01.astype(np.float32),
        mask=brain,
        record=view.record,
        style_key=key,
        registration_metric=metric,
        registration=kind,
        brain_ml=brain_ml,
        transform=transform,
        pose=view.pose,
        notes=notes,
    )


def case_paths(out_dir: Path, case: str) -> dict[str, Path]:
    """The files a case is written to."""
    return {key: out_dir / case / name for key, name in CASE_FILES.items()}


def write_prepared_case(
    out_dir: Path, case: str, pair: CasePair, prepared: PreparedCase, config: PreprocessConfig
) -> dict[str, Any]:
    """Write a prepared case into ``out_dir/case/`` (all files appear together) and return its manifest entry."""
    from ..evaluation.qc import pair_montage, pose_caption, write_png
    from ..style.key import save_style_key

    check_case_name(case, str(pair.ct))
    reference = model_reference(prepared.record)
    staging = Path(tempfile.mkdtemp(prefix=f".{case}.", dir=out_dir))
    try:
        lo, hi = config.ct_window_hu
        write_nifti(
            model_to_xyz(prepared.ct01),
            staging / CASE_FILES["ct"],
            reference,
            descrip=f"ct2mri preprocess: CT {lo:g}..{hi:g} HU -> [0,1], brain-masked",
        )
        write_nifti(
            model_to_xyz(prepared.mri01),
            staging / CASE_FILES["mri"],
            reference,
            descrip="ct2mri preprocess: MRI robust min-max -> [0,1], brain-masked",
        )
        write_nifti(
            model_to_xyz(prepared.mask),
            staging / CASE_FILES["mask"],
            reference,
            descrip="ct2mri preprocess: brain mask",
            dtype=np.uint8,
        )
        save_style_key(
            staging / CASE_FILES["style_key"],
            prepared.style_key,
            {"case": case, "source": str(pair.mri), "kind": "preprocessed MRI"},
        )
        picture = pair_montage(
            prepared.ct01,
            prepared.mri01,
            prepared.mask,
            titles=("CT", "MRI", "CHECKERBOARD"),
            min_side=360,
            caption=pose_caption(prepared.pose),
        )
        write_png(picture, staging / CASE_FILES["qc"])
        final = out_dir / case
        final.mkdir(exist_ok=True)
        for name in CASE_FILES.values():
            os.replace(staging / name, final / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _manifest_entry(case, pair, prepared, config)


def _manifest_entry(case: str, pair: CasePair, prepared: PreparedCase, config: PreprocessConfig) -> dict[str, Any]:
    """What the manifest records of a written case: its files, grid, registration and sources."""
    from .registration import transform_to_dict

    return {
        "case": case,
        **{key: f"{case}/{name}" for key, name in CASE_FILES.items()},
        "shape": [int(n) for n in prepared.ct01.shape],
        "spacing_mm": float(config.spacing_mm),
        "registration_metric": prepared.registration_metric,
        "registration": prepared.registration,
        "registration_transform": transform_to_dict(prepared.transform) if prepared.transform is not None else None,
        "brain_ml": round(prepared.brain_ml, 3),
        "head_pose": None if prepared.pose is None else prepared.pose.to_dict(),
        "source": {"ct": str(pair.ct), "mri": str(pair.mri)},
        "grid": prepared.record.to_dict(),
    }


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``out_dir/manifest.json``."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise Ct2mriError(f"{path}: no manifest (run `ct2mri preprocess` first)") from None
    except (OSError, ValueError) as exc:
        raise Ct2mriError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise Ct2mriError(f"{path}: not a ct2mri preprocessing manifest")
    if data.get("version") != MANIFEST_VERSION:
        raise Ct2mriError(
            f"{path}: manifest version {data.get('version')} is not supported (expected {MANIFEST_VERSION})"
        )
    if not isinstance(data.get("cases"), list) or not isinstance(data.get("preprocess"), dict):
        raise Ct2mriError(f"{path}: manifest lacks 'cases' or 'preprocess'")
    return data


def _recorded_settings(data: dict[str, Any]) -> PreprocessConfig | None:
    try:
        return PreprocessConfig.from_dict(data)
    except (TypeError, ValueError):
        return None


def write_manifest(out_dir: Path, config: PreprocessConfig, entries: Iterable[dict[str, Any]]) -> Path:
    """Write ``out_dir/manifest.json`` atomically."""
    path = out_dir / MANIFEST_NAME
    data = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "preprocess": config.to_dict(),
        "cases": list(entries),
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path


def load_case(manifest_dir: str | os.PathLike, entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ct01, mri01, mask) of one manifest entry as (Z, H, W) arrays: float32, float32, bool."""
    import nibabel as nib

    base = Path(manifest_dir)
    arrays = []
    for key in ("ct", "mri", "mask"):
        path = base / entry[key]
        try:
            data = np.asanyarray(cast(nib.Nifti1Image, nib.load(str(path))).dataobj)
        except FileNotFoundError:
            raise Ct2mriError(f"{path}: missing (listed in {base / MANIFEST_NAME})") from None
        except Exception as exc:
            raise Ct2mriError(f"{path}: not a readable NIfTI image ({exc})") from None
        arrays.append(data.transpose(2, 1, 0))
    ct01, mri01, mask = arrays
    expected = tuple(int(n) for n in entry["shape"])
    for key, array in zip(("ct", "mri", "mask"), arrays):
        if tuple(array.shape) != expected:
            raise Ct2mriError(f"{base / entry[key]}: shape {array.shape} differs from the manifest's {expected}")
    return (
        np.ascontiguousarray(ct01, dtype=np.float32),
        np.ascontiguousarray(mri01, dtype=np.float32),
        np.ascontiguousarray(mask).astype(bool),
    )


def pairs_from_csv(path: str | os.PathLike) -> list[CasePair]:
    """Pairs from a CSV with columns case, ct, mri (relative paths are relative to the CSV)."""
    pairs = []
    for row in read_case_csv(path, ("case", "ct", "mri")):
        check_case_name(row["case"], f"{path}: line {row['_line']}")
        pairs.append(CasePair(row["case"], relative_to_table(path, row["ct"]), relative_to_table(path, row["mri"])))
    return pairs


def pairs_from_dirs(
    ct_dir: str | os.PathLike, mri_dir: str | os.PathLike
) -> tuple[list[CasePair], list[tuple[str, str]]]:
    """Pairs matched by case name across two folders, and the unmatched inputs as (case, message)."""
    cts, mris = scan_images(Path(ct_dir), "", folders=True), scan_images(Path(mri_dir), "", folders=True)
    pairs = [CasePair(name, cts[name], mris[name]) for name in sorted(set(cts) & set(mris))]
    unmatched = [(name, f"{cts[name]}: no MRI named {name} in {mri_dir}") for name in sorted(set(cts) - set(mris))]
    unmatched += [(name, f"{mris[name]}: no CT named {name} in {ct_dir}") for name in sorted(set(mris) - set(cts))]
    if not pairs and not unmatched:
        raise Ct2mriError(f"{ct_dir}, {mri_dir}: no images found")
    return pairs, unmatched


def preprocess_batch(
    pairs: list[CasePair],
    out_dir: str | os.PathLike,
    config: PreprocessConfig = PreprocessConfig(),
    register: bool = True,
    affine: bool = False,
    series_uid: str | None = None,
    force: bool = False,
    skip_existing: bool = False,
    on_event: EventCallback | None = None,
) -> BatchResult:
    """Preprocess many pairs into ``out_dir``, isolating failures per case.

    ``on_event(case, kind, message)`` is called with kind "start", "done", "failed", "skipped"
    or "note".  The manifest is rewritten after every successful case, so an interrupted run
    leaves a manifest that matches the files on disk.  Without ``force``, an existing case is a
    failure (or skipped with ``skip_existing``); a manifest made with other settings is refused.
    """
    out_dir = Path(out_dir)
    emit = on_event or (lambda case, kind, message: None)
    if out_dir.exists() and not out_dir.is_dir():
        raise Ct2mriError(f"{out_dir}: exists and is not a folder")
    created = not out_dir.exists()
    ensure_folder(out_dir)

    result = BatchResult()
    entries: dict[str, dict[str, Any]] = {}
    try:
        if (out_dir / MANIFEST_NAME).exists():
            manifest = read_manifest(out_dir)
            if _recorded_settings(manifest["preprocess"]) != config:
                if not force:
                    raise Ct2mriError(
                        f"{out_dir / MANIFEST_NAME}: made with other preprocessing settings "
                        f"({manifest['preprocess']}); use another folder or --force"
                    )
            else:
                entries = {e["case"]: e for e in manifest["cases"] if isinstance(e, dict) and "case" in e}

        def work(pair: CasePair) -> str:
            started = time.perf_counter()
            check_case_name(pair.case, str(pair.ct))
            files = case_paths(out_dir, pair.case)
            existing = [p for p in files.values() if p.exists()]
            if existing and not force:
                if skip_existing and pair.case in entries and len(existing) == len(files):
                    raise SkipCase("already preprocessed")
                raise Ct2mriError(f"{existing[0]} exists (use --force to overwrite or --skip-existing)")
            ct = read_volume(pair.ct, series_uid)
            mri = read_volume(pair.mri)
            prepared = prepare_pair(ct, mri, config, register=register, affine=affine)
            for note in prepared.notes:
                emit(pair.case, "note", note)
            entry = write_prepared_case(out_dir, pair.case, pair, prepared, config)
            entries[pair.case] = entry
            result.entries.append(entry)
            write_manifest(out_dir, config, entries.values())
            return f"{time.perf_counter() - started:.1f} s"

        outcome = run_batch(pairs, lambda pair: pair.case, work, emit)
        result.failures, result.skipped = outcome.failures, outcome.skipped
    finally:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
    return result
