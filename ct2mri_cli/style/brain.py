"""The brain of an MRI, for its style key: a key describes brain intensities, and the scalp, fat
and skull of a whole-head MRI would change it beyond any training key.

A brain-only image (zero outside a region of brain size) is its own brain.  Any other MRI is
registered (similarity, then affine; Mattes mutual information, 2 mm) to the bundled 2 mm MNI
head template, whose brain mask is carried back onto the MRI.
"""

from __future__ import annotations

import numpy as np

from ..bundled import models_dir
from ..errors import Ct2mriError
from ..io.volumes import Volume, array_from_sitk, sitk_from_array

TEMPLATE_T1 = "mni_icbm152_2009a_t1_2mm.nii.gz"
TEMPLATE_MASK = "mni_icbm152_2009a_brain_2mm.nii.gz"
BRAIN_ONLY_ML = 2300.0  # an image whose non-zero voxels fill less than this is already a brain
REGISTRATION_MM = 2.0
CORE_EROSION_MM = 4.0  # intensities are normalised on the brain's core: robust to a mask's edge
EDGE_EROSION_MM = 1.0  # the key's histogram leaves out the mask's outermost millimetre


def template_paths() -> tuple:
    folder = models_dir() / "templates"
    return folder / TEMPLATE_T1, folder / TEMPLATE_MASK


def _resampled(image, mm: float):  # noqa: ANN001, ANN202
    import SimpleITK as sitk

    size = [max(1, int(round(n * s / mm))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    smooth = sitk.SmoothingRecursiveGaussian(image, mm / 2.5)
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), [mm] * 3,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def mattes_registration(fixed, moving, initial, learning_rate: float = 1.0, moving_initial=None,  # noqa: ANN001, ANN201
                        sampling: float = 0.1, in_place: bool = False, threads: int | None = None):
    """One multi-resolution (4, 2, 1) registration by Mattes mutual information (32 bins, random
    sampling) and regular-step gradient descent; returns the transform found.  ``threads=1``
    makes the result the same on any machine (ITK's threads split the metric's sums)."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(sampling, 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learning_rate, 1e-4, 300)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    if moving_initial is not None:
        method.SetMovingInitialTransform(moving_initial)
    method.SetInitialTransform(initial, inPlace=in_place)
    if threads is not None:
        method.SetNumberOfThreads(threads)
    return method.Execute(fixed, moving)


def _register(fixed, moving):  # noqa: ANN001, ANN202
    """Similarity, then affine, from the template (moving) to the MRI (fixed)."""
    import SimpleITK as sitk

    start = sitk.CenteredTransformInitializer(fixed, moving, sitk.Similarity3DTransform(),
                                              sitk.CenteredTransformInitializerFilter.MOMENTS)
    similarity = mattes_registration(fixed, moving, start)
    affine = mattes_registration(fixed, moving, sitk.AffineTransform(3), 0.5, moving_initial=similarity)
    composite = sitk.CompositeTransform(similarity)
    composite.AddTransform(affine)
    return composite


def find_brain(volume: Volume) -> tuple[np.ndarray, str]:
    """A boolean brain mask on the MRI's grid and how it was found ("brain-only image" or
    "registered to the MNI template")."""
    import SimpleITK as sitk

    data = np.asarray(volume.data, dtype=np.float32)
    nonzero = data != 0
    if nonzero.sum() * np.prod(volume.spacing) / 1000.0 < BRAIN_ONLY_ML:
        return nonzero, "brain-only image"
    t1_path, mask_path = template_paths()
    if not (t1_path.is_file() and mask_path.is_file()):
        raise Ct2mriError(f"{volume.name}: a whole-head MRI needs the bundled template {t1_path} to find its brain "
                          "(or give its brain with --style-mask)")
    image = sitk_from_array(data, volume.affine)
    template = sitk.ReadImage(str(t1_path), sitk.sitkFloat32)
    template_mask = sitk.ReadImage(str(mask_path), sitk.sitkFloat32)
    try:
        transform = _register(_resampled(image, REGISTRATION_MM), template)
    except RuntimeError as exc:
        raise Ct2mriError(f"{volume.name}: could not register the MRI to the brain template ({exc}); "
                          "give its brain with --style-mask") from None
    mask = array_from_sitk(sitk.Resample(template_mask, image, transform, sitk.sitkLinear, 0.0)) > 0.5
    if not mask.any():
        raise Ct2mriError(f"{volume.name}: the brain template does not overlap the MRI; give its brain with --style-mask")
    return mask, "registered to the MNI template"


def eroded(mask: np.ndarray, affine: np.ndarray, mm: float) -> np.ndarray:
    """``mask`` eroded by ``mm`` (a ball in world units; the mask itself if that would empty it)."""
    import SimpleITK as sitk

    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    radius = [int(round(mm / s)) for s in spacing]
    if not any(radius):
        return mask
    out = array_from_sitk(sitk.BinaryErode(sitk_from_array(mask.astype(np.uint8), affine), radius)) > 0
    return out if out.any() else mask
