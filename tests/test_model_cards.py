"""The bundled model and the staged weights in models/stages/ are what models/README.md says they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.weights import file_sha256, load_weights

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "models" / "README.md"
STAGES = ROOT / "models" / "stages"


def stage_rows(title: str) -> list[list[str]]:
    """The cells of a card section's table of staged files (rows whose first cell names a weights
    file), from the section's title to the next top-level title."""
    section = CARD.read_text().split(title, 1)[1].split("\n# ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells[0].endswith(".safetensors`"):
            rows.append(cells)
    return rows


STAGES_2MM = STAGES / "2mm"
ONE_MM_TITLE = "# Staged 1 mm models"
TWO_MM_TITLE = "# 2 mm stages of the bundled model"


@pytest.mark.parametrize("title, folder", [(ONE_MM_TITLE, STAGES), (TWO_MM_TITLE, STAGES_2MM)], ids=["1mm", "2mm"])
def test_the_card_lists_every_staged_file(title, folder):
    listed = sorted(cells[0].strip("`") for cells in stage_rows(title))
    assert listed and listed == sorted(p.name for p in folder.glob("*.safetensors"))


def staged_file_as_listed(path: Path, digest: str, validation_psnr: str, final_loss: str):
    """The weights at ``path``, once its digest, last validation PSNR and final loss are the row's."""
    assert file_sha256(path).startswith(digest.rstrip("."))
    bundle = load_weights(path)
    assert round(bundle.provenance["validation"]["psnr"], 2) == float(validation_psnr)
    assert round(bundle.provenance["final_loss"], 3) == float(final_loss)
    return bundle


@pytest.mark.parametrize("cells", stage_rows(ONE_MM_TITLE), ids=lambda cells: cells[0].strip("`"))
def test_a_staged_file_matches_its_row(cells):
    name, _trained_on, stage, starts_from, digest, validation, final_loss = cells
    bundle = staged_file_as_listed(STAGES / name.strip("`"), digest, validation.split("/")[-1], final_loss)
    assert bundle.preprocess.spacing_mm == 1.0 and tuple(bundle.preprocess.in_plane) == (192, 160)
    assert bundle.provenance["training_steps"] == 5000
    assert (starts_from == "random") == (stage == "1")


@pytest.mark.parametrize("cells", stage_rows(TWO_MM_TITLE), ids=lambda cells: cells[0].strip("`"))
def test_a_2mm_stage_matches_its_row_and_continues_the_bundled_model(cells):
    name, _settings, digest, validation, final_loss, _sri24, _csf = cells
    bundle = staged_file_as_listed(STAGES_2MM / name.strip("`"), digest, validation, final_loss)
    assert bundle.preprocess.spacing_mm == 2.0 and tuple(bundle.preprocess.in_plane) == (96, 80)
    assert bundle.provenance["training_steps"] == 3000
    assert bundle.provenance["init"]["sha256"] == file_sha256(default_weights())
    assert (bundle.sampling.mode, bundle.sampling.steps) == ("coprediction", 5)


def bundled_card_row(label: str) -> str:
    """A cell of the bundled model's settings table (the card's first table)."""
    section = CARD.read_text().split("# Previous bundled model", 1)[0]
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == label:
            return cells[1]
    raise AssertionError(f"the bundled card has no {label!r} row")


def test_the_bundled_model_is_what_its_card_says():
    path = default_weights()
    assert file_sha256(path) == bundled_card_row("sha256").split("`")[1]
    bundle = load_weights(path)
    sampler = bundled_card_row("default sampler")
    mode = {"co-prediction": "coprediction", "ISTA": "ista", "independent": "independent"}[sampler.split(",")[0]]
    steps = int(sampler.split("S = ")[1].split()[0])
    assert (bundle.sampling.mode, bundle.sampling.steps) == (mode, steps)
    assert f"{bundle.preprocess.spacing_mm:g} mm isotropic" in bundled_card_row("model grid")
    assert bundle.provenance["training_steps"] == 8000
    assert f"{bundle.provenance['training_cases']} training pairs" in bundled_card_row("default style key")
    validation = [line for line in CARD.read_text().splitlines() if line.startswith("| 8000 (bundled)")][0]
    assert float(validation.split("|")[2]) == round(bundle.provenance["validation"]["psnr"], 2)
