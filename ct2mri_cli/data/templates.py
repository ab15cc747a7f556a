"""Locating and loading the two source brains that keep their own finders (the registry of all
source brains is :mod:`ct2mri_cli.data.sources`):

- MNI ICBM152 2009a (nonlinear, symmetric): a skull-stripped T1 average with grey- and
  white-matter probability maps, 1 mm, shipped inside the ``nilearn`` package.  It is read from an
  installed ``nilearn`` if there is one, otherwise the three files are extracted from a nilearn
  wheel (``$CT2MRI_NILEARN_WHEEL`` or any ``nilearn-*.whl`` in the cache folder) into the cache
  folder.  nilearn itself is never imported.  Anything derived from these files carries the MNI
  copyright notice (:func:`mni_license_text`).
- Colin27 (``ch2.nii.gz`` head, ``ch2bet.nii.gz`` brain), 1 mm, from Debian's ``mricron-data``
  (``/usr/share/mricron/templates``, or ``$CT2MRI_COLIN27_DIR``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from ..errors import Ct2mriError
from ..io.atomic import atomic_output

NILEARN_VERSION = "0.14.1"
MNI_MEMBERS = {
    "t1": "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "nilearn/datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
MNI_CACHE_SUBDIR = "mni_icbm152_2009a"
COLIN27_DIR = Path("/usr/share/mricron/templates")
COLIN27_FILES = {"t1": "ch2.nii.gz", "brain": "ch2bet.nii.gz"}


@dataclass
class Template:
    """A source brain on its own 1 mm grid.

    ``t1`` is float32; ``gm``/``wm`` are probabilities in [0, 1] (MNI only); ``brain`` is the
    brain mask given with the source (Colin27 only); ``head`` says whether ``t1`` shows the whole
    head (Colin27) or only the skull-stripped brain (MNI).
    """

    name: str
    t1: np.ndarray
    affine: np.ndarray
    files: dict[str, Path]
    head: bool
    gm: np.ndarray | None = None
    wm: np.ndarray | None = None
    brain: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.t1.shape)  # type: ignore[return-value]


def cache_dir() -> Path:
    """The ct2mri cache folder: ``$CT2MRI_CACHE`` or ``~/.cache/ct2mri``."""
    env = os.environ.get("CT2MRI_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ct2mri"


def _how_to_get_mni() -> str:
    return (
        f"install nilearn, or run `pip download --no-deps nilearn=={NILEARN_VERSION} -d ~/.cache/ct2mri` "
        "(or point CT2MRI_NILEARN_WHEEL at a nilearn wheel)"
    )


def _installed_nilearn_data() -> Path | None:
    try:
        spec = importlib.util.find_spec("nilearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent


def _find_wheel() -> Path | None:
    env = os.environ.get("CT2MRI_NILEARN_WHEEL")
    if env:
        wheel = Path(env).expanduser()
        if not wheel.is_file():
            raise Ct2mriError(f"CT2MRI_NILEARN_WHEEL={wheel}: no such file; {_how_to_get_mni()}")
        return wheel
    folder = cache_dir()
    if not folder.is_dir():
        return None
    wheels = sorted(folder.glob("nilearn-*.whl"))
    return wheels[-1] if wheels else None


def _extract_from_wheel(wheel: Path, target: Path) -> dict[str, Path]:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise Ct2mriError(f"{wheel}: not a readable wheel ({exc}); {_how_to_get_mni()}") from None
    with archive:
        names = set(archive.namelist())
        missing = [member for member in MNI_MEMBERS.values() if member not in names]
        if missing:
            raise Ct2mriError(f"{wheel}: no {missing[0]} inside; {_how_to_get_mni()}")
        target.mkdir(parents=True, exist_ok=True)
        paths = {}
        for key, member in MNI_MEMBERS.items():
            dest = target / Path(member).name
            if not dest.is_file():
                with archive.open(member) as src, atomic_output(dest) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
            paths[key] = dest
    return paths


def find_mni_files() -> dict[str, Path]:
    """Paths of the MNI ICBM152 2009a T1, GM and WM files (extracting them from a wheel if needed)."""
    root = _installed_nilearn_data()
    if root is not None:
        paths = {key: root / member for key, member in MNI_MEMBERS.items()}
        if all(p.is_file() for p in paths.values()):
            return paths
    cached = {key: cache_dir() / MNI_CACHE_SUBDIR / Path(member).name for key, member in MNI_MEMBERS.items()}
    if all(p.is_file() for p in cached.values()) and not os.environ.get("CT2MRI_NILEARN_WHEEL"):
        return cached
    wheel = _find_wheel()
    if wheel is not None:
        return _extract_from_wheel(wheel, cache_dir() / MNI_CACHE_SUBDIR)
    raise Ct2mriError(f"the MNI ICBM152 2009a template was not found; {_how_to_get_mni()}")


def find_colin27_files() -> dict[str, Path]:
    """Paths of Colin27's head T1 and brain image (Debian ``mricron-data``)."""
    folder = Path(os.environ.get("CT2MRI_COLIN27_DIR", str(COLIN27_DIR)))
    paths = {key: folder / name for key, name in COLIN27_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise Ct2mriError(
                f"{path}: Colin27 template not found; install the Debian package mricron-data "
                "(or set CT2MRI_COLIN27_DIR to a folder holding ch2.nii.gz and ch2bet.nii.gz)"
            )
    return paths


def load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3D NIfTI image (a trailing axis of length 1 dropped) as float32 in canonical RAS, with
    its affine."""
    try:
        img = cast(nib.Nifti1Image, nib.load(str(path)))
        data = np.asarray(img.dataobj, dtype=np.float32)
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
    except Exception as exc:  # nibabel raises many types for damaged files
        raise Ct2mriError(f"{path}: not a readable NIfTI image ({exc})") from None
    if data.ndim != 3:
        raise Ct2mriError(f"{path}: expected a 3D image, found shape {data.shape}")
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))
    return np.asarray(canonical.dataobj, dtype=np.float32), np.asarray(canonical.affine, dtype=np.float64)


def _check_same_grid(
    name: str,
    ref_path: Path,
    ref: tuple[np.ndarray, np.ndarray],
    path: Path,
    other: tuple[np.ndarray, np.ndarray],
) -> None:
    if other[0].shape != ref[0].shape or not np.allclose(other[1], ref[1], atol=1e-4):
        raise Ct2mriError(f"{path}: not on the grid of {ref_path} ({name} files must match)")


def load_template(name: str) -> Template:
    """Load source ``"mni"`` or ``"colin27"`` in canonical RAS orientation."""
    if name == "mni":
        files = find_mni_files()
        t1 = load_nifti(files["t1"])
        gm = load_nifti(files["gm"])
        wm = load_nifti(files["wm"])
        for key, item in (("gm", gm), ("wm", wm)):
            _check_same_grid("MNI", files["t1"], t1, files[key], item)
        scale = 255.0 if max(float(gm[0].max()), float(wm[0].max())) > 1.5 else 1.0
        return Template(
            name="mni",
            t1=t1[0],
            affine=t1[1],
            files=files,
            head=False,
            gm=np.clip(gm[0] / scale, 0.0, 1.0),
            wm=np.clip(wm[0] / scale, 0.0, 1.0),
        )
    if name == "colin27":
        files = find_colin27_files()
        t1 = load_nifti(files["t1"])
        brain = load_nifti(files["brain"])
        _check_same_grid("Colin27", files["t1"], t1, files["brain"], brain)
        return Template(name="colin27", t1=t1[0], affine=t1[1], files=files, head=True, brain=brain[0] > 0)
    raise Ct2mriError(f"unknown template source {name!r} (choose from mni, colin27)")


def mni_license_text() -> str:
    """The MNI ICBM152 copyright and licence notice that travels with derived data."""
    return resources.files("ct2mri_cli").joinpath("data/MNI_LICENSE.txt").read_text(encoding="utf-8")
