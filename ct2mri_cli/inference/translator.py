"""CT -> synthetic MRI for native scans: the model's view of the CT, ISTA sampling, back to the CT grid.

:class:`Translator` holds a loaded model on one device, so many CTs reuse it.  The CT reaches
the model grid through :func:`ct2mri_cli.preprocessing.model_view.view_ct`, as in ``preprocess``,
so a model sees at inference the slices it saw in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..diffusion.bridge import BridgeSchedule
from ..diffusion.model_space import sample_model_space
from ..diffusion.sampler import network_evaluations
from ..errors import Ct2mriError
from ..io.volumes import Volume
from ..network import network_denoiser
from ..preprocessing.checks import Check
from ..preprocessing.geometry import GridRecord, from_model_grid
from ..preprocessing.model_view import CtView, view_ct
from ..preprocessing.pose import Pose
from ..settings import SamplingConfig
from ..weights import ModelBundle
from .trust import SpreadAverage, TrustSummary, expected_error, on_native_brain, summarise

DESCRIP = "ct2mri synthetic T1 - NOT FOR DIAGNOSIS"
# Windows per network call on CPUs: small batches stay in cache (docs/BENCHMARKS.md, Speed).
CPU_AUTO_BATCH = 8


@dataclass
class Translation:
    """The result of one translation, on the CT's native grid and in model space."""

    mri01: np.ndarray  # native grid, [0, 1], zero outside the brain
    mask: np.ndarray  # native grid, bool
    ct_model01: np.ndarray  # (Z, H, W)
    mri_model01: np.ndarray  # (Z, H, W)
    mask_model: np.ndarray  # (Z, H, W)
    expected_error01: np.ndarray  # the trust map on the native grid (expected |error|, 0 outside the brain)
    expected_error_model: np.ndarray  # the trust map in model space, (Z, H, W)
    trust: TrustSummary
    record: GridRecord
    evaluations: int
    batch_size: int
    checks: list[Check] = field(default_factory=list)
    pose: Pose | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Translator:
    """A model on a device, ready to translate many CT volumes."""

    def __init__(
        self,
        bundle: ModelBundle,
        device: torch.device,
        sampling: SamplingConfig,
        batch_size: int | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        strict: bool = False,
        native_axes: bool = False,
        threads: int | None = None,
    ) -> None:
        from ..threads import use_threads

        self.threads = use_threads(threads)  # from --threads, the launcher, affinity or cgroup quota
        self.schedule = BridgeSchedule(bundle.bridge)
        sampling.check(self.schedule.num_timesteps)
        if batch_size is not None and batch_size < 1:
            raise Ct2mriError(f"--batch-size must be >= 1, got {batch_size}")
        self.bundle = bundle
        self.device = device
        self.sampling = sampling
        self.batch_size = batch_size
        self.strict = strict
        self.native_axes = native_axes
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

    def prepare(self, ct: Volume, mask: np.ndarray | None = None) -> CtView:
        """The model's view of one native CT (HU): scan checks, brain (``mask`` replaces automatic
        extraction), pose and model slices.  With ``strict`` a warning among the checks fails here,
        before any sampling.  Needs no network: a pipelined batch runs it ahead, in a worker."""
        return view_ct(ct, self.bundle.preprocess, mask=mask, native_axes=self.native_axes, strict=self.strict)

    def translate(
        self,
        ct: Volume,
        style: torch.Tensor,
        mask: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Translation:
        """Translate one native CT volume (HU); ``mask`` replaces automatic brain extraction."""
        return self.translate_view(self.prepare(ct, mask), style, progress)

    def translate_view(
        self, view: CtView, style: torch.Tensor, progress: Callable[[int, int], None] | None = None
    ) -> Translation:
        """Sample a prepared CT (:meth:`prepare`) and bring the result back onto its native grid."""
        seconds, notes = dict(view.seconds), list(view.notes)
        record, mask, ct_model, mask_model = view.record, view.mask, view.ct_model01, view.mask_model

        start = time.perf_counter()
        spread = SpreadAverage()
        mri_model, batch = self._sample(ct_model, style, progress, notes, spread)
        mri_model = mri_model * mask_model
        seconds["sampling"] = time.perf_counter() - start

        start = time.perf_counter()
        native = from_model_grid(mri_model, record, fill=0.0, order="linear")
        native = view.to_storage_order(np.clip(native, 0.0, 1.0) * mask)
        seconds["to_native_grid"] = time.perf_counter() - start

        start = time.perf_counter()
        error_model = expected_error(spread.mean01(), mri_model, mask_model > 0, self.bundle.preprocess.spacing_mm)
        native_mask = view.to_storage_order(mask)
        error_native = on_native_brain(
            view.to_storage_order(from_model_grid(error_model, record, fill=0.0, order="linear")), native_mask
        )
        trust = summarise(error_native, native_mask)
        seconds["trust_map"] = time.perf_counter() - start

        s = self.sampling
        return Translation(
            mri01=native.astype(np.float32),
            mask=native_mask,
            ct_model01=ct_model,
            mri_model01=mri_model,
            mask_model=mask_model,
            expected_error01=error_native.astype(np.float32),
            expected_error_model=error_model,
            trust=trust,
            record=record,
            evaluations=network_evaluations(ct_model.shape[0], s.steps, s.corrections, s.mode, s.step_size),
            batch_size=batch,
            checks=[*view.checks, trust.check()],
            pose=view.pose,
            seconds=seconds,
            notes=notes,
        )

    def _sample(
        self,
        ct_model01: np.ndarray,
        style: torch.Tensor,
        progress: Callable[[int, int], None] | None,
        notes: list[str],
        spread: SpreadAverage | None = None,
    ) -> tuple[np.ndarray, int]:
        """Sample in model space, halving the batch size on out-of-memory errors; ``spread`` hears
        the windows' disagreement of the run that succeeds."""
        z = ct_model01.shape[0]
        batch = self.batch_size or (z if self.device.type != "cpu" else min(z, CPU_AUTO_BATCH))
        while True:
            try:
                if spread is not None:
                    spread.reset()  # a retry after running out of memory starts over
                mri01 = sample_model_space(
                    self.denoiser, ct_model01, style, self.sampling, self.device, self.schedule, batch, progress, spread
                )
                return mri01, batch
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise Ct2mriError(f"out of memory on {self.device} even with batch size 1") from None
                batch = max(1, batch // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                notes.append(f"out of memory on {self.device}; retried with batch size {batch}")
