"""Measure the noise texture of a real head CT for the projection CT model.

    python scripts/measure_ct_noise.py [CT] [-o ct2mri_cli/data/projection/noise_texture.json]

The texture is the in-plane noise power spectrum (NPS) of the CT's residual after a 2D Gaussian
smoothing (sigma 1.5 mm), in homogeneous brain: voxels at least 6 mm inside the automatic brain
mask whose smoothed HU lies between 10 and 45 and varies by less than 3 HU over a 3 mm
neighbourhood.  Square patches (16 pixels) with 90 % of their pixels in that region are windowed (Hann), their
spectra averaged, the smoothing's high-pass transfer divided out where it passes at least 40 %
of the power (below that frequency the spectrum is held at its value there), and the result
averaged over rings of radial frequency.  The file records the spectrum normalised to a mean of
1 over the rings, the residual SD and where it came from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ct2mri_cli.io.volumes import read_volume
from ct2mri_cli.preprocessing.brainmask import extract_brain_ct

REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ct2mri_cli/data/projection/noise_texture.json"
PATCH = 16
HOMOGENEOUS_SHARE = 0.9  # of a patch's pixels
SMOOTH_SIGMA_MM = 1.5
RINGS = 10


def smooth_in_plane(hu: np.ndarray, spacing: tuple[float, float, float], sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing of every axial slice (axes 0 and 1), by FFT with periodic edges."""
    fx = np.fft.fftfreq(hu.shape[0], spacing[0])[:, None]
    fy = np.fft.fftfreq(hu.shape[1], spacing[1])[None, :]
    transfer = np.exp(-2 * np.pi**2 * sigma_mm**2 * (fx**2 + fy**2))
    return np.real(np.fft.ifft2(np.fft.fft2(hu, axes=(0, 1)) * transfer[..., None], axes=(0, 1)))


def homogeneous_region(hu: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Deep brain voxels whose smoothed HU is soft tissue and locally flat."""
    image = sitk.GetImageFromArray(brain.astype(np.uint8).transpose(2, 1, 0))
    image.SetSpacing(spacing)
    depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=True, useImageSpacing=True))
    deep = depth.transpose(2, 1, 0) >= 6.0
    smooth = smooth_in_plane(hu, spacing, 1.0)
    wide = smooth_in_plane(hu, spacing, 3.0)
    return deep & (smooth > 10) & (smooth < 45) & (np.abs(smooth - wide) < 3.0)


def measure(path: Path) -> dict:
    ct = read_volume(path)
    hu = np.asarray(ct.data, dtype=np.float64)
    spacing = tuple(float(s) for s in ct.spacing)
    brain = extract_brain_ct(ct)
    region = homogeneous_region(hu, brain, spacing)
    residual = hu - smooth_in_plane(hu, spacing, SMOOTH_SIGMA_MM)
    window = np.outer(np.hanning(PATCH), np.hanning(PATCH))
    spectra, values = [], []
    for z in range(hu.shape[2]):
        for i in range(0, hu.shape[0] - PATCH, PATCH // 2):
            for j in range(0, hu.shape[1] - PATCH, PATCH // 2):
                if region[i : i + PATCH, j : j + PATCH, z].mean() >= HOMOGENEOUS_SHARE:
                    patch = residual[i : i + PATCH, j : j + PATCH, z]
                    values.append(patch)
                    spectra.append(np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2)
    if len(spectra) < 50:
        raise SystemExit(f"{path}: only {len(spectra)} homogeneous patches; need 50")
    nps = np.mean(spectra, axis=0)
    fx = np.fft.fftfreq(PATCH, spacing[0])[:, None]
    fy = np.fft.fftfreq(PATCH, spacing[1])[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    passed = (1 - np.exp(-2 * np.pi**2 * SMOOTH_SIGMA_MM**2 * radius**2)) ** 2
    nyquist = 0.5 / max(spacing[0], spacing[1])
    edges = np.linspace(0.0, nyquist, RINGS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    rings = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (radius >= lo) & (radius < hi) & (passed >= 0.4)
        rings.append(float(np.mean(nps[inside] / passed[inside])) if inside.any() else float("nan"))
    rings_arr = np.asarray(rings)
    first = int(np.flatnonzero(np.isfinite(rings_arr))[0])
    rings_arr[:first] = rings_arr[first]
    rings_arr /= rings_arr.mean()
    return {
        "source": path.name,
        "pixel_mm": [round(spacing[0], 4), round(spacing[1], 4)],
        "patches": len(spectra),
        "residual_sd_hu": round(float(np.std(values)), 3),
        "frequency_per_mm": [round(float(f), 4) for f in centres],
        "nps_relative": [round(float(v), 4) for v in rings_arr],
        "method": __doc__.split("\n\n")[2].replace("\n", " ").strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ct", type=Path, nargs="?", default=REAL_CT)
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = measure(args.ct)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "method"}, indent=2))


if __name__ == "__main__":
    main()
