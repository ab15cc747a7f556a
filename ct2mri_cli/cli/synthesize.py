"""``ct2mri synthesize``: write N aligned synthetic CT/T1 pairs (see :mod:`ct2mri_cli.data.synthetic_set`)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from ..errors import Ct2mriError
from . import common


def synthesize(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    n: int = typer.Option(..., "-n", "--count", help="Number of pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the whole set (case i uses a seed derived from it)."),
    source: str = typer.Option(
        "both",
        "--source",
        help="Source brains, comma-separated, used in turn: names from `ct2mri sources`, both (mni,colin27) or all.",
    ),
    exclude: str = typer.Option(
        "", "--exclude", help="Source brains to leave out (e.g. the held-out brain).", show_default="none"
    ),
    variety: str = typer.Option(
        "wide",
        "--variety",
        help="Subject ranges: wide (anatomy and scanners of a clinic) or calibrated (around the real head CT).",
    ),
    ct_model: str = typer.Option(
        "mixing",
        "--ct-model",
        help="How CTs are made: mixing (partial-volume mixing, image-domain blur and noise) or projection "
        "(an independent scanner model: kernel, slice profile, beam-hardening streaks, a real CT's noise texture).",
    ),
    fine_warp: float = typer.Option(
        0.0,
        "--fine-warp",
        help="RMS in mm (at most 1.2) of a second, gyrus-scale warp per subject that moves the source brain's sulci "
        "and ventricle walls against its overall shape (each subject draws between half and all of it).",
    ),
    spacing: float | None = typer.Option(
        None, "--spacing", help="Voxel size in mm.", show_default="the source's 1 mm grid"
    ),
    model_space: bool = typer.Option(False, "--model-space", help="Also preprocess into OUT/model/ (training-ready)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> int:
    """Write N aligned synthetic CT/T1 pairs (with brain masks) made from real T1 brains."""
    from ..data.synthesis import prepare_anatomy
    from ..data.synthetic_set import MODEL_DIR, PAIRS_CSV, check_request, write_pairs

    plan = check_request(out, n, source, spacing, force, exclude, variety, ct_model, fine_warp)
    if model_space and not force and (out / MODEL_DIR).exists():
        raise Ct2mriError(f"{out / MODEL_DIR} exists (use --force to overwrite)")
    started = time.perf_counter()
    for name in sorted(set(plan)):  # built once per process, before the progress bar
        status = common.console.status(f"preparing the {name} anatomy") if not common.settings.quiet else nullcontext()
        with status:
            prepare_anatomy(name)

    progress = common.progress_bar()

    def on_event(name: str, kind: str, message: str) -> None:
        if kind == "prepare":
            progress.update(task, description=f"preparing the {name} anatomy")
        elif kind == "start":
            progress.update(task, description=f"synthesize {name} ({message})")
        elif kind == "done":
            if not common.settings.quiet:
                common.console.print(f"done {name} ({message})", soft_wrap=True)
            progress.advance(task)

    with progress:
        task = progress.add_task("synthesize", total=n)
        entries = write_pairs(out, n, seed, source, spacing, force, on_event, exclude, variety, ct_model, fine_warp)
    common.info(f"wrote {len(entries)} pair(s) in {time.perf_counter() - started:.0f} s -> {out / PAIRS_CSV}")
    if model_space:
        return _to_model_space(out, entries, force)
    return 0


def _to_model_space(out: Path, entries: list[dict[str, Any]], force: bool) -> int:
    """Preprocess the written pairs (already aligned: no registration) into ``out/model``."""
    from ..data.synthetic_set import MODEL_DIR
    from ..preprocessing.config import PreprocessConfig
    from ..preprocessing.pairs import CasePair, preprocess_batch

    pairs = [CasePair(e["case"], out / e["ct"], out / e["mri"]) for e in entries]
    failures: list[str] = []

    def on_event(name: str, kind: str, message: str) -> None:
        if kind == "failed":
            failures.append(name)
            common.console.print(f"[red]failed[/red] {name}: {message}", soft_wrap=True)
        elif kind == "note":
            common.warn(message)

    status = common.console.status("preprocessing into model space") if not common.settings.quiet else nullcontext()
    with status:
        result = preprocess_batch(
            pairs, out / MODEL_DIR, PreprocessConfig(frame="canonical"), register=False, force=force, on_event=on_event
        )
    summary = f"model space: {len(result.entries)} case(s), {len(result.failures)} failed -> {out / MODEL_DIR / 'manifest.json'}"
    if result.failures:
        common.console.print(f"[red]{summary}[/red]", soft_wrap=True)
        return 1
    common.info(summary)
    return 0
