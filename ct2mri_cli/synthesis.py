"""Synthetic, exactly aligned CT/T1 pairs made from real T1 brains.

A source brain (:mod:`ct2mri_cli.templates`) is first turned into an *anatomy*: per-voxel
fractions of eight tissue classes (CSF, grey and white matter inside the intracranial volume;
cortical bone, diploe, fat, soft tissue and air outside it), the T1 intensities normalised to
white matter = 1, and the intracranial mask.  A *subject* is then drawn from a seed:

- geometry: a small rotation, scaling and shift, a random smooth deformation of a few mm and an
  optional enlargement of the ventricles, all folded into one displacement field that resamples
  the CT, the T1 and the mask together, so every pair stays exactly aligned;
- CT physics: HU by partial-volume mixing of the class fractions with per-subject tissue values,
  a mild smooth inhomogeneity, an anisotropic Gaussian blur (thicker through-plane) and spatially
  correlated Gaussian noise;
- MRI appearance: a gamma/saturation contrast curve, a multiplicative bias field, a little noise
  and an arbitrary scanner scale, so histograms (style keys) differ between subjects.

Everything random comes from one ``numpy.random.Generator``; the same seed gives the same pair.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import Ct2mriError
from .templates import SOURCES, Template, load_template, mni_license_text
from .volume_io import array_from_sitk, sitk_from_array

CLASSES = ("csf", "gm", "wm", "cortical", "diploe", "fat", "soft", "air")
BRAIN_CLASSES = ("csf", "gm", "wm")
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])
HU_MIN, HU_MAX = -1024, 3071
COARSE_MM = 4.0


# ----------------------------------------------------------------------------------------------
# small image helpers (arrays are RAS-indexed (x, y, z); SimpleITK works in LPS)


def _image(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    return sitk_from_array(array, affine)


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def _radius(mm: float, affine: np.ndarray) -> list[int]:
    return [max(1, int(round(mm / s))) for s in _spacing(affine)]


def _morph(mask: np.ndarray, affine: np.ndarray, op: str, mm: float) -> np.ndarray:
    """Binary dilate / erode / close / open with a ball of radius ``mm``.

    Small radii use ITK's binary morphology; large ones threshold a distance map, which costs
    the same whatever the radius.
    """
    mask = np.asarray(mask, dtype=bool)
    if op == "close":
        return _morph(_morph(mask, affine, "dilate", mm), affine, "erode", mm)
    if op == "open":
        return _morph(_morph(mask, affine, "erode", mm), affine, "dilate", mm)
    radius = _radius(mm, affine)
    if max(radius) <= 8:
        img = _image(mask.astype(np.uint8), affine)
        if op == "dilate":
            return array_from_sitk(sitk.BinaryDilate(img, radius, sitk.sitkBall)).astype(bool)
        if op == "erode":  # as the complement of a dilation, which ITK does faster
            inverse = _image((~mask).astype(np.uint8), affine)
            return ~array_from_sitk(sitk.BinaryDilate(inverse, radius, sitk.sitkBall)).astype(bool)
    if op == "dilate":
        return _distance_mm(mask, affine) <= mm
    if op == "erode":
        return _distance_mm(~mask, affine) > mm
    raise ValueError(f"unknown morphological operation {op!r}")


def _largest_component(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(_image(mask.astype(np.uint8), affine)))
    return array_from_sitk(labels) == 1


def _cavities(mask: np.ndarray, affine: np.ndarray, min_mm3: float, min_y_mm: float) -> np.ndarray:
    """Components of at least ``min_mm3`` whose centroid lies anterior of ``min_y_mm``.

    In MNI space the air spaces of the head (nasal cavity, paranasal sinuses, mastoids) all lie
    in front of y = -60 mm; thick dark regions behind are occipital bone.
    """
    labels = sitk.ConnectedComponent(_image(mask.astype(np.uint8), affine))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    keep = np.zeros(stats.GetNumberOfLabels() + 1, dtype=bool)
    for label in stats.GetLabels():
        centroid_ras = np.asarray(stats.GetCentroid(label)) * _RAS_TO_LPS
        keep[label] = stats.GetPhysicalSize(label) >= min_mm3 and centroid_ras[1] >= min_y_mm
    return keep[array_from_sitk(labels)]


def _fill_holes(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return array_from_sitk(sitk.BinaryFillhole(_image(mask.astype(np.uint8), affine))).astype(bool)


def _fill_axial_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes in every axial (last-axis) slice; closes cavities open only through the neck.

    The slices are tiled into one 2D image, each followed by a background row and column, so a
    single 2D hole filling does them all: a slice's open background touches the separators,
    which reach the image border, while its enclosed holes stay enclosed.
    """
    x, y, z = mask.shape
    tiles = np.zeros((z, x + 1, y + 1), dtype=np.uint8)
    tiles[:, :x, :y] = np.moveaxis(mask, 2, 0)
    filled = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(tiles.reshape(z * (x + 1), y + 1))))
    return np.moveaxis(filled.reshape(z, x + 1, y + 1)[:, :x, :y], 0, 2).astype(bool) | mask


def _distance_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) of every voxel to ``mask`` (0 inside)."""
    img = _image(mask.astype(np.uint8), affine)
    dist = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.maximum(array_from_sitk(dist), 0.0).astype(np.float32)


def gaussian_blur(array: np.ndarray, affine: np.ndarray, fwhm_mm: tuple[float, float, float]) -> np.ndarray:
    """Gaussian blur with a per-axis FWHM in mm (axes x, y, z of the RAS array)."""
    variance = [float((f * _FWHM_TO_SIGMA) ** 2) for f in fwhm_mm]
    if max(variance) <= 0:
        return np.asarray(array, dtype=np.float32)
    img = _image(np.asarray(array, dtype=np.float32), affine)
    spacing = _spacing(affine)
    sigma_voxels = np.sqrt(variance) / spacing
    if sigma_voxels.min() >= 2.0:  # wide kernels: the recursive filter costs the same at any width
        out = sitk.SmoothingRecursiveGaussian(img, [float(v) for v in np.sqrt(variance)])
    else:
        width = int(max(3, 2 * math.ceil(3 * float(sigma_voxels.max())) + 1))
        out = sitk.DiscreteGaussian(img, variance, width, 0.001, True)
    return array_from_sitk(out).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------
# tissue memberships


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


# ----------------------------------------------------------------------------------------------
# source anatomy


@dataclass
class Anatomy:
    """A source brain prepared for synthesis, on its own grid.

    Inside the intracranial mask ``icv`` (brain, ventricles, subarachnoid CSF) the tissue is a
    partial-volume mixture given by ``brain_fractions`` (3, X, Y, Z) uint8: CSF, GM, WM in
    1/255 steps summing to 255; outside it every voxel has one extracerebral class, ``labels``
    (index into CLASSES).  ``t1`` is float32 with white matter = 1; ``ventricle_pull`` is a
    unit-free vector field (3, ...) on ``coarse_affine`` pointing towards the lateral
    ventricles; ``licence`` is the notice that must travel with derived data.
    """

    name: str
    affine: np.ndarray
    labels: np.ndarray
    brain_fractions: np.ndarray
    t1: np.ndarray
    icv: np.ndarray
    centre_mm: np.ndarray
    ventricle_pull: np.ndarray
    coarse_affine: np.ndarray
    t1_levels: dict[str, float] = field(default_factory=dict)
    licence: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.t1.shape)  # type: ignore[return-value]

    def fractions(self) -> np.ndarray:
        """All class fractions (len(CLASSES), X, Y, Z) as float32 in [0, 1]."""
        out = np.zeros((len(CLASSES),) + self.shape, dtype=np.float32)
        out[:3] = self.brain_fractions / np.float32(255.0)
        for k in range(3, len(CLASSES)):
            out[k] = (self.labels == k) & ~self.icv
        return out

    def hu_ideal(self, hu: dict[str, float]) -> np.ndarray:
        """Noise-free HU of the unblurred anatomy for per-class values ``hu``."""
        lut = np.array([0.0, 0.0, 0.0] + [hu[name] for name in CLASSES[3:]], dtype=np.float32)
        out = lut[self.labels]
        for i, name in enumerate(BRAIN_CLASSES):
            out += self.brain_fractions[i] * np.float32(hu[name] / 255.0)
        return out


def _quantise_brain(brain_fr: np.ndarray, icv: np.ndarray) -> np.ndarray:
    """CSF/GM/WM fractions to uint8 summing exactly to 255 inside ``icv`` (0 outside)."""
    wm = np.rint(np.clip(brain_fr[2], 0, 1) * 255.0).astype(np.int16)
    gm = np.minimum(np.rint(np.clip(brain_fr[1], 0, 1) * 255.0).astype(np.int16), 255 - wm)
    csf = 255 - wm - gm
    out = np.stack([csf, gm, wm]).astype(np.uint8)
    out *= icv[None]
    return out


def _ventricle_pull(csf: np.ndarray, icv: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vector field (3, ...) on a 2 mm grid pointing up the smoothed lateral-ventricle mask."""
    deep = _morph(icv, affine, "erode", 14.0)
    ventricles = (csf > 0.5) & deep
    min_voxels = int(math.ceil(1000.0 / float(np.prod(_spacing(affine)))))  # 1 ml: drop deep sulci
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(_image(ventricles.astype(np.uint8), affine)), min_voxels)
    ventricles = array_from_sitk(labels) > 0
    step = max(1, int(round(2.0 / float(_spacing(affine).min()))))
    coarse = ventricles[::step, ::step, ::step].astype(np.float32)
    coarse_affine = affine.copy()
    coarse_affine[:3, :3] = affine[:3, :3] * step
    smooth = gaussian_blur(coarse, coarse_affine, (10.0, 10.0, 10.0))
    grads = np.stack(np.gradient(smooth, *[float(s) for s in _spacing(coarse_affine)]))
    norm = float(np.sqrt((grads**2).sum(axis=0)).max())
    return (grads / norm if norm > 0 else grads).astype(np.float32), coarse_affine


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


def _brain_levels(t1: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    means, _, _ = fit_gmm_1d(t1[mask], 3)
    return means, float(means[2])


@functools.lru_cache(maxsize=1)
def _colin_parts() -> dict[str, Any]:
    """Colin27 prepared once per process: brain fractions, head labels and normalised T1."""
    tpl: Template = load_template("colin27")
    affine = tpl.affine
    brain = _fill_holes(_largest_component(tpl.brain, affine), affine)  # type: ignore[arg-type]
    icv = _fill_holes(_morph(brain, affine, "close", 3.0), affine)
    means, wm_level = _brain_levels(tpl.t1, icv)
    t1n = (tpl.t1 / wm_level).astype(np.float32)
    # the brain mask stops at the cortex; CSF-like voxels out to the inner table belong inside
    csf_like = (t1n > 0.3) & (t1n < 0.7)
    icv = _fill_holes(_grow_into(icv, csf_like, 4), affine)
    means, wm_level = _brain_levels(tpl.t1, icv)
    t1n = (tpl.t1 / wm_level).astype(np.float32)
    brain_fr = partial_volume_memberships(t1n, tuple(means / wm_level)) * icv
    labels, _ = _head_classes(t1n, icv, affine)
    return {
        "affine": affine,
        "icv": icv,
        "t1n": t1n,
        "brain_fractions": brain_fr,
        "labels": labels,
        "levels": {name: float(m / wm_level) for name, m in zip(BRAIN_CLASSES, means)},
    }


def make_anatomy(
    name: str,
    affine: np.ndarray,
    brain_fr: np.ndarray,
    labels: np.ndarray,
    icv: np.ndarray,
    t1n: np.ndarray,
    levels: dict[str, float],
    licence: str | None,
) -> Anatomy:
    """Build an :class:`Anatomy` from float CSF/GM/WM fractions (3, ...) inside ``icv`` and hard
    extracerebral ``labels`` outside it (also the ventricle pull field and the brain centre)."""
    labels = np.where(icv, np.uint8(0), labels).astype(np.uint8)
    pull, coarse_affine = _ventricle_pull(brain_fr[0] * icv, icv, affine)
    idx = np.argwhere(icv[::2, ::2, ::2]) * 2.0
    centre = affine[:3, :3] @ idx.mean(axis=0) + affine[:3, 3]
    return Anatomy(
        name=name,
        affine=affine,
        labels=labels,
        brain_fractions=_quantise_brain(brain_fr, icv),
        t1=t1n,
        icv=icv,
        centre_mm=centre,
        ventricle_pull=pull,
        coarse_affine=coarse_affine,
        t1_levels=levels,
        licence=licence,
    )


def _prepare_colin27() -> Anatomy:
    parts = _colin_parts()
    return make_anatomy(
        "colin27",
        parts["affine"],
        parts["brain_fractions"],
        parts["labels"],
        parts["icv"],
        parts["t1n"],
        parts["levels"],
        None,
    )


def _moment_fit(
    moving: np.ndarray,
    moving_affine: np.ndarray,
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
) -> np.ndarray:
    """Pull-back affine (4x4, RAS mm) mapping ``fixed`` world points onto ``moving`` ones.

    Matches the centroids and per-axis spreads of two masks already in the same orientation
    (both templates live in MNI space, so no rotation is needed).
    """

    def moments(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = np.argwhere(mask)[::7].astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]
        return pts.mean(axis=0), pts.std(axis=0)

    c_m, s_m = moments(moving, moving_affine)
    c_f, s_f = moments(fixed, fixed_affine)
    scale = s_m / s_f
    out = np.eye(4)
    out[:3, :3] = np.diag(scale)
    out[:3, 3] = c_m - scale * c_f
    return out


def _resample_onto(
    array: np.ndarray,
    affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    pullback: np.ndarray,
    interpolator: int,
    default: float,
) -> np.ndarray:
    """Resample ``array`` onto a reference grid, sampling the source at ``pullback`` @ x."""
    src = _image(array, affine)
    ref = _image(np.zeros(ref_shape, dtype=np.uint8), ref_affine)
    flip = np.diag([-1.0, -1.0, 1.0])
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in (flip @ pullback[:3, :3] @ flip).ravel()])
    transform.SetTranslation([float(v) for v in flip @ pullback[:3, 3]])
    out = sitk.Resample(src, ref, transform, interpolator, default, src.GetPixelID())
    return array_from_sitk(out)


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


def _prepare_mni() -> Anatomy:
    """The MNI brain (with its GM/WM maps) inside Colin27's head.

    Colin27's head is scaled onto the MNI brain by matching the centroids and spreads of the two
    intracranial masks.  Where Colin27's skull cavity reaches beyond the MNI brain mask the
    space is CSF (the MNI mask stops at the cortex); where the MNI brain reaches into Colin27's
    skull the skull gives way, keeping a 1.5 mm inner table.
    """
    tpl = load_template("mni")
    affine = tpl.affine
    brain = _fill_holes(_largest_component(tpl.t1 > 0, affine), affine)
    icv = _fill_holes(_morph(brain, affine, "close", 3.0), affine)

    colin = _colin_parts()
    pull = _moment_fit(colin["icv"], colin["affine"], icv, affine)
    def onto_mni(array: np.ndarray, interpolator: int, default: float) -> np.ndarray:
        return _resample_onto(array, colin["affine"], icv.shape, affine, pull, interpolator, default)

    labels = onto_mni(colin["labels"], sitk.sitkNearestNeighbor, CLASSES.index("air"))
    colin_icv = onto_mni(colin["icv"].astype(np.uint8), sitk.sitkNearestNeighbor, 0)
    colin_t1 = onto_mni(colin["t1n"], sitk.sitkLinear, 0.0)
    icv = _fill_holes(icv | (colin_icv > 0), affine)
    inner_table = _morph(icv, affine, "dilate", 1.5) & ~icv & (labels != CLASSES.index("air"))
    labels[inner_table] = CLASSES.index("cortical")
    bone_level = float(np.median(colin["t1n"][colin["labels"] == CLASSES.index("cortical")]))
    colin_t1[inner_table] = np.minimum(colin_t1[inner_table], bone_level)

    gm, wm = sharpen_gm_wm(np.asarray(tpl.gm) * brain, np.asarray(tpl.wm) * brain)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * icv
    brain_fr = np.stack([csf, gm, wm]).astype(np.float32)
    wm_level = float(np.median(tpl.t1[np.asarray(tpl.wm) > 0.9]))
    t1n = (tpl.t1 / wm_level).astype(np.float32)
    csf_level = float(np.median(t1n[(csf > 0.95) & brain]))
    head_t1 = np.where(icv, np.where(brain, t1n, csf_level), colin_t1).astype(np.float32)
    levels = {"csf": csf_level, "gm": float(np.median(t1n[np.asarray(tpl.gm) > 0.9])), "wm": 1.0}
    return make_anatomy("mni", affine, brain_fr, labels, icv, head_t1, levels, mni_license_text())


@functools.lru_cache(maxsize=2)
def prepare_anatomy(source: str) -> Anatomy:
    """The prepared anatomy of source ``"mni"`` or ``"colin27"`` (cached per process)."""
    if source == "colin27":
        return _prepare_colin27()
    if source == "mni":
        return _prepare_mni()
    raise Ct2mriError(f"unknown source {source!r} (choose from {', '.join(SOURCES)})")


# ----------------------------------------------------------------------------------------------
# subjects: what varies between synthetic people and scans


@dataclass
class SubjectParams:
    """Everything drawn for one synthetic subject (recorded in the manifest).

    Geometry: ``rotation_deg`` about x, y, z; ``scale`` per axis; ``shift_mm``; ``warp_rms_mm``
    (RMS of the smooth random displacement, correlation ``warp_fwhm_mm``); ``ventricle_mm`` (how
    far tissue is pulled towards the lateral ventricles; 0 = unchanged).  CT: ``hu`` per class,
    ``ct_inhomogeneity_hu`` (SD of a smooth additive field), ``bone_density_sd`` and
    ``bone_texture_sd`` (relative SD of smooth and fine variations of bone density),
    ``ct_blur_fwhm_mm`` and ``ct_noise_fwhm_mm`` (in-plane, through-plane), ``ct_noise_sd``.
    MRI: ``mri_gamma`` and
    ``mri_saturation`` (contrast curve), ``mri_bias_sd`` (log bias field SD), ``mri_noise``
    (noise SD relative to white matter) and ``mri_scale`` (white-matter intensity of the file).
    """

    source: str
    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    warp_rms_mm: float
    warp_fwhm_mm: float
    ventricle_mm: float
    hu: dict[str, float]
    ct_inhomogeneity_hu: float
    bone_density_sd: float
    bone_texture_sd: float
    ct_blur_fwhm_mm: tuple[float, float]
    ct_noise_fwhm_mm: tuple[float, float]
    ct_noise_sd: float
    mri_gamma: float
    mri_saturation: float
    mri_bias_sd: float
    mri_noise: float
    mri_scale: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, rounded to what matters."""

        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (tuple, list)):
                return [clean(v) for v in value]
            if isinstance(value, float):
                return round(value, 4)
            return value

        return clean(asdict(self))


def sample_subject(rng: np.random.Generator, source: str, ventricle_probability: float = 0.5) -> SubjectParams:
    """Draw one subject's geometry, CT physics and MRI appearance from ``rng``.

    The ranges are calibrated on the real head CT of Debian's invesalius-examples (see
    docs/SYNTHETIC_DATA.md).
    """
    u = rng.uniform
    wm = u(17.5, 21.5)
    hu = {
        "csf": u(4.0, 10.0),
        "gm": wm + u(9.0, 12.0),
        "wm": wm,
        "cortical": u(1150.0, 1350.0),
        "diploe": u(450.0, 650.0),
        "fat": u(-105.0, -75.0),
        "soft": u(35.0, 50.0),
        "air": -1000.0,
    }
    global_scale = u(0.87, 0.96)  # MNI space is larger than real heads (real CT: 1445 ml)
    enlarge = bool(rng.uniform() < ventricle_probability)
    return SubjectParams(
        source=source,
        rotation_deg=tuple(float(v) for v in u(-6.0, 6.0, 3)),  # type: ignore[arg-type]
        scale=tuple(float(global_scale * v) for v in u(0.97, 1.03, 3)),  # type: ignore[arg-type]
        shift_mm=tuple(float(v) for v in u(-4.0, 4.0, 3)),  # type: ignore[arg-type]
        warp_rms_mm=u(1.0, 3.0),
        warp_fwhm_mm=u(25.0, 40.0),
        ventricle_mm=u(1.0, 3.5) if enlarge else 0.0,
        hu=hu,
        ct_inhomogeneity_hu=u(0.5, 2.0),
        bone_density_sd=u(0.10, 0.20),
        bone_texture_sd=u(0.10, 0.20),
        ct_blur_fwhm_mm=(u(0.7, 0.9), u(1.2, 1.8)),
        ct_noise_fwhm_mm=(u(1.5, 1.9), u(1.8, 2.4)),
        ct_noise_sd=u(6.3, 7.6),
        mri_gamma=u(0.7, 1.4),
        mri_saturation=u(0.0, 0.6),
        mri_bias_sd=u(0.02, 0.10),
        mri_noise=u(0.0, 0.02),
        mri_scale=u(600.0, 1400.0),
    )


# ----------------------------------------------------------------------------------------------
# geometry


def output_grid(anatomy: Anatomy, spacing_mm: float | None = None) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of an axis-aligned RAS grid covering the source's field of view."""
    src_spacing = _spacing(anatomy.affine)
    if spacing_mm is None:
        return anatomy.shape, anatomy.affine.copy()
    if not spacing_mm > 0:
        raise ValueError(f"spacing must be positive, got {spacing_mm}")
    extent = (np.asarray(anatomy.shape) - 1) * src_spacing
    shape = tuple(int(n) for n in np.floor(extent / spacing_mm + 1e-6).astype(int) + 1)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(np.sign(np.diag(anatomy.affine[:3, :3])) * spacing_mm)
    start = anatomy.affine[:3, 3]
    covered = (np.asarray(shape) - 1) * spacing_mm
    affine[:3, 3] = start + np.sign(np.diag(anatomy.affine[:3, :3])) * (extent - covered) / 2.0
    return shape, affine  # type: ignore[return-value]


def _rotation(degrees: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = (math.radians(d) for d in degrees)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def trilinear(volume: np.ndarray, affine: np.ndarray, points: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Sample ``volume`` (X, Y, Z[, C]) at world points (..., 3) with trilinear interpolation."""
    inv = np.linalg.inv(affine)
    idx = points @ inv[:3, :3].T + inv[:3, 3]
    shape = np.asarray(volume.shape[:3])
    base = np.floor(idx).astype(np.int64)
    frac = (idx - base).astype(np.float32)
    out_shape = points.shape[:-1] + volume.shape[3:]
    out = np.zeros(out_shape, dtype=np.float32)
    weight_in = np.zeros(points.shape[:-1], dtype=np.float32)
    for corner in range(8):
        offs = np.array([(corner >> k) & 1 for k in range(3)])
        pos = base + offs
        w = np.prod(np.where(offs == 1, frac, 1.0 - frac), axis=-1)
        ok = np.all((pos >= 0) & (pos < shape), axis=-1)
        pos = np.clip(pos, 0, shape - 1)
        vals = volume[pos[..., 0], pos[..., 1], pos[..., 2]]
        wv = (w * ok).astype(np.float32)
        out += vals * (wv[..., None] if vals.ndim > wv.ndim else wv)
        weight_in += wv
    if fill != 0.0:
        missing = 1.0 - weight_in
        out += fill * (missing[..., None] if out.ndim > missing.ndim else missing)
    return out


def _coarse_grid(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    step_mm: float = COARSE_MM,
) -> tuple[tuple[int, int, int], np.ndarray]:
    """A coarse grid covering a fine one with one extra node beyond each face."""
    spacing = _spacing(affine)
    direction = affine[:3, :3] / spacing
    extent = (np.asarray(shape) - 1) * spacing
    n = np.ceil(extent / step_mm).astype(int) + 3
    coarse = np.eye(4)
    coarse[:3, :3] = direction * step_mm
    coarse[:3, 3] = affine[:3, 3] - direction @ np.full(3, step_mm)
    return tuple(int(v) for v in n), coarse  # type: ignore[return-value]


def _grid_points(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def smooth_random_field(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    affine: np.ndarray,
    fwhm_mm: float,
    components: int = 1,
) -> np.ndarray:
    """Gaussian random field(s) with correlation ``fwhm_mm``, each scaled to unit SD.

    Returns (components, X, Y, Z) float32.
    """
    out = np.empty((components,) + tuple(shape), dtype=np.float32)
    for c in range(components):
        noise = rng.standard_normal(shape, dtype=np.float32)
        field_c = gaussian_blur(noise, affine, (fwhm_mm, fwhm_mm, fwhm_mm))
        out[c] = (field_c - field_c.mean()) / max(float(field_c.std()), 1e-12)
    return out


def pullback_field(
    anatomy: Anatomy,
    params: SubjectParams,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    affine: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each node of a coarse grid over the output samples the source (world mm, RAS).

    Returns (points (X, Y, Z, 3), coarse affine).  Composes, from output to source: the inverse
    of a rotation/scaling/shift about the brain centre, a smooth random displacement and the
    ventricle pull.
    """
    cshape, caffine = _coarse_grid(shape, affine)
    x = _grid_points(cshape, caffine)
    centre = anatomy.centre_mm
    rot = _rotation(params.rotation_deg)
    inv_linear = np.diag(1.0 / np.asarray(params.scale)) @ rot.T
    y = (x - centre - np.asarray(params.shift_mm)) @ inv_linear.T + centre
    if params.warp_rms_mm > 0:
        disp = smooth_random_field(rng, cshape, caffine, params.warp_fwhm_mm, 3)
        disp = np.moveaxis(disp, 0, -1) * np.float32(params.warp_rms_mm / math.sqrt(3.0))
        y = y + disp
    else:
        rng.standard_normal(3)  # keep the draw sequence independent of the warp setting
    if params.ventricle_mm > 0:
        pull = np.moveaxis(anatomy.ventricle_pull, 0, -1)
        y = y + params.ventricle_mm * trilinear(pull, anatomy.coarse_affine, y)
    return y, caffine


def _displacement_transform(points: np.ndarray, caffine: np.ndarray) -> sitk.Transform:
    """A SimpleITK displacement-field transform sending coarse nodes to ``points`` (RAS mm)."""
    cshape = points.shape[:3]
    nodes = _grid_points(cshape, caffine)
    disp_lps = (points - nodes) * _RAS_TO_LPS
    geometry = _image(np.zeros(cshape, dtype=np.uint8), caffine)
    field_img = sitk.GetImageFromArray(np.ascontiguousarray(disp_lps.transpose(2, 1, 0, 3)), isVector=True)
    field_img = sitk.Cast(field_img, sitk.sitkVectorFloat64)
    field_img.CopyInformation(geometry)
    return sitk.DisplacementFieldTransform(field_img)


def _warp(
    array: np.ndarray,
    src_affine: np.ndarray,
    transform: sitk.Transform,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    default: float,
) -> np.ndarray:
    src = _image(np.asarray(array, dtype=np.float32), src_affine)
    ref = _image(np.zeros(shape, dtype=np.uint8), affine)
    out = sitk.Resample(src, ref, transform, sitk.sitkLinear, float(default), sitk.sitkFloat32)
    return array_from_sitk(out)


def _upsample(coarse: np.ndarray, caffine: np.ndarray, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Linear interpolation of a coarse field onto a fine grid with the same axis directions.

    Separable (one axis at a time), which is much cheaper than a general resampling.
    """
    out = np.asarray(coarse, dtype=np.float32)
    for axis in range(3):
        step_c = float(caffine[:3, :3][:, axis] @ np.sign(affine[:3, :3][:, axis]))
        step_f = float(np.abs(affine[:3, :3][:, axis]).sum())
        offset = float((affine[:3, 3] - caffine[:3, 3]) @ np.sign(affine[:3, :3][:, axis]))
        pos = np.clip((offset + step_f * np.arange(shape[axis])) / step_c, 0, out.shape[axis] - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), out.shape[axis] - 2)
        w = (pos - lo).astype(np.float32)
        bshape = [1, 1, 1]
        bshape[axis] = -1
        w = w.reshape(bshape)
        out = np.take(out, lo, axis=axis) * (1 - w) + np.take(out, lo + 1, axis=axis) * w
    return out


# ----------------------------------------------------------------------------------------------
# the pair


@dataclass
class SyntheticPair:
    """One aligned pair on one grid: CT in HU (int16), T1 (int16), intracranial mask (uint8)."""

    ct: np.ndarray
    t1: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    params: SubjectParams
    seed: int


def correlated_noise(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    sd: float,
    fwhm_mm: tuple[float, float],
) -> np.ndarray:
    """Gaussian noise with SD ``sd`` correlated by a Gaussian kernel (in-plane, through-plane FWHM)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    noise = gaussian_blur(white, affine, (fwhm_mm[0], fwhm_mm[0], fwhm_mm[1]))
    return noise * np.float32(sd / max(float(noise.std()), 1e-12))


def ct_from_hu(
    hu: np.ndarray,
    affine: np.ndarray,
    params: SubjectParams,
    rng: np.random.Generator,
    inhomogeneity: np.ndarray | None = None,
    density: np.ndarray | None = None,
) -> np.ndarray:
    """Apply CT physics to noise-free HU: bone density variation, inhomogeneity, blur, noise.

    ``density`` is a smooth unit-SD field modulating bone (the part of HU above 100) with
    relative SD ``bone_density_sd``; a fine random texture (FWHM 2 mm) adds
    ``bone_texture_sd``.  Returns int16 HU.
    """
    bone = np.maximum(hu - np.float32(100.0), 0.0)
    variation = correlated_noise(rng, hu.shape, affine, params.bone_texture_sd, (2.0, 2.0))  # type: ignore[arg-type]
    if density is not None:
        variation += density * np.float32(params.bone_density_sd)
    ct = hu + bone * variation
    if inhomogeneity is not None:
        ct += inhomogeneity
    blur = params.ct_blur_fwhm_mm
    ct = gaussian_blur(ct, affine, (blur[0], blur[0], blur[1]))
    ct += correlated_noise(rng, ct.shape, affine, params.ct_noise_sd, params.ct_noise_fwhm_mm)  # type: ignore[arg-type]
    return np.clip(np.rint(ct), HU_MIN, HU_MAX).astype(np.int16)


def mri_appearance(
    t1n: np.ndarray,
    params: SubjectParams,
    rng: np.random.Generator,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """T1 (white matter = 1) to an int16 scan: contrast curve, bias, noise and scale."""
    y = np.power(np.maximum(t1n, 0.0), np.float32(params.mri_gamma))
    k = np.float32(params.mri_saturation)
    y = y * (1 + k) / (1 + k * y)
    if bias is not None:
        y = y * bias
    if params.mri_noise > 0:
        y = y + (t1n > 0.05) * rng.standard_normal(y.shape, dtype=np.float32) * np.float32(params.mri_noise)
    else:
        rng.standard_normal(1)
    y = np.maximum(y, 0.0) * np.float32(params.mri_scale)
    return np.clip(np.rint(y), 0, 32767).astype(np.int16)


def synthesize_pair(
    anatomy: Anatomy,
    params: SubjectParams,
    rng: np.random.Generator,
    spacing_mm: float | None = None,
    seed: int = -1,
) -> SyntheticPair:
    """Make one aligned CT/T1/mask triple of subject ``params`` from ``anatomy``."""
    shape, affine = output_grid(anatomy, spacing_mm)
    points, caffine = pullback_field(anatomy, params, rng, shape, affine)
    transform = _displacement_transform(points, caffine)
    hu = _warp(anatomy.hu_ideal(params.hu), anatomy.affine, transform, shape, affine, params.hu["air"])
    t1n = _warp(anatomy.t1, anatomy.affine, transform, shape, affine, 0.0)
    mask = _warp(anatomy.icv.astype(np.float32), anatomy.affine, transform, shape, affine, 0.0) > 0.5

    cshape = points.shape[:3]
    low = smooth_random_field(rng, cshape, caffine, 80.0, 2)
    inhomogeneity = _upsample(low[0] * np.float32(params.ct_inhomogeneity_hu), caffine, shape, affine)
    bias = np.exp(_upsample(low[1] * np.float32(params.mri_bias_sd), caffine, shape, affine))
    density = _upsample(smooth_random_field(rng, cshape, caffine, 15.0)[0], caffine, shape, affine)

    ct = ct_from_hu(hu, affine, params, rng, inhomogeneity, density)
    t1 = mri_appearance(t1n, params, rng, bias)
    return SyntheticPair(ct=ct, t1=t1, mask=mask.astype(np.uint8), affine=affine, params=params, seed=seed)


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of a run seeded with ``seed`` (independent streams per case)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def generate_pair(source: str, seed: int, spacing_mm: float | None = None) -> SyntheticPair:
    """Draw a subject from ``seed`` and synthesise its pair from source ``source``."""
    anatomy = prepare_anatomy(source)
    rng = np.random.default_rng(seed)
    params = sample_subject(rng, source)
    return synthesize_pair(anatomy, params, rng, spacing_mm, seed)


# ----------------------------------------------------------------------------------------------
# measuring a CT (for calibration and tests)


def ct_statistics(hu: np.ndarray, affine: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Numbers that characterise a head CT, measured the same way on real and synthetic scans.

    - ``brain_median``, ``brain_iqr``: HU inside the brain mask eroded by 3 mm;
    - ``noise_sd``: robust SD (1.4826 x MAD) of the HU minus its masked Gaussian smoothing
      (sigma 2 mm) in the same region (noise plus fine texture);
    - ``bone_p5`` ... ``bone_p95``: percentiles of voxels >= 300 HU within 12 mm of the brain.
    """
    hu = np.asarray(hu, dtype=np.float32)
    brain = np.asarray(brain, dtype=bool)
    inner = _morph(brain, affine, "erode", 3.0)
    if inner.sum() < 100:
        raise ValueError("the brain mask is too small to measure")
    values = hu[inner]
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    weight = inner.astype(np.float32)
    fwhm = 2.0 / _FWHM_TO_SIGMA
    num = gaussian_blur(hu * weight, affine, (fwhm, fwhm, fwhm))
    den = gaussian_blur(weight, affine, (fwhm, fwhm, fwhm))
    resid = (hu - num / np.maximum(den, 1e-3))[inner]
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    near = _distance_mm(brain, affine) <= 12.0
    bone = hu[near & (hu >= 300)]
    stats = {"brain_median": float(q50), "brain_iqr": float(q75 - q25), "noise_sd": noise}
    for p, v in zip((5, 25, 50, 75, 95), np.percentile(bone, [5, 25, 50, 75, 95]) if bone.size else [np.nan] * 5):
        stats[f"bone_p{p}"] = float(v)
    return stats
