import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.network import PRESETS, UNet
from ct2mri_cli.preprocessing.config import PreprocessConfig
from ct2mri_cli.settings import SamplingConfig
from ct2mri_cli.weights import ModelBundle, load_weights, read_metadata, save_weights
from tests.helpers import tiny_network


def _bundle(seed: int = 0) -> ModelBundle:
    return ModelBundle(
        network=tiny_network(seed),
        preprocess=PreprocessConfig(spacing_mm=2.0, in_plane=(48, 48)),
        sampling=SamplingConfig(steps=10),
        default_style_key=torch.rand(3, 128, generator=torch.Generator().manual_seed(seed)),
        provenance={"training_steps": 123, "seed": 7},
    )


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_weights(path, _bundle())
    return path


def test_round_trip_gives_same_outputs(weights_file):
    original = _bundle()
    loaded = load_weights(weights_file)
    x, t, s = torch.randn(2, 6, 16, 16), torch.tensor([1, 800]), torch.randn(2, 3, 128)
    with torch.no_grad():
        assert torch.equal(loaded.network(x, t, s), original.network(x, t, s))
    assert loaded.network_config == PRESETS["tiny"]
    assert loaded.preprocess == original.preprocess and loaded.sampling == original.sampling
    assert torch.equal(loaded.default_style_key, original.default_style_key)
    assert loaded.provenance["training_steps"] == 123 and loaded.provenance["seed"] == 7
    assert "package_version" in loaded.provenance and "date" in loaded.provenance
    assert loaded.sha256 == hashlib.sha256(weights_file.read_bytes()).hexdigest()


def test_corrupted_file(weights_file):
    data = weights_file.read_bytes()
    weights_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(Ct2mriError, match="not a safetensors weights file"):
        load_weights(weights_file)


def test_missing_file(tmp_path):
    with pytest.raises(Ct2mriError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(Ct2mriError, match="not a ct2mri weights file"):
        load_weights(path)


def _rewrite(path, tensors=None, **metadata_changes):
    meta = read_metadata(path)
    meta.update(metadata_changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(tensors if tensors is not None else load_file(str(path)), str(path), metadata=meta)


def test_other_format_version(weights_file):
    _rewrite(weights_file, format_version="2")
    with pytest.raises(Ct2mriError, match="format version '2'; this ct2mri reads version 1"):
        load_weights(weights_file)


def test_missing_metadata(weights_file):
    from safetensors import safe_open

    with safe_open(str(weights_file), "pt") as h:
        meta = dict(h.metadata())
    del meta["preprocess"]
    save_file(load_file(str(weights_file)), str(weights_file), metadata=meta)
    with pytest.raises(Ct2mriError, match="lacks preprocess"):
        load_weights(weights_file)


def test_missing_tensor(weights_file):
    tensors = load_file(str(weights_file))
    tensors.pop(sorted(tensors)[0])
    _rewrite(weights_file, tensors)
    with pytest.raises(Ct2mriError, match="do not match the network config"):
        load_weights(weights_file)


def test_shape_mismatch(weights_file):
    cfg = dict(PRESETS["tiny"].to_dict(), base_channels=8)
    _rewrite(weights_file, network=json.dumps(cfg))
    with pytest.raises(Ct2mriError, match="has shape"):
        load_weights(weights_file)


def test_bad_style_key_in_metadata(weights_file):
    _rewrite(weights_file, default_style_key=json.dumps([[0.0] * 128] * 2))
    with pytest.raises(Ct2mriError, match="3x128"):
        load_weights(weights_file)


def test_saved_network_size(tmp_path):
    path = tmp_path / "s.safetensors"
    net = UNet(PRESETS["small"])
    save_weights(path, ModelBundle(network=net))
    n_params = sum(p.numel() for p in net.parameters())
    assert path.stat().st_size == pytest.approx(4 * n_params, rel=0.02)


def _tensor_data_offset(path) -> int:
    """Where the tensor bytes start: after the 8-byte header length and the JSON header."""
    with open(path, "rb") as handle:
        return 8 + int.from_bytes(handle.read(8), "little")


def _info(path, capsys, code=0):
    from ct2mri_cli.cli.app import main

    assert main(["info", str(path), "--json"]) == code
    return json.loads(capsys.readouterr().out)


def test_random_bytes_inside_the_tensors_are_refused_on_loading(weights_file, capsys):
    assert _info(weights_file, capsys)["tensors_digest"] == "matches"
    data = bytearray(weights_file.read_bytes())
    start = _tensor_data_offset(weights_file) + 1000
    data[start : start + 4096] = (
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes()
    )
    weights_file.write_bytes(bytes(data))
    with pytest.raises(Ct2mriError, match="damaged"):
        load_weights(weights_file)
    assert _info(weights_file, capsys, code=1)["tensors_digest"].startswith("MISMATCH")  # damaged: exit 1


def test_a_broken_json_entry_is_named_with_its_file(weights_file, capsys):
    from ct2mri_cli.cli.app import main

    _rewrite(weights_file, network='{"base_channels": 16,')
    assert main(["info", str(weights_file)]) == 1
    err = capsys.readouterr().err
    assert (
        str(weights_file) in " ".join(err.split()) and "'network' is not valid JSON" in err and "Traceback" not in err
    )


def test_flipped_sign_bits_are_refused(weights_file):
    data = bytearray(weights_file.read_bytes())
    start = _tensor_data_offset(weights_file)
    for i in range(64):  # the top byte of 64 float32 values (little-endian): their sign bits
        data[start + 4 * (7 * i) + 3] ^= 0x80
    weights_file.write_bytes(bytes(data))
    with pytest.raises(Ct2mriError, match="damaged"):
        load_weights(weights_file)


def test_a_file_without_a_digest_still_loads(weights_file, capsys):
    _rewrite(weights_file, tensors_sha256=None)
    load_weights(weights_file)
    assert _info(weights_file, capsys)["tensors_digest"] == "not recorded"
