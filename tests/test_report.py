"""``ct2mri report``: a translation output folder, built by hand in the formats ``translate``
writes, read into the report's table and written as one self-contained page; and the page in a
real browser (headless Chromium)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ct2mri_cli.cli.app import main
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.inference.status import StatusFile
from ct2mri_cli.io.volumes import Volume
from ct2mri_cli.preprocessing.checks import Check
from ct2mri_cli.reports import collect, write_report
from ct2mri_cli.reports.slices import axial_slices, brain_box, ras_array
from ct2mri_cli.shards import Shard
from tests.browser import browser_missing, headless_chromium

SHAPE = (30, 34, 26)  # RAS voxels, 2 mm
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
BRAIN_Z = (6, 20)
PASSING = {
    "hu_scale": ("HU", "HU: tissue inside the head at -100..150"),
    "slice_thickness": (2.0, "<= 3 mm"),
    "brain_volume": (1310.5, "900-2100 mL"),
    "coverage": (0.0, "brain section at the scan's ends <= 0.15"),
}


def _brain() -> np.ndarray:
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    inside = ((x - 15) / 9.0) ** 2 + ((y - 17) / 11.0) ** 2 <= 1.0
    return inside & (z >= BRAIN_Z[0]) & (z < BRAIN_Z[1])


def _volumes(folder: Path, case: str, trust: bool) -> tuple[Path, Path, Path | None]:
    """A CT (HU), its synthetic T1 and trust map, all three brighter slice by slice upwards."""
    brain = _brain()
    rising = np.broadcast_to(np.arange(SHAPE[2], dtype=np.float32) / SHAPE[2], SHAPE)
    ct = np.full(SHAPE, -1000.0, dtype=np.float32)
    ct[brain] = (10.0 + 60.0 * rising)[brain]
    t1 = np.where(brain, 0.2 + 0.7 * rising, 0.0).astype(np.float32)
    paths = (
        folder.parent / "cases" / f"{case}.nii.gz",
        folder / f"{case}_synT1.nii.gz",
        folder / f"{case}_trust.nii.gz",
    )
    paths[0].parent.mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(ct.astype(np.int16), AFFINE), str(paths[0]))
    nib.save(nib.Nifti1Image(t1, AFFINE), str(paths[1]))
    if not trust:
        return paths[0], paths[1], None
    nib.save(nib.Nifti1Image(np.where(brain, 0.1 * rising, 0.0).astype(np.float32), AFFINE), str(paths[2]))
    return paths


def _sidecar(ct: Path, output: Path, checks: list[Check], trust_map: Path | None) -> dict:
    """A sidecar with the fields ``translate`` writes that the report reads."""
    sidecar = {
        "synthetic": True,
        "not_for_diagnosis": True,
        "input": str(ct),
        "output": str(output),
        "style_source": "model default",
        "style_distance_to_default": 0.0123,
        "sampler": {"mode": "coprediction", "steps": 5},
        "checks": [c.to_dict() for c in checks],
        "head_pose": {"pitch": 1.61, "roll": -4.27, "yaw": -1.25, "translation_mm": [0, 0, 0], "scale": 1.0},
        "seconds": {"load_model": 0.2, "read": 0.1, "sampling": 3.0, "write": 0.2},
    }
    if trust_map is not None:
        sidecar["trust"] = {"mean": 0.82, "unsure_share": 0.031, "verdict": "pass", "map": trust_map.name}
    return sidecar


def _line(case: str, ct: Path, output: Path, state: str, checks=None, seconds=None, error=None) -> dict:
    """One status line, with the keys ``translate`` writes."""
    return {
        "case": case,
        "input": str(ct),
        "output": str(output),
        "state": state,
        "checks": checks,
        "seconds": seconds,
        "error": error,
    }


def _png(path: Path, value: int) -> None:
    Image.fromarray(np.full((12, 20, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    """A cohort split in two shards: done, done with a warning, failed, pending, and a case an
    older run (a status file of another split) still lists as pending."""
    folder = tmp_path_factory.mktemp("cohort") / "out"
    folder.mkdir()
    shards = {1: StatusFile(folder, Shard(0, 2)), 2: StatusFile(folder, Shard(1, 2))}
    warned = Check("slice_thickness", 4.5, "<= 3 mm", "warning", "thick slices")
    specs = {"a_ok": (1, "done", [], True), "b_warn": (2, "done", [warned], False), "d_ok": (2, "done", [], False)}
    for case, (shard, state, extra, trust) in specs.items():
        ct, output, trust_map = _volumes(folder, case, trust)
        checks = [
            Check(name, value, threshold, "pass")
            for name, (value, threshold) in PASSING.items()
            if name not in {c.name for c in extra}
        ] + extra
        (folder / f"{case}_synT1.json").write_text(json.dumps(_sidecar(ct, output, checks, trust_map), indent=2))
        _png(folder / f"{case}_qc.png", 90)
        shards[shard].record(_line(case, ct, output, state, [c.name for c in extra], 3.456))
    cases = folder.parent / "cases"
    shards[1].record(
        _line(
            "c_fail",
            cases / "c_fail.nii.gz",
            folder / "c_fail_synT1.nii.gz",
            "failed",
            [],
            error="c_fail.nii.gz: intensities are not Hounsfield units",
        )
    )
    shards[1].record(_line("e_wait", cases / "e_wait.nii.gz", folder / "e_wait_synT1.nii.gz", "pending"))
    old = StatusFile(folder, Shard(0, 1))
    old.record(_line("d_ok", cases / "d_ok.nii.gz", folder / "d_ok_synT1.nii.gz", "pending"))
    return folder


def _page_data(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def _block(html: str, block_id: str) -> tuple[str, bytes]:
    match = re.search(rf'<script type="text/plain" id="{block_id}" data-mime="([^"]+)">([^<]*)</script>', html)
    assert match, block_id
    return match.group(1), base64.b64decode(match.group(2))


def test_collect_reads_states_checks_and_sidecars(outdir):
    cohort = collect(outdir)
    by_case = {c.case: c for c in cohort.cases}
    assert list(by_case) == ["a_ok", "b_warn", "c_fail", "d_ok", "e_wait"]
    assert {c.case: c.category for c in cohort.cases} == {
        "a_ok": "done",
        "b_warn": "warning",
        "c_fail": "failed",
        "d_ok": "done",
        "e_wait": "pending",
    }
    assert cohort.counts == {"cases": 5, "done": 3, "warnings": 1, "failed": 1, "pending": 1}
    assert by_case["d_ok"].shard == "2-of-2"  # done in the new split beats pending in the old one
    assert cohort.missing_shards == []
    warned = by_case["b_warn"].check("slice_thickness")
    assert (warned["value"], warned["threshold"], warned["verdict"]) == (4.5, "<= 3 mm", "warning")
    assert by_case["b_warn"].flagged == ["slice_thickness"]
    assert by_case["a_ok"].check("brain_volume")["value"] == 1310.5 and by_case["a_ok"].brain_volume_ml == 1310.5
    assert cohort.check_names == list(PASSING)
    ok = by_case["a_ok"]
    assert ok.pose == {"pitch": 1.61, "roll": -4.27, "yaw": -1.25}
    assert ok.style_distance == 0.0123 and ok.seconds == 3.456
    assert ok.trust["unsure_share"] == 0.031 and ok.trust_map == outdir / "a_ok_trust.nii.gz"
    assert ok.qc_png == outdir / "a_ok_qc.png" and ok.ct.name == "a_ok.nii.gz"
    assert by_case["d_ok"].trust is None and by_case["d_ok"].trust_map is None
    assert by_case["c_fail"].error.endswith("not Hounsfield units") and by_case["c_fail"].output is None


def test_a_moved_folder_is_read_by_file_names(outdir, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in outdir.iterdir():
        (moved / path.name).write_bytes(path.read_bytes())
    record = {c.case: c for c in collect(moved).cases}["a_ok"]
    assert record.output == moved / "a_ok_synT1.nii.gz" and record.trust_map == moved / "a_ok_trust.nii.gz"


def test_a_finished_case_whose_files_are_gone_keeps_its_status(tmp_path):
    StatusFile(tmp_path, Shard()).record(
        _line("gone", tmp_path / "gone.nii.gz", tmp_path / "gone_synT1.nii.gz", "done", ["coverage"], 2.0)
    )
    record = collect(tmp_path).cases[0]
    assert record.category == "warning" and record.flagged == ["coverage"] and record.seconds == 2.0
    assert any("not found" in note for note in record.notes)
    result = write_report(tmp_path, tmp_path / "r.html")
    assert result.viewers == 0 and _page_data(result.path.read_text())["cases"][0]["views"] == {}


def test_the_page_holds_every_case_its_images_and_nothing_from_outside(outdir, tmp_path):
    result = write_report(outdir, tmp_path / "r.html")
    html = result.path.read_text(encoding="utf-8")
    assert result.viewers == 3 and result.counts["warnings"] == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html) and "<link" not in html
    data = _page_data(html)
    entries = {c["case"]: c for c in data["cases"]}
    assert [c["case"] for c in data["cases"]] == ["a_ok", "b_warn", "c_fail", "d_ok", "e_wait"]
    assert entries["b_warn"]["checks"]["slice_thickness"] == {
        "value": 4.5,
        "threshold": "<= 3 mm",
        "verdict": "warning",
        "message": "thick slices",
    }
    assert set(entries["a_ok"]["views"]) == {"ct", "t1", "trust"} and set(entries["d_ok"]["views"]) == {"ct", "t1"}
    assert entries["c_fail"]["views"] == {} and entries["a_ok"]["qc"] is True
    mime, png = _block(html, "img-0-qc")
    assert mime == "image/png" and png == (outdir / "a_ok_qc.png").read_bytes()
    meta = entries["a_ok"]["views"]["t1"]
    margin = int(np.ceil(15.0 / 2.0))
    assert meta["count"] == min(SHAPE[2], BRAIN_Z[1] + margin) - max(0, BRAIN_Z[0] - margin)
    mime, webp = _block(html, "img-0-t1")
    sheet = np.asarray(Image.open(io.BytesIO(webp)).convert("L"), dtype=np.float32)
    means = [
        sheet[(k // meta["columns"]) * meta["cell_h"] :][: meta["height"], (k % meta["columns"]) * meta["cell_w"] :][
            :, : meta["width"]
        ].mean()
        for k in range(meta["count"])
    ]
    inside = means[BRAIN_Z[0] - max(0, BRAIN_Z[0] - margin) :][: BRAIN_Z[1] - BRAIN_Z[0]]
    assert np.all(np.diff(inside) > 0) and means[0] < 10  # slice k is slice k: brighter upwards, empty below


def test_slices_show_anterior_up_and_the_patients_left_on_the_left():
    data = np.zeros((10, 12, 4), dtype=np.float32)
    data[0, 11, :] = 1.0  # RAS: the patient's far left, the most anterior row
    for stored, affine in ((data, np.diag([2.0, 2.0, 2.0, 1.0])), (data[::-1, ::-1], np.diag([-2.0, -2.0, 2.0, 1.0]))):
        volume = Volume(np.ascontiguousarray(stored), affine)
        array, spacing = ras_array(volume)
        slices, aspect = axial_slices(array, spacing, brain_box(np.ones_like(array, bool), spacing, 0), 64)
        assert slices.shape == (4, 12, 10) and aspect == pytest.approx(1.2)
        assert slices[0, 0, 0] == 1.0 and slices[0].sum() == 1.0


def test_slices_are_averaged_down_to_the_size_asked():
    array = np.arange(40 * 20 * 3, dtype=np.float32).reshape(40, 20, 3)
    slices, aspect = axial_slices(array, (1.0, 1.0, 1.0), brain_box(np.ones(array.shape, bool), (1.0,) * 3, 0), 10)
    assert slices.shape == (3, 5, 10) and aspect == pytest.approx(0.5)
    assert slices.mean() == pytest.approx(array.mean())


def test_ratings_are_loaded_back_from_csv(outdir, tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text('case,rating,note\na_ok,pass,\nb_warn,FAIL,"thick, re-scan"\nc_fail,,\nzz_gone,check,old\n')
    result = write_report(outdir, tmp_path / "report.html")  # ratings.csv beside the report is found
    assert result.ratings == ratings and result.rated == 2 and result.unknown_rated == ["zz_gone"]
    data = _page_data(result.path.read_text(encoding="utf-8"))
    assert data["ratings"]["b_warn"] == {"rating": "fail", "note": "thick, re-scan"}
    assert "c_fail" not in data["ratings"] and data["ratings_time"] > 0
    ratings.write_text("case,rating\na_ok,maybe\n")
    with pytest.raises(Ct2mriError, match="line 2: rating 'maybe'"):
        write_report(outdir, tmp_path / "report.html")


def test_cli_writes_refuses_to_replace_and_names_bad_folders(outdir, tmp_path, capsys):
    target = outdir / "report.html"
    try:
        assert main(["-q", "report", str(outdir)]) == 0
        assert target.is_file() and "5 cases: 3 done (1 with warnings), 1 failed, 1 pending" in capsys.readouterr().out
        before = target.stat().st_mtime_ns
        assert main(["-q", "report", str(outdir)]) == 1
        err = capsys.readouterr().err.strip()
        assert "report.html exists" in err and "--force" in err and len(err.splitlines()) == 1
        assert target.stat().st_mtime_ns == before
        assert main(["-q", "report", str(outdir), "--force"]) == 0
        named = tmp_path / "named.html"
        named.write_text("old")
        assert main(["-q", "report", str(outdir), "-o", str(named)]) == 0 and named.read_text() != "old"
    finally:
        target.unlink(missing_ok=True)
    capsys.readouterr()
    for args, message in (
        ([str(tmp_path)], "no status files"),
        ([str(tmp_path / "none")], "no such folder"),
        ([str(outdir), "-o", str(tmp_path / "r.txt")], "name it .html"),
        ([str(outdir), "-o", str(tmp_path / "r.html"), "--slice-size", "4"], "from 16 to 512 pixels"),
        ([str(outdir), "-o", str(tmp_path / "r.html"), "--ratings", str(tmp_path / "no.csv")], "no such file"),
    ):
        assert main(["-q", "report", *args]) == 1, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob(".*.html"))  # no temporary left behind


def test_a_broken_status_file_is_one_line(tmp_path, capsys):
    (tmp_path / "ct2mri_status_1-of-1.jsonl").write_text("not json\n")
    assert main(["-q", "report", str(tmp_path)]) == 1
    assert "line 1 is not a status entry" in capsys.readouterr().err


def _wait(condition, what: str, seconds: float = 10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"after {seconds:g} s still waiting for {what}")


def test_the_page_in_a_browser(outdir, tmp_path):
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = write_report(outdir, tmp_path / "report.html").path
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = headless_chromium(downloads)
    try:
        driver.get(page.as_uri())
        _wait(lambda: driver.execute_script("return document.body.dataset.ready"), "the page's script")
        rows = lambda: driver.find_elements(By.CSS_SELECTOR, "#cases tbody tr.row")
        assert [r.get_attribute("data-case") for r in rows()] == ["a_ok", "b_warn", "c_fail", "d_ok", "e_wait"]
        assert driver.find_element(By.CSS_SELECTOR, '[data-count="warning"] b').text == "1"

        driver.find_element(By.ID, "only-problems").click()
        assert [r.get_attribute("data-case") for r in rows() if r.is_displayed()] == ["b_warn", "c_fail"]
        driver.find_element(By.ID, "only-problems").click()

        driver.find_element(By.CSS_SELECTOR, 'th[data-key="check:slice_thickness"]').click()
        driver.find_element(By.CSS_SELECTOR, 'th[data-key="check:slice_thickness"]').click()
        assert rows()[0].get_attribute("data-case") == "b_warn"  # sorted by value, descending

        row = driver.find_element(By.CSS_SELECTOR, 'tr.row[data-case="b_warn"]')
        row.find_element(By.CSS_SELECTOR, 'button[data-rating="fail"]').click()
        row.find_element(By.CSS_SELECTOR, "input.note").send_keys('thick, "re-scan"')
        driver.find_element(By.CSS_SELECTOR, 'tr.row[data-case="a_ok"] button[data-rating="pass"]').click()
        driver.find_element(By.ID, "save-ratings").click()
        saved = _wait(lambda: [p for p in downloads.glob("*.csv") if p.stat().st_size], "the ratings download")
        with saved[0].open(newline="") as handle:
            table = list(csv.reader(handle))
        assert table[0] == ["case", "rating", "note"]
        assert {r[0]: r[1:] for r in table[1:]} == {
            "a_ok": ["pass", ""],
            "b_warn": ["fail", 'thick, "re-scan"'],
            "c_fail": ["", ""],
            "d_ok": ["", ""],
            "e_wait": ["", ""],
        }

        driver.find_element(By.XPATH, "//button[@class='case-name' and text()='a_ok']").click()
        viewer = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, '.viewer[data-case="a_ok"]'), "the viewer")[0]
        canvases = viewer.find_elements(By.TAG_NAME, "canvas")
        assert [c.get_attribute("data-role") for c in canvases] == ["ct", "t1", "trust"]
        shown = lambda: [
            (c.get_attribute("data-slice"), driver.execute_script("return arguments[0].toDataURL()", c))
            for c in canvases
        ]
        before = _wait(lambda: all(s for s, _ in shown()) and shown(), "the first slices")
        viewer.find_element(By.CSS_SELECTOR, "input[type=range]").send_keys(Keys.ARROW_RIGHT * 3)
        after = _wait(lambda: all(s != b[0] for (s, _), b in zip(shown(), before)) and shown(), "every picture to move")
        assert [int(s) for s, _ in after] == [int(before[0][0]) + 3] * 3
        assert all(a[1] != b[1] for a, b in zip(after, before))  # every picture changed

        loaded = tmp_path / "loaded.csv"
        loaded.write_text('case,rating,note\r\nd_ok,check,"seen, twice"\r\n')
        driver.find_element(By.ID, "load-ratings").send_keys(str(loaded))
        d_ok = 'tr.row[data-case="d_ok"] button[data-rating="check"]'
        _wait(
            lambda: driver.find_element(By.CSS_SELECTOR, d_ok).get_attribute("aria-pressed") == "true", "loaded ratings"
        )

        driver.refresh()
        _wait(lambda: driver.execute_script("return document.body.dataset.ready"), "the page's script")
        kept = driver.find_element(By.CSS_SELECTOR, 'tr.row[data-case="b_warn"]')
        assert kept.find_element(By.CSS_SELECTOR, 'button[data-rating="fail"]').get_attribute("aria-pressed") == "true"
        assert kept.find_element(By.CSS_SELECTOR, "input.note").get_attribute("value") == 'thick, "re-scan"'
        assert (
            driver.find_element(By.CSS_SELECTOR, 'tr.row[data-case="d_ok"] input.note').get_attribute("value")
            == "seen, twice"
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
