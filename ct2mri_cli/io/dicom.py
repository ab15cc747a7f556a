"""DICOM output: a synthetic series in the CT's study and frame of reference, for viewers.

A PET/CT reader opens the synthetic T1 beside the CT: the series shares the CT's
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

import numpy as np

from ..errors import Ct2mriError
from .volumes import Volume, slice_axis

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
STORED_MAX = 1000
_LPS = np.array([-1.0, -1.0, 1.0])
# tags carried over from the CT: patient, study, frame of reference
CARRIED_TAGS = (
    "0010|0010", "0010|0020", "0010|0030", "0010|0040", "0010|1010",  # patient name, ID, birth date, sex, age
    "0008|0020", "0008|0030", "0008|0050", "0008|0090", "0008|1030", "0020|0010",  # study date, time, accession, ...
    "0020|000d", "0020|0052", "0008|0080",  # study UID, frame of reference UID, institution
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
    tags.update({
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
    })
    return tags


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
    shared.update({"0020|0037": orientation, "0028|0030": _format(np.array([spacing[1], spacing[0]])),
                   "0018|0050": thickness, "0018|0088": f"{between:.6g}"})

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to the C locale
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()  # write the UIDs set here, not new ones
        for k in range(stored.shape[2]):
            image = sitk.GetImageFromArray(np.ascontiguousarray(stored[:, :, k].T))  # rows along j, columns along i
            image.SetSpacing((float(spacing[0]), float(spacing[1])))
            position = (affine @ np.array([0.0, 0.0, float(k), 1.0]))[:3] * _LPS
            for tag, value in shared.items():
                image.SetMetaData(tag, value)
            image.SetMetaData("0008|0018", new_uid())
            image.SetMetaData("0020|0013", str(k + 1))
            image.SetMetaData("0020|0032", _format(position))
            image.SetMetaData("0020|1041", f"{position[2]:.6g}")
            writer.SetFileName(str(staging / f"{k + 1:05d}.dcm"))
            writer.Execute(image)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / folder.name)
            try:
                os.replace(staging, folder)
            except BaseException:
                os.replace(old / folder.name, folder)  # the earlier series comes back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return folder
