"""Per-subject changes to a source anatomy before it is warped: cortical atrophy and calcified
choroid plexus and pineal gland; and the partial field of view of a scan after it is made.

Locations are in MNI coordinates: every prepared anatomy lives in the MNI template's frame
(:mod:`.anatomy`), and the subject's own pose is applied later by the warp.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .imaging import _spacing, gaussian_blur
from .subject import SubjectParams
from .tissue import BRAIN_CLASSES

# Calcified choroid plexus sits in the glomus, at the trigones of the lateral ventricles; the
# pineal gland behind the third ventricle.  (MNI mm; where the source's CSF is found near them.)
CHOROID_MNI = ((-27.0, -40.0, 14.0), (27.0, -40.0, 14.0))
PINEAL_MNI = ((0.0, -30.0, 4.0),)
CALCIFICATION_RADIUS_MM = {"choroid": 2.5, "pineal": 2.0}
SEARCH_MM = 10.0
ATROPHY_REACH_MM = 4.0  # grey matter within about this distance of CSF can be lost


def _to_world(idx: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _ball(
    shape: tuple[int, int, int], affine: np.ndarray, centre: np.ndarray, radius: float
) -> tuple[tuple[slice, ...], np.ndarray]:
    """The voxels of a ball (a bounding-box slice and the boolean ball inside it)."""
    inverse = np.linalg.inv(affine)
    middle = inverse[:3, :3] @ centre + inverse[:3, 3]
    reach = np.ceil(radius / _spacing(affine)).astype(int) + 1
    lo = np.maximum(np.floor(middle).astype(int) - reach, 0)
    hi = np.minimum(np.floor(middle).astype(int) + reach + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
    inside = np.linalg.norm(_to_world(grid.astype(np.float64), affine) - centre, axis=-1) <= radius
    return box, inside


def calcification_sites(anatomy: Anatomy, kind: str) -> list[np.ndarray]:
    """Where a calcification of ``kind`` ("choroid", "pineal") lies in ``anatomy`` (world mm): for
    the choroid plexus the most CSF-filled voxel within 10 mm of the nominal site, for the
    pineal gland the nominal site itself."""
    nominal = CHOROID_MNI if kind == "choroid" else PINEAL_MNI
    if kind == "pineal":
        return [np.asarray(c) for c in nominal]
    csf = anatomy.brain_fractions[BRAIN_CLASSES.index("csf")]
    sites = []
    for centre in nominal:
        box, inside = _ball(anatomy.shape, anatomy.affine, np.asarray(centre), SEARCH_MM)
        local = np.where(inside, csf[box], 0)
        if local.max() < 200:  # no ventricle there
            continue
        best = np.unravel_index(int(np.argmax(local)), local.shape)
        sites.append(_to_world(np.array([s.start + b for s, b in zip(box, best)], float), anatomy.affine))
    return sites


def _csf_nearby(anatomy: Anatomy) -> np.ndarray:
    """The CSF fraction blurred over 4 mm, scaled to reach 1 at 1/3 (once per anatomy)."""
    if "csf_nearby" not in anatomy.derived:
        csf = anatomy.brain_fractions[BRAIN_CLASSES.index("csf")].astype(np.float32) / np.float32(255.0)
        reach = gaussian_blur(csf, anatomy.affine, (ATROPHY_REACH_MM,) * 3)
        anatomy.derived["csf_nearby"] = np.clip(3.0 * reach, 0.0, 1.0)
    return anatomy.derived["csf_nearby"]


def subject_anatomy(anatomy: Anatomy, params: SubjectParams) -> tuple[np.ndarray, np.ndarray]:
    """The noise-free HU and the normalised T1 of subject ``params`` on the source grid.

    Atrophy turns grey matter bordering CSF into CSF: a voxel loses the share ``atrophy`` x (its
    neighbourhood's CSF fraction, blurred over 4 mm, scaled to reach 1 at 1/3), in HU and in the
    T1 alike.  Calcifications are balls of their HU in the CT only (on T1 they are near
    isointense).
    """
    hu = anatomy.hu_ideal(params.hu)
    t1 = anatomy.t1
    if params.atrophy > 0:
        gm = anatomy.brain_fractions[BRAIN_CLASSES.index("gm")].astype(np.float32) / np.float32(255.0)
        lost = gm * np.float32(params.atrophy) * _csf_nearby(anatomy)
        hu = hu + lost * np.float32(params.hu["csf"] - params.hu["gm"])
        levels = anatomy.t1_levels
        t1 = t1 + lost * np.float32(levels["csf"] - levels["gm"])
    for kind, value in params.calcifications.items():
        if value <= 0:
            continue
        for site in calcification_sites(anatomy, kind):
            box, inside = _ball(anatomy.shape, anatomy.affine, site, CALCIFICATION_RADIUS_MM[kind])
            hu[box] = np.where(inside, np.float32(value), hu[box])
    return hu, t1


def subject_fractions(anatomy: Anatomy, params: SubjectParams) -> np.ndarray:
    """The tissue fractions of subject ``params`` on the source grid, for a CT model that renders
    its own HU: CLASSES and a last map of calcification, with the same atrophy and calcified
    sites as :func:`subject_anatomy` (float32, (len(CLASSES) + 1, X, Y, Z))."""
    fractions = np.concatenate([anatomy.fractions(), np.zeros((1,) + anatomy.shape, dtype=np.float32)])
    if params.atrophy > 0:
        csf, gm = BRAIN_CLASSES.index("csf"), BRAIN_CLASSES.index("gm")
        lost = fractions[gm] * np.float32(params.atrophy) * _csf_nearby(anatomy)
        fractions[gm] -= lost
        fractions[csf] += lost
    for kind, value in params.calcifications.items():
        if value <= 0:
            continue
        for site in calcification_sites(anatomy, kind):
            box, inside = _ball(anatomy.shape, anatomy.affine, site, CALCIFICATION_RADIUS_MM[kind])
            region = fractions[(slice(None), *box)]  # a view: every map within the ball's box
            region[:, inside] = 0.0
            region[-1, inside] = 1.0
    return fractions


def cut_coverage(
    arrays: list[np.ndarray], affine: np.ndarray, cut_mm: tuple[float, float]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Drop ``cut_mm`` (bottom, top) of slices along the last (inferior-superior) axis."""
    spacing = float(_spacing(affine)[2])
    n = arrays[0].shape[2]
    bottom = min(int(round(cut_mm[0] / spacing)), n // 3)
    top = min(int(round(cut_mm[1] / spacing)), n // 3)
    if bottom == 0 and top == 0:
        return arrays, affine
    out_affine = affine.copy()
    out_affine[:3, 3] = affine[:3, 3] + affine[:3, 2] * bottom
    return [a[:, :, bottom : n - top] for a in arrays], out_affine
