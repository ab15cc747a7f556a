"""Shared fixtures: the real volumes from Debian packages (skipped when absent) and a CT phantom."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

INVESALIUS_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
COLIN_T1 = Path("/usr/share/mricron/templates/ch2.nii.gz")
COLIN_BRAIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")


def _require(path: Path, package: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} missing: install the Debian package {package} (apt-get install {package})")


@pytest.fixture(scope="session")
def head_ct():
    """The real head CT (HU) of Debian's invesalius-examples, as a Volume."""
    from ct2mri_cli.io.volumes import read_volume

    _require(INVESALIUS_CT, "invesalius-examples")
    return read_volume(INVESALIUS_CT)


@pytest.fixture(scope="session")
def head_ct_mask(head_ct):
    """Brain mask of the real head CT (computed once per session)."""
    from ct2mri_cli.preprocessing.brainmask import extract_brain_ct

    return extract_brain_ct(head_ct)


@pytest.fixture(scope="session")
def colin():
    """Colin27 T1 head and its brain mask (Debian mricron-data) as Volumes."""
    from ct2mri_cli.io.volumes import read_volume

    _require(COLIN_T1, "mricron-data")
    _require(COLIN_BRAIN, "mricron-data")
    return read_volume(COLIN_T1), read_volume(COLIN_BRAIN)


@dataclass
class HeadPhantom:
    """A synthetic head CT in HU on an RAS grid (x, y, z) and the truth it was built from."""

    hu: np.ndarray
    affine: np.ndarray
    brain: np.ndarray
    intracranial: np.ndarray
    neck: np.ndarray
    cord: np.ndarray
    spacing: tuple[float, float, float]


def make_head_phantom(
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    seed: int = 0,
    noise_hu: float = 5.0,
) -> HeadPhantom:
    """Ellipsoidal head: brain (grey/white pattern, ventricles), CSF rim, skull with a foramen at
    the bottom, scalp, a neck below joined to the brain through the foramen by a cord, and a
    head holder behind the head separated by air."""
    sx, sy, sz = spacing
    shape = (int(round(180 / sx)), int(round(200 / sy)), int(round(190 / sz)))
    x = (np.arange(shape[0]) - (shape[0] - 1) / 2) * sx
    y = (np.arange(shape[1]) - (shape[1] - 1) / 2) * sy
    z = (np.arange(shape[2]) - (shape[2] - 1) / 2) * sz + 15.0
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    radii = np.array([58.0, 70.0, 52.0])

    def shell(extra: float) -> np.ndarray:
        return (X / (radii[0] + extra)) ** 2 + (Y / (radii[1] + extra)) ** 2 + (Z / (radii[2] + extra)) ** 2 <= 1.0

    brain = shell(0.0)
    csf = shell(2.5) & ~brain
    skull = shell(8.5) & ~shell(2.5)
    scalp = shell(13.0) & ~shell(8.5)
    foramen = (X**2 + (Y + 10) ** 2 <= 9.0**2) & (Z < -30)
    skull &= ~foramen
    cord = (X**2 + (Y + 10) ** 2 <= 5.0**2) & (Z < -40) & ~brain
    neck = (X**2 / 45.0**2 + (Y + 5) ** 2 / 50.0**2 <= 1.0) & (Z < -45) & ~shell(13.0)
    holder = (np.abs(np.sqrt(X**2 + (Y + 10) ** 2) - 92.0) <= 1.5) & (Y < -40)

    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0)
    hu[scalp | neck] = 45.0
    hu[neck & (X**2 / 30.0**2 + (Y + 5) ** 2 / 35.0**2 <= 1.0)] = 55.0
    hu[skull] = 1100.0
    hu[csf] = 8.0
    hu[holder] = 600.0
    grey = 28.0 + 10.0 * (np.sin(X / 9.0) * np.sin(Y / 11.0) * np.sin(Z / 7.0) > 0)
    hu[brain] = grey[brain]
    ventricles = ((X / 12.0) ** 2 + (Y / 25.0) ** 2 + ((Z - 10) / 10.0) ** 2) <= 1.0
    hu[ventricles] = 6.0
    hu[cord] = 35.0
    hu += rng.normal(0.0, noise_hu, shape)
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = [x[0], y[0], z[0]]
    return HeadPhantom(
        hu=hu.astype(np.float32),
        affine=affine,
        brain=brain | ventricles,
        intracranial=shell(2.5),
        neck=neck,
        cord=cord,
        spacing=spacing,
    )


@pytest.fixture(scope="session")
def head_phantom() -> HeadPhantom:
    return make_head_phantom()


@pytest.fixture
def phantom_factory() -> Callable[..., HeadPhantom]:
    return make_head_phantom


def t1_from_hu(hu: np.ndarray) -> np.ndarray:
    """A T1-like picture of a CT: fat bright, CSF dark, white matter brighter than grey, bone dark."""
    points = [-1000, -300, -100, -30, 5, 15, 24, 34, 60, 300, 3000]
    values = [0.0, 5.0, 200.0, 120.0, 40.0, 60.0, 150.0, 100.0, 90.0, 20.0, 20.0]
    return np.interp(hu, points, values).astype(np.float32)


@pytest.fixture
def t1_like() -> Callable[[np.ndarray], np.ndarray]:
    return t1_from_hu
