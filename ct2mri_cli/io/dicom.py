"""DICOM series: reading a folder into a volume, and writing a synthetic series beside the CT.

Reading picks the series a CT translation wants when a folder holds several (CT before other
modalities, original before localisers and derived images, axial before other planes, then the
most slices), keeps the first slice's tags, and places the slices where their positions say
(a gantry-tilted series on a sheared grid; spacing that changes within a series is refused).

Writing: a PET/CT reader opens the synthetic T1 beside the CT: the series shares the CT's
StudyInstanceUID, FrameOfReferenceUID, patient and study tags and slice geometry (positions and
orientation of every slice, tilted series included), and gets its own Series and SOP Instance
UIDs.  It is marked Modality MR, ImageType DERIVED\\SECONDARY, with a SeriesDescription and
ImageComments that say synthetic and not for diagnosis.  Inputs without DICOM tags (NIfTI) get
fresh study and frame-of-reference UIDs.  Values in [0, 1] are stored as integers 0-1000.
"""

from __future__ import annotations

import datetime
import locale
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Ct2mriError
from .images import sitk_from_voxels
from .volumes import Volume, gantry_tilt_degrees, one_line, slice_axis, volume_from_sitk

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
STORED_MAX = 1000
_LPS = np.array([-1.0, -1.0, 1.0])
# tags carried over from the CT: patient, study, frame of reference
CARRIED_TAGS = (
    "0010|0010",
    "0010|0020",
    "0010|0030",
    "0010|0040",
    "0010|1010",  # patient name, ID, birth date, sex, age
    "0008|0020",
    "0008|0030",
    "0008|0050",
    "0008|0090",
    "0008|1030",
    "0020|0010",  # study date, time, accession, ...
    "0020|000d",
    "0020|0052",
    "0008|0080",  # study UID, frame of reference UID, institution
)


def is_dicom_file(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_dicom_folder(path: Path, series_uid: str | None) -> Volume:
    """The DICOM series of a folder (``series_uid``, or the one :func:`_pick_series` picks) as a
    :class:`Volume` on the geometry of its slice positions, with the first slice's tags."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    try:
        uids = list(reader.GetGDCMSeriesIDs(str(path)))
    except Exception as exc:
        raise Ct2mriError(f"{path}: cannot scan the folder for DICOM files ({one_line(exc)})") from None
    if not uids:
        raise Ct2mriError(f"{path}: folder holds no DICOM series")
    files = {uid: list(reader.GetGDCMSeriesFileNames(str(path), uid)) for uid in uids}
    notes: list[str] = []
    if series_uid is not None:
        if series_uid not in files:
            raise Ct2mriError(f"{path}: no DICOM series {series_uid} (found: {', '.join(uids)})")
        chosen = series_uid
    else:
        chosen, why = _pick_series(files)
        if len(uids) > 1:
            others = ", ".join(f"{uid} ({len(files[uid])} files)" for uid in uids if uid != chosen)
            notes.append(
                f"{path}: {len(uids)} DICOM series; using {chosen} ({len(files[chosen])} files), {why} "
                f"(others: {others}; pick one with --series UID)"
            )
    reader.SetFileNames(files[chosen])
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()  # GDCM applies rescale slope and intercept
    except Exception as exc:
        raise Ct2mriError(f"{path}: cannot read DICOM series {chosen} ({one_line(exc)})") from None
    volume = volume_from_sitk(image, path, f"DICOM series {chosen} ({len(files[chosen])} files)")
    volume.notes.extend(notes)
    volume.dicom = {tag: reader.GetMetaData(0, tag).strip() for tag in reader.GetMetaDataKeys(0)}
    positions = _slice_positions(reader, image.GetDepth())
    if positions is not None:
        _apply_slice_positions(volume, positions, path)
    return volume


def read_dicom_tags(file: str) -> dict[str, str]:
    """The DICOM tags of one file (pixel data not read)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return {tag: reader.GetMetaData(tag).strip() for tag in reader.GetMetaDataKeys()}


def _pick_series(files: dict[str, list[str]]) -> tuple[str, str]:
    """The series a CT translation wants: CT before other modalities, original images before
    localisers and derived ones, axial slices before others, then the most slices.  Returns the
    UID and the rule that decided."""
    if len(files) == 1:
        return next(iter(files)), "the only series"

    def rank(uid: str) -> tuple:
        try:
            tags = read_dicom_tags(files[uid][0])
        except RuntimeError:
            tags = {}
        image_type = tags.get("0008|0008", "").upper()
        try:
            row_col = [float(v) for v in tags.get("0020|0037", "").split("\\")]
            axial = abs(float(np.cross(row_col[:3], row_col[3:6])[2])) > 0.8
        except (ValueError, IndexError):
            axial = False
        return (
            tags.get("0008|0060", "").upper() == "CT",
            not any(w in image_type for w in ("LOCALIZER", "SCOUT")),
            "DERIVED" not in image_type,
            axial,
            len(files[uid]),
            uid,
        )

    ranks = {uid: rank(uid) for uid in files}  # one tag read per series
    ranked = sorted(files, key=ranks.__getitem__, reverse=True)
    best, runner_up = ranks[ranked[0]], ranks[ranked[1]]
    reasons = (
        "the CT series",
        "not a localiser",
        "original, not derived",
        "the axial series",
        "the one with the most slices",
    )
    decided = next((reason for reason, a, b in zip(reasons, best, runner_up) if a != b), "the last by UID")
    return ranked[0], decided


def _slice_positions(reader: Any, depth: int) -> np.ndarray | None:
    """ImagePositionPatient of every slice in the reader's order (LPS mm), or None if any lacks it."""
    positions = []
    for index in range(depth):
        try:
            text = reader.GetMetaData(index, "0020|0032")
            positions.append([float(v) for v in text.split("\\")])
        except (RuntimeError, ValueError):
            return None
    return np.asarray(positions, dtype=np.float64) if len(positions) == depth else None


SPACING_TOLERANCE = 0.01  # relative change of slice spacing accepted as uniform
TILT_DEGREES = 0.1  # steps this far from the slice normal are a gantry tilt


def _apply_slice_positions(volume: Volume, positions_lps: np.ndarray, path: Path) -> None:
    """Put the volume on the geometry its slice positions describe, as dcm2niix does.

    The series reader takes the slice axis as the normal of the slice plane and the spacing from
    two positions.  With gantry tilt the slices step along another direction: the true voxel-to-
    world map is sheared, and the affine is corrected to it (outputs are written on it, so every
    voxel stays where it was acquired).  Spacing that changes within the series cannot be one grid
    and is refused with the reason, rather than misplacing slices.
    """
    if len(positions_lps) < 2:
        return
    ras = positions_lps * _LPS
    steps = np.diff(ras, axis=0)
    lengths = np.linalg.norm(steps, axis=1)
    mean = float(lengths.mean())
    if mean <= 0 or np.abs(lengths - mean).max() > SPACING_TOLERANCE * mean:
        changes = np.flatnonzero(np.abs(np.diff(lengths)) > SPACING_TOLERANCE * mean)
        where = f", changing after slice {int(changes[0]) + 2} of {len(ras)}" if changes.size else ""
        raise Ct2mriError(
            f"{path}: the slice spacing changes within the series ({lengths.min():.2f} to {lengths.max():.2f} mm{where}); "
            "one regular grid cannot hold it (reconstruct or resample the series with even spacing)"
        )
    affine = np.asarray(volume.affine, dtype=np.float64)
    # slice k of the array is the k-th file of the reader: it lies at ras[k]
    step = (ras[-1] - ras[0]) / (len(ras) - 1)
    corrected = affine.copy()
    corrected[:3, 2] = step
    corrected[:3, 3] = ras[0]
    angle = gantry_tilt_degrees(corrected)
    if angle > TILT_DEGREES:
        volume.affine = corrected
        volume.notes.append(
            f"{path}: gantry tilt of {angle:.1f} degrees: the slices step {np.linalg.norm(step):.3f} mm along the tilted "
            "axis; the geometry is taken from the slice positions (a sheared affine), so every voxel stays where it was acquired"
        )


def new_uid() -> str:
    """A DICOM UID under the 2.25 root (derived from a random UUID; no registered root needed)."""
    return f"2.25.{uuid.uuid4().int}"


def _format(values: np.ndarray) -> str:
    return "\\".join(f"{float(v):.6f}".rstrip("0").rstrip(".") if abs(v) > 1e-9 else "0" for v in values)


def _slices_last(data: np.ndarray, affine: np.ndarray, from_dicom: bool) -> tuple[np.ndarray, np.ndarray]:
    """Data and affine with the slice axis last (DICOM slices are 2D images stacked along it):
    a DICOM input's own slices (its third axis), else the axis closest to the volume's slices."""
    axis = 2 if from_dicom else slice_axis(affine)
    if axis == 2:
        return data, affine
    order = [a for a in range(3) if a != axis] + [axis]
    moved = affine.copy()
    moved[:3, :3] = affine[:3, :3][:, order]
    return np.transpose(data, order), moved


def synthetic_series_tags(reference: Volume, description: str, comments: str, software: str) -> dict[str, str]:
    """The tags every slice of the synthetic series shares (patient, study, series, provenance)."""
    now = datetime.datetime.now()
    source = reference.dicom or {}
    tags = {tag: source[tag] for tag in CARRIED_TAGS if source.get(tag)}
    tags.setdefault("0020|000d", new_uid())
    tags.setdefault("0020|0052", new_uid())
    tags.setdefault("0010|0010", "ANONYMOUS")
    tags.setdefault("0010|0020", "UNKNOWN")  # a file name is no patient ID (and may hold what identifies one)
    tags.setdefault("0008|0020", now.strftime("%Y%m%d"))
    tags.setdefault("0008|0030", now.strftime("%H%M%S"))
    try:
        series_number = str(int(source.get("0020|0011", "0")) + 1000)
    except ValueError:
        series_number = "1000"
    tags.update(
        {
            "0008|0016": MR_IMAGE_STORAGE,
            "0008|0060": "MR",
            "0008|0008": "DERIVED\\SECONDARY",
            "0018|0020": "RM",  # Scanning Sequence: research mode (no acquisition made this image)
            "0018|0021": "NONE",  # Sequence Variant
            "0018|0023": "3D",  # MR Acquisition Type
            "0020|000e": new_uid(),
            "0020|0011": series_number,
            "0008|103e": description[:64],
            "0020|4000": comments[:10240],
            "0008|2111": comments[:1024],  # Derivation Description
            "0008|0070": "ct2mri",
            "0018|1020": software[:64],
            "0008|0021": now.strftime("%Y%m%d"),
            "0008|0031": now.strftime("%H%M%S"),
            "0028|1050": str(STORED_MAX // 2),
            "0028|1051": str(STORED_MAX),
            "0028|1052": "0",
            "0028|1053": "1",
        }
    )
    return tags


def _replace_folder(folder: Path, staging: Path) -> None:
    """Put the folder ``staging`` in the place of ``folder``; the earlier one comes back on failure."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
    os.replace(folder, old / folder.name)
    try:
        os.replace(staging, folder)
    except BaseException:
        os.replace(old / folder.name, folder)  # the earlier series comes back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_dicom_series(
    values01: np.ndarray, reference: Volume, folder: Path, description: str, comments: str, software: str
) -> Path:
    """Write ``values01`` (on ``reference``'s grid, in [0, 1]) as a DICOM series in ``folder``.

    The folder appears whole or not at all (written under a temporary name, then renamed); an
    existing folder of that name is replaced.  Returns the folder.
    """
    import SimpleITK as sitk

    values01 = np.asarray(values01)
    if values01.shape != reference.shape:
        raise Ct2mriError(f"{folder}: the volume's shape {values01.shape} differs from the CT's {reference.shape}")
    from_dicom = bool(reference.dicom)
    data, affine = _slices_last(values01, np.asarray(reference.affine, dtype=np.float64), from_dicom)
    stored = np.rint(np.clip(data, 0.0, 1.0) * STORED_MAX).astype(np.int16)
    columns = affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    row_dir, col_dir = columns[:, 0] / spacing[0], columns[:, 1] / spacing[1]
    between = abs(float(columns[:, 2] @ np.cross(row_dir, col_dir)))  # along the normal (a tilted step is longer)
    orientation = _format(np.concatenate([row_dir * _LPS, col_dir * _LPS]))
    shared = synthetic_series_tags(reference, description, comments, software)
    thickness = (reference.dicom.get("0018|0050") if from_dicom else None) or f"{between:.6g}"
    shared.update(
        {
            "0020|0037": orientation,
            "0028|0030": _format(np.array([spacing[1], spacing[0]])),
            "0018|0050": thickness,
            "0018|0088": f"{between:.6g}",
        }
    )

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to the C locale
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()  # write the UIDs set here, not new ones
        for k in range(stored.shape[2]):
            image = sitk_from_voxels(stored[:, :, k], spacing[:2])  # rows along j, columns along i
            position = (affine @ np.array([0.0, 0.0, float(k), 1.0]))[:3] * _LPS
            for tag, value in shared.items():
                image.SetMetaData(tag, value)
            image.SetMetaData("0008|0018", new_uid())
            image.SetMetaData("0020|0013", str(k + 1))
            image.SetMetaData("0020|0032", _format(position))
            image.SetMetaData("0020|1041", f"{position[2]:.6g}")
            writer.SetFileName(str(staging / f"{k + 1:05d}.dcm"))
            writer.Execute(image)
        _replace_folder(folder, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return folder
