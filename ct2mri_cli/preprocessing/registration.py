"""Registration by ITK: the building blocks every registration of ct2mri uses, and CT to MRI.

:func:`run_registration` runs one multi-resolution registration (regular-step gradient descent,
optimiser scales from physical shifts, smoothing in mm) with the :class:`RegistrationSettings`
of its user: the head pose (:mod:`.pose`), the brain of a style MRI (:mod:`ct2mri_cli.style.brain`),
the synthetic anatomies and CT to MRI (here).  Each starts from the images' centres of mass
(:func:`centred_by_moments`); an affine stage starts from the rigid one (:func:`affine_from_rigid`).

CT to MRI: the MRI is the fixed image and the CT the moving one, so the resulting transform maps
MRI physical points to CT physical points (ITK's convention, LPS millimetres) and the CT, its
brain mask, or anything on the CT grid is resampled onto the MRI grid with it.  The optimisation
runs coarse to fine (shrink factors with matching Gaussian smoothing in mm), starts from the
images' centres of mass (moments), and samples a random subset of voxels with a fixed seed, so
runs repeat up to the rounding of multithreaded sums (about 1e-6 in the parameters).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import Ct2mriError
from ..io.images import sitk_from_array
from ..io.volumes import Volume

CT_METRIC_WINDOW_HU = (-150.0, 150.0)
_ITK_POOL = threading.Lock()  # ITK's global thread count is one setting for the whole process


@dataclass(frozen=True)
class RegistrationSettings:
    """Metric, pyramid and optimiser of one registration; the defaults register a head CT to a
    T1 MRI at 1-2 mm.

    ``metric`` is Mattes mutual information (``histogram_bins``) or mean squares; the metric
    samples ``sampling_fraction`` of the fixed voxels at random (seeded), every voxel when None.
    ``threads`` (None: ITK's default) fixes how the metric's sums and the pyramid's filters are
    split: one thread gives the same result in every process on any machine."""

    metric: Literal["mattes", "mean_squares"] = "mattes"
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    histogram_bins: int = 50
    sampling_fraction: float | None = 0.1
    iterations: int = 200
    learning_rate: float = 1.0
    relaxation: float = 0.5
    gradient_tolerance: float = 1e-8
    seed: int = 1234
    threads: int | None = None


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


def centred_by_moments(fixed: Any, moving: Any, transform: Any) -> Any:
    """``transform`` (an ITK transform of the kind to optimise) centred on the fixed image's centre
    of mass and shifted onto the moving one's: where a registration starts."""
    import SimpleITK as sitk

    return sitk.CenteredTransformInitializer(fixed, moving, transform, sitk.CenteredTransformInitializerFilter.MOMENTS)


def affine_from_rigid(rigid: Any) -> Any:
    """An ITK affine transform equal to a rigid (Euler) one: where an affine stage starts."""
    import SimpleITK as sitk

    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    return affine


def run_registration(
    fixed: Any,
    moving: Any,
    initial: Any,
    settings: RegistrationSettings,
    fixed_mask: Any | None = None,
    in_place: bool = False,
) -> tuple[Any, float, str]:
    """Register ``moving`` to ``fixed`` from ``initial``, linear interpolation; returns the
    transform found (``initial`` itself, optimised, when ``in_place``), the final metric value
    and the optimiser's stop condition.  ``fixed_mask`` restricts the metric.  ITK's errors
    (RuntimeError) are left to the caller to word."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    if settings.metric == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    else:
        method.SetMetricAsMeanSquares()
    if settings.sampling_fraction is not None:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate,
        minStep=1e-4,
        numberOfIterations=settings.iterations,
        relaxationFactor=settings.relaxation,
        gradientMagnitudeTolerance=settings.gradient_tolerance,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=in_place)
    if settings.threads is not None:
        method.SetNumberOfThreads(settings.threads)
    with _itk_pool_held_at(settings.threads):
        result = method.Execute(fixed, moving)
    return result, float(method.GetMetricValue()), method.GetOptimizerStopConditionDescription()


@contextmanager
def _itk_pool_held_at(threads: int | None) -> Iterator[None]:
    """ITK's global thread count held at ``threads`` (None: left as it is) for the block.

    A registration's own thread setting leaves its image pyramid to ITK's shared pool, whose split
    of the work changed the result from one process to the next (1e-2 mm in an affine's shift).
    The count is process-wide, so registrations that hold it run one at a time, and other ITK
    filters running meanwhile in other threads get the same count.
    """
    if threads is None:
        yield
        return
    import SimpleITK as sitk

    with _ITK_POOL:
        previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


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
    fixed: Any, moving: Any, initial: Any, settings: RegistrationSettings, fixed_mask: Any | None, label: str
) -> tuple[Any, float, str]:
    try:
        return run_registration(fixed, moving, initial, settings, fixed_mask)
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()
        raise Ct2mriError(f"{label}: registration failed ({message[-1] if message else 'ITK error'})") from None


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
        start = centred_by_moments(fixed, moving, sitk.Euler3DTransform())
    except RuntimeError as exc:
        raise Ct2mriError(f"{ct.name} -> {mri.name}: cannot initialise the registration ({exc})") from None
    label = f"{ct.name} -> {mri.name}"
    rigid, metric, stop = _run(fixed, moving, start, settings, fixed_mask, label)
    transform = rigid
    kind = "rigid"
    if affine:
        start_affine = affine_from_rigid(sitk.Euler3DTransform(_flatten(rigid)))
        finer = dataclasses.replace(
            settings,
            shrink_factors=settings.shrink_factors[-2:],
            smoothing_mm=settings.smoothing_mm[-2:],
            learning_rate=settings.learning_rate * 0.5,
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

    makers: dict[str, Callable[[], Any]] = {
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
