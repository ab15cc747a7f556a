"""Matplotlib figures: exact pixel size, deterministic PNG bytes, the style key's plot."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from matplotlib.image import imread

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.evaluation.figures import figure_rgb, new_figure, save_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_figures_have_their_pixel_size_and_png_bytes_depend_only_on_content(tmp_path):
    figure = new_figure(321, 123)
    figure.add_subplot().plot([0, 1, 2], [1, 0, 1], label="a line")
    assert figure_rgb(figure).shape == (123, 321, 3)
    save_png(figure, tmp_path / "a.png")
    save_png(figure, tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in data and b"matplotlib" not in data.lower()  # no version stamp
    assert imread(tmp_path / "a.png").shape[:2] == (123, 321)
    with pytest.raises(Ct2mriError, match=r"\.png"):
        save_png(figure, tmp_path / "a.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary left


def test_figures_draw_in_threads_without_a_display():
    results = {}

    def draw(i: int) -> None:
        figure = new_figure(100, 80)
        figure.add_subplot().imshow(np.full((4, 4), i), cmap="gray", vmin=0, vmax=3)
        results[i] = figure_rgb(figure)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r.shape == (80, 100, 3) for r in results.values())
    assert len({r.tobytes() for r in results.values()}) == 4  # each thread drew its own figure


def test_style_key_plot_shows_each_key_and_the_average(tmp_path):
    from ct2mri_cli.evaluation.keyplot import SIZE_PX, write_key_plot
    from ct2mri_cli.style.key import average_style_keys, style_key

    rng = np.random.default_rng(0)
    keys = [(f"mri{i}.nii.gz", style_key(np.clip(rng.normal(0.4 + 0.1 * i, 0.1, 5000), 0, 1))) for i in range(2)]
    write_key_plot(keys[:1], tmp_path / "one.png")
    write_key_plot(keys, tmp_path / "two.png", average_style_keys([k for _, k in keys]))
    one, two = imread(tmp_path / "one.png"), imread(tmp_path / "two.png")
    assert one.shape[:2] == two.shape[:2] == (SIZE_PX[1], SIZE_PX[0])
    black = (two[..., :3] < 0.1).all(axis=-1).sum() - (one[..., :3] < 0.1).all(axis=-1).sum()
    assert black > 500  # the average's thick black curves (and its legend entry)
    write_key_plot(keys[:1], tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "one.png").read_bytes()
