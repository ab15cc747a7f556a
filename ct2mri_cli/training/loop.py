"""The training loop: Adam on the bridge loss, EMA, accumulation, clipping, checkpoints, validation.

One optimiser step draws ``batch_size x grad_accumulation`` windows per process, a time step
uniform on 0..T-1 and Gaussian noise for each, forms ``x_t`` and the target ``x_t - x0`` of the
bridge, and minimises the configured loss of the network's prediction.  Every random draw comes
from generators seeded from the run's seed (and the process rank) whose states are checkpointed,
so on one device a run resumed from a checkpoint continues exactly as if never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from ..diffusion.bridge import BridgeSchedule, bridge_loss
from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from ..network import UNet, count_parameters
from ..preprocessing.config import PreprocessConfig
from ..weights import ModelBundle, load_weights, read_metadata
from . import distributed as ddp
from .checkpoint import (
    capture_rng,
    load_checkpoint,
    periodic_name,
    prune_periodic,
    restore_rng,
    save_checkpoint,
)
from .config import TrainConfig, check_config, resume_conflicts
from .data import TrainingData, load_training_data
from .ema import EMA
from .export import export_weights
from .loss_weights import csf_pixel_weights
from .monitor import JsonLog, PhaseTimer, ProgressDisplay, ReadingProgress
from .progress import write_progress_plot
from .restyle import draw_curves
from .rundir import RunLayout, check_run_dir, prepare_run_dir, write_config
from .validation import validate_cases
from .window_order import CROP_TAG, FLIP_TAG, RESTYLE_TAG, WindowOrder, derive_seed

NOISE_TAG = 2


@dataclass
class TrainResult:
    """What a finished run reports."""

    run_dir: Path
    steps: int
    final_loss: float | None
    best: dict[str, Any] | None
    parameters_sha256: str
    world_size: int = 1


def parameters_digest(network: torch.nn.Module) -> str:
    """sha256 over the bytes of every parameter, in order (equal digests = identical weights)."""
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def make_adam(network: torch.nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam, fused into one kernel where torch offers it (CUDA, and the CPU since torch 2.4).

    The fused form matters on CPUs shared with other work: the per-tensor update loop pays a
    thread synchronisation per parameter tensor (measured 0.86 s against 2.4 ms per step for the
    small network on a busy 2-core machine).
    """
    kwargs: dict[str, Any] = {"lr": config.lr, "betas": config.adam_betas, "weight_decay": config.weight_decay}
    try:
        return torch.optim.Adam(network.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(network.parameters(), **kwargs)


class Trainer:
    """One process's part of a run (all of it without torchrun)."""

    def __init__(
        self,
        config: TrainConfig,
        layout: RunLayout,
        data: TrainingData,
        device: torch.device,
        ctx: ddp.DistContext,
        console: Console,
        quiet: bool,
    ) -> None:
        self.config = config
        self.layout = layout
        self.data = data
        self.device = device
        self.ctx = ctx
        self.console = console
        self.quiet = quiet or not ctx.is_main
        self.schedule = BridgeSchedule()
        self.autocast_dtype = torch.bfloat16 if (config.bf16 and device.type == "cuda") else None

        torch.manual_seed(config.seed)
        self.network = UNet(config.network_config()).to(device)
        self.ema = EMA(self.network, config.ema_decay, config.ema_start)
        self.optimizer = make_adam(self.network, config)
        self.noise = torch.Generator(device=device).manual_seed(derive_seed(config.seed, ctx.rank, NOISE_TAG))
        self.window_order = WindowOrder(len(data.train), config.seed, ctx.rank, ctx.world_size, config.flip)
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.init_record: dict[str, Any] | None = None
        self.last_val: dict[str, Any] | None = None
        self.last_loss: float | None = None
        if ctx.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model: torch.nn.Module = DistributedDataParallel(self.network, device_ids=ids)
        else:
            self.model = self.network
        self.timer = PhaseTimer(device)
        self.log = JsonLog(layout.log, enabled=ctx.is_main)

    # -- state -------------------------------------------------------------------------------
    def start_from(self, bundle: ModelBundle) -> None:
        """Start a new run from a weights file's network (its EMA weights; the EMA starts there too)."""
        self.network.load_state_dict(bundle.network.state_dict())
        self.ema = EMA(self.network, self.config.ema_decay, self.config.ema_start)
        self.init_record = {
            "file": Path(self.config.init).name,
            "sha256": bundle.sha256,
            "training_steps": bundle.provenance.get("training_steps"),
        }

    def load(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint`` (already checked for compatible settings)."""
        self.network.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step = int(checkpoint["step"])
        self.best = newer_best(checkpoint.get("best"), self.layout.best, self.step)
        self.last_loss = checkpoint.get("last_loss")
        self.init_record = checkpoint.get("init")
        states = checkpoint["rng"]
        if len(states) == self.ctx.world_size:
            self.window_order.load_state_dict(restore_rng(states[self.ctx.rank], self.noise))
        else:
            if self.ctx.is_main:
                from ..reporting import warn

                warn(
                    f"the checkpoint was written by {len(states)} process(es), this run has {self.ctx.world_size}: "
                    "the data order and noise continue from new seeds (not bit-identical)"
                )
            order_state = dict(restore_rng(states[0], self.noise))
            order_state["position"] = int(order_state["position"]) * len(states) // self.ctx.world_size
            self.window_order.load_state_dict(order_state)
            self.window_order.flip_generator.manual_seed(
                derive_seed(self.config.seed, self.ctx.rank, FLIP_TAG, self.step)
            )
            self.noise.manual_seed(derive_seed(self.config.seed, self.ctx.rank, NOISE_TAG, self.step))
        self.log = JsonLog(self.layout.log, enabled=self.ctx.is_main, keep_until_step=self.step)

    def checkpoint(self, periodic: bool) -> None:
        """Write ``last.pt`` (and a numbered copy when ``periodic``); all processes take part."""
        rng = ddp.gather(capture_rng(self.noise, self.window_order.state_dict()), self.ctx)
        if self.ctx.is_main:
            payload = {
                "step": self.step,
                "model": self.network.state_dict(),
                "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "config": self.config.to_dict(),
                "rng": rng,
                "world_size": self.ctx.world_size,
                "best": self.best,
                "last_loss": self.last_loss,
                "manifest_sha256": self.data.manifest.sha256,
                "init": self.init_record,
            }
            save_checkpoint(self.layout.last, payload)
            if periodic:
                with atomic_output(self.layout.checkpoints / periodic_name(self.step)) as tmp:
                    shutil.copyfile(self.layout.last, tmp)
                prune_periodic(self.layout.checkpoints, self.config.keep_checkpoints)
        ddp.barrier(self.ctx)

    # -- one step ----------------------------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the step's mean loss (a detached scalar tensor)."""
        c = self.config
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro in range(c.grad_accumulation):
            indices, flips = self.window_order.next(c.batch_size)
            x0, y, style = self.data.train.batch(indices, flips, self.device, self._restyle_curves(micro))
            if c.crop != (0, 0):
                x0, y = self._crop(x0, y, micro)
            t = torch.randint(0, self.schedule.num_timesteps, (c.batch_size,), generator=self.noise, device=self.device)
            noise = torch.randn(x0.shape, generator=self.noise, device=self.device)
            x_t = self.schedule.q_sample(x0, y, t, noise)
            target = self.schedule.target(x0, y, t, noise)
            self.timer.mark("data")
            last = micro == c.grad_accumulation - 1
            no_sync = (
                cast(DistributedDataParallel, self.model).no_sync()
                if (self.ctx.enabled and not last)
                else contextlib.nullcontext()
            )
            with no_sync:
                with self._autocast():
                    prediction = self.model(torch.cat([x_t, y], dim=1), t, style)
                weights = (
                    csf_pixel_weights(y, self.data.manifest.preprocess.ct_window_hu, c.csf_weight)
                    if c.csf_weight > 0
                    else None
                )
                loss = bridge_loss(prediction.float(), target, t, self.schedule, c.loss, weights)
                (loss / c.grad_accumulation).backward()
            total += loss.detach()
            self.timer.mark("network")
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), c.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = c.learning_rate(self.step + 1)
        self.optimizer.step()
        self.timer.mark("optimizer")
        self.step += 1
        if self.step % c.ema_every == 0:
            self.ema.update(self.network, self.step)
        self.timer.mark("ema")
        return total / c.grad_accumulation

    def _restyle_curves(self, micro: int) -> torch.Tensor | None:
        """The contrast curves of this micro-batch's windows (a function of the run's seed, the
        process, the step and the micro-batch alone, like the crops), or None without restyling."""
        c = self.config
        if c.restyle <= 0:
            return None
        generator = torch.Generator().manual_seed(derive_seed(c.seed, self.ctx.rank, RESTYLE_TAG, self.step, micro))
        return draw_curves(generator, c.batch_size, c.restyle, c.restyle_strength)

    def _crop(self, x0: torch.Tensor, y: torch.Tensor, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random in-plane window of each MRI/CT pair; the offsets depend on the run's
        seed, the process, the step and the micro-batch alone, so a resumed run draws the same."""
        h, w = self.config.crop
        generator = torch.Generator().manual_seed(
            derive_seed(self.config.seed, self.ctx.rank, CROP_TAG, self.step, micro)
        )
        tops = torch.randint(0, x0.shape[-2] - h + 1, (x0.shape[0],), generator=generator).tolist()
        lefts = torch.randint(0, x0.shape[-1] - w + 1, (x0.shape[0],), generator=generator).tolist()
        pick = lambda images: torch.stack([im[:, t : t + h, s : s + w] for im, t, s in zip(images, tops, lefts)])
        return pick(x0), pick(y)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- periodic work -----------------------------------------------------------------------
    def validate(self, progress: ProgressDisplay) -> None:
        """Rank 0 scores the EMA network on the held-out cases and keeps the best export."""
        if self.ctx.is_main:
            slab = f"{self.config.val_slices} middle slices" if self.config.val_slices else "whole volumes"
            progress.start_validation(f"validating {len(self.data.validation)} held-out case(s), {slab}")
            result = validate_cases(
                self.ema.model,
                self.data.validation,
                self.config,
                self.device,
                self.schedule,
                self.autocast_dtype,
                progress=progress.validation_progress,
            )
            progress.end_validation()
            self.last_val = {k: result[k] for k in ("psnr", "ssim", "mae")}
            self.log.write({"kind": "val", "step": self.step, **result})
            improved = self.best is None or result["psnr"] > self.best["psnr"]
            if improved:
                self.best = {"step": self.step, **self.last_val}
                self.export(self.layout.best)
            if not self.quiet:
                mark = " (best)" if improved else ""
                progress.print(
                    f"step {self.step}: validation PSNR {result['psnr']:.2f} dB, "
                    f"SSIM {result['ssim']:.4f}, MAE {result['mae']:.4f}{mark} "
                    f"({result['slices']} slices, {result['seconds']:.1f} s)"
                )
        ddp.barrier(self.ctx)

    def plot_progress(self) -> None:
        """Redraw ``progress.png`` from the log (at checkpoints and validations: a bounded cost)."""
        if self.ctx.is_main:
            try:
                write_progress_plot(self.layout.log, self.layout.progress)
            except Ct2mriError:  # no training record logged yet
                pass

    def export(self, path: Path) -> str:
        provenance: dict[str, Any] = {
            "final_loss": self.last_loss,
            "training_cases": len(self.data.train_keys),
            "world_size": self.ctx.world_size,
        }
        if self.last_val is not None:
            provenance["validation"] = self.last_val
        if self.best is not None:
            provenance["best_validation"] = self.best
        if self.init_record is not None:
            provenance["init"] = self.init_record
        return export_weights(
            path,
            self.ema.model,
            config=self.config,
            bridge=self.schedule.config,
            preprocess=self.data.manifest.preprocess,
            default_style_key=self.data.average_key(),
            step=self.step,
            provenance=provenance,
        )

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        c = self.config
        start_step = self.step
        if self.ctx.is_main and not self.quiet:
            self._announce()
        pending_loss = torch.zeros((), device=self.device)
        pending_steps = 0
        self.timer.restart()
        with ProgressDisplay(self.console, c.steps, self.step, enabled=not self.quiet) as progress:
            while self.step < c.steps:
                pending_loss += self.train_step()
                pending_steps += 1
                final = self.step == c.steps
                if self.step % c.log_every == 0 or final:
                    self._log(pending_loss, pending_steps, progress)
                    pending_loss.zero_()
                    pending_steps = 0
                else:
                    progress.advance(self.step)
                self.timer.mark("log")
                periodic = bool(c.checkpoint_every) and self.step % c.checkpoint_every == 0
                validating = bool(c.val_every and self.data.validation and (self.step % c.val_every == 0 or final))
                # The checkpoint (and at the end the model) comes first: a run stopped during a
                # validation loses nothing of its training.
                if final or periodic or validating:
                    self.checkpoint(periodic=periodic)
                    if final and validating and self.ctx.is_main:
                        self.export(self.layout.model)
                    if validating:
                        self.validate(progress)
                    self.plot_progress()
                    self.timer.restart()
        return self._finish(start_step)

    def _log(self, pending_loss: torch.Tensor, pending_steps: int, progress: ProgressDisplay) -> None:
        loss = ddp.mean_over_ranks(float(pending_loss.item()) / pending_steps, self.ctx, self.device)
        self.last_loss = loss
        seconds, fractions = self.timer.take()
        windows = pending_steps * self.config.windows_per_step * self.ctx.world_size
        speed = windows / seconds if seconds > 0 else 0.0
        record = {
            "kind": "train",
            "step": self.step,
            "loss": loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "samples_per_s": speed,
            "epoch": self.window_order.epoch,
            "time": fractions,
            "seconds": seconds,
        }
        self.log.write(record)
        progress.advance(self.step, loss, speed)

    def _announce(self) -> None:
        c, d = self.config, self.data
        h, w = d.in_plane
        held = f", {len(d.validation)} case(s) held out" if d.validation else ", no validation"
        procs = f" x {self.ctx.world_size} processes" if self.ctx.enabled else ""
        self.console.print(
            f"training on {self.device}{procs}: {len(d.train)} windows of {h}x{w} from {len(d.train_keys)} case(s){held}; "
            f"network '{c.preset}' ({count_parameters(self.network) / 1e6:.2f} M parameters); "
            f"steps {self.step} -> {c.steps}, {c.windows_per_step * self.ctx.world_size} windows per step"
        )

    def _finish(self, start_step: int) -> TrainResult:
        digest = parameters_digest(self.network)
        digests = ddp.gather(digest, self.ctx)
        if self.ctx.is_main:
            self.export(self.layout.model)
            identical = all(d == digests[0] for d in digests)
            self.log.write(
                {
                    "kind": "end",
                    "step": self.step,
                    "steps_this_run": self.step - start_step,
                    "final_loss": self.last_loss,
                    "best": self.best,
                    "world_size": self.ctx.world_size,
                    "parameters_sha256": digests,
                    "ranks_identical": identical,
                }
            )
            if not identical:
                from ..reporting import warn

                warn("the processes ended with different weights; the distributed setup is broken")
            if not self.quiet:
                self.console.print(f"wrote {self.layout.model} (EMA weights after {self.step} steps)")
        ddp.barrier(self.ctx)
        return TrainResult(self.layout.root, self.step, self.last_loss, self.best, digest, self.ctx.world_size)


def newer_best(recorded: dict[str, Any] | None, best_file: Path, step: int) -> dict[str, Any] | None:
    """The best validation so far: the checkpoint's record, or that of ``best.safetensors`` when
    the file was exported by a validation of the checkpoint's own step, after the checkpoint."""
    if not best_file.is_file():
        return recorded
    try:
        found = json.loads(read_metadata(best_file)["provenance"]).get("best_validation")
    except (Ct2mriError, ValueError):
        return recorded
    if not isinstance(found, dict) or not isinstance(found.get("step"), int) or found["step"] > step:
        return recorded
    if recorded is None or found["step"] > int(recorded.get("step", -1)):
        return found
    return recorded


def check_init(config: TrainConfig) -> ModelBundle:
    """The ``init`` weights file, read and checked against the run's network and bridge."""
    bundle = load_weights(config.init, device="cpu")
    wanted, found = config.network_config(), bundle.network.config
    if found != wanted:
        differ = [
            f"{f.name} {getattr(found, f.name)} (run: {getattr(wanted, f.name)})"
            for f in dataclasses.fields(found)
            if getattr(found, f.name) != getattr(wanted, f.name)
        ]
        raise Ct2mriError(
            f"--init {config.init}: its network differs from the run's: {', '.join(differ)} "
            "(leave out --preset and network settings to take the file's)"
        )
    if bundle.bridge != BridgeSchedule().config:
        raise Ct2mriError(f"--init {config.init}: trained with another bridge schedule ({bundle.bridge})")
    return bundle


def check_init_data(config: TrainConfig, bundle: ModelBundle, preprocess: PreprocessConfig) -> None:
    """Fine-tuning data must be cut like the data the weights learnt from (grid, window, frame)."""
    if bundle.preprocess != preprocess:
        mine, theirs = bundle.preprocess.to_dict(), preprocess.to_dict()
        differ = [f"{k} {mine[k]} (data: {theirs.get(k)})" for k in mine if mine[k] != theirs.get(k)]
        raise Ct2mriError(
            f"--init {config.init}: the weights were trained on data preprocessed otherwise: "
            f"{', '.join(differ)}; preprocess with the same settings"
        )


def _checkpoint_to_resume(layout: RunLayout, config: TrainConfig) -> dict[str, Any]:
    """The run's last checkpoint, refused when ``config`` changes what a run in progress cannot."""
    checkpoint = load_checkpoint(layout.last)
    try:
        saved = TrainConfig.from_dict(checkpoint["config"])
    except Ct2mriError as exc:
        raise Ct2mriError(f"{layout.last}: {exc}") from None
    conflicts = resume_conflicts(saved, config)
    if conflicts:
        raise Ct2mriError(f"--resume: cannot change {', '.join(conflicts)} of a run in progress; start a new run")
    if int(checkpoint["step"]) >= config.steps:
        raise Ct2mriError(
            f"{layout.last}: the run already has {checkpoint['step']} steps; pass --steps above that to continue"
        )
    return checkpoint


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> TrainResult:
    """Train (or continue) a run in ``run_dir``; every check that can fail does so before training.

    Launched by ``torchrun`` the processes train together with DDP; rank 0 writes the files.
    """
    from ..reporting import console as default_console

    console = console or default_console
    check_config(config)
    ctx = ddp.context_from_env()
    layout = RunLayout(Path(run_dir))
    check_run_dir(layout, resume, force)
    checkpoint = _checkpoint_to_resume(layout, config) if resume else None
    initial = check_init(config) if config.init and checkpoint is None else None
    device = ddp.training_device(config.device, ctx)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    else:  # the CPUs this job was given (launcher, affinity, cgroup quota), not all the machine has
        from ..threads import use_threads

        use_threads()
    with ReadingProgress(console, enabled=ctx.is_main and not quiet) as reading:
        spill = layout.windows / f"process-{ctx.rank}" if config.memory_map else None
        data = load_training_data(config, config.network_config().downsampling_factor, reading.update, spill)
    if initial is not None:
        check_init_data(config, initial, data.manifest.preprocess)
    if config.crop != (0, 0) and any(c > n for c, n in zip(config.crop, data.in_plane)):
        h, w = data.in_plane
        raise Ct2mriError(f"setting crop = {list(config.crop)}: larger than the data's {h}x{w} slices")
    if checkpoint is not None and checkpoint.get("manifest_sha256") != data.manifest.sha256 and ctx.is_main:
        from ..reporting import warn

        warn(f"{config.data_dir}: the manifest differs from the one this run started with")

    ddp.init(ctx, device)
    trainer = None
    try:
        if ctx.is_main:
            prepare_run_dir(layout, force and not resume)
            write_config(layout, config)
        ddp.barrier(ctx)
        trainer = Trainer(config, layout, data, device, ctx, console, quiet)
        if initial is not None:
            trainer.start_from(initial)
        if checkpoint is not None:
            trainer.load(checkpoint)
            del checkpoint
        return trainer.run()
    finally:
        # The DDP wrapper holds the process group: release it first, so that gloo's worker
        # threads stop while the interpreter is alive rather than during its exit.
        del trainer
        ddp.shutdown()
