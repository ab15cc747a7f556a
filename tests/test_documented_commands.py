"""Every command that README.md and models/README.md show runs as written, on a fresh folder.

Only the sizes shrink (pairs, steps, network preset, voxel size), so the whole walk-through
takes a minute or two; paths, options and the order of the commands are the documents' own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", ROOT / "models" / "README.md")


def documented_commands(document: Path) -> list[str]:
    """The shell commands of a document's ``bash`` blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", document.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith(("make ", "#")):
                commands.append(" ".join(line.split()))
    return commands


def _small(command: str) -> str:
    """The same command at test size."""
    command = re.sub(r"\[(-[^\]|]+)(\|[^\]]*)?\]", r"\1", command)  # "[-o scores.csv|.json]" -> "-o scores.csv"
    if " synthesize " in f" {command} ":
        command = re.sub(r"-n \d+", "-n 2", command) + " --spacing 4"
    if " preprocess " in command and "--spacing" not in command:
        command += " --spacing 4 --size 48 40"
    if " train " in command:
        steps = {"20000": "2", "40000": "3", "8000": "2"}
        command = re.sub(r"--steps (\d+)", lambda m: f"--steps {steps.get(m.group(1), '2')}", command)
        if "--steps" not in command:
            command += " --steps 2"
        command = re.sub(r"--preset \w+", "--preset tiny", command)
        command = command.replace("--nproc_per_node=4", "--nproc_per_node=2")
        command += " --device cpu --set val_steps=2 --set val_corrections=0 --set checkpoint_every=1"
    if command.startswith("ct2mri translate") or " translate " in command:
        command += " --steps 2 --device cpu"
    return command


def _inputs(folder: Path, env: dict[str, str]) -> None:
    """The files the commands name: CTs with their T1s and masks, folders and case tables of them."""
    subprocess.run(
        [
            "ct2mri",
            "-q",
            "synthesize",
            "-o",
            "inputs",
            "-n",
            "2",
            "--seed",
            "5",
            "--spacing",
            "2",
            "--variety",
            "calibrated",
        ],
        cwd=folder,
        env=env,
        check=True,
    )
    pairs = [folder / "inputs" / f"case_000{i}" for i in range(2)]
    shutil.copy(pairs[0] / "ct_hu.nii.gz", folder / "ct.nii.gz")
    shutil.copy(pairs[0] / "t1.nii.gz", folder / "t1.nii.gz")
    shutil.copy(pairs[0] / "brain_mask.nii.gz", folder / "brainmask.nii.gz")
    shutil.copy(pairs[1] / "t1.nii.gz", folder / "ref_t1.nii.gz")
    for name, kind in (("cases", "ct_hu"), ("cts", "ct_hu"), ("mri", "t1"), ("mris", "t1"), ("masks", "brain_mask")):
        (folder / name).mkdir()
        for pair in pairs:
            shutil.copy(pair / f"{kind}.nii.gz", folder / name / f"{pair.name}.nii.gz")
    (folder / "pairs.csv").write_text(
        "case,ct,mri\n" + "".join(f"p{i},cts/{p.name}.nii.gz,mris/{p.name}.nii.gz\n" for i, p in enumerate(pairs))
    )
    (folder / "cases.csv").write_text(
        "case,pred,ref\n" + "".join(f"{p.name},out/{p.name}_synT1.nii.gz,mri/{p.name}.nii.gz\n" for p in pairs)
    )
    shutil.copytree(ROOT / "models" / "templates", folder / "models" / "templates")  # as in a clone
    (folder / "scripts").symlink_to(ROOT / "scripts")


def test_the_documents_list_their_commands():
    commands = [c for d in DOCUMENTS for c in documented_commands(d)]
    kinds = {c.split()[1] if c.startswith("ct2mri") else c.split()[0] for c in commands}
    assert {"translate", "preprocess", "train", "synthesize", "evaluate", "-q", "torchrun", "python"} <= kinds


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_documented_command_runs_on_a_fresh_folder(tmp_path, document):
    """Each document is a walk-through of its own, run in a folder of its own."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    bundled = {**env, "CT2MRI_MODELS": str(ROOT / "models")}
    _inputs(tmp_path, bundled)
    # the README's commands use the bundled model; the model card's rebuild writes a model of its own
    run_env = bundled if document == ROOT / "README.md" else {**env, "CT2MRI_MODELS": str(tmp_path / "models")}
    failures = []
    for command in documented_commands(document):
        small = _small(command)
        done = subprocess.run(
            small, shell=True, cwd=tmp_path, env=run_env, capture_output=True, encoding="utf-8", errors="replace"
        )
        if done.returncode != 0:
            failures.append(f"{command}\n  ran: {small}\n  {done.stderr.strip()[-600:]}")
    assert not failures, "\n".join(failures)
    if document != ROOT / "README.md":
        assert (tmp_path / "models" / "ct2mri-2mm.safetensors").is_file()
        assert (tmp_path / "models" / "keys" / "colin27.safetensors").is_file()
