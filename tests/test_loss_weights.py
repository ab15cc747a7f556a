import json

import pytest
import torch

from ct2mri_cli.diffusion.bridge import to_bridge_range
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.training.config import config_from_dict
from ct2mri_cli.training.loss_weights import csf_pixel_weights
from tests.training_helpers import write_dataset


def test_only_brain_voxels_in_the_csf_range_weigh_more():
    hu = torch.tensor([[-1000.0, 0.5, 8.0, 17.0, 19.0, 30.0, 80.0, 500.0]])
    brain = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    ct01 = ((hu - 0.0) / 80.0).clamp(0, 1) * brain  # preprocessing's window and mask
    weights = csf_pixel_weights(to_bridge_range(ct01), (0.0, 80.0), 4.0)
    assert weights.tolist() == [[1.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0]]
    # another window keeps the threshold at the same HU
    ct01 = ((hu + 20.0) / 120.0).clamp(0, 1) * brain
    weights = csf_pixel_weights(to_bridge_range(ct01), (-20.0, 100.0), 2.0)
    assert weights.tolist() == [[1.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0]]


def test_a_negative_csf_weight_is_refused(tmp_path):
    with pytest.raises(Ct2mriError, match="csf_weight"):
        config_from_dict({"data_dir": str(tmp_path), "preset": "tiny", "csf_weight": -1.0})


def test_training_with_a_csf_weight_changes_the_loss_and_repeats(tmp_path):
    from ct2mri_cli.training import train
    from ct2mri_cli.training.monitor import read_log

    folder = write_dataset(tmp_path / "pairs", n_cases=2)
    # the phantom's brain lies at 0.25-0.5 of the CT window; declared as -40..80 HU, its darker
    # half is below the CSF threshold (0.48)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["preprocess"]["ct_window_hu"] = [-40.0, 80.0]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    base = {"preset": "tiny", "device": "cpu", "num_threads": 1, "batch_size": 3, "data_dir": str(folder)}
    base |= {"val_subjects": 0, "steps": 2, "log_every": 1, "checkpoint_every": 0}

    def losses(name, **settings):
        train(config_from_dict({**base, **settings}), tmp_path / name, quiet=True)
        return [r["loss"] for r in read_log(tmp_path / name / "log.jsonl") if r["kind"] == "train"]

    weighted = losses("weighted", csf_weight=4.0)
    assert weighted == losses("again", csf_weight=4.0)
    assert weighted[0] != losses("plain")[0]
