"""QC picture: synthetic pairs next to the real head CT of Debian's invesalius-examples.

Columns: real CT (brain window L40/W80) | synthetic CT (same window) | real CT (bone window
L600/W2800) | synthetic CT (same) | synthetic T1.  Rows: an axial slice through the lateral
ventricles, an axial slice through the posterior fossa and a coronal slice, for one MNI-based
and one Colin27-based pair.  Everything is shown at 1 mm per pixel with the patient's left on the
left of the picture (nearest-neighbour resampling, so noise is shown as acquired).

With ``--sources`` and ``--variety``, other source brains and the wide variety of subjects and
scanners; ``--planes 1`` shows only the axial slice through the ventricles (one row per source).

Usage: python scripts/make_synthetic_qc.py [OUT.png] [--seed S] [--sources mni,colin27]
       [--variety calibrated|wide] [--planes 1|3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ct2mri_cli.data.synthesis import case_seed, generate_pair
from ct2mri_cli.evaluation.qc import montage, to_uint8, write_png
from ct2mri_cli.io.images import resample_onto_grid, sitk_from_array
from ct2mri_cli.io.volumes import Volume, read_volume
from ct2mri_cli.preprocessing.brainmask import extract_brain_ct

REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
BRAIN_WINDOW = (40.0, 80.0)
BONE_WINDOW = (600.0, 2800.0)
PANEL = (200, 200)  # rows (anterior-posterior or superior-inferior), columns (left-right) in mm


def to_ras_1mm(data: np.ndarray, affine: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a volume onto an axis-aligned RAS grid of 1 mm covering it.

    Nearest neighbour, so that noise is shown as acquired: linear interpolation between the
    real CT's 1.5 mm slices would average its noise away and flatter it.
    """
    shape = np.asarray(data.shape)
    corners = np.array(
        [[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)], float
    )
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    lo, hi = world.min(axis=0), world.max(axis=0)
    out_shape = tuple(int(n) for n in np.floor(hi - lo).astype(int) + 1)
    out_affine = np.eye(4)
    out_affine[:3, 3] = lo
    src = sitk_from_array(np.asarray(data, dtype=np.float32), affine)
    return resample_onto_grid(src, out_shape, out_affine, None, "nearest", fill), out_affine


def window(image: np.ndarray, level_width: tuple[float, float]) -> np.ndarray:
    level, width = level_width
    return to_uint8(image, level - width / 2.0, level + width / 2.0)


def crop(
    plane: np.ndarray, centre: tuple[int, int], size: tuple[int, int] = PANEL, fill: float = -1024.0
) -> np.ndarray:
    """A fixed-size window of a 2D array around ``centre`` (padded with ``fill``)."""
    out = np.full(size, fill, dtype=np.float32)
    r0, c0 = centre[0] - size[0] // 2, centre[1] - size[1] // 2
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size[0], plane.shape[0]), min(c0 + size[1], plane.shape[1])
    out[rs - r0 : re - r0, cs - c0 : ce - c0] = plane[rs:re, cs:ce]
    return out


def sections(ras: np.ndarray, mask: np.ndarray, fill: float) -> list[np.ndarray]:
    """Axial (ventricles), axial (posterior fossa) and coronal planes, display-oriented.

    Levels are fractions of the brain mask's extent so real and synthetic heads match in anatomy.
    """
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    cx, cy = (lo[0] + hi[0]) // 2, (lo[1] + hi[1]) // 2
    out = []
    for frac in (0.62, 0.30):
        z = int(lo[2] + frac * (hi[2] - lo[2]))
        plane = ras[:, :, z].T[::-1, :]  # rows: anterior at top; columns: x (patient left first)
        out.append(crop(plane, (plane.shape[0] - 1 - cy, cx), fill=fill))
    coronal = ras[:, cy, :].T[::-1, :]  # rows: superior at top
    cz = (lo[2] + hi[2]) // 2
    out.append(crop(coronal, (coronal.shape[0] - 1 - cz, cx), fill=fill))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/qc_synthetic_pair.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", default="mni,colin27")
    parser.add_argument("--variety", default="calibrated")
    parser.add_argument("--planes", type=int, default=3, choices=(1, 3))
    args = parser.parse_args(argv)

    real = read_volume(REAL_CT)
    real_mask = extract_brain_ct(real)
    real_ras, _ = to_ras_1mm(real.data, real.affine, -1024.0)
    real_mask_ras, _ = to_ras_1mm(real_mask.astype(np.float32), real.affine, 0.0)
    real_planes = sections(real_ras, real_mask_ras > 0.5, -1024.0)[: args.planes]

    rows = []
    for index, source in enumerate(args.sources.split(",")):
        pair = generate_pair(source, case_seed(args.seed, index), variety=args.variety)
        if args.variety == "wide":
            p = pair.params
            print(
                f"{source}: slice {p.slice_thickness_mm:.1f} mm, kernel {p.kernel_sharpness:.2f}, noise "
                f"{p.ct_noise_sd:.1f} HU, GM-WM {p.hu['gm'] - p.hu['wm']:.1f} HU, cupping {p.cupping_hu:.1f} HU, "
                f"atrophy {p.atrophy:.2f}, ventricles {p.ventricle_mm:+.1f} mm, pitch {p.rotation_deg[0]:+.0f} deg"
            )
        ct_ras, _ = to_ras_1mm(pair.ct, pair.affine, -1024.0)
        t1_ras, _ = to_ras_1mm(pair.t1, pair.affine, 0.0)
        mask = extract_brain_ct(Volume(pair.ct.astype(np.float32), pair.affine))
        mask_ras, _ = to_ras_1mm(mask.astype(np.float32), pair.affine, 0.0)
        ct_planes = sections(ct_ras, mask_ras > 0.5, -1024.0)
        t1_planes = sections(t1_ras, mask_ras > 0.5, 0.0)
        t1_hi = float(np.percentile(t1_ras[mask_ras > 0.5], 99.5))
        for real_p, ct_p, t1_p in zip(real_planes, ct_planes, t1_planes):
            rows.append(
                [
                    window(real_p, BRAIN_WINDOW),
                    window(ct_p, BRAIN_WINDOW),
                    window(real_p, BONE_WINDOW),
                    window(ct_p, BONE_WINDOW),
                    to_uint8(t1_p, 0.0, t1_hi),
                ]
            )
    write_png(montage(rows, gap=4), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
