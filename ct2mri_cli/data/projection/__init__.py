"""A second CT appearance model, independent of :mod:`ct2mri_cli.data.synthesis`'s CT physics.

Given the tissue fractions of a head on a grid, it renders a scan the way a scanner makes one:
per-tissue attenuation drawn over scanners (:mod:`.scanner`), the reconstruction kernel's
in-plane transfer and a rectangular slice profile (its partial-volume rule), bone's beam
hardening as the filtered back-projection of the squared bone line integrals, which gives the
dark bands and streaks between dense bone (:mod:`.radon`), and noise with the texture measured on
a real head CT (:mod:`.texture`), stronger behind long paths (:mod:`.render`).  Models trained on
one appearance are scored on the other (``ct2mri synthesize --ct-model projection``).
"""

from .render import render_ct
from .scanner import TISSUES, VARIETIES, ScannerParams, sample_scanner

__all__ = ["TISSUES", "VARIETIES", "ScannerParams", "render_ct", "sample_scanner"]
