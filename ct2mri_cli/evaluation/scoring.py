"""Scoring synthetic MRIs against reference MRIs: pairing the files, scoring each pair, writing tables.

A case is a prediction, its reference and optionally a brain mask, all on one voxel grid.  Cases
come from two files, from folders matched by case name, or from a CSV.  Scores are those of
:func:`ct2mri_cli.evaluation.metrics.evaluate_volumes`, with flicker and the z-gradient ratio taken along the
voxel axis closest to the head's inferior-superior direction (from the reference's affine).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from ..io.cases import read_case_csv, relative_to_table, scan_images
from ..io.volumes import read_volume, slice_axis
from .metrics import METRIC_NAMES, evaluate_volumes, to_unit_range

# Names ``ct2mri translate`` gives to batch outputs and saved masks: ``<case>_synT1``, ``<case>_brainmask``.
PRED_SUFFIX = "_synT1"
MASK_SUFFIX = "_brainmask"
AFFINE_TOLERANCE_MM = 1e-3
OUTPUT_SUFFIXES = (".csv", ".json")
CSV_COLUMNS = ("case", "pred", "ref", "mask", "mode", "normalisation", "slice_axis", *METRIC_NAMES, "voxels", "error")
MEAN_CASE = "mean"


@dataclass
class EvalCase:
    """One prediction to score against its reference, optionally inside a mask."""

    case: str
    pred: Path
    ref: Path
    mask: Path | None = None


@dataclass
class CaseScore:
    """The scores of one case and how they were obtained."""

    case: EvalCase
    metrics: dict[str, float]
    normalisation: dict[str, str]
    slice_axis: int
    notes: list[str] = field(default_factory=list)


def evaluate_case(case: EvalCase, whole_volume: bool = False, normalise: str = "auto") -> CaseScore:
    """Read one case's volumes, check they share a grid and score them.

    Raises :class:`Ct2mriError` (naming the files) for unreadable files, shapes that differ or an
    empty mask; differing affines only add a note, since the voxels are still compared one to one.
    """
    pred = read_volume(case.pred)
    ref = read_volume(case.ref)
    notes = list(pred.notes) + list(ref.notes)
    if pred.shape != ref.shape:
        raise Ct2mriError(f"{case.pred}: shape {_dims(pred.shape)} differs from {case.ref} {_dims(ref.shape)}")
    notes += _affine_note(case.pred, pred.affine, case.ref, ref.affine)
    mask = None
    if case.mask is not None:
        mask_volume = read_volume(case.mask)
        if mask_volume.shape != ref.shape:
            raise Ct2mriError(
                f"{case.mask}: mask shape {_dims(mask_volume.shape)} differs from {case.ref} {_dims(ref.shape)}"
            )
        notes += _affine_note(case.mask, mask_volume.affine, case.ref, ref.affine)
        mask = np.asarray(mask_volume.data) > 0
        if not mask.any():
            raise Ct2mriError(f"{case.mask}: the mask selects no voxel")
    pred01, pred_rescaled = to_unit_range(pred.data, mask, normalise, source=str(case.pred))
    ref01, ref_rescaled = to_unit_range(ref.data, mask, normalise, source=str(case.ref))
    if normalise == "none":
        for path, data in ((case.pred, pred01), (case.ref, ref01)):
            lo, hi = float(data.min()), float(data.max())
            if lo < 0.0 or hi > 1.0:
                notes.append(f"{path}: intensities span [{lo:g}, {hi:g}] but PSNR and SSIM assume the range [0, 1]")
    axis = slice_axis(ref.affine)
    try:
        metrics = evaluate_volumes(pred01, ref01, mask, whole_volume=whole_volume, normalise="none", axis=axis)
    except ValueError as exc:
        raise Ct2mriError(f"{case.pred} vs {case.ref}: {exc}") from None
    normalisation = {"pred": "robust" if pred_rescaled else "as-is", "ref": "robust" if ref_rescaled else "as-is"}
    return CaseScore(case, metrics, normalisation, axis, notes)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _affine_note(path: Path, affine: np.ndarray, ref_path: Path, ref_affine: np.ndarray) -> list[str]:
    difference = float(np.max(np.abs(np.asarray(affine, dtype=np.float64) - np.asarray(ref_affine, dtype=np.float64))))
    if difference <= AFFINE_TOLERANCE_MM:
        return []
    return [
        f"{path}: affine differs from {ref_path}'s (by up to {difference:.3g}); voxels are compared one to one anyway"
    ]


def mean_metrics(scores: list[CaseScore]) -> dict[str, float]:
    """The mean of every metric (and of ``voxels``) over the scored cases."""
    if not scores:
        raise ValueError("no scored case to average")
    keys = [*METRIC_NAMES, "voxels"]
    return {key: float(np.mean([score.metrics[key] for score in scores])) for key in keys}


# --- pairing -----------------------------------------------------------------------------------------


def _strip(name: str, suffix: str) -> str | None:
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else None


def cases_from_dirs(
    pred_dir: str | os.PathLike, ref_dir: str | os.PathLike, mask_dir: str | os.PathLike | None = None
) -> tuple[list[EvalCase], list[tuple[str, str]]]:
    """Cases matched by case name across folders, and the unmatched ones as (case, message).

    A prediction ``<case>_synT1`` (``ct2mri translate``'s batch naming) matches the reference
    ``<case>`` when no reference has its exact name; a mask may be named ``<case>`` or
    ``<case>_brainmask``.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    preds, refs = scan_images(pred_dir, "--pred-dir"), scan_images(ref_dir, "--ref-dir")
    masks = scan_images(Path(mask_dir), "--mask-dir") if mask_dir is not None else None
    if not preds and not refs:
        raise Ct2mriError(f"{pred_dir}, {ref_dir}: no images found")
    cases: list[EvalCase] = []
    failures: list[tuple[str, str]] = []
    matched: set[str] = set()
    for name, pred in preds.items():
        stripped = _strip(name, PRED_SUFFIX)
        case = name if name in refs else stripped if stripped in refs else None
        if case is None:
            failures.append((name, f"{pred}: no reference named {name} in {ref_dir}"))
            continue
        if case in matched:
            failures.append((name, f"{pred}: reference {refs[case]} is already matched to another prediction"))
            continue
        matched.add(case)
        mask = None
        if masks is not None:
            mask = masks.get(case) or masks.get(case + MASK_SUFFIX)
            if mask is None:
                failures.append((case, f"{pred}: no mask named {case} or {case}{MASK_SUFFIX} in {mask_dir}"))
                continue
        cases.append(EvalCase(case, pred, refs[case], mask))
    for name in sorted(set(refs) - matched):
        failures.append((name, f"{refs[name]}: no prediction named {name} or {name}{PRED_SUFFIX} in {pred_dir}"))
    cases.sort(key=lambda c: c.case)
    return cases, failures


def cases_from_csv(path: str | os.PathLike) -> list[EvalCase]:
    """Cases from a CSV with columns case, pred, ref and optionally mask.

    Relative paths are relative to the CSV's folder; an empty mask cell means no mask.
    """
    cases = []
    for row in read_case_csv(path, ("case", "pred", "ref"), ("mask",)):
        mask = row.get("mask") or None
        cases.append(
            EvalCase(
                row["case"],
                relative_to_table(path, row["pred"]),
                relative_to_table(path, row["ref"]),
                relative_to_table(path, mask) if mask else None,
            )
        )
    return cases


# --- output ------------------------------------------------------------------------------------------


def check_output_name(path: Path) -> None:
    """Refuse an output name that is neither .csv nor .json."""
    if not path.name.lower().endswith(OUTPUT_SUFFIXES):
        raise Ct2mriError(f"{path}: the output must end in .csv or .json")


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def results_document(
    scores: list[CaseScore], failures: list[tuple[str, str]], whole_volume: bool, normalise: str, with_mean: bool
) -> dict[str, Any]:
    """Everything :func:`write_results` writes, as a JSON-ready dictionary (non-finite numbers become null)."""
    cases = []
    for score in scores:
        entry: dict[str, Any] = {
            "case": score.case.case,
            "pred": str(score.case.pred),
            "ref": str(score.case.ref),
            "mask": None if score.case.mask is None else str(score.case.mask),
            "mode": _case_mode(score.case, whole_volume),
            "normalisation": dict(score.normalisation),
            "slice_axis": score.slice_axis,
        }
        entry.update({key: _finite_or_none(value) for key, value in score.metrics.items()})
        cases.append(entry)
    mean = None
    if with_mean and scores:
        mean = {key: _finite_or_none(value) for key, value in mean_metrics(scores).items()}
    return {
        "mode": _mode([s.case for s in scores], whole_volume),
        "normalise": normalise,
        "cases": cases,
        "mean": mean,
        "failures": [{"case": case, "error": message} for case, message in failures],
    }


def _case_mode(case: EvalCase, whole_volume: bool) -> str:
    """What a case's scores cover: its mask, or every voxel (asked for, or no mask given)."""
    return "whole-volume" if whole_volume or case.mask is None else "masked"


def _mode(cases: list[EvalCase], whole_volume: bool) -> str:
    """The run's mode: that of every case, or "mixed" (no case scored: what was asked for)."""
    modes = {_case_mode(case, whole_volume) for case in cases}
    if not modes:
        return "whole-volume" if whole_volume else "masked"
    return modes.pop() if len(modes) == 1 else "mixed"


def _csv_rows(
    scores: list[CaseScore], failures: list[tuple[str, str]], whole_volume: bool, with_mean: bool
) -> list[dict[str, str]]:
    mode = _mode([s.case for s in scores], whole_volume)
    rows = []
    for score in scores:
        row = {
            "case": score.case.case,
            "pred": str(score.case.pred),
            "ref": str(score.case.ref),
            "mask": "" if score.case.mask is None else str(score.case.mask),
            "mode": _case_mode(score.case, whole_volume),
            "normalisation": f"pred={score.normalisation['pred']};ref={score.normalisation['ref']}",
            "slice_axis": str(score.slice_axis),
            "error": "",
        }
        row.update({key: repr(float(value)) for key, value in score.metrics.items()})
        rows.append(row)
    if with_mean and scores:
        row = {column: "" for column in CSV_COLUMNS}
        row.update({"case": MEAN_CASE, "mode": mode})
        row.update({key: repr(value) for key, value in mean_metrics(scores).items()})
        rows.append(row)
    for case, message in failures:
        row = {column: "" for column in CSV_COLUMNS}
        row.update({"case": case, "mode": mode, "error": message})
        rows.append(row)
    return rows


def write_results(
    path: str | os.PathLike,
    scores: list[CaseScore],
    failures: list[tuple[str, str]],
    whole_volume: bool = False,
    normalise: str = "auto",
    with_mean: bool = False,
) -> None:
    """Write the scores as CSV or JSON (by the name's suffix), atomically.

    CSV: one row per scored case (full-precision numbers, ``inf`` for the PSNR of identical
    volumes), then a ``mean`` row when ``with_mean``, then one row per failed case with its
    ``error``.  JSON: :func:`results_document`.
    """
    path = Path(path)
    check_output_name(path)
    with atomic_output(path) as tmp:
        if path.name.lower().endswith(".json"):
            document = results_document(scores, failures, whole_volume, normalise, with_mean)
            tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        else:
            with tmp.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
                writer.writeheader()
                writer.writerows(_csv_rows(scores, failures, whole_volume, with_mean))
