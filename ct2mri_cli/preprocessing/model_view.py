"""The model's view of a CT: scan checks, brain mask, head pose, model grid and windowed slices.

``preprocess`` (training pairs), ``translate`` and training validation all go through
:func:`view_ct`, so a model sees at inference exactly the slices it saw in training.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import Ct2mriError
from ..io.images import canonical_array, canonical_order, storage_order
from ..io.volumes import Volume
from .brainmask import extract_brain_ct
from .checks import (
    Check,
    check_brain_volume,
    check_components,
    check_coverage,
    check_gantry_tilt,
    check_hu_scale,
    check_mask_in_skull,
    check_slice_thickness,
    warnings_of,
)
from .config import PreprocessConfig
from .geometry import GridRecord, apply_model_grid, plan_model_grid
from .intensity import normalize_ct
from .pose import Pose, estimate_pose


@dataclass
class CtView:
    """A CT as the model sees it, with what was found on the way.

    ``ct`` is the scan in RAS voxel order after its corrections (HU scale); ``mask`` its brain on
    that grid; ``ct_model01`` and ``mask_model`` the (Z, H, W) model-grid slices described by
    ``record``; :meth:`to_storage_order` puts arrays on ``ct``'s grid back in the scan's own order.
    """

    ct: Volume
    mask: np.ndarray
    record: GridRecord
    ct_model01: np.ndarray
    mask_model: np.ndarray
    checks: list[Check] = field(default_factory=list)
    pose: Pose | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    storage: np.ndarray | None = None  # the scan's voxel order (nibabel orientation) when not RAS

    def to_storage_order(self, array: np.ndarray) -> np.ndarray:
        """An array on the (canonical) grid of ``ct`` in the voxel order the scan was stored in."""
        return storage_order(array, self.storage)


def brain_mask_with_notes(ct: Volume) -> tuple[np.ndarray, list[str]]:
    """Automatic CT brain extraction; its warnings (intensities unlike HU) come back as notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = extract_brain_ct(ct)
    return mask, [str(w.message) for w in caught]


def ct_to_model_space(
    ct_hu: np.ndarray, mask: np.ndarray, record: GridRecord, window_hu: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed to [0, 1] on the native grid, zero outside the brain, then on the model grid
    with the brain mask: the CT is interpolated once."""
    ct01 = normalize_ct(np.asarray(ct_hu, dtype=np.float32), window_hu) * mask
    model_mask = apply_model_grid(np.asarray(mask, dtype=np.float32), record, order="nearest") > 0.5
    model_ct = np.clip(apply_model_grid(ct01, record, order="linear"), 0.0, 1.0) * model_mask
    return model_ct.astype(np.float32), model_mask


def view_ct(
    ct: Volume,
    config: PreprocessConfig,
    mask: np.ndarray | None = None,
    native_axes: bool = False,
    strict: bool = False,
) -> CtView:
    """Check a native CT (HU), find its brain (or take ``mask``) and its pose, and cut its model slices.

    The grid follows the head's canonical pose when ``config.frame`` is "canonical" (unless
    ``native_axes``).  With ``strict`` a warning among the scan checks is a failure, raised before
    the pose and the model grid are computed.
    """
    seconds: dict[str, float] = {}
    notes: list[str] = list(ct.notes)
    start = time.perf_counter()
    ct, storage = canonical_order(ct)
    if mask is not None and storage is not None:
        mask = canonical_array(mask, storage)
    ct, hu_scale = check_hu_scale(ct)
    checks = [hu_scale, check_gantry_tilt(ct), check_slice_thickness(ct)]
    automatic = mask is None
    if mask is None:
        mask, mask_notes = brain_mask_with_notes(ct)
        notes += mask_notes
        if not mask.any():
            raise Ct2mriError(f"{ct.name}: no brain found in the CT")
    else:
        mask = np.asarray(mask) > 0
        if mask.shape != ct.shape:
            raise Ct2mriError(f"{ct.name}: the mask's shape {mask.shape} differs from the CT's {ct.shape}")
        if not mask.any():
            raise Ct2mriError(f"{ct.name}: the given brain mask is empty")
    checks += [
        check_brain_volume(mask, ct.spacing, ct.name, automatic=automatic),
        check_coverage(mask, ct.affine, ct.name),
        check_components(mask, ct.name),
        check_mask_in_skull(mask, ct.data, ct.spacing, ct.name),
    ]
    notes += [c.message for c in checks if c.verdict != "pass" and c.message]
    seconds["brain_mask"] = time.perf_counter() - start
    if strict and warnings_of(checks):
        failed = warnings_of(checks)
        raise Ct2mriError(f"{ct.name}: --strict: {', '.join(c.name for c in failed)} ({failed[0].message})")

    start = time.perf_counter()
    pose = estimate_pose(mask, ct.affine, ct.name) if config.frame == "canonical" and not native_axes else None
    seconds["pose"] = time.perf_counter() - start

    start = time.perf_counter()
    record = plan_model_grid(ct, mask, config, rotation=None if pose is None else pose.rotation)
    ct_model, mask_model = ct_to_model_space(ct.data, mask, record, config.ct_window_hu)
    cut = record.cut_note(ct.name)
    if cut:
        notes.append(cut)
    seconds["to_model_grid"] = time.perf_counter() - start
    return CtView(
        ct=ct,
        mask=mask,
        record=record,
        ct_model01=ct_model,
        mask_model=mask_model,
        checks=checks,
        pose=pose,
        notes=notes,
        seconds=seconds,
        storage=storage,
    )
