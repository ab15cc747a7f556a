"""Write the T1 template that finds the brain of a whole-head MRI for its style key.

    python scripts/export_style_template.py

From the MNI ICBM152 2009a template (nilearn's copy, found as ``ct2mri synthesize`` finds it):
the head T1 at 2 mm (uint8) and its brain mask (grey + white matter probability above 0.5, holes
filled: ventricles included) into ``models/templates/``, with the MNI notice beside them.
"""

from __future__ import annotations

import shutil

import numpy as np
import SimpleITK as sitk

from ct2mri_cli.bundled import models_dir
from ct2mri_cli.data.templates import find_mni_files
from ct2mri_cli.io.images import array_from_sitk, sitk_on_grid_of, smoothed_to_spacing
from ct2mri_cli.style.brain import TEMPLATE_MASK, TEMPLATE_T1

TEMPLATE_MM = 2.0


def main() -> None:
    files = find_mni_files()
    t1 = sitk.ReadImage(str(files["t1"]), sitk.sitkFloat32)
    tissue = sitk.ReadImage(str(files["gm"]), sitk.sitkFloat32) + sitk.ReadImage(str(files["wm"]), sitk.sitkFloat32)
    scale = 255.0 if array_from_sitk(tissue).max() > 1.5 else 1.0
    brain = sitk.BinaryFillhole(sitk.BinaryThreshold(tissue / scale, 0.5, 1e9, 1, 0))
    t1_2mm = smoothed_to_spacing(t1, TEMPLATE_MM, TEMPLATE_MM / 2.5)
    values = array_from_sitk(t1_2mm)
    t1_u8 = sitk_on_grid_of(
        np.clip(np.rint(values / np.percentile(values, 99.9) * 255.0), 0, 255).astype(np.uint8), t1_2mm
    )
    brain_2mm = smoothed_to_spacing(sitk.Cast(brain, sitk.sitkFloat32), TEMPLATE_MM, TEMPLATE_MM / 2.5)
    mask_2mm = sitk.BinaryThreshold(brain_2mm, 0.5, 1e9, 1, 0)
    out = models_dir() / "templates"
    out.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(t1_u8, str(out / TEMPLATE_T1), useCompression=True)
    sitk.WriteImage(sitk.Cast(mask_2mm, sitk.sitkUInt8), str(out / TEMPLATE_MASK), useCompression=True)
    shutil.copy(models_dir() / ".." / "ct2mri_cli" / "data" / "MNI_LICENSE.txt", out / "MNI_LICENSE.txt")
    print(f"wrote {out / TEMPLATE_T1} and {out / TEMPLATE_MASK}")


if __name__ == "__main__":
    main()
