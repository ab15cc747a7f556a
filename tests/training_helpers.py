"""Tiny synthetic ``ct2mri preprocess`` folders for the training tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ct2mri_cli.style.key import save_style_key, style_key


def synthetic_case(seed: int, shape: tuple[int, int, int] = (12, 32, 32), brain_slices: range | None = None):
    """(ct01, mri01, mask) of a head-like phantom: an ellipsoid brain with smooth texture and a skull.

    The brain occupies ``brain_slices`` (default: all but the two slices at each end).
    """
    rng = np.random.default_rng(seed)
    z, h, w = shape
    brain_slices = brain_slices if brain_slices is not None else range(2, z - 2)
    zz, yy, xx = np.mgrid[0:z, 0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2 + rng.uniform(-1, 1), (w - 1) / 2 + rng.uniform(-1, 1)
    r = np.sqrt(((yy - cy) / (0.36 * h)) ** 2 + ((xx - cx) / (0.30 * w)) ** 2)
    in_slices = np.isin(np.arange(z), list(brain_slices))[:, None, None]
    mask = (r < 1.0) & in_slices
    skull = (r >= 1.0) & (r < 1.25) & in_slices
    phase = rng.uniform(0, 2 * np.pi, 3)
    texture = 0.5 + 0.25 * np.sin(xx / 2.5 + phase[0]) * np.cos(yy / 3.0 + phase[1]) + 0.1 * np.sin(zz / 2 + phase[2])
    mri = np.where(mask, np.clip(texture, 0.05, 1.0), 0.0) + np.where(skull, 0.15, 0.0)
    ct = np.where(mask, 0.2 + 0.3 * (1.0 - texture), 0.0) + np.where(skull, 1.0, 0.0)
    return ct.astype(np.float32), mri.astype(np.float32), mask


def _write_nifti(path: Path, array_zhw: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(np.asarray(array_zhw).transpose(2, 1, 0), np.diag([2.0, 2.0, 2.0, 1.0])), str(path))


def write_dataset(
    folder: Path,
    n_cases: int = 3,
    shape: tuple[int, int, int] = (12, 32, 32),
    shapes: Sequence[tuple[int, int, int]] | None = None,
    empty_masks: bool = False,
    with_keys: bool = True,
) -> Path:
    """Write ``n_cases`` phantom pairs and a manifest in the preprocess format; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(n_cases):
        case_shape = shapes[i] if shapes is not None else shape
        ct, mri, mask = synthetic_case(i, case_shape)
        if empty_masks:
            mask = np.zeros_like(mask)
        name = f"case{i:02d}"
        entry = {
            "case": name,
            "ct": f"{name}_ct.nii.gz",
            "mri": f"{name}_mri.nii.gz",
            "mask": f"{name}_mask.nii.gz",
            "qc": None,
            "shape": list(case_shape),
            "spacing_mm": 2.0,
            "registration_metric": None,
            "grid": {},
        }
        _write_nifti(folder / entry["ct"], ct)
        _write_nifti(folder / entry["mri"], mri)
        _write_nifti(folder / entry["mask"], mask.astype(np.uint8))
        if with_keys:
            entry["style_key"] = f"{name}_style.safetensors"
            save_style_key(folder / entry["style_key"], style_key(mri, mask if mask.any() else None))
        else:
            entry["style_key"] = None
        cases.append(entry)
    manifest = {
        "format": "ct2mri-preprocessed",
        "version": 1,
        "preprocess": {
            "spacing_mm": 2.0,
            "in_plane": [shape[1], shape[2]],
            "margin_mm": 4.0,
            "ct_window_hu": [0.0, 80.0],
            "mri_percentiles": [0.5, 99.5],
        },
        "cases": cases,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder
