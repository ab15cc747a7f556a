"""The Python entry point of ``translate``: the same request gives the same files as the command."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli import TranslateRequest, translate_files
from ct2mri_cli.cli.app import main
from ct2mri_cli.inference.plan import plan_translation
from tests.helpers import fast_weights

OUTPUT_FILES = ("t1.nii.gz", "t1.json", "mask.nii.gz", "qc.png", "trust.nii.gz")


@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    """A phantom head CT at 3 mm and a fast network: a translation takes seconds."""
    from tests.conftest import make_head_phantom

    root = tmp_path_factory.mktemp("plan")
    phantom = make_head_phantom(spacing=(3.0, 3.0, 3.0))
    ct = root / "head.nii.gz"
    nib.save(nib.Nifti1Image(phantom.hu.astype(np.int16), phantom.affine), str(ct))
    return ct, fast_weights(root / "w.safetensors")


def _written(folder: Path) -> dict[str, bytes]:
    """The bytes of every output; the sidecar without its seconds per stage (timings of this run)."""
    files = {name: (folder / name).read_bytes() for name in OUTPUT_FILES}
    sidecar = json.loads(files["t1.json"])
    del sidecar["seconds"]
    files["t1.json"] = json.dumps(sidecar, sort_keys=True).encode()
    return files


def test_the_python_entry_point_writes_what_the_command_writes(tmp_path, small_case):
    ct, weights = small_case
    out = tmp_path / "out"
    assert (
        main(
            [
                "-q",
                "translate",
                str(ct),
                str(out / "t1.nii.gz"),
                "--weights",
                str(weights),
                "--device",
                "cpu",
                "--paper",
                "--steps",
                "3",
                "--style",
                "colin27",
                "--save-mask",
                str(out / "mask.nii.gz"),
                "--qc",
                str(out / "qc.png"),
                "--trust-map",
                str(out / "trust.nii.gz"),
            ]
        )
        == 0
    )
    by_command = _written(out)
    for name in OUTPUT_FILES:
        (out / name).unlink()

    request = TranslateRequest(
        inputs=[ct, out / "t1.nii.gz"],
        weights=weights,
        device="cpu",
        paper=True,
        steps=3,
        style="colin27",
        save_mask=out / "mask.nii.gz",
        qc=out / "qc.png",
        trust_map=out / "trust.nii.gz",
    )
    result = translate_files(request, env={})
    assert result.outcome.done == ["head"] and not result.outcome.failures
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    by_python = _written(out)
    for name in OUTPUT_FILES:
        assert by_python[name] == by_command[name], name
    assert json.loads(by_python["t1.json"])["sampler"]["correction_norm"] == "paper"


def test_the_launchers_variables_come_from_the_mapping_given(tmp_path, small_case):
    ct, weights = small_case
    cases = [tmp_path / f"{name}.nii.gz" for name in ("a", "b", "c")]
    for case in cases:
        case.write_bytes(ct.read_bytes())
    array_task = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"}
    heard = []
    plan = plan_translation(
        TranslateRequest(inputs=cases, output=tmp_path / "out", weights=weights, device="cpu"),
        env=array_task,
        on_share=lambda shard, mine, jobs: heard.append((shard.label, len(mine), len(jobs))),
    )
    assert heard == [("2-of-2", 1, 3)] and [job.case for job in plan.mine] == ["b"]
    assert plan.cohort_folder == tmp_path / "out" and plan.cohort_folder.is_dir() and not plan.named_file
    # a file the user named is translated whole, whatever the array says
    named = plan_translation(
        TranslateRequest(inputs=[cases[0], tmp_path / "a_t1.nii.gz"], weights=weights, device="cpu"), env=array_task
    )
    assert named.named_file and named.cohort_folder is None and named.shard.count == 1 and len(named.mine) == 1
