"""Reading and writing 3D medical volumes with their geometry.

Every reader returns a :class:`Volume`: the voxel array in NIfTI index order (i, j, k) and the
4x4 voxel-to-world affine in RAS+ millimetres, exactly as nibabel uses it.  Supported inputs are
NIfTI (.nii, .nii.gz), DICOM series folders, NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and
InVesalius projects (.inv3).  Anything that cannot be used as one 3D scalar volume with a valid
geometry is refused with a one-line :class:`Ct2mriError` naming the file and the problem.

InVesalius projects store no affine, only the slice spacing.  The voxel matrix is kept as
(slice, row, column); we assume slices run inferior to superior, rows posterior to anterior (the
viewer stores rows bottom-up) and columns from the patient's right to left (the DICOM column
direction of an axial acquisition).  The first two are checked on the bundled head CT by the tests
(the head shrinks towards the vertex, the face is at high rows); left-right cannot be checked from
a head image and is the stated assumption.  The resulting orientation is LAS, centred on the
world origin.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import Ct2mriError
from .atomic import atomic_output
from .images import affine_from_sitk, array_from_sitk

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
INVESALIUS_SUFFIX = ".inv3"
IMAGE_SUFFIXES = (*NIFTI_SUFFIXES, *SITK_SUFFIXES, INVESALIUS_SUFFIX)
_ORTHONORMAL_TOL = 1e-3


@dataclass
class Volume:
    """One 3D scalar volume with its geometry.

    ``data`` is indexed (i, j, k) like nibabel; ``affine`` maps voxel indices to RAS+ mm.
    ``header`` is the source NIfTI header (so qform/sform codes survive a rewrite) or None.
    ``notes`` holds things the user should be told (e.g. which DICOM series was picked);
    ``dicom`` the tags of a DICOM series' first slice (study, patient, frame of reference).
    """

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None
    path: Path | None = None
    description: str = ""
    notes: list[str] = field(default_factory=list)
    dicom: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """How to refer to this volume in messages."""
        return str(self.path) if self.path is not None else (self.description or "volume")

    def with_data(self, data: np.ndarray, description: str | None = None) -> Volume:
        """A volume on the same grid holding ``data`` (same first three dimensions)."""
        if tuple(data.shape[:3]) != self.shape:
            raise ValueError(f"array shape {data.shape} does not match the grid {self.shape}")
        return Volume(
            data=data,
            affine=self.affine.copy(),
            header=self.header,
            path=self.path,
            description=self.description if description is None else description,
            dicom=self.dicom,
        )


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error."""
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


def _lower_name(path: Path) -> str:
    return path.name.lower()


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read a 3D volume from a file or DICOM folder and check that it is usable.

    ``series_uid`` picks one DICOM series when the folder holds several (by default the one with
    the most files; the choice is reported in ``Volume.notes``).
    """
    path = Path(path)
    if not path.exists():
        raise Ct2mriError(f"{path}: no such file or folder")
    with itk_messages() as messages:
        volume = _read_any(path, series_uid)
    volume.notes.extend(f"{path}: ITK: {message}" for message in messages)
    _check_volume(volume)
    return volume


def _read_any(path: Path, series_uid: str | None) -> Volume:
    from .dicom import read_dicom_folder  # dicom builds on this module

    name = _lower_name(path)
    if path.is_dir():
        volume = read_dicom_folder(path, series_uid)
    elif name.endswith(NIFTI_SUFFIXES):
        volume = _read_nifti(path)
    elif name.endswith(INVESALIUS_SUFFIX):
        volume = _read_invesalius(path)
    elif name.endswith(SITK_SUFFIXES):
        volume = _read_with_sitk(path, "NRRD" if name.endswith((".nrrd", ".nhdr")) else "MetaImage")
    else:
        volume = _read_with_sitk(path, None)
    if series_uid is not None and not path.is_dir():
        volume.notes.append(f"--series {series_uid} ignored: {path} is not a DICOM folder")
    return volume


@contextlib.contextmanager
def itk_messages() -> Iterator[list[str]]:
    """Catch what ITK prints on the process's stderr (its C++ warnings bypass Python) while the
    block runs; the list yielded fills, on exit, with one line per ITK message, for ct2mri to
    report in its own words (or drop, when the block fails with an error of its own).  Anything
    else written to stderr meanwhile (a progress display) is passed on unchanged."""
    messages: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield messages
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            found, rest = split_itk_output(capture.read().decode("utf-8", "replace"))
            messages.extend(found)
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


_ITK_BLOCK = re.compile(r"(?:WARNING|ERROR): In [^\n]*\n((?:[^\n]*\S[^\n]*(?:\n|$))*)\n?")


def split_itk_output(text: str) -> tuple[list[str], str]:
    """ITK's "WARNING: In file, line N" / "Class (0x...): message" blocks, one line each, and the
    text around them."""
    messages = []
    for match in _ITK_BLOCK.finditer(text):
        body = " ".join(line.strip() for line in match.group(1).splitlines() if line.strip())
        messages.append(re.sub(r"^\w+ \(0x[0-9a-fA-F]+\): ", "", body))
    return list(dict.fromkeys(m for m in messages if m)), _ITK_BLOCK.sub("", text)


def _squeeze_to_3d(data: np.ndarray, path: Path) -> np.ndarray:
    """Accept (X, Y, Z) and (X, Y, Z, 1[, 1...]); refuse 2D and more than one volume."""
    if data.ndim > 3:
        extra = data.shape[3:]
        if int(np.prod(extra)) != 1:
            raise Ct2mriError(
                f"{path}: {data.ndim}D image of shape {'x'.join(map(str, data.shape))} holds "
                f"{int(np.prod(extra))} volumes; give one 3D volume"
            )
        data = data.reshape(data.shape[:3])
    if data.ndim < 3 or any(n == 1 for n in data.shape):
        raise Ct2mriError(f"{path}: 2D image of shape {'x'.join(map(str, data.shape))}; a 3D volume is needed")
    return data


def _read_nifti(path: Path) -> Volume:
    try:
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise Ct2mriError(f"{path}: not a NIfTI image")
        data = np.asanyarray(img.dataobj)
    except Ct2mriError:
        raise
    except Exception as exc:  # nibabel raises many types for corrupt or foreign files
        raise Ct2mriError(f"{path}: not a readable NIfTI image ({one_line(exc)})") from None
    if data.dtype.kind == "c" or data.dtype.fields is not None:
        raise Ct2mriError(f"{path}: unsupported voxel type {data.dtype} (a scalar image is needed)")
    data = _squeeze_to_3d(data, path)
    header = img.header.copy()
    return Volume(
        data=data.astype(np.float32, copy=False),
        affine=np.asarray(img.affine, dtype=np.float64),
        header=header,
        path=path,
        description="NIfTI",
    )


def volume_from_sitk(image: Any, path: Path, description: str) -> Volume:
    """The :class:`Volume` of a SimpleITK image read from ``path``; refuses what is not one 3D scalar volume."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise Ct2mriError(
            f"{path}: {image.GetNumberOfComponentsPerPixel()} components per voxel (a scalar image is needed)"
        )
    import SimpleITK as sitk

    dim = image.GetDimension()
    size = tuple(image.GetSize())
    if dim == 4:
        if size[3] != 1:
            raise Ct2mriError(
                f"{path}: 4D image of shape {'x'.join(map(str, size))} holds {size[3]} volumes; give one 3D volume"
            )
        image = sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
        dim = 3
    if dim != 3:
        raise Ct2mriError(f"{path}: {dim}D image of shape {'x'.join(map(str, size))}; a 3D volume is needed")
    data = _squeeze_to_3d(array_from_sitk(image), path)
    return Volume(
        data=data.astype(np.float32, copy=False),
        affine=affine_from_sitk(image),
        header=None,
        path=path,
        description=description,
    )


def _read_with_sitk(path: Path, description: str | None) -> Volume:
    import SimpleITK as sitk

    from .dicom import is_dicom_file  # dicom builds on this module

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        image = reader.Execute()
    except Exception as exc:
        reason = one_line(exc)
        if "Unable to determine ImageIO reader" in str(exc) or "Could not create IO object" in str(exc):
            reason = "unknown or unsupported image format"
        raise Ct2mriError(f"{path}: not a readable image ({reason})") from None
    if description is None:
        description = f"{path.suffix.lstrip('.').upper() or 'image'} (SimpleITK)"
    if (image.GetDimension() == 2 or image.GetSize()[2] == 1) and is_dicom_file(path):
        raise Ct2mriError(f"{path}: a single DICOM slice (2D); give the folder holding the whole series")
    return volume_from_sitk(image, path, description)


def invesalius_affine(shape_ijk: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """The LAS affine assumed for an InVesalius matrix (see the module notes), centred on 0."""
    affine = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    centre = (np.asarray(shape_ijk, dtype=np.float64) - 1.0) / 2.0
    affine[:3, 3] = -affine[:3, :3] @ centre
    return affine


def _read_invesalius(path: Path) -> Volume:
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            if "main.plist" not in members:
                raise Ct2mriError(f"{path}: not an InVesalius project (no main.plist inside)")
            meta = plistlib.loads(archive.extractfile(members["main.plist"]).read())  # type: ignore[union-attr]
            matrix = meta.get("matrix", {})
            filename = Path(str(matrix.get("filename", "matrix.dat"))).name
            shape = tuple(int(n) for n in matrix.get("shape", ()))
            dtype = np.dtype(str(matrix.get("dtype", "int16"))).newbyteorder("<")
            spacing = tuple(float(s) for s in meta.get("spacing", ()))
            if len(shape) != 3 or len(spacing) != 3:
                raise Ct2mriError(f"{path}: main.plist lacks a 3D matrix shape or spacing")
            if filename not in members:
                raise Ct2mriError(f"{path}: the project has no {filename}")
            raw = archive.extractfile(members[filename]).read()  # type: ignore[union-attr]
    except Ct2mriError:
        raise
    except Exception as exc:
        raise Ct2mriError(f"{path}: not a readable InVesalius project ({one_line(exc)})") from None
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise Ct2mriError(f"{path}: {filename} holds {len(raw)} bytes, main.plist promises {expected}")
    matrix_kji = np.frombuffer(raw, dtype=dtype).reshape(shape)
    data = _squeeze_to_3d(matrix_kji.transpose(2, 1, 0), path).astype(np.float32)
    modality = str(meta.get("modality", "")).strip()
    return Volume(
        data=data,
        affine=invesalius_affine(data.shape, (spacing[0], spacing[1], spacing[2])),
        header=None,
        path=path,
        description=f"InVesalius project{f' ({modality})' if modality else ''}",
    )


def slice_axis(affine: np.ndarray) -> int:
    """The voxel axis (0, 1 or 2) whose direction is closest to world inferior-superior."""
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    direction = matrix / np.linalg.norm(matrix, axis=0)
    return int(np.argmax(np.abs(direction[2])))


def gantry_tilt_degrees(affine: np.ndarray) -> float:
    """How far the slice axis leans from the normal of the slice plane (0 for an orthogonal grid)."""
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    normal = np.cross(matrix[:, 0], matrix[:, 1])
    cosine = abs(normal @ matrix[:, 2]) / (np.linalg.norm(normal) * np.linalg.norm(matrix[:, 2]))
    return float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0))))


def is_sheared(affine: np.ndarray) -> bool:
    """Whether the voxel axes are not perpendicular to each other."""
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    direction = matrix / np.linalg.norm(matrix, axis=0)
    return bool(np.abs(direction.T @ direction - np.eye(3)).max() > _ORTHONORMAL_TOL)


MAX_TILT_DEGREES = 45.0


def check_affine(affine: np.ndarray, source: str) -> None:
    """Refuse degenerate affines and shear other than a gantry tilt (in-plane axes perpendicular,
    the slice axis leaning from their normal by less than :data:`MAX_TILT_DEGREES`)."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise Ct2mriError(f"{source}: the voxel-to-world affine is missing or not finite")
    matrix = affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing < 1e-6) or abs(np.linalg.det(matrix)) < 1e-9 * max(float(np.prod(spacing)), 1e-30):
        raise Ct2mriError(f"{source}: degenerate affine (a voxel axis has zero length or axes are parallel)")
    direction = matrix / spacing
    error = np.abs(direction.T @ direction - np.eye(3)).max()
    in_plane = abs(float(direction[:, 0] @ direction[:, 1]))
    if error > _ORTHONORMAL_TOL and (in_plane > _ORTHONORMAL_TOL or gantry_tilt_degrees(affine) >= MAX_TILT_DEGREES):
        raise Ct2mriError(f"{source}: direction cosines are not orthonormal (sheared affine, deviation {error:.3g})")


def _check_volume(volume: Volume) -> None:
    data = volume.data
    source = volume.name
    if data.size == 0:
        raise Ct2mriError(f"{source}: the volume is empty (shape {'x'.join(map(str, data.shape))})")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise Ct2mriError(f"{source}: {bad} voxels are NaN or Inf")
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        raise Ct2mriError(f"{source}: the volume is constant (every voxel is {lo:g})")
    check_affine(volume.affine, source)


def _nifti_header_for(reference: Volume, affine: np.ndarray) -> nib.Nifti1Header:
    if reference.header is not None:
        header = nib.Nifti1Header.from_header(reference.header)
    else:
        header = nib.Nifti1Header()
        # a qform is a rotation: it cannot hold a sheared (gantry-tilted) grid, so only the sform speaks
        header.set_qform(affine, code=0 if is_sheared(affine) else 1)
        header.set_sform(affine, code=1)
        header.set_xyzt_units("mm", "sec")
    return header


def write_nifti(
    array: np.ndarray,
    path: str | os.PathLike,
    reference: Volume,
    descrip: str | None = None,
    dtype: np.dtype | type = np.float32,
) -> None:
    """Write ``array`` on ``reference``'s grid as NIfTI, atomically.

    The affine, qform/sform and their codes come from the reference (its NIfTI header when it
    was read from NIfTI, else scanner-coded qform = sform = the affine).  ``descrip`` (at most 80
    characters) goes into the header for provenance.
    """
    path = Path(path)
    if not _lower_name(path).endswith(NIFTI_SUFFIXES):
        raise Ct2mriError(f"{path}: output must end in .nii or .nii.gz")
    array = np.asarray(array)
    if array.shape != reference.shape:
        raise Ct2mriError(
            f"{path}: refusing to write an array of shape {array.shape} on the grid {reference.shape} of {reference.name}"
        )
    out = array.astype(dtype, copy=False)
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise Ct2mriError(f"{path}: refusing to write NaN or Inf voxels")
    header = _nifti_header_for(reference, reference.affine)
    qform, qcode = header.get_qform(coded=True)
    sform, scode = header.get_sform(coded=True)
    img = nib.Nifti1Image(out, None, header=header)
    img.set_qform(qform if qform is not None else reference.affine, code=int(qcode))
    img.set_sform(sform if sform is not None else reference.affine, code=int(scode))
    if int(qcode) == 0 and int(scode) == 0:
        img.set_sform(reference.affine, code=1)
    img.set_data_dtype(out.dtype)
    img.header["scl_slope"] = np.nan
    img.header["scl_inter"] = np.nan
    img.header["cal_min"] = 0.0
    img.header["cal_max"] = 0.0
    if descrip is not None:
        img.header["descrip"] = descrip.encode("ascii", "replace")[:80]
    if not np.allclose(img.affine, reference.affine, atol=1e-4):
        raise Ct2mriError(f"{path}: the header affine would differ from {reference.name}'s; not written")
    with atomic_output(path) as tmp:
        nib.save(img, str(tmp))
