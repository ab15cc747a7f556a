"""A case's slice stacks for the viewer: its CT (brain window), synthetic T1 and trust map.

All three lie on the CT's grid (``translate`` writes its outputs there), so one crop and one slice
index serve them all; a volume on another grid is left out with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Ct2mriError
from ..evaluation.qc import to_uint8
from ..io.volumes import Volume, read_volume
from .collect import CaseRecord
from .slices import SliceStack, axial_slices, brain_box, ras_array, sprite

CT_WINDOW_HU = (0.0, 80.0)
SLICE_SIZE = 96


@dataclass
class CaseViews:
    """Slice stacks by role (``ct``, ``t1``, ``trust``), each with a caption, and what was left out."""

    stacks: dict[str, SliceStack] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _read(path: Path | None, what: str, notes: list[str]) -> Volume | None:
    if path is None:
        return None
    try:
        return read_volume(path)
    except (Ct2mriError, OSError, ValueError) as exc:
        notes.append(f"{what} {path.name} unreadable: {exc}")
        return None


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-3)


def _trust_range(values: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    inside = values[brain & np.isfinite(values)]
    if inside.size == 0:
        return 0.0, 1.0
    lo = min(0.0, float(inside.min()))
    hi = float(np.percentile(inside, 99.5))
    return lo, hi if hi > lo else lo + 1.0


def case_views(record: CaseRecord, size: int = SLICE_SIZE) -> CaseViews:
    """Read a finished case's volumes and tile their axial slices (nothing for a case without output)."""
    views = CaseViews()
    t1 = _read(record.output, "synthetic T1", views.notes)
    if t1 is None:
        return views
    t1_data, spacing = ras_array(t1)
    brain = t1_data > 0
    box = brain_box(brain, spacing)

    def add(role: str, data: np.ndarray, lo: float, hi: float, caption: str) -> None:
        slices, aspect = axial_slices(data, spacing, box, size)
        views.stacks[role] = sprite(to_uint8(slices, lo, hi), aspect)
        views.captions[role] = caption

    ct = _read(record.ct, "CT", views.notes)
    if ct is not None and not _same_grid(ct, t1):
        views.notes.append(f"CT {ct.name} is not on the synthetic T1's grid; not shown")
        ct = None
    if ct is not None:
        add("ct", ras_array(ct)[0], *CT_WINDOW_HU, f"CT {CT_WINDOW_HU[0]:g}-{CT_WINDOW_HU[1]:g} HU")
    add("t1", t1_data, 0.0, 1.0, "synthetic T1")
    trust = _read(record.trust_map, "trust map", views.notes)
    if trust is not None and not _same_grid(trust, t1):
        views.notes.append(f"trust map {trust.name} is not on the synthetic T1's grid; not shown")
        trust = None
    if trust is not None:
        values = ras_array(trust)[0].astype(np.float32)
        lo, hi = _trust_range(values, brain)
        add("trust", values, lo, hi, f"expected error {lo:.3g}-{hi:.3g} (trust map)")
    return views
