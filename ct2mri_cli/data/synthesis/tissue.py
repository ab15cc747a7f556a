"""Tissue classes of a head, and how T1 intensities are turned into them.

Inside the intracranial volume tissue is a partial-volume mixture of CSF, grey and white matter
(linear mixing between class means fitted by a 1D Gaussian mixture, or probability maps made
sharper); outside it every voxel gets one hard extracerebral class (cortical bone, diploe, fat,
soft tissue, air).  These functions work on plain arrays; :mod:`.anatomy` applies them to the
template brains.
"""

from __future__ import annotations

import math

import numpy as np

from .imaging import (
    _cavities,
    _distance_mm,
    _fill_axial_holes,
    _fill_holes,
    _largest_component,
    _morph,
    gaussian_blur,
)

CLASSES = ("csf", "gm", "wm", "cortical", "diploe", "fat", "soft", "air")
BRAIN_CLASSES = ("csf", "gm", "wm")


def fit_gmm_1d(
    values: np.ndarray,
    classes: int = 3,
    iterations: int = 200,
    bins: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a 1D Gaussian mixture by EM on a histogram of ``values``.

    Returns (means, standard deviations, weights), sorted by mean.  Starts from evenly spaced
    quantiles, so the result is deterministic.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < classes * 10:
        raise ValueError(f"too few values ({values.size}) for a {classes}-class mixture")
    lo, hi = np.percentile(values, [0.1, 99.9])
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    x = 0.5 * (edges[:-1] + edges[1:])
    w = counts.astype(np.float64)
    means = np.percentile(values, np.linspace(100 / (2 * classes), 100 - 100 / (2 * classes), classes))
    sds = np.full(classes, (hi - lo) / (2.0 * classes))
    weights = np.full(classes, 1.0 / classes)
    floor = (edges[1] - edges[0]) / 2.0
    for _ in range(iterations):
        dens = weights / (sds * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((x[:, None] - means) / sds) ** 2)
        resp = dens / np.maximum(dens.sum(axis=1, keepdims=True), 1e-300)
        rw = resp * w[:, None]
        total = rw.sum(axis=0)
        new_means = (rw * x[:, None]).sum(axis=0) / np.maximum(total, 1e-12)
        sds = np.sqrt((rw * (x[:, None] - new_means) ** 2).sum(axis=0) / np.maximum(total, 1e-12))
        sds = np.maximum(sds, floor)
        weights = total / total.sum()
        converged = np.allclose(new_means, means, atol=1e-6 * (hi - lo))
        means = new_means
        if converged:
            break
    order = np.argsort(means)
    return means[order], sds[order], weights[order]


def partial_volume_memberships(t1: np.ndarray, means: tuple[float, float, float]) -> np.ndarray:
    """CSF/GM/WM fractions (3, ...) of T1 intensities by linear mixing between class means.

    A voxel between the CSF and GM means is a CSF/GM mixture, one between the GM and WM means a
    GM/WM mixture; below the CSF mean it is pure CSF, above the WM mean pure WM.
    """
    csf_m, gm_m, wm_m = (float(m) for m in means)
    if not csf_m < gm_m < wm_m:
        raise ValueError(f"class means must increase (CSF < GM < WM), got {means}")
    t = np.asarray(t1, dtype=np.float32)
    a = np.clip((t - csf_m) / (gm_m - csf_m), 0.0, 1.0)  # 0 = CSF, 1 = GM
    b = np.clip((t - gm_m) / (wm_m - gm_m), 0.0, 1.0)  # 0 = GM, 1 = WM
    csf = 1.0 - a
    wm = b
    gm = a - b
    return np.stack([csf, gm, wm]).astype(np.float32)


def sharpen_gm_wm(gm: np.ndarray, wm: np.ndarray, steepness: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Make the GM/WM split of averaged probability maps more like one brain's.

    The template's maps are averages over 152 brains, so the GM/WM boundary is spread over a
    few mm and CT histograms made from them are too narrow.  The WM share r = WM / (GM + WM) is
    pushed away from 1/2 by a tanh curve (fixed points 0, 1/2, 1); GM + WM is unchanged.
    """
    total = gm + wm
    r = np.divide(wm, total, out=np.zeros_like(total), where=total > 1e-6)
    r = 0.5 + 0.5 * np.tanh(steepness * (r - 0.5)) / math.tanh(steepness / 2.0)
    return (total * (1.0 - r)).astype(np.float32), (total * r).astype(np.float32)


def _grow_into(seed: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """Grow ``seed`` by up to ``steps`` face-neighbour steps through ``allowed`` voxels."""
    grown = seed.copy()
    for _ in range(steps):
        shell = grown.copy()
        for axis in range(3):
            shell[(slice(None),) * axis + (slice(1, None),)] |= grown[(slice(None),) * axis + (slice(None, -1),)]
            shell[(slice(None),) * axis + (slice(None, -1),)] |= grown[(slice(None),) * axis + (slice(1, None),)]
        grown |= shell & allowed
    return grown


def _head_classes(t1n: np.ndarray, icv: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hard extracerebral labels (indices into CLASSES) from a head T1 normalised to WM = 1.

    The skull is the dark band hugging the intracranial volume, closed over small gaps; its
    core (more than 1.5 mm from either surface) is diploe, the rest cortical bone (the inner and
    outer tables).  Elsewhere in the head, bright voxels are fat; dark bulky regions are air
    (sinuses, airway, mastoids: what survives an opening of 4 mm radius, in pieces of at least
    1.5 ml, see :func:`_cavities`); other dark voxels are bone; the rest is soft tissue (skin,
    muscle, eyes).  Returns the labels and the head mask.
    """
    smooth = gaussian_blur(t1n, affine, (1.5, 1.5, 1.5))
    head = _largest_component(smooth > 0.12, affine)
    head = _fill_holes(_morph(head, affine, "close", 3.0), affine)
    head = _fill_axial_holes(head) | icv

    dist = _distance_mm(icv, affine)
    depth = _distance_mm(~head, affine)
    dark = t1n < 0.32
    bright = t1n > 1.15
    outside = head & ~icv
    bulky_dark = _morph(dark & outside & (depth >= 2.5), affine, "open", 4.0)
    bulky_dark = _cavities(bulky_dark, affine, 1500.0, -60.0)
    skull_dark = dark & outside & (dist <= 12.0) & (depth >= 2.5) & ~bulky_dark
    skull = (_morph(skull_dark, affine, "close", 2.0) | (dist <= 1.5)) & outside & (dist <= 13.0)
    core = _morph(skull, affine, "erode", 1.5)
    rest = outside & ~skull

    labels = np.full(t1n.shape, CLASSES.index("air"), dtype=np.uint8)
    labels[rest] = CLASSES.index("soft")
    labels[rest & bright] = CLASSES.index("fat")
    labels[rest & dark] = CLASSES.index("cortical")
    labels[rest & (bulky_dark | (dark & (depth < 2.5)))] = CLASSES.index("air")
    labels[skull] = CLASSES.index("cortical")
    labels[skull & core] = CLASSES.index("diploe")
    labels[skull & bulky_dark] = CLASSES.index("air")
    return labels, head
