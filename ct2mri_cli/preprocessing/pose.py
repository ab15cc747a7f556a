"""Head pose: the rotation that takes a scan's head into the canonical frame of the MNI template.

Clinical CTs are tilted along the orbitomeatal line, 10-25 degrees from the AC-PC frame of the
templates and of the training data, and a 2D slice model sees other slices for every pose.  The
pose is found by registering the brain mask (smoothed, 4 mm, mean squares; robust to lesions and
to the contrast of the scan) to the template's brain mask with a similarity transform; its
rotation orients the model grid, so slices are cut in the canonical frame at training and at
inference alike (see :func:`ct2mri_cli.preprocessing.geometry.plan_model_grid`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundled import models_dir
from ..errors import Ct2mriError
from ..io.images import sitk_from_array, smoothed_to_spacing
from .registration import RegistrationSettings, centred_by_moments, run_registration

TEMPLATE_BRAIN = "templates/mni_icbm152_2009a_brain_2mm.nii.gz"
POSE_MM = 4.0
POSE_SMOOTHING_MM = POSE_MM / 2.0
POSE_REGISTRATION = RegistrationSettings(
    metric="mean_squares",
    shrink_factors=(2, 1),
    smoothing_mm=(1.0, 0.0),
    sampling_fraction=None,
    iterations=300,
    relaxation=0.7,
    gradient_tolerance=1e-4,
)
_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Pose:
    """``rotation`` (3 x 3, RAS) maps canonical directions to the scan's world directions."""

    rotation: np.ndarray
    translation_mm: tuple[float, float, float]
    scale: float

    @property
    def angles_degrees(self) -> dict[str, float]:
        """Pitch (about left-right), roll (about anterior-posterior), yaw (about inferior-superior)."""
        r = self.rotation
        pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
        roll = math.degrees(math.asin(float(np.clip(-r[2, 0], -1.0, 1.0))))
        yaw = math.degrees(math.atan2(r[1, 0], r[0, 0]))
        return {"pitch": round(pitch, 2), "roll": round(roll, 2), "yaw": round(yaw, 2)}

    def to_dict(self) -> dict:
        return {
            **self.angles_degrees,
            "translation_mm": [round(v, 2) for v in self.translation_mm],
            "scale": round(self.scale, 4),
            "rotation": np.asarray(self.rotation).round(6).tolist(),
        }


@functools.lru_cache(maxsize=2)
def _template_at_pose_resolution(path: Path):
    """The template brain, smoothed and at :data:`POSE_MM` (read once per process, not per case)."""
    import SimpleITK as sitk

    return smoothed_to_spacing(sitk.ReadImage(str(path), sitk.sitkFloat32), POSE_MM, POSE_SMOOTHING_MM)


def estimate_pose(mask: np.ndarray, affine: np.ndarray, name: str = "scan") -> Pose:
    """The head pose of a brain mask on a grid with ``affine`` (RAS)."""
    import SimpleITK as sitk

    path = models_dir() / TEMPLATE_BRAIN
    if not path.is_file():
        raise Ct2mriError(
            f"{name}: the head-pose template {path} is missing (or keep the scan's axes: translate --native-axes, preprocess --frame native)"
        )
    fixed = _template_at_pose_resolution(path)
    moving = smoothed_to_spacing(
        sitk_from_array(np.asarray(mask, dtype=np.float32), affine), POSE_MM, POSE_SMOOTHING_MM
    )
    found = sitk.Similarity3DTransform(centred_by_moments(fixed, moving, sitk.Similarity3DTransform()))
    try:
        run_registration(fixed, moving, found, POSE_REGISTRATION, in_place=True)
    except RuntimeError as exc:
        raise Ct2mriError(
            f"{name}: the head pose could not be found ({exc}); keep the scan's axes with translate --native-axes or preprocess --frame native"
        ) from None
    matrix = np.asarray(found.GetMatrix(), dtype=np.float64).reshape(3, 3)
    u, s, vt = np.linalg.svd(matrix)
    rotation_lps = u @ vt
    rotation = _LPS @ rotation_lps @ _LPS
    translation = _LPS @ np.asarray(found.GetTranslation(), dtype=np.float64)
    return Pose(
        rotation=rotation,
        translation_mm=(float(translation[0]), float(translation[1]), float(translation[2])),
        scale=float(s.mean()),
    )
