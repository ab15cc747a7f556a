"""The application layer: global options wherever the user types them."""

import pytest

from ct2mri_cli.cli.app import global_flags_first, main
from tests.helpers import fast_weights


def test_global_flags_move_to_the_front_but_not_past_a_double_dash():
    assert global_flags_first(["translate", "a", "b", "--quiet"]) == ["--quiet", "translate", "a", "b"]
    assert global_flags_first(["info", "-v", "w", "-q"]) == ["-v", "-q", "info", "w"]
    assert global_flags_first(["translate", "--", "-q"]) == ["translate", "--", "-q"]


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_quiet_after_the_subcommand_is_quiet(tmp_path, capsys, flag):
    weights = fast_weights(tmp_path / "w.safetensors")
    assert main(["info", str(weights), flag]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("flag", ["-v", "--verbose"])
def test_verbose_after_the_subcommand_shows_the_traceback(tmp_path, capsys, flag):
    assert main(["info", str(tmp_path / "missing.safetensors")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.safetensors"), flag]) == 1
    assert "Traceback" in capsys.readouterr().err
