"""QC montages: layout, orientation of the planes, checkerboard and PNG output."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.evaluation.qc import (
    checkerboard,
    mask_centre,
    montage,
    pair_montage,
    planes,
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


def test_pair_montage_layout_and_mask_outline():
    z, h, w = 20, 24, 22
    first = np.full((z, h, w), 0.2)
    second = np.full((z, h, w), 0.8)
    mask = np.zeros((z, h, w), bool)
    mask[5:15, 6:18, 4:16] = True
    assert mask_centre(mask) == (9, 11, 9)
    out = pair_montage(first, second, mask, tiles=2)
    gap = 2
    assert out.shape == (h + z + z + 2 * gap, 3 * max(w, h) + 2 * gap, 3)  # rows: axial, coronal, sagittal
    axial_first = out[:h, :w]
    outline = (axial_first[..., 0] == 255) & (axial_first[..., 1] == 64)
    assert outline.sum() == 2 * (12 + 12) - 4  # the border of a 12 x 12 square
    assert (out[:h, w + gap : 2 * w + gap] == round(0.8 * 255)).all()
    tiles = out[:h, 2 * (w + gap) : 3 * w + 2 * gap, 0]
    assert set(np.unique(tiles)) == {round(0.2 * 255), round(0.8 * 255)}


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
    from ct2mri_cli.evaluation.qc import pair_montage

    rng = np.random.default_rng(0)
    z, h, w = 30, 48, 40
    a, b = rng.random((z, h, w)) * 0.5, rng.random((z, h, w)) * 0.5
    plain = pair_montage(a, b)
    big = pair_montage(a, b, titles=("CT", "SYNTHETIC T1", "CHECKERBOARD"), min_side=300)
    factor = (big.shape[0] - 4) // (plain.shape[0] - 4)
    assert min(big.shape[:2]) >= 300 and big.shape[0] == (plain.shape[0] - 4) * factor + 4
    label = np.all(big == (255, 230, 64), axis=-1)
    assert not np.all(np.stack([plain] * 3, axis=-1) == (255, 230, 64), axis=-1).any()
    panel_w, gap = w * factor, 2
    row_tops = [0, h * factor + gap, (h + z) * factor + 2 * gap]
    row_heights = [h * factor, z * factor, z * factor]
    for column in range(3):  # a title at the top of each column
        x0 = column * (panel_w + gap)
        assert label[: row_heights[0] // 4, x0 : x0 + panel_w].sum() > 20, column
    for top, height in zip(row_tops, row_heights):  # a plane name at the bottom of each row's first panel
        assert label[top + 3 * height // 4 : top + height, :panel_w].sum() > 20


def test_text_bitmap_spells_with_the_glyphs():
    from ct2mri_cli.evaluation.lettering import text_bitmap

    bitmap = text_bitmap("T1")
    assert bitmap.shape == (7, 11)
    assert bitmap[0, :5].all() and bitmap[1:, 2].all() and not bitmap[1:, [0, 1, 3, 4]].any()  # T
    assert not bitmap[:, 5].any()  # the gap between letters
    assert bitmap[6, 7:10].all() and bitmap[:, 8].all()  # 1: stem and foot


def test_the_caption_is_written_under_the_second_axial_panel():
    from ct2mri_cli.evaluation.qc import pair_montage
    from ct2mri_cli.evaluation.qc import pose_caption
    from ct2mri_cli.preprocessing.pose import Pose

    rng = np.random.default_rng(1)
    z, h, w = 20, 64, 60
    a, b = rng.random((z, h, w)) * 0.5, rng.random((z, h, w)) * 0.5
    picture = pair_montage(a, b, caption="POSE P 18.6 R 0.4 Y -1.2")
    ink = np.all(picture == (255, 230, 64), axis=-1)
    second = slice(w + 2, 2 * w + 2)
    assert ink[3 * h // 4 : h, second].sum() > 20  # at the foot of the axial panel
    ink[3 * h // 4 : h, second] = False
    assert not ink.any()  # and nowhere else
    c, s = np.cos(np.radians(18.6)), np.sin(np.radians(18.6))
    pose = Pose(rotation=np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), translation_mm=(0, 0, 0), scale=1.0)
    assert pose_caption(pose) == "POSE P 18.6 R 0.0 Y 0.0"
    assert pose_caption(None) == "NATIVE AXES"
