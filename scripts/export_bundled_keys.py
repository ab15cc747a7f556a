"""Write the bundled style keys: ``average`` (a model's default key) and ``colin27``.

    python scripts/export_bundled_keys.py models/ct2mri-demo-2mm.safetensors

``colin27`` is the key of Debian's Colin27 brain (mricron-data), computed the way
``ct2mri histogram`` does it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ct2mri_cli.bundled import bundled_key_path
from ct2mri_cli.style.key import save_style_key
from ct2mri_cli.style.sources import mri_style_key
from ct2mri_cli.weights import load_weights

COLIN_BRAIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")


def main(weights: str) -> None:
    bundle = load_weights(weights)
    out = bundled_key_path("average")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_style_key(
        out, bundle.default_style_key, {"source": f"default key of {Path(weights).name}", "sha256": bundle.sha256 or ""}
    )
    save_style_key(
        bundled_key_path("colin27"), mri_style_key(COLIN_BRAIN), {"source": "Colin27 ch2bet.nii.gz (mricron-data)"}
    )
    print(f"wrote {out} and {bundled_key_path('colin27')}")


if __name__ == "__main__":
    main(sys.argv[1])
