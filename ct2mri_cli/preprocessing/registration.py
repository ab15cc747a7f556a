"""CT to MRI registration (rigid, optionally affine) with Mattes mutual information.

The MRI is the fixed image and the CT the moving one, so the resulting transform maps MRI
physical points to CT physical points (ITK's convention, LPS millimetres) and the CT, its brain
mask, or anything on the CT grid is resampled onto the MRI grid with it.  The optimisation runs
coarse to fine (shrink factors with matching Gaussian smoothing in mm), starts from the images'
centres of mass (moments), and samples a random subset of voxels with a fixed seed, so runs
repeat up to the rounding of multithreaded sums (about 1e-6 in the parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import Ct2mriError
from ..io.volumes import Volume, array_from_sitk, sitk_from_array

_LPS = np.array([-1.0, -1.0, 1.0])
CT_METRIC_WINDOW_HU = (-150.0, 150.0)


@dataclass(frozen=True)
class RegistrationSettings:
    """Optimiser settings; the defaults work for head CT to T1 MRI at 1-2 mm."""

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    histogram_bins: int = 50
    sampling_fraction: float = 0.1
    iterations: int = 200
    learning_rate: float = 1.0
    seed: int = 1234


@dataclass
class RegistrationResult:
    """The transform (MRI physical point -> CT physical point, LPS mm) and how it was found."""

    transform: Any
    metric: float
    kind: str
    stop_condition: str = ""
    iterations: list[int] = field(default_factory=list)

    def parameters(self) -> list[float]:
        return [float(v) for v in self.transform.GetParameters()]


def _metric_image(volume: Volume, clip: tuple[float, float] | None) -> Any:
    import SimpleITK as sitk

    data = np.asarray(volume.data, dtype=np.float32)
    if clip is not None:
        data = np.clip(data, clip[0], clip[1])
    data = data - float(data.min())  # non-negative so moments find the head, not the air
    return sitk.Cast(sitk_from_array(data, volume.affine), sitk.sitkFloat32)


def _mask_image(mask: np.ndarray, volume: Volume) -> Any:
    import SimpleITK as sitk

    return sitk.Cast(sitk_from_array(np.asarray(mask, dtype=np.uint8), volume.affine), sitk.sitkUInt8)


def _run(
    fixed: Any,
    moving: Any,
    initial: Any,
    settings: RegistrationSettings,
    fixed_mask: Any | None,
    label: str,
    scales_shift_mm: float = 1.0,
) -> tuple[Any, float, str]:
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate,
        minStep=1e-4,
        numberOfIterations=settings.iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift(centralRegionRadius=5, smallParameterVariation=scales_shift_mm * 0.01)
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    try:
        result = method.Execute(fixed, moving)
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()
        raise Ct2mriError(f"{label}: registration failed ({message[-1] if message else 'ITK error'})") from None
    return result, float(method.GetMetricValue()), method.GetOptimizerStopConditionDescription()


def register_ct_to_mri(
    ct: Volume,
    mri: Volume,
    affine: bool = False,
    mri_mask: np.ndarray | None = None,
    settings: RegistrationSettings = RegistrationSettings(),
    ct_window_hu: tuple[float, float] | None = CT_METRIC_WINDOW_HU,
) -> RegistrationResult:
    """Align ``ct`` (moving, HU) to ``mri`` (fixed); rigid, then affine when ``affine``.

    ``mri_mask`` (optional, on the MRI grid) restricts the metric to a region such as the head.
    The CT is clipped to ``ct_window_hu`` for the metric so air and metal do not dominate.
    """
    import SimpleITK as sitk

    fixed = _metric_image(mri, None)
    moving = _metric_image(ct, ct_window_hu)
    fixed_mask = _mask_image(mri_mask, mri) if mri_mask is not None else None
    try:
        start = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    except RuntimeError as exc:
        raise Ct2mriError(f"{ct.name} -> {mri.name}: cannot initialise the registration ({exc})") from None
    label = f"{ct.name} -> {mri.name}"
    rigid, metric, stop = _run(fixed, moving, start, settings, fixed_mask, label)
    transform = rigid
    kind = "rigid"
    if affine:
        euler = sitk.Euler3DTransform(_flatten(rigid))
        start_affine = sitk.AffineTransform(3)
        start_affine.SetCenter(euler.GetCenter())
        start_affine.SetMatrix(euler.GetMatrix())
        start_affine.SetTranslation(euler.GetTranslation())
        finer = RegistrationSettings(
            shrink_factors=settings.shrink_factors[-2:],
            smoothing_mm=settings.smoothing_mm[-2:],
            histogram_bins=settings.histogram_bins,
            sampling_fraction=settings.sampling_fraction,
            iterations=settings.iterations,
            learning_rate=settings.learning_rate * 0.5,
            seed=settings.seed,
        )
        transform, metric, stop = _run(fixed, moving, start_affine, finer, fixed_mask, label)
        kind = "affine"
    return RegistrationResult(transform=_flatten(transform), metric=metric, kind=kind, stop_condition=stop)


def _flatten(transform: Any) -> Any:
    """A plain (non-composite) transform when the composite holds a single one."""
    import SimpleITK as sitk

    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() == 1:
            inner = composite.GetNthTransform(0)
            return inner.Downcast() if hasattr(inner, "Downcast") else inner
    return transform.Downcast() if hasattr(transform, "Downcast") else transform


def resample_to_reference(
    moving: Volume | np.ndarray,
    reference: Volume,
    transform: Any | None = None,
    order: Literal["linear", "nearest"] = "linear",
    fill: float = 0.0,
    moving_affine: np.ndarray | None = None,
) -> np.ndarray:
    """Resample ``moving`` onto ``reference``'s grid through ``transform`` (reference -> moving).

    ``moving`` is a Volume or an array with ``moving_affine``; a boolean array (a mask) should be
    resampled with ``order="nearest"``.  Returns a float32 (i, j, k) array of the reference shape.
    """
    import SimpleITK as sitk

    if isinstance(moving, Volume):
        data, affine = moving.data, moving.affine
    else:
        if moving_affine is None:
            raise ValueError("moving_affine is required with an array")
        data, affine = moving, moving_affine
    image = sitk_from_array(np.asarray(data, dtype=np.float32), affine)
    ref = sitk_from_array(np.zeros((1, 1, 1), dtype=np.uint8), reference.affine)
    interpolator = sitk.sitkLinear if order == "linear" else sitk.sitkNearestNeighbor
    out = sitk.Resample(
        image,
        [int(n) for n in reference.shape],
        transform if transform is not None else sitk.Transform(),
        interpolator,
        ref.GetOrigin(),
        ref.GetSpacing(),
        ref.GetDirection(),
        float(fill),
        sitk.sitkFloat32,
    )
    return array_from_sitk(out)


_TRANSFORM_TYPES = ("Euler3DTransform", "VersorRigid3DTransform", "AffineTransform", "TranslationTransform")


def transform_to_dict(transform: Any) -> dict[str, Any]:
    """A JSON-friendly description of a rigid or affine ITK transform (LPS, MRI -> CT)."""
    plain = _flatten(transform)
    name = plain.GetName()
    if name not in _TRANSFORM_TYPES:
        raise ValueError(f"cannot describe a {name}")
    return {
        "type": name,
        "parameters": [float(v) for v in plain.GetParameters()],
        "fixed_parameters": [float(v) for v in plain.GetFixedParameters()],
        "convention": "ITK, LPS mm, maps MRI points to CT points",
    }


def transform_from_dict(data: dict[str, Any]) -> Any:
    """The ITK transform described by :func:`transform_to_dict`."""
    import SimpleITK as sitk

    makers = {
        "Euler3DTransform": sitk.Euler3DTransform,
        "VersorRigid3DTransform": sitk.VersorRigid3DTransform,
        "AffineTransform": lambda: sitk.AffineTransform(3),
        "TranslationTransform": lambda: sitk.TranslationTransform(3),
    }
    try:
        transform = makers[data["type"]]()
        transform.SetFixedParameters([float(v) for v in data["fixed_parameters"]])
        transform.SetParameters([float(v) for v in data["parameters"]])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise Ct2mriError(f"not a usable transform description ({exc})") from None
    return transform


def transform_points_ras(transform: Any, points_ras: np.ndarray) -> np.ndarray:
    """Apply an ITK transform (LPS) to (N, 3) RAS points; returns RAS points."""
    pts = np.asarray(points_ras, dtype=np.float64) * _LPS
    out = np.array([transform.TransformPoint([float(v) for v in p]) for p in pts])
    return out * _LPS


def mean_displacement_mm(first: Any, second: Any, points_ras: np.ndarray) -> float:
    """Mean distance (mm) between where two transforms send the same points."""
    return float(np.linalg.norm(transform_points_ras(first, points_ras) - transform_points_ras(second, points_ras), axis=1).mean())
