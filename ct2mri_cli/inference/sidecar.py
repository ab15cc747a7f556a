"""The provenance sidecar written next to every synthetic MRI: what made it, how, and how long it took."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.cases import case_name
from ..io.volumes import Volume
from .translator import Translation, Translator


def sidecar_path(output: Path) -> Path:
    """``synT1.nii.gz`` -> ``synT1.json`` (beside the output)."""
    return output.with_name(case_name(output) + ".json")


def build_sidecar(
    *,
    ct_path: Path,
    ct: Volume,
    output: Path,
    translator: Translator,
    result: Translation,
    style_source: str,
    style_distance: float | None,
    mask_path: Path | None,
    seconds: dict[str, float],
    qc_path: Path | None = None,
    trust_map_path: Path | None = None,
) -> dict[str, Any]:
    """The sidecar's content (JSON-ready)."""
    s, bundle = translator.sampling, translator.bundle
    return {
        "synthetic": True,
        "not_for_diagnosis": True,
        "input": str(ct_path),
        "input_description": ct.description,
        "output": str(output),
        "ct2mri_version": __version__,
        "weights": str(bundle.path),
        "weights_sha256": bundle.sha256,
        "weights_provenance": bundle.provenance,
        "style_source": style_source,
        "style_distance_to_default": None if style_distance is None else round(style_distance, 5),
        "sampler": {
            "mode": s.mode,
            "steps": s.steps,
            "corrections": s.corrections,
            "step_size": s.step_size,
            "correction_norm": s.correction_norm,
            "correction_cap": s.correction_cap,
        },
        "network_evaluations": result.evaluations,
        "batch_size": result.batch_size,
        "device": str(translator.device),
        "threads": translator.threads,
        "precision": "bf16" if translator.autocast is not None else "fp32",
        "channels_last": translator.channels_last,
        "brain_mask": str(mask_path) if mask_path is not None else "automatic",
        "checks": [c.to_dict() for c in result.checks],
        "trust": {**result.trust.to_dict(), "map": str(trust_map_path) if trust_map_path is not None else None},
        "qc": str(qc_path) if qc_path is not None else None,
        "head_pose": None if result.pose is None else result.pose.to_dict(),
        "model_grid": result.record.to_dict(),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "host": platform.node(),
        "notes": result.notes,
    }
