"""``ct2mri preprocess``: paired CT/MRI to model-ready volumes, a manifest and QC pictures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import Ct2mriError
from ..preprocessing.config import PreprocessConfig
from . import common

if TYPE_CHECKING:
    from ..preprocessing.pairs import CasePair

_DEFAULTS = PreprocessConfig()


def preprocess(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    ct: Path | None = typer.Option(None, "--ct", help="One CT (NIfTI, NRRD, MHA, DICOM folder, .inv3), in HU."),
    mri: Path | None = typer.Option(None, "--mri", help="Its T1 MRI."),
    case: str | None = typer.Option(
        None, "--case", help="Case name for --ct/--mri.", show_default="the CT's file name"
    ),
    csv_file: Path | None = typer.Option(None, "--csv", help="Batch: CSV with columns case,ct,mri."),
    ct_dir: Path | None = typer.Option(None, "--ct-dir", help="Batch: folder of CTs (matched to --mri-dir by name)."),
    mri_dir: Path | None = typer.Option(None, "--mri-dir", help="Batch: folder of MRIs."),
    spacing: float = typer.Option(_DEFAULTS.spacing_mm, "--spacing", help="Model voxel size in mm (isotropic)."),
    size: tuple[int, int] = typer.Option(_DEFAULTS.in_plane, "--size", help="Model in-plane size H W (voxels)."),
    margin: float = typer.Option(_DEFAULTS.margin_mm, "--margin", help="Slices kept beyond the brain, in mm."),
    ct_window: tuple[float, float] = typer.Option(
        _DEFAULTS.ct_window_hu, "--ct-window", help="CT window LO HI in HU -> [0, 1]."
    ),
    frame: str = typer.Option(
        _DEFAULTS.frame,
        "--frame",
        help="canonical: slices cut in the head's canonical frame (pose found by registration); native: along the MRI's world axes.",
    ),
    no_register: bool = typer.Option(False, "--no-register", help="The pairs are already aligned in world space."),
    affine: bool = typer.Option(False, "--affine", help="Affine instead of rigid CT-MRI registration."),
    series: str | None = typer.Option(
        None, "--series", help="DICOM series UID of the CT when its folder holds several."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing cases (and a manifest with other settings)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip cases already in the output's manifest."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="CPU threads for registration and resampling.",
        show_default="OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the CPUs this process may use",
    ),
) -> int:
    """Register, brain-mask, normalise and crop CT/MRI pairs onto the model grid for training."""
    import SimpleITK as sitk

    from ..preprocessing.pairs import preprocess_batch
    from ..threads import cpu_budget

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(cpu_budget(threads)[0])  # registration and resampling run in ITK
    single = ct is not None or mri is not None
    modes = int(single) + int(csv_file is not None) + int(ct_dir is not None or mri_dir is not None)
    if modes != 1:
        raise Ct2mriError("give exactly one input: --ct CT --mri MRI, --csv FILE, or --ct-dir DIR --mri-dir DIR")
    config = _config_of(spacing, size, margin, ct_window, frame)
    pairs, unmatched = _pairs_of(ct, mri, case, csv_file, ct_dir, mri_dir)

    progress = common.progress_bar()

    def on_event(name: str, kind: str, message: str) -> None:
        if kind == "start":
            progress.update(task, description=f"preprocess {name}")
        elif kind == "note":
            common.warn(message)
        elif kind == "failed":
            if not single:
                common.console.print(f"[red]failed[/red] {name}: {message}", soft_wrap=True)
            progress.advance(task)
        elif kind in ("done", "skipped"):
            if not common.settings.quiet:
                common.console.print(f"{'done' if kind == 'done' else 'skipped'} {name} ({message})", soft_wrap=True)
            progress.advance(task)

    for name, message in unmatched:
        common.console.print(f"[red]failed[/red] {name}: {message}", soft_wrap=True)
    with progress:
        task = progress.add_task("preprocess", total=len(pairs))
        result = preprocess_batch(
            pairs,
            out,
            config,
            register=not no_register,
            affine=affine,
            series_uid=series,
            force=force,
            skip_existing=skip_existing,
            on_event=on_event,
        )
    failures = result.failures + unmatched
    if single and result.failures:
        raise Ct2mriError(result.failures[0][1])
    summary = f"preprocessed {len(result.entries)} case(s), {len(failures)} failed, {len(result.skipped)} skipped" + (
        f" -> {out / 'manifest.json'}" if (out / "manifest.json").exists() else ""
    )
    if failures:
        common.console.print(f"[red]{summary}[/red]", soft_wrap=True)
        return 1
    common.info(summary)
    return 0


def _config_of(
    spacing: float, size: tuple[int, int], margin: float, ct_window: tuple[float, float], frame: str
) -> PreprocessConfig:
    """The preprocessing settings of the options, each checked."""
    if spacing <= 0 or min(size) < 8:
        raise Ct2mriError(f"--spacing must be positive and --size at least 8 8 (got {spacing:g}, {size[0]} {size[1]})")
    if frame not in ("canonical", "native"):
        raise Ct2mriError(f"--frame must be canonical or native, got {frame!r}")
    if not ct_window[1] > ct_window[0]:
        raise Ct2mriError(f"--ct-window needs LO < HI (got {ct_window[0]:g} {ct_window[1]:g})")
    return PreprocessConfig(
        spacing_mm=float(spacing),
        in_plane=(int(size[0]), int(size[1])),
        margin_mm=float(margin),
        ct_window_hu=(float(ct_window[0]), float(ct_window[1])),
        mri_percentiles=_DEFAULTS.mri_percentiles,
        frame=frame,
    )


def _pairs_of(
    ct: Path | None,
    mri: Path | None,
    case: str | None,
    csv_file: Path | None,
    ct_dir: Path | None,
    mri_dir: Path | None,
) -> tuple[list[CasePair], list[tuple[str, str]]]:
    """The CT/MRI pairs the options name, and the files of two folders that found no partner."""
    from ..io.cases import case_name
    from ..preprocessing.pairs import CasePair, pairs_from_csv, pairs_from_dirs

    unmatched: list[tuple[str, str]] = []
    if ct is not None or mri is not None:
        if ct is None or mri is None:
            raise Ct2mriError("--ct and --mri go together")
        for path in (ct, mri):
            if not path.exists():
                raise Ct2mriError(f"{path}: no such file or folder")
        pairs = [CasePair(case or case_name(ct), ct, mri)]
    elif csv_file is not None:
        pairs = pairs_from_csv(csv_file)
    else:
        if ct_dir is None or mri_dir is None:
            raise Ct2mriError("--ct-dir and --mri-dir go together")
        pairs, unmatched = pairs_from_dirs(ct_dir, mri_dir)
    return pairs, unmatched
