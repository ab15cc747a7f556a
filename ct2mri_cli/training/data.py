"""Training data: a ``ct2mri preprocess`` folder held in memory as 3-slice windows with style keys.

Every case of the manifest is read once.  Its CT and MRI (model grid, [0, 1]) are stored as
float16 with one empty slice added at each end, the same virtual background slices the volume
sampler adds, and all cases are stacked along the slice axis into two tensors.  A training
window is then just the index of its first slice in that stack; it is kept when its centre
slice holds brain.  Subjects held out for validation keep their whole volumes instead.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diffusion.bridge import to_bridge_range
from ..diffusion.sampler import WINDOW
from ..errors import Ct2mriError
from ..preprocessing.config import PreprocessConfig
from ..preprocessing.pairs import MANIFEST_NAME
from ..style.key import average_style_keys, load_style_key, style_key
from .config import TrainConfig
from .restyle import apply_curves, restyled_keys, value_counts


@dataclass
class Manifest:
    """The parsed manifest of a preprocessed folder."""

    folder: Path
    preprocess: PreprocessConfig
    cases: list[dict[str, Any]]
    sha256: str


@dataclass
class CaseVolumes:
    """One case in model space: CT and MRI in [0, 1], brain mask, all (Z, H, W); its style key."""

    name: str
    subject: str
    ct: np.ndarray
    mri: np.ndarray
    mask: np.ndarray
    key: torch.Tensor


@dataclass
class WindowSet:
    """Training windows over stacked, padded volumes (float16 in [0, 1])."""

    ct: torch.Tensor  # (sum of Z + 2, H, W)
    mri: torch.Tensor
    starts: torch.Tensor  # (N,) first slice of each window in the stack
    case_of: torch.Tensor  # (N,) index into ``keys`` / ``case_names``
    keys: torch.Tensor  # (cases, 3, 128)
    case_names: list[str]
    counts: torch.Tensor | None = None  # (cases, restyle.FINE_BINS): brain intensities, for restyled keys

    def __len__(self) -> int:
        return int(self.starts.numel())

    def batch(
        self,
        indices: torch.Tensor,
        flips: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
        curves: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(MRI windows, CT windows) as (B, 3, H, W) float32 in [-1, 1] and styles (B, 3, 128).

        The windows are gathered in float16 and converted on ``device`` (half the transfer).
        ``flips`` (B,) bool mirrors the chosen windows left-right (both images together);
        ``curves`` (B, restyle.SEGMENTS + 1) restyles each MRI window and its key
        (:mod:`.restyle`).
        """
        rows = self.starts[indices][:, None] + torch.arange(WINDOW)
        mri = self.mri[rows].to(device, non_blocking=True).float()
        if curves is not None:
            if self.counts is None:
                raise ValueError("restyling needs the cases' intensity counts")
            mri = apply_curves(mri, curves.to(device))
            keys = restyled_keys(self.counts[self.case_of[indices]], curves).to(device)
        else:
            keys = self.keys[self.case_of[indices]].to(device)
        x0 = to_bridge_range(mri)
        y = to_bridge_range(self.ct[rows].to(device, non_blocking=True).float())
        if flips is not None and bool(flips.any()):
            f = flips.to(device)[:, None, None, None]
            x0 = torch.where(f, x0.flip(-1), x0)
            y = torch.where(f, y.flip(-1), y)
        return x0, y, keys


@dataclass
class TrainingData:
    """What a run trains and validates on."""

    manifest: Manifest
    train: WindowSet
    validation: list[CaseVolumes] = field(default_factory=list)
    train_keys: list[torch.Tensor] = field(default_factory=list)

    @property
    def in_plane(self) -> tuple[int, int]:
        return (int(self.train.ct.shape[1]), int(self.train.ct.shape[2]))

    def average_key(self) -> torch.Tensor:
        """The training subjects' average style key (the exported model's default key)."""
        return average_style_keys(self.train_keys)


def open_dataset(data_dir: str | Path) -> Manifest:
    """Parse and check ``DATA_DIR/manifest.json`` (format, version, preprocessing, case entries)."""
    from ..preprocessing.pairs import read_manifest

    folder = Path(data_dir)
    if not folder.is_dir():
        raise Ct2mriError(f"{folder}: data folder not found")
    manifest = read_manifest(folder)
    path = folder / MANIFEST_NAME
    try:
        preprocess = PreprocessConfig.from_dict(manifest["preprocess"])
    except (ValueError, TypeError) as exc:
        raise Ct2mriError(f"{path}: invalid preprocessing settings ({exc})") from None
    cases = manifest["cases"]
    if not cases:
        raise Ct2mriError(f"{path}: the manifest lists no cases")
    seen: set[str] = set()
    for i, entry in enumerate(cases):
        fields_ok = isinstance(entry, dict) and all(
            isinstance(entry.get(k), str) for k in ("case", "ct", "mri", "mask")
        )
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not fields_ok or not (isinstance(shape, list) and len(shape) == 3):
            raise Ct2mriError(f"{path}: case entry {i} lacks one of case, ct, mri, mask, shape")
        if entry["case"] in seen:
            raise Ct2mriError(f"{path}: case {entry['case']!r} is listed twice")
        seen.add(entry["case"])
    return Manifest(
        folder=folder, preprocess=preprocess, cases=cases, sha256=hashlib.sha256(path.read_bytes()).hexdigest()
    )


def load_case_volumes(manifest: Manifest, entry: dict[str, Any]) -> CaseVolumes:
    """Read and check one case: equal shapes, finite values, and its style key."""
    from ..preprocessing.pairs import load_case

    name = entry["case"]
    ct, mri, mask = load_case(manifest.folder, entry)
    where = f"{manifest.folder / MANIFEST_NAME}: case {name!r}"
    if ct.shape != mri.shape:
        raise Ct2mriError(f"{where}: CT shape {ct.shape} differs from MRI shape {mri.shape}")
    if mask.shape != ct.shape:
        raise Ct2mriError(f"{where}: mask shape {mask.shape} differs from CT shape {ct.shape}")
    for label, volume in (("CT", ct), ("MRI", mri)):
        if not np.isfinite(volume).all():
            raise Ct2mriError(f"{where}: the {label} holds NaN or Inf")
    ct = np.clip(ct, 0.0, 1.0)
    mri = np.clip(mri, 0.0, 1.0)
    key_file = entry.get("style_key")
    if isinstance(key_file, str) and key_file:
        key, _ = load_style_key(manifest.folder / key_file)
    else:
        key = style_key(mri)
    given_subject = entry.get("subject")
    subject = given_subject if isinstance(given_subject, str) else name
    return CaseVolumes(name=name, subject=subject, ct=ct, mri=mri, mask=mask, key=key)


def split_subjects(subjects: list[str], held_out: int, seed: int) -> set[str]:
    """The subjects held out for validation: a seeded choice among the sorted distinct names."""
    distinct = sorted(set(subjects))
    if held_out == 0:
        return set()
    if held_out >= len(distinct):
        raise Ct2mriError(
            f"setting val_subjects = {held_out}: the data has {len(distinct)} subject(s) and at least one must "
            "remain for training (set val_subjects = 0 to train without validation)"
        )
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5A1])).permutation(len(distinct))
    return {distinct[i] for i in order[:held_out]}


class _WindowBuilder:
    """Accumulates cases in compact form (padded float16) and their brain windows, in memory or,
    with ``spill_to``, in two files on disk that the windows are then memory-mapped from."""

    def __init__(self, min_brain_voxels: int, spill_to: Path | None = None) -> None:
        self.min_brain_voxels = min_brain_voxels
        self.spill_to = spill_to
        self.spill: dict[str, Any] = {}
        if spill_to is not None:
            spill_to.mkdir(parents=True, exist_ok=True)
            self.spill = {
                kind: tempfile.NamedTemporaryFile(prefix=f".{kind}.", suffix=".f16", dir=spill_to, delete=False)
                for kind in ("ct", "mri")
            }
        self.shape: tuple[int, int] | None = None
        self.cts: list[np.ndarray] = []
        self.mris: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.case_of: list[np.ndarray] = []
        self.keys: list[torch.Tensor] = []
        self.counts: list[np.ndarray] = []
        self.names: list[str] = []
        self.offset = 0

    def add(self, case: CaseVolumes) -> None:
        z = case.ct.shape[0]
        pad = ((1, 1), (0, 0), (0, 0))
        ct, mri = np.pad(case.ct, pad).astype(np.float16), np.pad(case.mri, pad).astype(np.float16)
        self.shape = ct.shape[1:]
        if self.spill:
            self.spill["ct"].write(ct.tobytes())
            self.spill["mri"].write(mri.tobytes())
        else:
            self.cts.append(ct)
            self.mris.append(mri)
        centres = np.flatnonzero(case.mask.reshape(z, -1).sum(axis=1) >= self.min_brain_voxels)
        self.starts.append(self.offset + centres)  # the window centred on slice c starts at padded index c
        self.case_of.append(np.full(centres.size, len(self.names)))
        self.keys.append(case.key)
        self.counts.append(value_counts(case.mri, case.mask))
        self.names.append(case.name)
        self.offset += z + 2

    def discard(self) -> None:
        """Remove the files of an unfinished spill."""
        for handle in self.spill.values():
            handle.close()
            Path(handle.name).unlink(missing_ok=True)

    def _stacked(self, kind: str) -> torch.Tensor:
        if not self.spill:
            return torch.from_numpy(np.concatenate(self.cts if kind == "ct" else self.mris))
        handle = self.spill[kind]
        handle.close()
        final = self.spill_to / f"{kind}.f16"  # type: ignore[operator]
        os.replace(handle.name, final)
        # copy-on-write: torch wants a writable array; nothing writes to it, and the file is never changed
        array = np.memmap(final, dtype=np.float16, mode="c", shape=(self.offset, *self.shape))  # type: ignore[misc]
        return torch.from_numpy(array)

    def build(self) -> WindowSet:
        return WindowSet(
            ct=self._stacked("ct"),
            mri=self._stacked("mri"),
            starts=torch.from_numpy(np.concatenate(self.starts).astype(np.int64)),
            case_of=torch.from_numpy(np.concatenate(self.case_of).astype(np.int64)),
            keys=torch.stack(self.keys),
            case_names=list(self.names),
            counts=torch.from_numpy(np.stack(self.counts)),
        )


def _subject(entry: dict[str, Any]) -> str:
    return entry["subject"] if isinstance(entry.get("subject"), str) else entry["case"]


def load_training_data(
    config: TrainConfig,
    divisor: int = 1,
    on_case: Callable[[int, int], None] | None = None,
    spill_to: Path | None = None,
) -> TrainingData:
    """Read the whole data folder, check it, split it by subject and build the training windows.

    ``divisor`` is the network's down-sampling factor (in-plane sizes must be multiples of it).
    ``on_case(done, total)`` reports progress while reading.  Training cases are turned into
    their compact form as soon as they are read, so memory peaks at one float32 case.  With
    ``spill_to`` (a folder) the training windows go to files there and are memory-mapped: a
    cohort larger than the memory trains at the cost of page reads (validation cases stay in
    memory).
    """
    manifest = open_dataset(config.data_dir)
    held_out = split_subjects([_subject(e) for e in manifest.cases], config.val_subjects, config.seed)
    builder = _WindowBuilder(config.min_brain_voxels, spill_to)
    try:
        train, validation = _read_cases(manifest, config, held_out, builder, divisor, on_case)
    except BaseException:
        builder.discard()
        raise
    if len(train) == 0:
        rule = f" or below min_brain_voxels = {config.min_brain_voxels}" if config.min_brain_voxels > 1 else ""
        raise Ct2mriError(f"{manifest.folder}: no training slice holds brain (every mask is empty{rule})")
    return TrainingData(manifest=manifest, train=train, validation=validation, train_keys=list(builder.keys))


def _read_cases(
    manifest: Manifest,
    config: TrainConfig,
    held_out: set[str],
    builder: _WindowBuilder,
    divisor: int,
    on_case: Callable[[int, int], None] | None,
) -> tuple[WindowSet, list[CaseVolumes]]:
    where = manifest.folder / MANIFEST_NAME
    validation: list[CaseVolumes] = []
    in_plane: tuple[tuple[int, ...], str] | None = None
    for i, entry in enumerate(manifest.cases):
        case = load_case_volumes(manifest, entry)
        h, w = case.ct.shape[1:]
        if in_plane is None:
            in_plane = ((h, w), case.name)
            if h % divisor or w % divisor:
                raise Ct2mriError(
                    f"{where}: in-plane size {h}x{w} is not a multiple of {divisor}, which the network needs"
                )
        elif (h, w) != in_plane[0]:
            raise Ct2mriError(
                f"{where}: case {case.name!r} is {h}x{w} in-plane, case {in_plane[1]!r} is "
                f"{in_plane[0][0]}x{in_plane[0][1]}; all cases must share the model grid's in-plane size"
            )
        if case.subject in held_out:
            validation.append(case)
        else:
            builder.add(case)
        if on_case is not None:
            on_case(i + 1, len(manifest.cases))
    return builder.build(), validation
