"""``ct2mri histogram``: the style key of one MRI, or the average key of several."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import Ct2mriError
from . import common


def histogram(
    mris: list[Path] = typer.Argument(
        ..., help="MRI volumes (NIfTI, NRRD, MHA, DICOM folder); brain-only images work best."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Style key file to write (.safetensors)."),
    masks: list[Path] | None = typer.Option(None, "--mask", help="Brain mask per MRI (repeat, in the same order)."),
    normalise: str = typer.Option(
        "auto", "--normalise", help="auto: keep volumes already in [0, 1], else robust min-max; robust; none."
    ),
    png: Path | None = typer.Option(
        None, "--png", help="Also plot the three curves of each key (and their average) to this PNG."
    ),
) -> None:
    """Compute a style key (SKC): one volume gives its key, several their average."""
    from ..style.key import average_style_keys, save_style_key
    from ..style.sources import mri_style_key

    if normalise not in ("auto", "robust", "none"):
        raise Ct2mriError(f"--normalise must be auto, robust or none, not {normalise!r}")
    if masks and len(masks) != len(mris):
        raise Ct2mriError(f"{len(masks)} --mask given for {len(mris)} MRI volumes; give one per volume or none")
    inputs = [*mris, *(masks or [])]
    common.check_named_output(output, inputs)
    if png is not None:
        common.check_named_output(png, inputs + [output])

    keys = []
    for i, path in enumerate(mris):
        keys.append(mri_style_key(path, masks[i] if masks else None, normalise))
        common.info(f"{path}: style key computed")
    key = average_style_keys(keys)
    sources = ";".join(str(p) for p in mris)
    save_style_key(output, key, {"sources": sources, "count": str(len(mris)), "normalise": normalise})
    common.info(f"wrote {output} ({'average of ' + str(len(keys)) + ' keys' if len(keys) > 1 else 'one volume'})")
    if png is not None:
        from ..evaluation.keyplot import write_key_plot

        write_key_plot([(path.name, k) for path, k in zip(mris, keys)], png, key if len(keys) > 1 else None)
        common.info(f"wrote {png}")
