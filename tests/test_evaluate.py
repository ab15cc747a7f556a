"""``ct2mri evaluate`` and its core: pairing, scoring files, CSV/JSON output, errors."""

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli.cli.app import main
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.evaluation.metrics import METRIC_NAMES, evaluate_volumes
from ct2mri_cli.evaluation.scoring import (
    EvalCase,
    cases_from_csv,
    cases_from_dirs,
    evaluate_case,
    slice_axis,
)

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # (x, y, z) arrays: the slice axis is 2
SHAPE = (16, 14, 12)


def _reference(seed=0):
    """A raw-intensity MRI-like volume (not in [0, 1]) and a brain mask."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    ref = 200 + 300 * (np.sin(x / 2.5) * np.cos(y / 3.0) > 0) + 8 * z + 20 * rng.standard_normal(SHAPE)
    mask = ((x - 8) ** 2 + (y - 7) ** 2 < 30) & (z > 1) & (z < 10)
    return ref.astype(np.float32), mask


def _prediction(ref, mask, seed=1, noise=0.05):
    """A [0, 1] prediction: the reference's robust normalisation plus noise."""
    lo, hi = np.percentile(ref[mask], [0.5, 99.5])
    rng = np.random.default_rng(seed)
    return np.clip((ref - lo) / (hi - lo) + noise * rng.standard_normal(ref.shape), 0, 1).astype(np.float32)


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def _pair(folder, name="case1", seed=0, noise=0.05):
    ref, mask = _reference(seed)
    pred = _prediction(ref, mask, seed + 10, noise)
    return (
        _save(folder / f"{name}_pred.nii.gz", pred),
        _save(folder / f"{name}_ref.nii.gz", ref),
        _save(folder / f"{name}_mask.nii.gz", mask.astype(np.uint8)),
        (pred, ref, mask),
    )


def _ssim_map(x, y):
    """3D SSIM summed directly over the 11^3 window offsets (Gaussian sigma 1.5, window cut and
    renormalised at the borders, population variances, data range 1)."""
    g = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    pad = [(5, 5)] * 3
    xp, yp, inside = np.pad(x, pad), np.pad(y, pad), np.pad(np.ones(x.shape), pad)
    sums = np.zeros((6, *x.shape))
    for dk in range(11):
        for di in range(11):
            for dj in range(11):
                win = (slice(dk, dk + x.shape[0]), slice(di, di + x.shape[1]), slice(dj, dj + x.shape[2]))
                a, b, w = xp[win], yp[win], g[dk] * g[di] * g[dj] * inside[win]
                sums += np.stack([w, w * a, w * b, w * a * a, w * b * b, w * a * b])
    sw, sx, sy, sxx, syy, sxy = sums
    mx, my = sx / sw, sy / sw
    vx, vy, cxy = sxx / sw - mx**2, syy / sw - my**2, sxy / sw - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def _robust(volume, region):
    """The documented robust normalisation: percentiles 0.5 and 99.5 inside region go to 0 and 1, clipped."""
    lo, hi = np.percentile(volume[region], [0.5, 99.5])
    return np.clip((volume - lo) / (hi - lo), 0.0, 1.0)


def _expected(pred, ref, mask, whole_volume=False, robust_pred=False):
    """Every metric written out with numpy, for volumes sliced along axis 2 (as saved: float32).

    The reference (and with robust_pred the prediction) is robustly normalised inside the mask,
    or over its voxels above 0 without one; with a mask both are then zeroed outside it.
    """
    p, r = pred.astype(np.float32).astype(np.float64), ref.astype(np.float32).astype(np.float64)
    if robust_pred:
        p = _robust(p, mask if mask is not None else p > 0)
    r = _robust(r, mask if mask is not None else r > 0)
    if mask is not None:
        p, r = p * mask, r * mask
    scored = mask if mask is not None and not whole_volume else np.ones(p.shape, bool)
    e = p - r
    mse = np.mean(e[scored] ** 2)
    counts = scored.sum(axis=(0, 1))
    slice_means = (e * scored).sum(axis=(0, 1)) / np.maximum(counts, 1)
    pairs = (counts[1:] > 0) & (counts[:-1] > 0)
    both = scored[:, :, 1:] & scored[:, :, :-1]
    return {
        "mae": np.mean(np.abs(e[scored])),
        "psnr": 10 * np.log10(1.0 / mse),
        "ssim": _ssim_map(p, r)[scored].mean(),
        "nrmse": np.sqrt(mse) / (r[scored].max() - r[scored].min()),
        "flicker": np.abs(np.diff(slice_means))[pairs].mean(),
        "z_gradient_ratio": np.sum(np.diff(e, axis=2)[both] ** 2) / np.sum(np.diff(r, axis=2)[both] ** 2),
        "wasserstein": np.mean(np.abs(np.sort(p[scored]) - np.sort(r[scored]))),
    }


def test_the_numpy_ssim_matches_the_loop_brute_force():
    """The offset-sum SSIM used for expectations agrees with the voxel-by-voxel loop of test_metrics."""
    from tests.test_metrics import _ssim_brute_force

    rng = np.random.default_rng(2)
    x = rng.random((3, 4, 7))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    np.testing.assert_allclose(_ssim_map(x, y), _ssim_brute_force(x, y), rtol=1e-10, atol=1e-12)


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    for needle in needles:
        assert needle in err, err
    return err


def test_slice_axis_follows_the_affine():
    assert slice_axis(AFFINE) == 2
    permuted = np.array([[0, 0, -0.9, 0], [0, 1.0, 0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    assert slice_axis(permuted) == 0
    oblique = np.eye(4)
    c, s = math.cos(0.3), math.sin(0.3)
    oblique[1:3, 1:3] = [[c, -s], [s, c]]  # tilted 17 degrees about x: axis 2 stays closest to S
    assert slice_axis(oblique) == 2


def test_single_pair_table_and_csv(tmp_path, capsys):
    pred_path, ref_path, mask_path, (pred, ref, mask) = _pair(tmp_path)
    out = tmp_path / "scores.csv"
    code = main(["evaluate", str(pred_path), str(ref_path), "--mask", str(mask_path), "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    expected = _expected(pred, ref, mask)
    assert "case1_pred" in captured.out and f"{expected['psnr']:.2f}" in captured.out
    assert f"{expected['ssim']:.4f}" in captured.out and "mean" not in captured.out
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    row = rows[0]
    assert (row["case"], row["pred"], row["ref"], row["mask"]) == (
        "case1_pred",
        str(pred_path),
        str(ref_path),
        str(mask_path),
    )
    assert row["mode"] == "masked" and row["normalisation"] == "pred=as-is;ref=robust" and row["slice_axis"] == "2"
    for key in METRIC_NAMES:
        assert float(row[key]) == pytest.approx(expected[key], rel=1e-9), key
    assert float(row["voxels"]) == mask.sum() and row["error"] == ""
    # the reference's normalisation really happened: ~0.05 noise gives an MAE near 0.04, not hundreds
    assert 0.02 < expected["mae"] < 0.06


def test_whole_volume_variant_and_json(tmp_path, capsys):
    pred_path, ref_path, mask_path, (pred, ref, mask) = _pair(tmp_path)
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "-q",
                "evaluate",
                str(pred_path),
                str(ref_path),
                "--mask",
                str(mask_path),
                "--whole-volume",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    document = json.loads(out.read_text())
    expected = _expected(pred, ref, mask, whole_volume=True)
    assert document["mode"] == "whole-volume" and document["normalise"] == "auto"
    assert document["mean"] is None and document["failures"] == []
    (case,) = document["cases"]
    assert case["normalisation"] == {"pred": "as-is", "ref": "robust"} and case["voxels"] == np.prod(SHAPE)
    for key in METRIC_NAMES:
        assert case[key] == pytest.approx(expected[key], rel=1e-9), key
    assert expected["psnr"] > _expected(pred, ref, mask)["psnr"]


def test_without_mask_and_robust_normalisation(tmp_path, capsys):
    pred_path, ref_path, _, (pred, ref, _) = _pair(tmp_path)
    out = tmp_path / "s.json"
    assert main(["-q", "evaluate", str(pred_path), str(ref_path), "--normalise", "robust", "-o", str(out)]) == 0
    (case,) = json.loads(out.read_text())["cases"]
    expected = _expected(pred, ref, None, robust_pred=True)
    assert case["mask"] is None and case["normalisation"] == {"pred": "robust", "ref": "robust"}
    for key in METRIC_NAMES:
        assert case[key] == pytest.approx(expected[key], rel=1e-9), key


def test_identical_volumes_give_infinite_psnr(tmp_path, capsys):
    ref, mask = _reference()
    a = _save(tmp_path / "a.nii.gz", ref)
    b = _save(tmp_path / "b.nii.gz", ref)
    assert main(["evaluate", str(a), str(b), "-o", str(tmp_path / "s.json")]) == 0
    (case,) = json.loads((tmp_path / "s.json").read_text())["cases"]
    assert case["psnr"] is None  # JSON has no infinity
    assert case["mae"] == 0.0 and case["ssim"] == pytest.approx(1.0, abs=1e-12) and case["wasserstein"] == 0.0
    assert "inf" in capsys.readouterr().out
    assert main(["-q", "evaluate", str(a), str(b), "-o", str(tmp_path / "s.csv")]) == 0
    with (tmp_path / "s.csv").open() as handle:
        assert float(next(csv.DictReader(handle))["psnr"]) == math.inf


def test_batch_folders_match_translate_names_and_report_failures(tmp_path, capsys):
    preds, refs, masks = (tmp_path / d for d in ("pred", "ref", "mask"))
    for folder in (preds, refs, masks):
        folder.mkdir()
    data = {}
    for i, name in enumerate(("sub-01", "sub-02")):
        ref, mask = _reference(i)
        pred = _prediction(ref, mask, 20 + i, noise=0.03 + 0.04 * i)
        _save(preds / f"{name}_synT1.nii.gz", pred)
        _save(refs / f"{name}.nii.gz", ref)
        _save(masks / f"{name}_brainmask.nii.gz", mask.astype(np.uint8))
        data[name] = (pred, ref, mask)
    _save(refs / "sub-03.nii.gz", _reference(3)[0])  # a reference without prediction
    (preds / "sub-01_synT1.json").write_text("{}")  # translate's sidecar: not an image, ignored
    out = tmp_path / "all.csv"
    args = ["evaluate", "--pred-dir", str(preds), "--ref-dir", str(refs), "--mask-dir", str(masks), "-o", str(out)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "sub-03" in captured.err and "no prediction" in captured.err and "2 evaluated, 1 failed" in captured.err
    assert "mean (2)" in captured.out
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["sub-01", "sub-02", "mean", "sub-03"]
    expected = {name: _expected(*data[name]) for name in data}
    for row in rows[:2]:
        assert row["mask"].endswith(f"{row['case']}_brainmask.nii.gz")
        for key in METRIC_NAMES:
            assert float(row[key]) == pytest.approx(expected[row["case"]][key], rel=1e-9)
    for key in METRIC_NAMES:
        assert float(rows[2][key]) == pytest.approx((expected["sub-01"][key] + expected["sub-02"][key]) / 2, rel=1e-9)
    assert rows[2]["pred"] == "" and rows[3]["error"].endswith(f"no prediction named sub-03 or sub-03_synT1 in {preds}")
    assert expected["sub-02"]["psnr"] < expected["sub-01"]["psnr"]  # more noise, lower PSNR


def test_batch_csv_isolates_a_bad_case(tmp_path, capsys):
    p1, r1, m1, (pred, ref, mask) = _pair(tmp_path, "a")
    small = _save(tmp_path / "small.nii.gz", np.random.default_rng(0).random((8, 8, 8)).astype(np.float32))
    listing = tmp_path / "cases.csv"
    listing.write_text(f"case,pred,ref,mask\ngood,{p1.name},{r1.name},{m1.name}\nbad,{small.name},{r1.name},\n")
    out = tmp_path / "out.json"
    assert main(["evaluate", "--csv", str(listing), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "small.nii.gz: shape 8x8x8 differs from" in err and "1 evaluated, 1 failed" in err
    document = json.loads(out.read_text())
    assert [c["case"] for c in document["cases"]] == ["good"]
    assert document["failures"][0]["case"] == "bad" and "8x8x8" in document["failures"][0]["error"]
    expected = _expected(pred, ref, mask)
    assert document["mean"]["ssim"] == pytest.approx(expected["ssim"], rel=1e-9) and document["cases"][0][
        "mask"
    ] == str(m1)


def test_csv_listing_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("case,prediction,ref\nx,a,b\n")
    with pytest.raises(Ct2mriError, match="missing: pred"):
        cases_from_csv(bad)
    bad.write_text("case,pred,ref\nx,a,b\nx,c,d\n")
    with pytest.raises(Ct2mriError, match="case x appears twice"):
        cases_from_csv(bad)
    bad.write_text("case,pred,ref\nx,,b\n")
    with pytest.raises(Ct2mriError, match="line 2 has an empty"):
        cases_from_csv(bad)
    bad.write_text("case,pred,ref,mask\nx,/abs/p.nii,r.nii,\n")
    (case,) = cases_from_csv(bad)
    assert case == EvalCase("x", Path("/abs/p.nii"), tmp_path / "r.nii", None)


def test_folder_pairing_rules(tmp_path):
    preds, refs = tmp_path / "p", tmp_path / "r"
    preds.mkdir()
    refs.mkdir()
    for name in ("a.nii.gz", "b_synT1.nii.gz", "c.nii.gz", ".a.nii.gz.tmp.nii.gz"):
        (preds / name).write_bytes(b"")
    for name in ("a.nii.gz", "b.nii.gz", "b_synT1.nrrd"):
        (refs / name).write_bytes(b"")
    cases, failures = cases_from_dirs(preds, refs)
    # b_synT1 matches the reference with its exact name first; b is then left without a prediction
    assert [(c.case, c.pred.name, c.ref.name) for c in cases] == [
        ("a", "a.nii.gz", "a.nii.gz"),
        ("b_synT1", "b_synT1.nii.gz", "b_synT1.nrrd"),
    ]
    assert [case for case, _ in failures] == ["c", "b"]
    (refs / "a.nii").write_bytes(b"")
    with pytest.raises(Ct2mriError, match="two inputs are named a"):
        cases_from_dirs(preds, refs)


def test_mismatched_shapes_one_line(tmp_path, capsys):
    pred_path, ref_path, _, _ = _pair(tmp_path)
    small = _save(tmp_path / "small.nii.gz", np.random.default_rng(0).random((8, 8, 8)).astype(np.float32))
    assert main(["evaluate", str(small), str(ref_path)]) == 1
    _one_line_error(capsys, "small.nii.gz", "8x8x8", str(ref_path), "16x14x12")
    assert main(["evaluate", str(pred_path), str(ref_path), "--mask", str(small)]) == 1
    _one_line_error(capsys, "small.nii.gz", "mask shape 8x8x8", "16x14x12")


def test_differing_affines_warn_but_score(tmp_path, capsys):
    ref, mask = _reference()
    pred = _prediction(ref, mask)
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    p = _save(tmp_path / "p.nii.gz", pred, shifted)
    r = _save(tmp_path / "r.nii.gz", ref)
    assert main(["evaluate", str(p), str(r)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning:" in err and "p.nii.gz: affine differs from" in err and "by up to 5" in err


def test_missing_files_and_unusable_masks(tmp_path, capsys):
    pred_path, ref_path, _, (_, ref, _) = _pair(tmp_path)
    assert main(["evaluate", str(pred_path), str(tmp_path / "nope.nii.gz")]) == 1
    _one_line_error(capsys, "nope.nii.gz", "no such file")
    assert main(["evaluate", str(pred_path), str(ref_path), "--mask", str(tmp_path / "nomask.nii.gz")]) == 1
    _one_line_error(capsys, "nomask.nii.gz", "no such file")
    flat = np.zeros(SHAPE, np.uint8)
    flat[4:8, 4:8, 5] = 1  # one slice only: no slice-to-slice measure exists
    flat_path = _save(tmp_path / "flat.nii.gz", flat)
    assert main(["evaluate", str(pred_path), str(ref_path), "--mask", str(flat_path)]) == 1
    _one_line_error(capsys, str(pred_path), str(ref_path), "neighbouring slices")
    outside = np.zeros(SHAPE, np.float32)
    outside[0, 0, 0] = -1.0  # read as a volume, but "> 0" selects nothing
    outside_path = _save(tmp_path / "outside.nii.gz", outside)
    assert main(["evaluate", str(pred_path), str(ref_path), "--mask", str(outside_path)]) == 1
    _one_line_error(capsys, "outside.nii.gz", "selects no voxel")


def test_the_named_output_is_replaced_but_never_an_input(tmp_path, capsys):
    pred_path, ref_path, mask_path, (pred, ref, mask) = _pair(tmp_path)
    out = tmp_path / "scores.csv"
    out.write_text("old")
    before = ref_path.read_bytes()
    table = tmp_path / "cases.csv"
    table.write_text(f"case,pred,ref\ncase1,{pred_path.name},{ref_path.name}\n")
    listing = table.read_text()
    assert main(["evaluate", "--csv", str(table), "-o", str(table)]) == 1
    _one_line_error(capsys, "would overwrite the input")
    assert table.read_text() == listing and ref_path.read_bytes() == before
    assert main(["-q", "evaluate", str(pred_path), str(ref_path), "--mask", str(mask_path), "-o", str(out)]) == 0
    with out.open() as handle:
        assert float(next(csv.DictReader(handle))["mae"]) == pytest.approx(_expected(pred, ref, mask)["mae"], rel=1e-9)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_usage_errors_are_one_line(tmp_path, capsys):
    pred_path, ref_path, mask_path, _ = _pair(tmp_path)
    assert main(["evaluate", str(pred_path), str(ref_path), "-o", str(tmp_path / "scores.txt")]) == 1
    _one_line_error(capsys, "scores.txt", "must end in .csv or .json")
    (tmp_path / "a_file").write_text("in the way")
    assert main(["evaluate", str(pred_path), str(ref_path), "-o", str(tmp_path / "a_file" / "s.csv")]) == 1
    _one_line_error(capsys, "a file of that name is in the way")
    assert main(["evaluate"]) == 1
    _one_line_error(capsys, "give PRED REF, or --pred-dir DIR --ref-dir DIR, or --csv FILE")
    assert main(["evaluate", str(pred_path), str(ref_path), "--csv", str(tmp_path / "c.csv")]) == 1
    _one_line_error(capsys, "exactly one of them")
    assert main(["evaluate", str(pred_path)]) == 1
    _one_line_error(capsys, "exactly two files")
    assert main(["evaluate", "--pred-dir", str(tmp_path)]) == 1
    _one_line_error(capsys, "--pred-dir and --ref-dir go together")
    assert main(["evaluate", "--csv", str(tmp_path / "c.csv"), "--mask", str(mask_path)]) == 1
    _one_line_error(capsys, "--mask goes with PRED REF")
    assert main(["evaluate", str(pred_path), str(ref_path), "--mask-dir", str(tmp_path)]) == 1
    _one_line_error(capsys, "--mask-dir goes with")
    assert main(["evaluate", str(pred_path), str(ref_path), "--normalise", "zscore"]) == 1
    _one_line_error(capsys, "--normalise", "zscore")
    assert main(["evaluate", "--csv", str(tmp_path / "c.csv")]) == 1
    _one_line_error(capsys, "c.csv", "no such file")
    assert main(["evaluate", "--pred-dir", str(tmp_path / "x"), "--ref-dir", str(tmp_path)]) == 1
    _one_line_error(capsys, "no such folder (--pred-dir)")


def test_no_normalisation_warns_about_the_range(tmp_path, capsys):
    pred_path, ref_path, _, (pred, ref, _) = _pair(tmp_path)
    out = tmp_path / "s.json"
    assert main(["evaluate", str(pred_path), str(ref_path), "--normalise", "none", "-o", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"{ref_path}: intensities span" in err and "assume the range [0, 1]" in err
    (case,) = json.loads(out.read_text())["cases"]
    assert case["normalisation"] == {"pred": "as-is", "ref": "as-is"}
    assert case["mae"] == pytest.approx(np.abs(pred.astype(np.float64) - ref).mean(), rel=1e-9)


def test_slice_metrics_follow_the_slice_axis_of_the_files(tmp_path):
    pred_path, ref_path, mask_path, (pred, ref, mask) = _pair(tmp_path)
    straight = evaluate_case(EvalCase("s", pred_path, ref_path, mask_path))
    # the same images stored with voxel axes (x, z, y): the affine's columns swap with them
    swapped = AFFINE[:, [0, 2, 1, 3]]
    paths = [
        _save(tmp_path / f"swapped_{name}.nii.gz", np.swapaxes(data, 1, 2), swapped)
        for name, data in (("pred", pred), ("ref", ref), ("mask", mask.astype(np.uint8)))
    ]
    turned = evaluate_case(EvalCase("t", *paths))
    assert (straight.slice_axis, turned.slice_axis) == (2, 1)
    for key in METRIC_NAMES:
        assert turned.metrics[key] == pytest.approx(straight.metrics[key], rel=1e-9), key
    # scoring along a wrong axis gives other slice-consistency numbers
    wrong = evaluate_volumes(pred, ref, mask, axis=0)
    assert wrong["flicker"] != pytest.approx(straight.metrics["flicker"], rel=1e-3)


def test_results_name_what_was_scored(tmp_path, capsys):
    """Without a mask the scores cover the whole volume, and the files say so (per case and overall)."""
    pred_path, ref_path, mask_path, _ = _pair(tmp_path)
    assert main(["-q", "evaluate", str(pred_path), str(ref_path), "-o", str(tmp_path / "s.json")]) == 0
    document = json.loads((tmp_path / "s.json").read_text())
    assert document["mode"] == "whole-volume" and document["cases"][0]["mode"] == "whole-volume"
    assert (
        main(["-q", "evaluate", str(pred_path), str(ref_path), "--mask", str(mask_path), "-o", str(tmp_path / "m.csv")])
        == 0
    )
    with open(tmp_path / "m.csv") as handle:
        assert [row["mode"] for row in csv.DictReader(handle)] == ["masked"]
    capsys.readouterr()
