"""Small shared builders for tests: tiny networks with non-trivial weights, and model-grid,
resampling and transform shortcuts the package itself does not need."""

from __future__ import annotations

import torch

from ct2mri_cli.network import PRESETS, UNet


def tiny_network(seed: int = 0) -> UNet:
    """The tiny preset with every parameter randomised (zero-initialised layers would hide bugs)."""
    torch.manual_seed(seed)
    net = UNet(PRESETS["tiny"])
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return net.eval()


def fast_weights(path, spacing_mm: float = 4.0, in_plane=(48, 40), steps: int = 3, seed: int = 0):
    """A weights file with a small random 3-level network that translates a head CT in seconds."""
    from ct2mri_cli.network import UNetConfig
    from ct2mri_cli.preprocessing.config import PreprocessConfig
    from ct2mri_cli.settings import SamplingConfig
    from ct2mri_cli.weights import ModelBundle, save_weights

    torch.manual_seed(seed)
    cfg = UNetConfig(base_channels=8, channel_mult=(1, 2, 4), num_res_blocks=1, head_channels=8, norm_groups=8)
    net = UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    key = torch.rand(3, 128, generator=torch.Generator().manual_seed(seed))
    bundle = ModelBundle(
        network=net,
        preprocess=PreprocessConfig(spacing_mm=spacing_mm, in_plane=tuple(in_plane), frame="native"),
        sampling=SamplingConfig(steps=steps, corrections=1),
        default_style_key=key,
        provenance={"note": "random test network"},
    )
    save_weights(path, bundle)
    return path


def to_model_grid(volume, brain_mask, config, order="linear", pad_value=0.0, rotation=None):
    """``volume`` on the model grid that ``brain_mask`` (on the volume's grid) defines, oriented by
    ``rotation``: the (Z, H, W) float32 model array and its grid record, in one call."""
    from ct2mri_cli.preprocessing.geometry import apply_model_grid, plan_model_grid

    record = plan_model_grid(volume, brain_mask, config, rotation)
    return apply_model_grid(volume.data, record, order=order, pad_value=pad_value), record


def resample_to_reference(moving, reference, transform=None, order="linear", fill=0.0, moving_affine=None):
    """``moving`` (a Volume, or an array placed by ``moving_affine``) resampled onto ``reference``'s
    grid through ``transform`` (ITK: reference points to moving points), as a float32 (i, j, k) array."""
    import numpy as np

    from ct2mri_cli.io.images import resample_onto_grid, sitk_from_array
    from ct2mri_cli.io.volumes import Volume

    data, affine = (moving.data, moving.affine) if isinstance(moving, Volume) else (moving, moving_affine)
    image = sitk_from_array(np.asarray(data, dtype=np.float32), affine)
    return resample_onto_grid(image, reference.shape, reference.affine, transform, order, fill)


def transform_points_ras(transform, points_ras):
    """An ITK transform (LPS) applied to (N, 3) RAS points; returns RAS points."""
    import numpy as np

    lps = np.array([-1.0, -1.0, 1.0])
    pts = np.asarray(points_ras, dtype=np.float64) * lps
    return np.array([transform.TransformPoint([float(v) for v in p]) for p in pts]) * lps


def mean_displacement_mm(first, second, points_ras) -> float:
    """Mean distance (mm) between where two ITK transforms send the same RAS points."""
    import numpy as np

    return float(
        np.linalg.norm(
            transform_points_ras(first, points_ras) - transform_points_ras(second, points_ras), axis=1
        ).mean()
    )
