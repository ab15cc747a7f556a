"""Parallel-beam projection and filtered back-projection of a stack of square slices (torch).

A projection at angle theta sums each slice, turned by theta, along its rows (line integrals in
the slice's units times mm); back-projection smears a projection along the same rays and turns it
back, so the two are adjoint up to interpolation.  Filtered back-projection uses the band-limited
ramp filter in its spatial form (value 1 / (4 d^2) at 0, -1 / (pi n d)^2 at odd n, 0 at even n),
which has no offset at zero frequency.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def angles(count: int) -> torch.Tensor:
    """``count`` equally spaced projection angles over half a turn (radians)."""
    return torch.arange(count, dtype=torch.float64) * (math.pi / count)


def _turning_grids(thetas: torch.Tensor, n: int, sign: float) -> list[torch.Tensor]:
    """Sampling grids that turn an n x n image by ``sign`` times each angle about its centre."""
    grids = []
    for angle in thetas:
        c, s = math.cos(sign * float(angle)), math.sin(sign * float(angle))
        theta = torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=torch.float32)
        grids.append(F.affine_grid(theta, [1, 1, n, n], align_corners=False))
    return grids


def _turn(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Images (B, n, n) sampled on ``grid`` (zero outside)."""
    turned = F.grid_sample(
        images[:, None], grid.expand(images.shape[0], -1, -1, -1), align_corners=False, padding_mode="zeros"
    )
    return turned[:, 0]


def project(images: torch.Tensor, thetas: torch.Tensor, pixel_mm: float) -> torch.Tensor:
    """Sinograms (B, angles, n) of square images (B, n, n): line integrals along rows."""
    grids = _turning_grids(thetas, images.shape[-1], 1.0)
    return torch.stack([_turn(images, grid).sum(dim=1) * pixel_mm for grid in grids], dim=1)


def ramp_filter(sinograms: torch.Tensor, pixel_mm: float) -> torch.Tensor:
    """Sinograms convolved along the detector with the band-limited ramp (times the sample step)."""
    n = sinograms.shape[-1]
    size = 2 ** math.ceil(math.log2(2 * n))
    k = torch.arange(size, dtype=torch.float64)
    k = torch.minimum(k, size - k)  # circular distance, for a kernel centred at sample 0
    kernel = torch.where(k % 2 == 1, -1.0 / (math.pi * k.clamp(min=1) * pixel_mm) ** 2, torch.zeros_like(k))
    kernel[0] = 1.0 / (4.0 * pixel_mm**2)
    spectrum = torch.fft.rfft(kernel * pixel_mm).to(
        torch.complex64 if sinograms.dtype == torch.float32 else torch.complex128
    )
    filtered = torch.fft.irfft(torch.fft.rfft(sinograms, n=size) * spectrum, n=size)
    return filtered[..., :n]


def back_project(sinograms: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    """Images (B, n, n): each projection smeared along its rays, turned back and summed."""
    b, _, n = sinograms.shape
    out = torch.zeros((b, n, n), dtype=sinograms.dtype)
    for i, grid in enumerate(_turning_grids(thetas, n, -1.0)):
        out += _turn(sinograms[:, i, None, :].expand(b, n, n).contiguous(), grid)
    return out


def filtered_back_projection(sinograms: torch.Tensor, thetas: torch.Tensor, pixel_mm: float) -> torch.Tensor:
    """Reconstruct images (B, n, n) from their sinograms over half a turn."""
    return back_project(ramp_filter(sinograms, pixel_mm), thetas) * (math.pi / len(thetas))
