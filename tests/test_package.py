import subprocess
import sys

import ct2mri_cli


def test_every_public_name_resolves():
    for name in ct2mri_cli.__all__:
        assert getattr(ct2mri_cli, name) is not None, name


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, ct2mri_cli.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
