import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ct2mri_cli.diffusion.sampler import network_evaluations, sample_volume
from ct2mri_cli.network import network_denoiser
from tests.helpers import tiny_network

STYLE = torch.zeros(3, 128)


def _pair(z: int, h: int = 8, w: int = 8, a: float = 0.7, b: float = 0.1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(z, h, w, generator=g) * 1.6 - 0.8
    return x0, a * x0 + b


def _oracle(a: float, b: float):
    return lambda x_t, y, t, style: x_t - (y - b) / a


@pytest.mark.parametrize("mode", ["independent", "coprediction", "ista"])
@pytest.mark.parametrize("steps", [2, 10, 50])
@pytest.mark.parametrize("z", [1, 2, 5, 6])
def test_oracle_denoiser_recovers_x0(mode, steps, z):
    for a, b in ((0.7, 0.1), (-1.3, -0.2)):
        x0, ct = _pair(z, a=a, b=b)
        out = sample_volume(_oracle(a, b), ct, STYLE, steps=steps, corrections=1, step_size=0.5, mode=mode)
        assert out.shape == ct.shape
        assert (out - x0).abs().max().item() < 1e-5


def test_oracle_with_paper_correction_norm():
    x0, ct = _pair(5)
    out = sample_volume(
        _oracle(0.7, 0.1), ct, STYLE, steps=10, corrections=2, step_size=0.5, mode="ista", correction_norm="paper"
    )
    assert (out - x0).abs().max().item() < 1e-5


def _positional_error_denoiser(ct: torch.Tensor, x0: torch.Tensor, amplitude: float = 0.1):
    """Predicts x0 of every window with an error that depends on the window's position."""
    g = torch.Generator().manual_seed(42)
    offsets = (torch.rand(ct.shape[0], generator=g) * 2 - 1) * amplitude

    def denoise(x_t, y, t, style):
        centre = y[:, 1]
        index = ((centre[:, None] - ct[None]).abs().flatten(2).sum(-1)).argmin(dim=1)
        x0_windows = torch.nn.functional.pad(x0, (0, 0, 0, 0, 1, 1), value=0.0).unfold(0, 3, 1).permute(0, 3, 1, 2)
        predicted = x0_windows[index] + offsets[index].view(-1, 1, 1, 1)
        return x_t - predicted

    return denoise


def _neighbour_error_jump(out, x0):
    err = (out - x0).mean(dim=(1, 2))
    return (err[1:] - err[:-1]).abs().mean().item()


def test_coprediction_and_ista_smooth_interslice_disagreement():
    x0, ct = _pair(24, seed=3)
    den = _positional_error_denoiser(ct, x0)
    jumps = {
        mode: _neighbour_error_jump(
            sample_volume(den, ct, STYLE, steps=10, corrections=1, step_size=0.5, mode=mode), x0
        )
        for mode in ("independent", "coprediction", "ista")
    }
    assert jumps["coprediction"] < 0.6 * jumps["independent"]
    assert jumps["ista"] < 0.6 * jumps["independent"]


def _state_dependent_denoiser(a=0.7, b=0.1):
    return lambda x_t, y, t, style: x_t - ((y - b) / a + 0.1 * torch.tanh(3 * x_t))


def test_ista_without_correction_is_coprediction():
    _, ct = _pair(7, seed=5)
    den = _state_dependent_denoiser()
    cp = sample_volume(den, ct, STYLE, steps=10, corrections=0, step_size=0.5, mode="coprediction")
    assert torch.equal(sample_volume(den, ct, STYLE, steps=10, corrections=0, step_size=0.5, mode="ista"), cp)
    assert torch.equal(sample_volume(den, ct, STYLE, steps=10, corrections=1, step_size=0.0, mode="ista"), cp)
    corrected = sample_volume(den, ct, STYLE, steps=10, corrections=1, step_size=0.5, mode="ista")
    assert not torch.equal(corrected, cp)


@pytest.mark.parametrize("mode,corrections", [("ista", 1), ("ista", 2), ("coprediction", 1), ("independent", 1)])
def test_window_count_and_batch_size(mode, corrections):
    z, steps, batch = 9, 6, 4
    _, ct = _pair(z)
    seen = []
    oracle = _oracle(0.7, 0.1)

    def counting(x_t, y, t, style):
        seen.append(x_t.shape[0])
        assert y.shape == x_t.shape and style.shape == (x_t.shape[0], 3, 128) and t.dtype == torch.long
        return oracle(x_t, y, t, style)

    progress = []
    sample_volume(
        counting,
        ct,
        STYLE,
        steps=steps,
        corrections=corrections,
        step_size=0.5,
        mode=mode,
        batch_size=batch,
        progress=lambda done, total: progress.append((done, total)),
    )
    m = corrections if mode == "ista" else 0
    assert sum(seen) == z * (steps + m * (steps - 1)) == network_evaluations(z, steps, m, mode)
    assert max(seen) <= batch
    assert progress[-1] == (sum(seen), sum(seen))


def test_deterministic_with_a_real_network():
    net = tiny_network()
    den = network_denoiser(net)
    g = torch.Generator().manual_seed(0)
    ct = torch.rand(5, 16, 16, generator=g) * 2 - 1
    style = torch.rand(3, 128, generator=g)
    a = sample_volume(den, ct, style, steps=5, corrections=1, step_size=0.5, mode="ista", batch_size=2)
    b = sample_volume(den, ct, style, steps=5, corrections=1, step_size=0.5, mode="ista", batch_size=2)
    assert torch.equal(a, b)
    assert a.shape == ct.shape and torch.isfinite(a).all() and a.abs().max() <= 1


def test_invalid_arguments():
    _, ct = _pair(3)
    den = _oracle(0.7, 0.1)
    with pytest.raises(ValueError, match="mode"):
        sample_volume(den, ct, STYLE, steps=5, corrections=1, step_size=0.5, mode="fast")
    with pytest.raises(ValueError, match="at least 2"):
        sample_volume(den, ct, STYLE, steps=1, corrections=1, step_size=0.5, mode="ista")
    with pytest.raises(ValueError, match=r"\(Z, H, W\)"):
        sample_volume(den, ct[0], STYLE, steps=5, corrections=1, step_size=0.5, mode="ista")
    with pytest.raises(ValueError, match="style"):
        sample_volume(den, ct, torch.zeros(128), steps=5, corrections=1, step_size=0.5, mode="ista")
    with pytest.raises(ValueError, match="denoiser returned"):
        sample_volume(lambda x, y, t, s: x[:, :1], ct, STYLE, steps=5, corrections=1, step_size=0.5, mode="ista")


_PEAK_RSS_SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch
    from ct2mri_cli.diffusion.sampler import sample_volume
    torch.set_num_threads(1)
    steps = int(sys.argv[1])
    ct = torch.rand(16, 256, 256) * 2 - 1
    den = lambda x_t, y, t, s: x_t - y
    sample_volume(den, ct, torch.zeros(3, 128), steps=steps, corrections=1, step_size=0.5, mode="ista")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_steps():
    def peak_kib(steps: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(steps)],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            check=True,
        )
        return int(out.stdout.strip().splitlines()[-1])

    # Keeping one volume per step would add 100 x 4 MiB; the allocator's run-to-run noise is ~35 MiB.
    volume_mib = 16 * 256 * 256 * 4 / 2**20
    growth_mib = (min(peak_kib(100) for _ in range(2)) - min(peak_kib(5) for _ in range(2))) / 1024
    assert growth_mib < 12 * volume_mib


# ------------------------------------------------------------------------------------------
# ISTA against an independent float64 implementation of the method's equations, with a
# denoiser whose error is known and non-zero (an oracle would make the score vanish).


def _biased_x0(x_t, y):
    """x0 estimate of a per-pixel denoiser: right for y = 0.7 x0 + 0.1 up to a state-dependent error."""
    tanh = torch.tanh if isinstance(x_t, torch.Tensor) else np.tanh
    return (y - 0.1) / 0.7 + 0.15 * tanh(3.0 * x_t) + 0.05


def _reference_ista(
    ct: np.ndarray, steps: int, corrections: int, lam: float, norm: str, cap: float = 0.0
) -> np.ndarray:
    """Co-prediction + correction (paper Eq. 4-6), written from the equations in float64; with
    ``cap`` each correction's move is clipped to cap x 2 (the share of the [-1, 1] range).

    The denoiser is per-pixel, so every window predicts a slice identically and co-prediction
    reduces to evaluating it on the padded volume."""
    T = 1000
    m = np.linspace(0.001, 0.999, T)
    delta = 2.0 * (m - m**2)
    delta_step = np.empty(T)
    delta_step[0] = delta[0]
    delta_step[1:] = delta[1:] - delta[:-1] * ((1.0 - m[1:]) / (1.0 - m[:-1])) ** 2
    if steps == 2:
        times = [T - 1, 0]
    else:
        times = [int(v) for v in np.arange(T - 1, 1, -(T - 1) / (steps - 2))] + [1, 0]
    y = np.pad(ct.astype(np.float64), ((1, 1), (0, 0), (0, 0)), constant_values=-1.0)
    d = ct.shape[1] * ct.shape[2]
    x = y.copy()
    for i, t in enumerate(times):
        x0 = np.clip(_biased_x0(x, y), -1.0, 1.0)
        if t == 0:
            return x0[1:-1]
        n = times[i + 1]
        sigma2 = (delta[t] - delta[n] * (1 - m[t]) ** 2 / (1 - m[n]) ** 2) * delta[n] / delta[t]
        c = np.sqrt(max((delta[n] - sigma2) / delta[t], 0.0))
        x = (1 - m[n]) * x0 + m[n] * y + c * (x - (1 - m[t]) * x0 - m[t] * y)
        for _ in range(corrections):
            predicted = x - _biased_x0(x, y)  # the co-predicted x_n - x0, unclipped
            score = -(m[n] * (x - y) + (1 - m[n]) * predicted) / delta[n]
            size = d if norm == "paper" else np.sqrt(d)
            gamma = lam * delta_step[n] * size / (score**2).sum(axis=(1, 2))
            move = gamma[:, None, None] * score
            x = x + (np.clip(move, -2 * cap, 2 * cap) if cap else move)
    raise AssertionError("the time points end at 0")


@pytest.mark.parametrize("norm,lam", [("released", 1.5), ("paper", 0.5)])
@pytest.mark.parametrize("steps,corrections", [(3, 1), (6, 2)])
def test_ista_correction_matches_the_equations(norm, lam, steps, corrections):
    g = torch.Generator().manual_seed(11)
    ct = torch.rand(4, 6, 5, generator=g) * 1.2 - 0.6
    denoiser = lambda x_t, y, t, style: x_t - _biased_x0(x_t, y)
    out = (
        sample_volume(
            denoiser,
            ct,
            STYLE,
            steps=steps,
            corrections=corrections,
            step_size=lam,
            mode="ista",
            correction_norm=norm,
            correction_cap=0.0,
        )
        .double()
        .numpy()
    )
    reference = _reference_ista(ct.numpy(), steps, corrections, lam, norm)
    without = _reference_ista(ct.numpy(), steps, 0, lam, norm)
    assert np.abs(reference - without).max() > 5e-5  # the correction is exercised, ten times the tolerance
    np.testing.assert_allclose(out, reference, atol=5e-6, rtol=0)


@pytest.mark.parametrize("lam", [50.0, 1e6])
def test_the_correction_cap_bounds_every_move(lam):
    """On the paper's scale a large lambda moves pixels far; the cap clips each move to 2% of the
    range, as an independent implementation of the clipped step says, whatever lambda is."""
    g = torch.Generator().manual_seed(12)
    ct = torch.rand(4, 6, 5, generator=g) * 1.2 - 0.6
    denoiser = lambda x_t, y, t, style: x_t - _biased_x0(x_t, y)
    capped = (
        sample_volume(denoiser, ct, STYLE, steps=4, corrections=1, step_size=lam, mode="ista", correction_norm="paper")
        .double()
        .numpy()
    )  # the default cap
    reference = _reference_ista(ct.numpy(), 4, 1, lam, "paper", cap=0.02)
    unbounded = _reference_ista(ct.numpy(), 4, 1, lam, "paper")
    assert np.abs(unbounded - reference).max() > 1e-3  # the cap binds (200 times the tolerance)
    np.testing.assert_allclose(capped, reference, atol=5e-6, rtol=0)
    without = _reference_ista(ct.numpy(), 4, 0, lam, "paper")
    assert np.abs(capped - without).max() <= 3 * 2 * 0.02 + 1e-6  # three corrections of at most 0.04 each


def test_a_zero_correction_step_costs_no_evaluations():
    """ISTA with lambda = 0 is co-prediction, at co-prediction's cost, and the count says so."""
    z, steps = 5, 4
    _, ct = _pair(z)
    seen = []
    oracle = _oracle(0.7, 0.1)

    def counting(x_t, y, t, style):
        seen.append(x_t.shape[0])
        return oracle(x_t, y, t, style)

    sample_volume(counting, ct, STYLE, steps=steps, corrections=2, step_size=0.0, mode="ista")
    assert sum(seen) == z * steps == network_evaluations(z, steps, 2, "ista", step_size=0.0)
    assert network_evaluations(z, steps, 2, "ista", step_size=0.5) == z * (steps + 2 * (steps - 1))


def test_the_virtual_slices_beyond_the_volume_are_background():
    seen = []

    def recording(x_t, y, t, style):
        seen.append(y.clone())
        return torch.zeros_like(x_t)

    ct = torch.full((3, 4, 4), 0.5)
    for mode in ("independent", "coprediction"):
        seen.clear()
        sample_volume(recording, ct, torch.rand(3, 128), steps=2, corrections=0, mode=mode)
        first, last = seen[0][0], seen[0][-1]  # the first and last windows of the first step
        assert (first[0] == -1).all() and (last[-1] == -1).all()  # the slice before and after: -1, not 0
        assert (first[1:] == 0.5).all() and (last[:-1] == 0.5).all()


def test_each_sampler_is_a_plain_function_and_sample_volume_picks_it_by_name():
    from ct2mri_cli.diffusion.sampler import sample_coprediction, sample_independent, sample_ista

    x0, ct = _pair(5)
    denoise = _positional_error_denoiser(ct, x0)
    ista = sample_ista(denoise, ct, STYLE, steps=6, corrections=1, step_size=0.5)
    assert torch.equal(ista, sample_volume(denoise, ct, STYLE, steps=6, corrections=1, step_size=0.5, mode="ista"))
    coprediction = sample_coprediction(denoise, ct, STYLE, steps=6)
    assert torch.equal(coprediction, sample_ista(denoise, ct, STYLE, steps=6, corrections=0))
    assert torch.equal(coprediction, sample_volume(denoise, ct, STYLE, steps=6, mode="coprediction"))
    independent = sample_independent(denoise, ct, STYLE, steps=6)
    assert torch.equal(independent, sample_volume(denoise, ct, STYLE, steps=6, mode="independent"))
    assert not torch.equal(independent, coprediction) and not torch.equal(ista, coprediction)
