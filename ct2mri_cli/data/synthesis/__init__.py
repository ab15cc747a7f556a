"""Synthetic, exactly aligned CT/T1 pairs made from real T1 brains.

A source brain (:mod:`ct2mri_cli.data.sources`) is first turned into an *anatomy*: per-voxel
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

The ``calibrated`` variety keeps every range around one real head CT; the ``wide`` one (the
default of ``ct2mri synthesize``) varies anatomy (large deformations, atrophy, ventricles,
asymmetry, size, pose) and scanners (slice thickness, kernel, noise, grey/white contrast,
cupping, calcifications, partial coverage) over a clinic's range (:mod:`.variation`).

Everything random comes from one ``numpy.random.Generator``; the same seed gives the same pair.

This module assembles a pair; the pieces live in submodules: :mod:`.imaging` (generic image
helpers), :mod:`.tissue` (tissue classes from T1), :mod:`.anatomy` (the prepared source brains),
:mod:`.subject` (the parameters drawn per subject), :mod:`.variation` (atrophy, calcifications,
partial coverage), :mod:`.deformation` (output grid and warp) and :mod:`.physics` (CT and MRI
appearance, CT measurements).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..projection import ScannerParams, render_ct, sample_scanner
from .anatomy import Anatomy, make_anatomy, prepare_anatomy
from .deformation import (
    COARSE_MM,
    displacement_transform,
    output_grid,
    pullback_field,
    smooth_random_field,
    turned_rotation,
    upsample_coarse,
    warp_onto,
)
from .imaging import gaussian_blur, trilinear
from .physics import (
    HU_MAX,
    HU_MIN,
    correlated_noise,
    ct_from_hu,
    ct_statistics,
    mri_appearance,
)
from .subject import FINE_WARP_FWHM_MM, MAX_FINE_WARP_MM, VARIETIES, SubjectParams, sample_subject, with_fine_warp
from .tissue import (
    BRAIN_CLASSES,
    CLASSES,
    fit_gmm_1d,
    partial_volume_memberships,
    sharpen_gm_wm,
)
from .variation import cut_coverage, subject_anatomy, subject_fractions

# How a pair's CT is made from its anatomy: this package's partial-volume mixing and image-domain
# physics, or the independent scanner model of :mod:`ct2mri_cli.data.projection`.
CT_MODELS = ("mixing", "projection")
SCANNER_STREAM = 1  # second word of the projection model's seed, beside the subject's seed
FINE_WARP_STREAM = 2  # the fine warp's stream

# The public API of the package.
__all__ = [
    "BRAIN_CLASSES",
    "CLASSES",
    "COARSE_MM",
    "CT_MODELS",
    "HU_MAX",
    "HU_MIN",
    "Anatomy",
    "SubjectParams",
    "FINE_WARP_FWHM_MM",
    "MAX_FINE_WARP_MM",
    "VARIETIES",
    "SyntheticPair",
    "case_seed",
    "correlated_noise",
    "ct_from_hu",
    "ct_statistics",
    "fit_gmm_1d",
    "gaussian_blur",
    "generate_pair",
    "make_anatomy",
    "mri_appearance",
    "output_grid",
    "partial_volume_memberships",
    "prepare_anatomy",
    "pullback_field",
    "sample_subject",
    "with_fine_warp",
    "sharpen_gm_wm",
    "smooth_random_field",
    "synthesize_pair",
    "trilinear",
]


@dataclass
class SyntheticPair:
    """One aligned pair on one grid: CT in HU (int16), T1 (int16), intracranial mask (uint8);
    ``scanner`` is set when the projection CT model made the CT."""

    ct: np.ndarray
    t1: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    params: SubjectParams
    seed: int
    scanner: ScannerParams | None = None


def synthesize_pair(
    anatomy: Anatomy,
    params: SubjectParams,
    rng: np.random.Generator,
    spacing_mm: float | None = None,
    seed: int = -1,
    scanner: tuple[ScannerParams, np.random.Generator] | None = None,
    fine_rng: np.random.Generator | None = None,
) -> SyntheticPair:
    """Make one aligned CT/T1/mask triple of subject ``params`` from ``anatomy``.

    With ``scanner`` (its parameters and its own random stream) the projection CT model renders
    the CT; the T1 and mask are then those of the same subject with the mixing model.
    ``fine_rng`` draws the fine warp of a subject that has one."""
    shape, affine = output_grid(anatomy, spacing_mm)
    points, caffine = pullback_field(anatomy, params, rng, shape, affine, fine_rng)
    transform = displacement_transform(points, caffine)
    hu_source, t1_source = subject_anatomy(anatomy, params)
    if scanner is None:
        hu = warp_onto(hu_source, anatomy.affine, transform, shape, affine, params.hu["air"])
    t1n = warp_onto(t1_source, anatomy.affine, transform, shape, affine, 0.0)
    mask = warp_onto(anatomy.icv.astype(np.float32), anatomy.affine, transform, shape, affine, 0.0) > 0.5

    cshape = points.shape[:3]
    low = smooth_random_field(rng, cshape, caffine, 80.0, 2)
    inhomogeneity = upsample_coarse(low[0] * np.float32(params.ct_inhomogeneity_hu), caffine, shape, affine)
    bias = np.exp(upsample_coarse(low[1] * np.float32(params.mri_bias_sd), caffine, shape, affine))
    density = upsample_coarse(smooth_random_field(rng, cshape, caffine, 15.0)[0], caffine, shape, affine)

    if scanner is None:
        ct = ct_from_hu(hu, affine, params, rng, inhomogeneity, density, brain=mask)
    else:
        fractions = subject_fractions(anatomy, params)
        warped = np.stack(
            [
                warp_onto(f, anatomy.affine, transform, shape, affine, float(k == CLASSES.index("air")))
                for k, f in enumerate(fractions)
            ]
        )
        del fractions
        ct = render_ct(warped, affine, scanner[0], scanner[1])
        for _ in range(2):  # the mixing model's two noise draws, so that the T1 is the same subject's
            rng.standard_normal(shape, dtype=np.float32)
    t1 = mri_appearance(t1n, params, rng, bias)
    (ct, t1, mask), affine = cut_coverage([ct, t1, mask], affine, params.coverage_cut_mm)
    return SyntheticPair(
        ct=ct,
        t1=t1,
        mask=mask.astype(np.uint8),
        affine=affine,
        params=params,
        seed=seed,
        scanner=None if scanner is None else scanner[0],
    )


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of a run seeded with ``seed`` (independent streams per case)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def generate_pair(
    source: str,
    seed: int,
    spacing_mm: float | None = None,
    turn: np.ndarray | None = None,
    variety: str = "calibrated",
    ct_model: str = "mixing",
    fine_warp_mm: float = 0.0,
) -> SyntheticPair:
    """Draw a subject from ``seed`` and synthesise its pair from source ``source``.

    ``variety`` picks the ranges the subject is drawn from (:data:`.subject.VARIETIES`):
    ``calibrated`` around the real head CT, ``wide`` over the anatomy and scanners of a clinic.

    ``turn`` (3 x 3 rotation, RAS) turns the subject's head about its brain centre on top of its
    own pose: the same seed with and without it gives the same subject, resampled once either
    way, in two head poses on the same grid.

    ``ct_model`` (:data:`CT_MODELS`) picks how the CT is made; the subject, its T1 and its mask do
    not depend on it, and the projection model's scanner is drawn from its own stream of ``seed``.

    ``fine_warp_mm`` > 0 adds a fine warp of up to that RMS (:func:`.subject.with_fine_warp`),
    drawn from a third stream: the same seed gives the same subject with its sulci moved."""
    if ct_model not in CT_MODELS:
        raise ValueError(f"ct_model must be one of {CT_MODELS}, got {ct_model!r}")
    anatomy = prepare_anatomy(source)
    rng = np.random.default_rng(seed)
    params = sample_subject(rng, source, variety=variety)
    if anatomy.size_factor != 1.0:  # a head of real size: the scale ranges are for MNI space
        sx, sy, sz = (float(v * anatomy.size_factor) for v in params.scale)
        params = replace(params, scale=(sx, sy, sz))
    if turn is not None:
        params = replace(params, rotation_deg=turned_rotation(params.rotation_deg, turn))
    fine_rng = None
    if fine_warp_mm > 0:
        fine_rng = np.random.default_rng([int(seed), FINE_WARP_STREAM])
        params = with_fine_warp(params, fine_rng, fine_warp_mm)
    scanner = None
    if ct_model == "projection":
        scanner_rng = np.random.default_rng([int(seed), SCANNER_STREAM])
        scanner = (sample_scanner(scanner_rng, variety), scanner_rng)
    return synthesize_pair(anatomy, params, rng, spacing_mm, seed, scanner, fine_rng)
