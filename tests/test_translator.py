"""The translator: the bridge and sampler settings of a weights file are the ones sampling uses."""

import numpy as np
import pytest
import torch

from ct2mri_cli.diffusion.bridge import BridgeConfig
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.preprocessing.config import PreprocessConfig
from ct2mri_cli.settings import SamplingConfig
from ct2mri_cli.weights import ModelBundle, load_weights, save_weights
from tests.helpers import tiny_network


def _translator(tmp_path, bridge: BridgeConfig, sampling: SamplingConfig) -> Translator:
    bundle = ModelBundle(
        network=tiny_network(),
        bridge=bridge,
        preprocess=PreprocessConfig(in_plane=(16, 16)),
        default_style_key=torch.rand(3, 128),
    )
    save_weights(tmp_path / "w.safetensors", bundle)
    return Translator(load_weights(tmp_path / "w.safetensors"), torch.device("cpu"), sampling)


def _time_points(translator: Translator) -> list[int]:
    seen: list[int] = []
    inner = translator.denoiser

    def recording(x_t, y, t, style):
        seen.append(int(t[0]))
        return inner(x_t, y, t, style)

    translator.denoiser = recording
    ct01 = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    translator._sample(ct01, translator.bundle.default_style_key, None, [])
    return sorted(set(seen), reverse=True)


def test_sampling_follows_the_bridge_stored_in_the_weights(tmp_path):
    sampling = SamplingConfig(steps=4, corrections=0, mode="coprediction")
    assert _time_points(_translator(tmp_path, BridgeConfig(), sampling)) == [999, 499, 1, 0]
    assert _time_points(_translator(tmp_path, BridgeConfig(num_timesteps=200), sampling)) == [199, 99, 1, 0]


def test_more_steps_than_the_bridge_has_are_refused(tmp_path):
    with pytest.raises(Ct2mriError, match="--steps 201: the bridge has only 200 time steps"):
        _translator(tmp_path, BridgeConfig(num_timesteps=200), SamplingConfig(steps=201))
    _translator(tmp_path, BridgeConfig(num_timesteps=200), SamplingConfig(steps=200))


def test_the_correction_cap_of_the_settings_reaches_the_sampler(tmp_path):
    ct01 = np.random.default_rng(1).random((3, 16, 16), dtype=np.float32)
    outputs = []
    for cap in (0.0, 0.02):
        sampling = SamplingConfig(
            steps=4, corrections=1, step_size=1e6, mode="ista", correction_norm="paper", correction_cap=cap
        )
        translator = _translator(tmp_path, BridgeConfig(), sampling)
        outputs.append(translator._sample(ct01, translator.bundle.default_style_key, None, [])[0])
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3


@pytest.mark.realdata
def test_how_a_scan_is_stored_does_not_change_its_translation(tmp_path, head_ct):
    """The real head CT stored z-flipped, x-flipped and with its axes permuted: same pose, same
    mask and the same synthetic T1 voxel for voxel (the scan is put in RAS order before anything)."""
    import dataclasses

    import torch

    from ct2mri_cli.inference.translator import Translator
    from ct2mri_cli.io.volumes import Volume
    from ct2mri_cli.weights import load_weights
    from tests.helpers import fast_weights

    bundle = load_weights(fast_weights(tmp_path / "w.safetensors"))
    bundle.preprocess = dataclasses.replace(bundle.preprocess, frame="canonical")  # slices cut in the head's pose
    translator = Translator(bundle, torch.device("cpu"), bundle.sampling.with_overrides(steps=2))
    data, affine = np.asarray(head_ct.data), np.asarray(head_ct.affine)
    reference = translator.translate(head_ct, bundle.default_style_key)

    def stored(array, to_stored):  # the same world, another voxel order
        return Volume(data=np.ascontiguousarray(array), affine=affine @ to_stored, description="stored")

    flip_z = np.eye(4)
    flip_z[2, 2], flip_z[2, 3] = -1, data.shape[2] - 1
    flip_x = np.eye(4)
    flip_x[0, 0], flip_x[0, 3] = -1, data.shape[0] - 1
    permute = np.zeros((4, 4))
    permute[2, 0] = permute[0, 1] = permute[1, 2] = permute[3, 3] = 1
    copies = {
        "z-flipped": (stored(data[:, :, ::-1], flip_z), lambda a: a[:, :, ::-1]),
        "x-flipped": (stored(data[::-1], flip_x), lambda a: a[::-1]),
        "permuted": (stored(data.transpose(2, 0, 1), permute), lambda a: a.transpose(1, 2, 0)),
    }
    for name, (volume, back) in copies.items():
        out = translator.translate(volume, bundle.default_style_key)
        assert out.mri01.shape == volume.shape, name
        assert out.pose.angles_degrees == reference.pose.angles_degrees, name
        np.testing.assert_array_equal(back(out.mask), reference.mask, err_msg=name)
        assert np.abs(back(out.mri01) - reference.mri01)[reference.mask].max() <= 1e-4, name
