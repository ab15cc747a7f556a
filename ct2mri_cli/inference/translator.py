"""CT -> synthetic MRI for native scans: brain mask, model grid, ISTA sampling, back to the CT grid.

:class:`Translator` holds a loaded model on one device, so many CTs reuse it.  Preprocessing
mirrors ``preprocess`` exactly (the CT window is applied on the native grid, the brain mask
zeroes everything outside the brain) so a model sees at inference what it saw in training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..settings import SamplingConfig
from ..errors import Ct2mriError
from ..preprocessing.geometry import GridRecord, from_model_grid, plan_model_grid
from ..network.unet import network_denoiser
from ..preprocessing.pairs import brain_mask_with_notes, ct_to_model_space
from ..diffusion.sampler import MODES, network_evaluations, sample_volume
from ..io.volumes import Volume
from ..weights import ModelBundle

DESCRIP = "ct2mri synthetic T1 - NOT FOR DIAGNOSIS"
# Windows per network call on CPUs: small batches stay in cache (docs/BENCHMARKS.md, Speed).
CPU_AUTO_BATCH = 8


@dataclass
class SamplerOptions:
    """Sampler settings of one translation (defaults come from the weights file)."""

    steps: int
    corrections: int
    step_size: float
    mode: str
    correction_norm: str

    @classmethod
    def from_config(
        cls,
        defaults: SamplingConfig,
        steps: Optional[int] = None,
        corrections: Optional[int] = None,
        step_size: Optional[float] = None,
        mode: Optional[str] = None,
    ) -> "SamplerOptions":
        """A model's default sampler settings with the given ones (those not None) replacing them."""
        return cls(
            steps=defaults.steps if steps is None else steps,
            corrections=defaults.corrections if corrections is None else corrections,
            step_size=defaults.step_size if step_size is None else step_size,
            mode=defaults.mode if mode is None else mode,
            correction_norm=defaults.correction_norm,
        )

    def check(self) -> None:
        if self.steps < 2:
            raise Ct2mriError(f"--steps must be at least 2, got {self.steps}")
        if self.corrections < 0:
            raise Ct2mriError(f"--corrections must be >= 0, got {self.corrections}")
        if self.mode not in MODES:
            raise Ct2mriError(f"--sampler must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not np.isfinite(self.step_size) or self.step_size < 0:
            raise Ct2mriError(f"--step-size must be a finite number >= 0, got {self.step_size}")


@dataclass
class Translation:
    """The result of one translation, on the CT's native grid and in model space."""

    mri01: np.ndarray  # native grid, [0, 1], zero outside the brain
    mask: np.ndarray  # native grid, bool
    ct_model01: np.ndarray  # (Z, H, W)
    mri_model01: np.ndarray  # (Z, H, W)
    mask_model: np.ndarray  # (Z, H, W)
    record: GridRecord
    evaluations: int
    batch_size: int
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Translator:
    """A model on a device, ready to translate many CT volumes."""

    def __init__(
        self,
        bundle: ModelBundle,
        device: torch.device,
        options: SamplerOptions,
        batch_size: Optional[int] = None,
        precision: str = "auto",
        channels_last: Optional[bool] = None,
        compile: bool = False,
    ) -> None:
        options.check()
        if batch_size is not None and batch_size < 1:
            raise Ct2mriError(f"--batch-size must be >= 1, got {batch_size}")
        self.bundle = bundle
        self.device = device
        self.options = options
        self.batch_size = batch_size
        cuda = device.type == "cuda"
        if precision not in ("auto", "fp32", "bf16"):
            raise Ct2mriError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
        self.autocast = torch.bfloat16 if (precision == "bf16" or (precision == "auto" and cuda)) else None
        # NHWC convolutions are faster on CUDA and on x86 CPUs (oneDNN) alike.
        self.channels_last = device.type in ("cuda", "cpu") if channels_last is None else channels_last
        network = bundle.network.to(device).eval()
        if compile:
            network = torch.compile(network)  # type: ignore[assignment]
        self.denoiser = network_denoiser(network, autocast_dtype=self.autocast, channels_last=self.channels_last)

    def translate(
        self,
        ct: Volume,
        style: torch.Tensor,
        mask: Optional[np.ndarray] = None,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Translation:
        """Translate one native CT volume (HU); ``mask`` replaces automatic brain extraction."""
        seconds: dict[str, float] = {}
        notes: list[str] = list(ct.notes)
        config = self.bundle.preprocess

        start = time.perf_counter()
        if mask is None:
            mask, mask_notes = brain_mask_with_notes(ct)
            notes += mask_notes
            if not mask.any():
                raise Ct2mriError(f"{ct.name}: no brain found in the CT")
        else:
            mask = np.asarray(mask) > 0
            if mask.shape != ct.shape:
                raise Ct2mriError(f"{ct.name}: the mask's shape {mask.shape} differs from the CT's {ct.shape}")
            if not mask.any():
                raise Ct2mriError(f"{ct.name}: the given brain mask is empty")
        seconds["brain_mask"] = time.perf_counter() - start

        start = time.perf_counter()
        record = plan_model_grid(ct, mask, config)
        ct_model, mask_model = ct_to_model_space(ct.data, mask, record, config.ct_window_hu)
        cut = record.cut_note(ct.name)
        if cut:
            notes.append(cut)
        seconds["to_model_grid"] = time.perf_counter() - start

        start = time.perf_counter()
        mri_model, batch = self._sample(ct_model, style, progress, notes)
        mri_model = mri_model * mask_model
        seconds["sampling"] = time.perf_counter() - start

        start = time.perf_counter()
        native = from_model_grid(mri_model, record, fill=0.0, order="linear")
        native = np.clip(native, 0.0, 1.0) * mask
        seconds["to_native_grid"] = time.perf_counter() - start

        o = self.options
        return Translation(
            mri01=native.astype(np.float32),
            mask=mask,
            ct_model01=ct_model,
            mri_model01=mri_model,
            mask_model=mask_model,
            record=record,
            evaluations=network_evaluations(ct_model.shape[0], o.steps, o.corrections if o.step_size else 0, o.mode),
            batch_size=batch,
            seconds=seconds,
            notes=notes,
        )

    def _sample(
        self,
        ct_model01: np.ndarray,
        style: torch.Tensor,
        progress: Optional[Callable[[int, int], None]],
        notes: list[str],
    ) -> tuple[np.ndarray, int]:
        """Sample in model space, halving the batch size on out-of-memory errors."""
        z = ct_model01.shape[0]
        batch = self.batch_size or (z if self.device.type != "cpu" else min(z, CPU_AUTO_BATCH))
        ct = torch.from_numpy(ct_model01 * 2.0 - 1.0).to(self.device)
        o = self.options
        while True:
            try:
                out = sample_volume(
                    self.denoiser,
                    ct,
                    style.to(self.device),
                    steps=o.steps,
                    corrections=o.corrections,
                    step_size=o.step_size,
                    mode=o.mode,  # type: ignore[arg-type]
                    correction_norm=o.correction_norm,
                    batch_size=batch,
                    progress=progress,
                )
                break
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise Ct2mriError(f"out of memory on {self.device} even with batch size 1") from None
                batch = max(1, batch // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                notes.append(f"out of memory on {self.device}; retried with batch size {batch}")
        mri01 = ((out.float().cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
        return mri01.astype(np.float32), batch
