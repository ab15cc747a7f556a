"""Volume sampling: pure per-window BBDM, co-prediction, and ISTA (co-prediction + correction).

Each sampler is a plain function over any ``denoiser(x_t, y, t, style) -> x_t - x0`` working on
batches of 3-slice windows (B, 3, H, W): :func:`sample_independent`, :func:`sample_coprediction`
and :func:`sample_ista`; :func:`sample_volume` picks one by the name settings carry.  The volume
of Z slices is padded with one virtual background slice (-1) at each end, so every real slice
is the centre of one window and gets up to three predictions; virtual slices are sampled like
real ones and dropped at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from ..settings import CORRECTION_CAP, CORRECTION_NORMS, SAMPLER_MODES
from .bridge import BridgeSchedule, sampling_timesteps

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Mode = Literal["independent", "coprediction", "ista"]
WINDOW = 3  # slices per network window (2N + 1 with N = 1)


def corrections_applied(mode: str, corrections: int, step_size: float) -> int:
    """Correction steps per sampling step that :func:`sample_volume` runs (none with a zero step)."""
    return corrections if mode == "ista" and corrections > 0 and step_size != 0 else 0


def network_evaluations(num_slices: int, steps: int, corrections: int, mode: str, step_size: float = 1.0) -> int:
    """Windows passed to the denoiser by :func:`sample_volume`: Z x (S + M (S - 1)) for ISTA."""
    return num_slices * (steps + corrections_applied(mode, corrections, step_size) * (steps - 1))


def _windows(volume: torch.Tensor) -> torch.Tensor:
    """All 3-slice windows of a padded (Z + 2, H, W) volume as a (Z, 3, H, W) view."""
    return volume.unfold(0, WINDOW, 1).permute(0, 3, 1, 2)


def _evaluate(
    denoiser: Denoiser,
    x_windows: torch.Tensor,
    y_windows: torch.Tensor,
    t: int,
    style: torch.Tensor,
    batch_size: int,
    on_batch: Callable[[int], None],
) -> torch.Tensor:
    """Run the denoiser over (Z, 3, H, W) windows in batches; returns (Z, 3, H, W)."""
    outputs = []
    for start in range(0, x_windows.shape[0], batch_size):
        x = x_windows[start : start + batch_size].contiguous()
        y = y_windows[start : start + batch_size].contiguous()
        b = x.shape[0]
        tt = torch.full((b,), t, dtype=torch.long, device=x.device)
        out = denoiser(x, y, tt, style.expand(b, *style.shape))
        if out.shape != x.shape:
            raise ValueError(f"denoiser returned shape {tuple(out.shape)} for windows of shape {tuple(x.shape)}")
        outputs.append(out.to(x.dtype))
        on_batch(b)
    return torch.cat(outputs)


def _average_predictions(predictions: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Co-prediction (Eq. 4): average the up-to-3 predictions of each padded slice."""
    z = predictions.shape[0]
    total = predictions.new_zeros((z + WINDOW - 1, *predictions.shape[2:]))
    for c in range(WINDOW):
        total[c : c + z] += predictions[:, c]
    return total / counts[:, None, None]


def window_spread(predictions: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The standard deviation of the up-to-3 windows' predictions of each real slice, (Z, H, W).

    Where overlapping windows disagree about a slice the network is unsure of it; the sampler
    computes these predictions anyway, so the spread costs no network evaluation."""
    z = predictions.shape[0]
    total = predictions.new_zeros((z + WINDOW - 1, *predictions.shape[2:]))
    squares = torch.zeros_like(total)
    for c in range(WINDOW):
        total[c : c + z] += predictions[:, c]
        squares[c : c + z] += predictions[:, c].square()
    mean = total / counts[:, None, None]
    variance = (squares / counts[:, None, None] - mean.square()).clamp_min(0.0)
    return variance.sqrt()[1:-1]


def _check_corrections(corrections: int, correction_norm: str) -> None:
    if correction_norm not in CORRECTION_NORMS:
        raise ValueError(f"correction_norm must be one of {CORRECTION_NORMS}, got {correction_norm!r}")
    if corrections < 0:
        raise ValueError(f"corrections must be >= 0, got {corrections}")


class _Volume:
    """What every sampler of one CT volume shares: the padded CT and its windows, how many
    windows cover each padded slice, the time points, and the denoiser run in counted batches."""

    def __init__(
        self,
        denoiser: Denoiser,
        ct: torch.Tensor,
        style: torch.Tensor,
        steps: int,
        batch_size: int | None,
        clip_denoised: bool,
        schedule: BridgeSchedule | None,
        progress: Callable[[int, int], None] | None,
        evaluations_per_slice: int,
    ) -> None:
        if ct.dim() != 3:
            raise ValueError(f"ct must be (Z, H, W), got shape {tuple(ct.shape)}")
        if tuple(style.shape) != (3, 128):
            raise ValueError(f"style must be (3, 128), got shape {tuple(style.shape)}")
        self.schedule = schedule or BridgeSchedule()
        self.times = sampling_timesteps(steps, self.schedule.num_timesteps)
        z = ct.shape[0]
        self.batch_size = z if batch_size is None else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.denoiser, self.clip_denoised, self.progress = denoiser, clip_denoised, progress
        self.style = style.to(device=ct.device, dtype=torch.float32)
        self.total = z * evaluations_per_slice
        self.done = 0
        self.y_padded = torch.nn.functional.pad(ct.float(), (0, 0, 0, 0, 1, 1), value=-1.0)
        self.y_windows = _windows(self.y_padded)
        self.counts = torch.zeros(z + WINDOW - 1, device=ct.device)
        for c in range(WINDOW):
            self.counts[c : c + z] += 1

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(-1.0, 1.0) if self.clip_denoised else x

    def _counted(self, b: int) -> None:
        self.done += b
        if self.progress is not None:
            self.progress(self.done, self.total)

    def predict(self, x_windows: torch.Tensor, t: int) -> torch.Tensor:
        """The denoiser's ``x_t - x0`` of each window, (Z, 3, H, W)."""
        return _evaluate(self.denoiser, x_windows, self.y_windows, t, self.style, self.batch_size, self._counted)

    def copredict(
        self, x: torch.Tensor, t: int, on_spread: Callable[[int, torch.Tensor], None] | None = None
    ) -> torch.Tensor:
        """The windows' predictions of a padded volume averaged per slice (Eq. 4)."""
        predictions = self.predict(_windows(x), t)
        if on_spread is not None:  # each window's own estimate of x0
            on_spread(t, window_spread(self.clip(_windows(x) - predictions), self.counts))
        return _average_predictions(predictions, self.counts)


def sample_independent(
    denoiser: Denoiser,
    ct: torch.Tensor,
    style: torch.Tensor,
    *,
    steps: int = 50,
    batch_size: int | None = None,
    clip_denoised: bool = True,
    schedule: BridgeSchedule | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_spread: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Pure BBDM per window: each slice is sampled from its own centred window, (Z, H, W) in [-1, 1].

    The arguments are those of :func:`sample_ista` without the correction."""
    run = _Volume(
        denoiser,
        ct,
        style,
        steps,
        batch_size,
        clip_denoised,
        schedule,
        progress,
        network_evaluations(1, steps, 0, "independent"),
    )
    with torch.inference_mode():
        x = run.y_windows.clone()
        for i, t in enumerate(run.times):
            x0_hat = run.clip(x - run.predict(x, t))
            if on_spread is not None:
                on_spread(t, window_spread(x0_hat, run.counts))
            if t == 0:
                return x0_hat[:, WINDOW // 2].contiguous()
            x = run.schedule.sample_posterior(x, x0_hat, run.y_windows, t, run.times[i + 1])
    raise AssertionError("the time points end at 0")


def sample_coprediction(
    denoiser: Denoiser,
    ct: torch.Tensor,
    style: torch.Tensor,
    *,
    steps: int = 50,
    batch_size: int | None = None,
    clip_denoised: bool = True,
    schedule: BridgeSchedule | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_spread: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Co-prediction: the overlapping windows' predictions of each slice are averaged at every
    step, (Z, H, W) in [-1, 1].  The arguments are those of :func:`sample_ista`."""
    return sample_ista(
        denoiser,
        ct,
        style,
        steps=steps,
        corrections=0,
        batch_size=batch_size,
        clip_denoised=clip_denoised,
        schedule=schedule,
        progress=progress,
        on_spread=on_spread,
    )


def sample_ista(
    denoiser: Denoiser,
    ct: torch.Tensor,
    style: torch.Tensor,
    *,
    steps: int = 50,
    corrections: int = 1,
    step_size: float = 0.5,
    correction_norm: str = "released",
    correction_cap: float = CORRECTION_CAP,
    batch_size: int | None = None,
    clip_denoised: bool = True,
    schedule: BridgeSchedule | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_spread: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Translate a CT volume (Z, H, W) in [-1, 1] to an MRI volume (Z, H, W) in [-1, 1] by
    inter-slice trajectory alignment: co-prediction plus ``corrections`` deterministic
    correction steps (Eq. 5 and 6) of size ``step_size`` after every step but the last.

    ``correction_norm`` picks the step's scale: ``"paper"`` is Eq. 5 as printed,
    ``lambda * delta_{n|n-1} * d / ||S_k||^2``; ``"released"`` uses ``sqrt(d)`` in place of
    ``d``, a step smaller by sqrt(H*W).  ``correction_cap`` bounds how far one correction moves
    any pixel, as a share of the [-1, 1] range (0: unbounded), so that no ``step_size`` can
    wreck an image.  At most ``batch_size`` windows go through the denoiser at once (default:
    all Z).  ``progress(done, total)`` is called after every batch with counts of windows;
    ``on_spread(t, spread)`` after every sampling step's prediction with :func:`window_spread`
    of the windows' predictions (the [-1, 1] scale), the raw material of a trust map.
    """
    _check_corrections(corrections, correction_norm)
    applied = corrections_applied("ista", corrections, step_size)
    run = _Volume(
        denoiser,
        ct,
        style,
        steps,
        batch_size,
        clip_denoised,
        schedule,
        progress,
        network_evaluations(1, steps, corrections, "ista", step_size),
    )
    schedule, y = run.schedule, run.y_padded
    with torch.inference_mode():
        x = y.clone()
        for i, t in enumerate(run.times):
            x0_hat = run.clip(x - run.copredict(x, t, on_spread))
            if t == 0:
                return x0_hat[1:-1].contiguous()
            n = run.times[i + 1]
            x = schedule.sample_posterior(x, x0_hat, y, t, n)
            for _ in range(applied):
                x = _correct(x, y, run.copredict(x, n), n, schedule, step_size, correction_norm, correction_cap)
    raise AssertionError("the time points end at 0")


def sample_volume(
    denoiser: Denoiser,
    ct: torch.Tensor,
    style: torch.Tensor,
    *,
    mode: Mode = "ista",
    steps: int = 50,
    corrections: int = 1,
    step_size: float = 0.5,
    correction_norm: str = "released",
    correction_cap: float = CORRECTION_CAP,
    batch_size: int | None = None,
    clip_denoised: bool = True,
    schedule: BridgeSchedule | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_spread: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """The sampler named by ``mode`` (``independent``, ``coprediction`` or ``ista``, as sampling
    settings carry it); the correction arguments reach only ISTA."""
    if mode not in SAMPLER_MODES:
        raise ValueError(f"mode must be one of {SAMPLER_MODES}, got {mode!r}")
    _check_corrections(corrections, correction_norm)
    common: dict[str, Any] = dict(
        steps=steps,
        batch_size=batch_size,
        clip_denoised=clip_denoised,
        schedule=schedule,
        progress=progress,
        on_spread=on_spread,
    )
    if mode == "independent":
        return sample_independent(denoiser, ct, style, **common)
    if mode == "coprediction":
        return sample_coprediction(denoiser, ct, style, **common)
    return sample_ista(
        denoiser,
        ct,
        style,
        corrections=corrections,
        step_size=step_size,
        correction_norm=correction_norm,
        correction_cap=correction_cap,
        **common,
    )


def _correct(
    x: torch.Tensor,
    y: torch.Tensor,
    copredicted: torch.Tensor,
    n: int,
    schedule: BridgeSchedule,
    step_size: float,
    correction_norm: str,
    correction_cap: float = 0.0,
) -> torch.Tensor:
    """One deterministic correction step at time ``n`` (Eq. 5 with the score of Eq. 6), each
    pixel's move bounded by ``correction_cap`` x the [-1, 1] range (0: unbounded)."""
    score = schedule.score(x, y, copredicted, n)
    d = x.shape[-1] * x.shape[-2]
    scale = float(d) if correction_norm == "paper" else float(d) ** 0.5
    norm2 = score.double().pow(2).sum(dim=(1, 2))
    safe = norm2 > torch.finfo(torch.float32).tiny
    gamma = torch.where(safe, step_size * float(schedule.delta_step[n]) * scale / norm2.clamp_min(1e-300), 0.0)
    move = gamma.to(x.dtype)[:, None, None] * score
    if correction_cap > 0:
        limit = 2.0 * correction_cap
        move = move.clamp(-limit, limit)
    return x + move
