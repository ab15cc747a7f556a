"""QC montages: layout, orientation of the planes, checkerboard and PNG output."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.evaluation.panels import grid_boxes
from ct2mri_cli.evaluation.qc import (
    checkerboard,
    mask_centre,
    montage,
    pair_montage,
    planes,
    pose_caption,
    to_uint8,
    write_png,
)


def test_montage_places_tiles_with_gaps():
    a = np.full((3, 4), 10, np.uint8)
    b = np.full((2, 5), 20, np.uint8)
    c = np.full((4, 2), 30, np.uint8)
    out = montage([[a, b], [c]], gap=1, background=7)
    assert out.shape == (3 + 1 + 4, 4 + 1 + 5)
    assert (out[0:3, 0:4] == 10).all() and (out[0:2, 5:10] == 20).all() and (out[4:8, 0:2] == 30).all()
    assert (out[:, 4] == 7).all() and (out[3, :] == 7).all() and (out[2, 5:10] == 7).all() and (out[4:, 2:] == 7).all()


def test_montage_promotes_to_rgb_and_scales_floats():
    grey = np.array([[0.0, 0.5], [1.0, 2.0]])
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200
    out = montage([[grey, rgb]], gap=0)
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :2, 1], [[0, 128], [255, 255]])
    assert (out[:, 2:, 0] == 200).all() and (out[:, 2:, 1] == 0).all()
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.25, 3.0]), lo=-1.0, hi=3.0), [0, 80, 255])
    with pytest.raises(ValueError):
        montage([])


def test_planes_are_display_oriented():
    vol = np.zeros((10, 12, 14))  # (Z, H, W)
    vol[9, 6, 7] = 1.0  # superior
    vol[5, 11, 7] = 2.0  # anterior
    vol[5, 6, 0] = 3.0  # patient's left
    axial, coronal, sagittal = planes(vol, (5, 6, 7))
    assert axial.shape == (12, 14) and coronal.shape == (10, 14) and sagittal.shape == (10, 12)
    assert axial[0, 7] == 2.0  # anterior at the top
    assert axial[5, 0] == 3.0  # left on the left
    assert coronal[0, 7] == 1.0  # superior at the top
    assert sagittal[0, 6] == 1.0 and sagittal[4, 11] == 2.0  # superior top, anterior right


def test_checkerboard_alternates_tiles():
    a, b = np.zeros((8, 8)), np.ones((8, 8))
    board = checkerboard(a, b, tiles=4)
    expected = ((np.arange(8)[:, None] // 2 + np.arange(8)[None, :] // 2) % 2).astype(float)
    np.testing.assert_array_equal(board, expected)
    with pytest.raises(ValueError):
        checkerboard(a, np.ones((4, 4)))


def _corr(x, y):
    return float(np.corrcoef(np.ravel(x).astype(float), np.ravel(y).astype(float))[0, 1])


def _column_left(column, cell, panel, gap=2):
    """Where a panel ``panel`` pixels wide starts: centred in columns ``cell`` wide, ``gap`` apart."""
    return column * (cell + gap) + (cell - panel) // 2


def _ellipsoid(z, h, w):
    zz, yy, xx = np.mgrid[:z, :h, :w]
    return ((zz - z / 2) / (z / 3)) ** 2 + ((yy - h / 2) / (h / 3)) ** 2 + ((xx - w / 2) / (w / 3)) ** 2 < 1


def test_pair_montage_layout_content_and_mask_outline():
    rng = np.random.default_rng(0)
    z, h, w = 20, 24, 22
    first = rng.random((z, h, w))
    second = np.full((z, h, w), 0.8)
    mask = np.zeros((z, h, w), bool)
    mask[5:15, 6:18, 4:16] = True
    assert mask_centre(mask) == (9, 11, 9)
    out = pair_montage(first, second, mask, tiles=2)
    gap, cell = 2, max(w, h)  # columns as wide as the sagittal panel (h); axial panels centred in them
    assert out.dtype == np.uint8 and out.shape == (h + z + z + 2 * gap, 3 * cell + 2 * gap, 3)
    left = [_column_left(c, cell, w) for c in range(3)]
    axial = planes(first, (9, 11, 9))[0]
    shown = out[:h, left[0] : left[0] + w]
    assert _corr(shown[..., 1], to_uint8(axial)) > 0.95  # the first panel is the first volume's slice
    assert np.abs(out[:h, left[1] : left[1] + w].astype(int) - round(0.8 * 255)).max() <= 1
    tiles = out[:h, left[2] : left[2] + w, 1].astype(int)
    assert np.abs(tiles - round(0.8 * 255)).min() <= 1 and np.abs(tiles - to_uint8(axial)).min() <= 1
    red = (out[..., 0].astype(int) - out[..., 1]) > 60  # the mask's outline, on the first column only
    outline = red[:h, left[0] : left[0] + w]
    ys, xs = np.nonzero(outline)
    assert len(ys) > 20 and ys.min() >= 5 and ys.max() <= 18 and xs.min() >= 3 and xs.max() <= 16
    assert not red[:, cell:].any() and not outline[8:15, 7:13].any()  # none elsewhere, none inside


def test_each_column_lines_up_under_its_title():
    axial, coronal, sagittal = (24, 22), (20, 22), (20, 30)  # (height, width): the sagittal panel is widest
    boxes, width, height = grid_boxes([[axial] * 3, [coronal] * 3, [sagittal] * 3], factor=2, gap=2)
    assert (width, height) == (3 * 60 + 2 * 2, 2 * (24 + 20 + 20) + 2 * 2)
    for column in range(3):
        centres = {x + w / 2 for x, _, w, _ in (row[column] for row in boxes)}
        assert centres == {column * 62 + 30}, column  # one centre per column, whatever the plane
    assert [row[1][0] for row in boxes] == [62 + 8, 62 + 8, 62]  # axial and coronal 44 px wide in 60
    assert [row[0][1] for row in boxes] == [0, 50, 92]  # rows top-aligned below the tallest panel


def test_write_png_round_trip_and_atomicity(tmp_path):
    image = (np.arange(30 * 40 * 3) % 256).astype(np.uint8).reshape(30, 40, 3)
    write_png(image, tmp_path / "qc.png")
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "qc.png")))
    np.testing.assert_array_equal(back, image)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_png(grey, tmp_path / "g.png")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "g.png"))), grey)
    with pytest.raises(Ct2mriError, match=r"\.png"):
        write_png(grey, tmp_path / "g.jpg")
    with pytest.raises(ValueError):
        write_png(grey.astype(np.float32), tmp_path / "f.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "qc.png"]


def test_labelled_montage_names_columns_and_planes():
    rng = np.random.default_rng(0)
    z, h, w = 30, 48, 40
    a, b = rng.random((z, h, w)) * 0.5, rng.random((z, h, w)) * 0.5
    plain = pair_montage(a, b)
    big = pair_montage(a, b, min_side=300)
    labelled = pair_montage(a, b, titles=("CT", "SYNTHETIC T1", "CHECKERBOARD"), min_side=300)
    factor = (big.shape[0] - 4) // (plain.shape[0] - 4)
    assert min(big.shape[:2]) >= 300 and big.shape[0] == (plain.shape[0] - 4) * factor + 4
    assert labelled.shape == big.shape
    zoomed = np.kron(plain[:h, :w, 0], np.ones((factor, factor), np.uint8))
    assert _corr(big[: h * factor, : w * factor, 0], zoomed) > 0.99  # enlarged, not resampled
    ink = np.abs(labelled.astype(int) - big).max(axis=-1) > 40
    panel_w, cell, gap = w * factor, h * factor, 2  # the sagittal panels (h wide) set the columns' width
    row_tops = [0, h * factor + gap, (h + z) * factor + 2 * gap]
    row_heights = [h * factor, z * factor, z * factor]
    first_panels = [(_column_left(0, cell, panel_w), panel_w)] * 2 + [(0, cell)]
    expected = np.zeros_like(ink)
    for column in range(3):  # a title at the top of each column
        x0 = _column_left(column, cell, panel_w)
        assert ink[: row_heights[0] // 4, x0 : x0 + panel_w].sum() > 20, column
        expected[: row_heights[0] // 4, x0 : x0 + panel_w] = True
    # a plane name at the bottom of each row's first panel
    for top, height, (x0, width) in zip(row_tops, row_heights, first_panels):
        assert ink[top + 3 * height // 4 : top + height, x0 : x0 + width].sum() > 20
        expected[top + 3 * height // 4 : top + height, x0 : x0 + width] = True
    assert not (ink & ~expected).any()  # and no lettering elsewhere
    with pytest.raises(ValueError, match="3 column titles"):
        pair_montage(a, b, titles=("CT", "T1"))


def test_montages_are_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    a, b = rng.random((12, 20, 18)), rng.random((12, 20, 18))
    kwargs = {
        "titles": ("CT", "T1", "BOARD"),
        "min_side": 200,
        "caption": "NATIVE AXES",
        "trust": rng.random((12, 20, 18)),
    }
    write_png(pair_montage(a, b, **kwargs), tmp_path / "one.png")
    write_png(pair_montage(a, b, **kwargs), tmp_path / "two.png")
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


def test_trust_map_gets_a_coloured_column_and_a_colour_bar():
    import matplotlib

    rng = np.random.default_rng(3)
    z, h, w = 20, 32, 28
    mask = _ellipsoid(z, h, w)
    a, b = rng.random((z, h, w)) * mask, rng.random((z, h, w)) * mask
    trust = np.where(mask, np.linspace(0.0, 2.0, w)[None, None, :] + 0.1 * rng.random((z, h, w)), 0.0)
    titles = ("CT", "SYNTHETIC T1", "CHECKERBOARD")
    without = pair_montage(a, b, mask, titles=titles, min_side=200)
    out = pair_montage(a, b, mask, titles=titles, min_side=200, trust=trust)
    gap = 2
    factor = (without.shape[0] - 2 * gap) // (h + 2 * z)
    assert out.shape[0] == without.shape[0] and out.shape[1] > 4 * max(h, w) * factor + 3 * gap
    cell = h * factor  # the columns are as wide as the sagittal panels
    for column in range(3):  # the first three columns are as they were
        x0 = _column_left(column, cell, w * factor)
        np.testing.assert_array_equal(
            out[: h * factor, x0 : x0 + w * factor], without[: h * factor, x0 : x0 + w * factor]
        )
    x0 = _column_left(3, cell, w * factor)
    panel = out[: h * factor, x0 : x0 + w * factor].astype(float)
    centre = mask_centre(mask)
    shown = planes(np.where(mask, trust, np.nan), centre)[0]
    lo, hi = np.nanmin(np.where(mask, trust, np.nan)), np.nanmax(np.where(mask, trust, np.nan))
    expected = matplotlib.colormaps["viridis"]((shown - lo) / (hi - lo))[..., :3] * 255
    expected = np.kron(expected, np.ones((factor, factor, 1)))
    brain = np.kron(np.isfinite(shown), np.ones((factor, factor), bool))
    untitled = np.ones_like(brain)
    untitled[: h * factor // 4] = False  # under the TRUST title
    assert np.abs(panel - expected)[brain & untitled].mean() < 3  # the trust map, coloured by viridis
    outside = ~brain & untitled
    assert (panel[outside] == 0).all()  # black outside the brain
    bar = out[:, 4 * max(h, w) * factor + 3 * gap :].astype(int)  # right of the widest row
    colourful = (np.abs(bar[..., 0] - bar[..., 1]) > 40) | (np.abs(bar[..., 1] - bar[..., 2]) > 40)
    assert colourful.sum() > 200  # the colour bar
    with pytest.raises(ValueError, match="trust map"):
        pair_montage(a, b, mask, trust=trust[:-1])


def test_the_caption_is_written_under_the_second_axial_panel():
    from ct2mri_cli.preprocessing.pose import Pose

    rng = np.random.default_rng(1)
    z, h, w = 20, 64, 60
    a, b = rng.random((z, h, w)) * 0.5, rng.random((z, h, w)) * 0.5
    picture = pair_montage(a, b, caption="POSE P 18.6 R 0.4 Y -1.2")
    ink = np.abs(picture.astype(int) - pair_montage(a, b)).max(axis=-1) > 40
    left = _column_left(1, h, w)  # columns as wide as the sagittal panel (h), the axial one centred
    second = slice(left, left + w)
    assert ink[3 * h // 4 : h, second].sum() > 20  # at the foot of the axial panel
    ink[3 * h // 4 : h, second] = False
    assert not ink.any()  # and nowhere else
    c, s = np.cos(np.radians(18.6)), np.sin(np.radians(18.6))
    pose = Pose(rotation=np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), translation_mm=(0, 0, 0), scale=1.0)
    assert pose_caption(pose) == "POSE P 18.6 R 0.0 Y 0.0"
    assert pose_caption(None) == "NATIVE AXES"
