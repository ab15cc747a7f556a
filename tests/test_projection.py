"""The projection CT model: projector against analytic line integrals, reconstruction, kernel,
slice profile, measured noise texture, and a rendered phantom against the levels it was given."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from test_synthesis import quiet_params, toy_anatomy

from ct2mri_cli.data import projection as P
from ct2mri_cli.data import synthesis as S
from ct2mri_cli.data.projection.radon import angles, back_project, filtered_back_projection, project
from ct2mri_cli.data.projection.render import apply_kernel, kernel_transfer
from ct2mri_cli.data.projection.texture import measured_spectrum, slice_profile_average, textured_noise
from ct2mri_cli.data.synthesis.variation import subject_anatomy, subject_fractions


def _disk(n=96, pixel=2.0, radius=50.0):
    x = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * pixel
    xx, yy = torch.meshgrid(x, x, indexing="ij")
    return x, ((xx**2 + yy**2) <= radius**2).float()


def test_projections_of_a_disk_are_its_chords():
    x, disk = _disk()
    sinogram = project(disk[None], angles(12), 2.0)[0]
    chord = 2 * torch.sqrt(torch.clamp(50.0**2 - x**2, min=0))
    for row in sinogram:  # a disk looks the same from every angle
        assert float((row - chord).abs().mean()) < 0.5
        assert float(row.sum() * 2.0) == pytest.approx(float(disk.sum()) * 4.0, rel=0.01)  # its area, mm^2


def test_back_projection_is_the_adjoint_of_projection():
    rng = torch.Generator().manual_seed(0)
    _, disk = _disk(64)
    image = torch.rand((1, 64, 64), generator=rng) * disk
    sino = torch.rand((1, 30, 64), generator=rng)
    thetas = angles(30)
    left = float((project(image, thetas, 1.0) * sino).sum())
    right = float((image * back_project(sino, thetas)).sum())
    assert left == pytest.approx(right, rel=0.03)


def test_filtered_back_projection_reconstructs_a_disk():
    x, disk = _disk()
    image = disk * 3.0
    thetas = angles(180)
    recon = filtered_back_projection(project(image[None], thetas, 2.0), thetas, 2.0)[0]
    xx, yy = torch.meshgrid(x, x, indexing="ij")
    r = torch.sqrt(xx**2 + yy**2)
    assert float(recon[r < 40].mean()) == pytest.approx(3.0, rel=0.01)
    assert float(recon[r < 40].std()) < 0.05
    assert float(recon[(r > 60) & (r < 90)].abs().mean()) < 0.1  # outside it, within the turning circle


def test_kernel_transfer_passes_zero_frequency_and_stops_at_the_cutoff():
    transfer = kernel_transfer((64, 64), 1.0, 0.4, 0.5)
    f = np.sqrt(np.fft.fftfreq(64)[:, None] ** 2 + np.fft.fftfreq(64)[None, :] ** 2)
    assert transfer[0, 0] == 1.0
    assert np.all(transfer[f >= 0.4] == 0.0)
    at = np.argmin(np.abs(f - 0.2))  # half the cutoff: 0.5 (1 + cos(pi / 2)) (1 + 0.5 / 4)
    assert transfer.flat[at] == pytest.approx(
        0.5 * (1 + math.cos(math.pi * f.flat[at] / 0.4)) * (1 + 0.5 * (f.flat[at] / 0.4) ** 2)
    )
    flat = np.full((20, 24, 3), 37.0, np.float32)
    assert np.allclose(apply_kernel(flat, 1.0, 0.4, 0.5), 37.0, atol=1e-3)


@pytest.mark.parametrize(
    "slice_mm, spacing, weights",
    [
        (1.0, 1.0, [1.0]),
        (3.0, 1.0, [1 / 3, 1 / 3, 1 / 3]),
        (2.0, 1.0, [0.25, 0.5, 0.25]),
        (5.0, 2.5, [0.25, 0.5, 0.25]),
    ],
)
def test_slice_profile_spreads_an_impulse_over_the_slice_width(slice_mm, spacing, weights):
    volume = np.zeros((1, 1, 11), np.float32)
    volume[0, 0, 5] = 1.0
    out = slice_profile_average(volume, slice_mm, spacing)[0, 0]
    reach = len(weights) // 2
    assert np.allclose(out[5 - reach : 6 + reach], weights)
    assert out.sum() == pytest.approx(1.0)


def _ring_power(noise, pixel, lo, hi):
    spectrum = np.mean(np.abs(np.fft.fft2(noise, axes=(0, 1))) ** 2, axis=2)
    f = np.sqrt(
        np.fft.fftfreq(noise.shape[0], pixel)[:, None] ** 2 + np.fft.fftfreq(noise.shape[1], pixel)[None, :] ** 2
    )
    return float(spectrum[(f >= lo) & (f < hi)].mean())


def test_noise_has_unit_sd_and_the_measured_texture():
    rng = np.random.default_rng(1)
    noise = textured_noise(rng, (96, 96, 6), 0.957, 0.55, 0.5)  # the measured CT's pixel, no stretch
    assert float(noise.std()) == pytest.approx(1.0, rel=1e-3)
    freqs, power = measured_spectrum()
    low, high = (freqs[2], freqs[3]), (freqs[8], freqs[9])
    measured = float(np.mean(power[2:4]) / np.mean(power[8:10]))
    ratio = _ring_power(noise, 0.957, *low) / _ring_power(noise, 0.957, *high)
    assert ratio == pytest.approx(measured, rel=0.2)
    sharper = textured_noise(np.random.default_rng(1), (96, 96, 6), 0.957, 0.9, 0.5)
    assert _ring_power(sharper, 0.957, *high) > 1.5 * _ring_power(noise, 0.957, *high)


def test_the_tissues_are_the_generator_classes_and_calcification():
    assert P.TISSUES == (*S.CLASSES, "calcification")


def _phantom(n=64, pixel=2.0, depth=4):
    """A cylindrical head along z: white matter core, grey shell, skull (cortical/diploe), scalp, air."""
    x = (np.arange(n) - (n - 1) / 2) * pixel
    r = np.sqrt(x[:, None] ** 2 + x[None, :] ** 2)
    fractions = np.zeros((len(P.TISSUES), n, n, depth), np.float32)
    order = {t: i for i, t in enumerate(P.TISSUES)}
    for name, (lo, hi) in {"wm": (0, 36), "gm": (36, 44), "cortical": (44, 52), "soft": (52, 56)}.items():
        fractions[order[name]][(r >= lo) & (r < hi)] = 1.0
    fractions[order["air"]][r >= 56] = 1.0
    affine = np.diag([pixel, pixel, 2.0, 1.0])
    return fractions, affine, r


def _scanner(**changes):
    hu = {"csf": 5.0, "gm": 36.0, "wm": 25.0, "cortical": 1500.0, "diploe": 600.0, "fat": -90.0, "soft": 45.0}
    hu |= {"air": -1000.0, "calcification": 300.0}
    base = P.ScannerParams("wide", hu, 2.0, 0.45, 0.0, 0.0, 0.0, 0.0)
    return dataclasses.replace(base, **changes)


def test_a_noise_free_phantom_has_the_levels_it_was_given():
    fractions, affine, r = _phantom()
    ct = P.render_ct(fractions, affine, _scanner(), np.random.default_rng(0))
    assert ct.dtype == np.int16
    assert np.all(ct[r < 20] == 25)
    assert np.all(np.abs(ct[r < 28] - 25) <= 1)  # the kernel rings faintly off the skull's edge
    assert np.all(np.abs(ct[r > 70] + 1000) <= 2)


def test_noise_and_streaks_come_at_the_size_asked_for():
    fractions, affine, r = _phantom(depth=8)
    core = np.broadcast_to((r < 28)[..., None], fractions.shape[1:])
    noisy = P.render_ct(fractions, affine, _scanner(noise_sd_hu=6.0), np.random.default_rng(0)).astype(np.float32)
    assert float(noisy[core].std()) == pytest.approx(6.0, rel=0.15)
    quiet = P.render_ct(fractions, affine, _scanner(), np.random.default_rng(0)).astype(np.float32)
    streaked = P.render_ct(fractions, affine, _scanner(streak_hu=10.0), np.random.default_rng(0)).astype(np.float32)
    inside = np.broadcast_to((r < 44)[..., None], fractions.shape[1:])
    artefact = (streaked - quiet)[inside]
    assert float(np.percentile(np.abs(artefact - np.median(artefact)), 95)) == pytest.approx(10.0, abs=1.0)
    # beam hardening of a bone ring darkens the centre against the inner table
    assert float((streaked - quiet)[core].mean()) < float((streaked - quiet)[inside & ~core].mean())


def test_a_head_without_brain_gets_the_noise_asked_for():
    fractions, affine, r = _phantom(depth=8)
    order = {t: i for i, t in enumerate(P.TISSUES)}
    fractions[order["soft"]] += fractions[order["wm"]] + fractions[order["gm"]]
    fractions[order["wm"]] = fractions[order["gm"]] = 0.0
    scanner = _scanner(noise_sd_hu=5.0, noise_nonuniformity=1.0)
    ct = P.render_ct(fractions, affine, scanner, np.random.default_rng(0)).astype(np.float32)
    core = np.broadcast_to((r < 28)[..., None], fractions.shape[1:])
    assert 3.0 < float(ct[core].std()) < 8.0  # normalised over the head: near 5 HU, not runaway


def test_bad_fraction_maps_and_pixels_are_refused():
    fractions, affine, _ = _phantom()
    with pytest.raises(ValueError, match="need 9 fraction maps"):
        P.render_ct(fractions[:8], affine, _scanner(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="square"):
        P.render_ct(fractions, np.diag([2.0, 1.0, 2.0, 1.0]), _scanner(), np.random.default_rng(0))


def test_scanners_are_reproducible_and_in_their_ranges():
    a = P.sample_scanner(np.random.default_rng(4), "wide")
    assert a == P.sample_scanner(np.random.default_rng(4), "wide")
    for seed in range(40):
        calibrated = P.sample_scanner(np.random.default_rng(seed), "calibrated")
        assert calibrated.hu["gm"] - calibrated.hu["wm"] >= 8.0 and calibrated.slice_mm == 1.5
        wide = P.sample_scanner(np.random.default_rng(seed), "wide")
        assert 4.0 <= wide.hu["gm"] - wide.hu["wm"] <= 13.0 and 1.5 <= wide.noise_sd_hu <= 10.0
    with pytest.raises(ValueError, match="variety"):
        P.sample_scanner(np.random.default_rng(0), "odd")


def test_subject_fractions_give_the_mixing_models_noise_free_hu():
    """Two routes to a subject's noise-free HU (atrophy and calcification included) agree."""
    anatomy = toy_anatomy()
    params = quiet_params(atrophy=0.5, calcifications={"choroid": 250.0, "pineal": 0.0})
    hu, _ = subject_anatomy(anatomy, params)
    fractions = subject_fractions(anatomy, params)
    assert np.allclose(fractions.sum(axis=0), 1.0, atol=1e-5)
    levels = np.asarray([params.hu[c] for c in S.CLASSES] + [250.0], np.float32)
    assert np.allclose(np.tensordot(levels, fractions, axes=1), hu, atol=1e-2)


def test_the_projection_model_keeps_the_subject_t1_and_mask():
    anatomy = toy_anatomy()
    params = quiet_params(ct_noise_sd=3.0, mri_noise=0.02)
    scanner = _scanner(noise_sd_hu=4.0)
    mixing = S.synthesize_pair(anatomy, params, np.random.default_rng(3))
    projection = S.synthesize_pair(
        anatomy, params, np.random.default_rng(3), scanner=(scanner, np.random.default_rng(9))
    )
    assert np.array_equal(mixing.t1, projection.t1) and np.array_equal(mixing.mask, projection.mask)
    assert projection.scanner == scanner and mixing.scanner is None
    inner = (mixing.mask > 0) & (mixing.ct > 20) & (mixing.ct < 32)  # white matter
    assert abs(float(np.median(projection.ct[inner])) - 25.0) <= 2.0
    assert not np.array_equal(mixing.ct, projection.ct)
    with pytest.raises(ValueError, match="ct_model"):
        S.generate_pair("toy", 1, ct_model="xray")
