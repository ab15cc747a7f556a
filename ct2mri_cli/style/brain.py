"""The brain of an MRI, for its style key: a key describes brain intensities, and the scalp, fat
and skull of a whole-head MRI would change it beyond any training key.

A brain-only image (zero outside a region of brain size, no scalp fat at its edge) is its own
brain.  Any other MRI is registered rigidly (Mattes mutual information, 2 mm, one thread) to the
bundled 2 mm MNI head template, whose brain mask is carried back onto the MRI; what of the
mask's outer band is brighter than white matter (scalp fat, marrow, enhancing vessels) is then
cut away.  A rigid transform cannot run away in scale on heads with a neck, a face or a cropped
field of view, as similarity and affine stages did (3300-5000 mL "brains" on heads they had not
seen; with the metric held to the cranium, an affine stage still found 1250-2800 mL brains in
heads of 970-1940 mL and moved the key further from the brain's).

The same registration says whether the contrast is T1: in T1 the template's ventricles are
darker than its white matter in the MRI too; in T2, PD or FLAIR-like contrast they are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..bundled import models_dir
from ..errors import Ct2mriError
from ..io.images import array_from_sitk, resample_onto_grid, sitk_from_array, sitk_on_grid_of, smoothed_to_spacing
from ..io.volumes import Volume
from ..preprocessing.registration import RegistrationSettings, centred_by_moments, run_registration

TEMPLATE_T1 = "mni_icbm152_2009a_t1_2mm.nii.gz"
TEMPLATE_MASK = "mni_icbm152_2009a_brain_2mm.nii.gz"
# An image whose non-zero voxels fill less than BRAIN_ONLY_ML is a brain already unless more than
# BRIGHT_SHELL_MAX of its outer 4 mm is brighter than its white matter (scalp fat): brains 0-0.4 %, heads 2.2-7.4 %.
BRAIN_ONLY_ML = 2300.0
BRIGHT_SHELL_MAX = 0.03
REGISTRATION_MM = 2.0
REGISTRATION_SMOOTHING_MM = REGISTRATION_MM / 2.5
# Mattes mutual information on 20 % of the voxels, one thread: the same brain on any machine
TEMPLATE_REGISTRATION = RegistrationSettings(
    histogram_bins=32, sampling_fraction=0.2, iterations=300, gradient_tolerance=1e-4, seed=1, threads=1
)
RIM_MM = 8.0  # the outer band of a registered brain mask, where scalp fat can lie
HEAD_SHARE = (0.3, 0.85)  # of a whole head's volume, the brain's: 0.46-0.74 on the heads measured
T1_RATIO_MAX = (
    1.06  # ventricles / white matter at the template's places: 0.34-1.02 in the T1s measured, 1.12 PD, 2.4 T2
)
CORE_EROSION_MM = 4.0  # intensities are normalised on the brain's core: robust to a mask's edge


def template_paths() -> tuple:
    folder = models_dir() / "templates"
    return folder / TEMPLATE_T1, folder / TEMPLATE_MASK


def _register(fixed, moving):
    """Rigid transform from the template (moving) to the MRI (fixed), starting from the images'
    centres of mass."""
    import SimpleITK as sitk

    rigid = sitk.Euler3DTransform(centred_by_moments(fixed, moving, sitk.Euler3DTransform()))
    run_registration(fixed, moving, rigid, TEMPLATE_REGISTRATION, in_place=True)
    return rigid


@dataclass
class StyleBrain:
    """The brain of a style MRI: ``mask`` on the MRI's grid, how it was found, and what the
    registration saw of the MRI's contrast (``ventricle_to_wm``: below :data:`T1_RATIO_MAX` in T1)."""

    mask: np.ndarray
    how: str
    ventricle_to_wm: float | None = None
    warnings: list[str] = field(default_factory=list)


def without_bright_rim(data: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``mask`` less what of its outer :data:`RIM_MM` is brighter than white matter by half the
    grey-white step (after a 2 mm smoothing), and less what that cut leaves disconnected."""
    import SimpleITK as sitk

    core = eroded(mask, affine, RIM_MM)
    gm, wm = np.percentile(data[core], [40.0, 90.0])
    smooth = array_from_sitk(sitk.SmoothingRecursiveGaussian(sitk_from_array(data, affine), 1.0))
    bright = mask & ~core & (smooth > wm + 0.5 * (wm - gm))
    if not bright.any():
        return mask
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    grown = sitk.BinaryDilate(sitk_from_array(bright.astype(np.uint8), affine), [int(round(2.0 / s)) for s in spacing])
    kept = mask & ~(array_from_sitk(grown) > 0)
    labels = sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk_from_array(kept.astype(np.uint8), affine)), sortByObjectSize=True
    )
    return array_from_sitk(labels) == 1


def _has_scalp(data: np.ndarray, nonzero: np.ndarray, affine: np.ndarray) -> bool:
    """Whether the outer 4 mm of the non-zero voxels holds scalp fat (brighter than the white
    matter 10 mm inside), as a small head does and a skull-stripped brain does not."""
    inside = eroded(nonzero, affine, 10.0)
    shell = nonzero & ~eroded(nonzero, affine, 4.0)
    if not shell.any() or inside is nonzero:
        return False
    return float(np.mean(data[shell] > np.percentile(data[inside], 90.0))) > BRIGHT_SHELL_MAX


def _ventricle_to_wm(data: np.ndarray, affine: np.ndarray, template, template_mask, transform) -> float | None:
    """Median MRI intensity where the registered template shows ventricles (its darkest 3 % inside
    the brain eroded by 10 mm), over the median where it shows white matter (its brightest 25 %)."""
    import SimpleITK as sitk

    inner = array_from_sitk(sitk.BinaryErode(sitk.Cast(template_mask > 0.5, sitk.sitkUInt8), [5, 5, 5])) > 0
    t1 = array_from_sitk(template)
    if inner.sum() < 100:
        return None
    lo, hi = np.percentile(t1[inner], [3.0, 75.0])
    labels = np.zeros(t1.shape, dtype=np.uint8)
    labels[inner & (t1 <= lo)] = 1
    labels[inner & (t1 >= hi)] = 2
    on_mri = resample_onto_grid(sitk_on_grid_of(labels, template), data.shape, affine, transform, "nearest", 0)
    ventricles, white = data[on_mri == 1], data[on_mri == 2]
    if ventricles.size < 20 or white.size < 20 or np.median(white) <= 0:
        return None
    return float(np.median(ventricles) / np.median(white))


def fit_template(volume: Volume, image: Any) -> tuple[Any, Any, Any]:
    """(rigid transform, template T1, template brain mask): the bundled template registered to the
    MRI (``image``, the volume as SimpleITK); the transform maps the MRI's points into the template."""
    import SimpleITK as sitk

    t1_path, mask_path = template_paths()
    if not (t1_path.is_file() and mask_path.is_file()):
        raise Ct2mriError(
            f"{volume.name}: a whole-head MRI needs the bundled template {t1_path} to find its brain "
            "(or give its brain with --style-mask)"
        )
    template = sitk.ReadImage(str(t1_path), sitk.sitkFloat32)
    template_mask = sitk.ReadImage(str(mask_path), sitk.sitkFloat32)
    try:
        transform = _register(smoothed_to_spacing(image, REGISTRATION_MM, REGISTRATION_SMOOTHING_MM), template)
    except RuntimeError as exc:
        raise Ct2mriError(
            f"{volume.name}: could not register the MRI to the brain template ({exc}); give its brain with --style-mask"
        ) from None
    return transform, template, template_mask


def find_brain(volume: Volume) -> StyleBrain:
    """The brain of a style MRI on its grid (see the module notes)."""
    import SimpleITK as sitk

    data = np.asarray(volume.data, dtype=np.float32)
    nonzero = data != 0
    if nonzero.sum() * np.prod(volume.spacing) / 1000.0 < BRAIN_ONLY_ML and not _has_scalp(
        data, nonzero, volume.affine
    ):
        return StyleBrain(nonzero, "brain-only image")
    image = sitk_from_array(data, volume.affine)
    transform, template, template_mask = fit_template(volume, image)
    registered = resample_onto_grid(template_mask, volume.shape, volume.affine, transform, "linear", 0.0) > 0.5
    if not registered.any():
        raise Ct2mriError(
            f"{volume.name}: the brain template does not overlap the MRI; give its brain with --style-mask"
        )
    mask = without_bright_rim(data, registered, volume.affine)
    found = StyleBrain(
        mask,
        "registered to the MNI template",
        _ventricle_to_wm(data, volume.affine, template, template_mask, transform),
    )
    head = array_from_sitk(sitk.BinaryFillhole(sitk.OtsuThreshold(image, 0, 1, 128))) > 0
    share = float(mask.sum()) / float(max(1, int(np.count_nonzero(head | mask))))
    if not HEAD_SHARE[0] <= share <= HEAD_SHARE[1]:
        found.warnings.append(
            f"{volume.name}: style_brain: the brain found fills {100 * share:.0f}% of the head (a brain fills "
            f"{100 * HEAD_SHARE[0]:.0f}-{100 * HEAD_SHARE[1]:.0f}%): the key may not describe this brain; "
            "check the header's voxel size, or give the brain with --style-mask"
        )
    if found.ventricle_to_wm is not None and found.ventricle_to_wm > T1_RATIO_MAX:
        found.warnings.append(
            f"{volume.name}: style_contrast: the ventricles are {found.ventricle_to_wm:.2f} times as bright as white "
            f"matter (a T1 has them darker, below {T1_RATIO_MAX:g}): this looks like a T2, PD or FLAIR, whose key "
            "will not give a T1-like style"
        )
    return found


def eroded(mask: np.ndarray, affine: np.ndarray, mm: float) -> np.ndarray:
    """``mask`` eroded by ``mm`` (a ball in world units; the mask itself if that would empty it)."""
    import SimpleITK as sitk

    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    radius = [int(round(mm / s)) for s in spacing]
    if not any(radius):
        return mask
    out = array_from_sitk(sitk.BinaryErode(sitk_from_array(mask.astype(np.uint8), affine), radius)) > 0
    return out if out.any() else mask
