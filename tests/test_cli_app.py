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


# Options whose absence simply means "not given" (inputs to choose from, optional extra outputs).
NOT_GIVEN_BY_DEFAULT = {
    "--output",
    "--ct",
    "--mri",
    "--csv",
    "--ct-dir",
    "--mri-dir",
    "--pred-dir",
    "--ref-dir",
    "--mask-dir",
    "--mask",
    "--save-mask",
    "--qc",
    "--png",
    "--out",
    "--config",
    "--series",
    "--set",
    "--version",
    "--style-mask",
    "--list",
    "--status",
    "--init",
    "--trust-map",
}


def test_every_option_shows_its_default():
    import typer
    from typer.core import TyperOption

    from ct2mri_cli.cli.app import app

    group = typer.main.get_command(app)
    missing = []
    for name, command in group.commands.items():
        for param in command.params:
            if not isinstance(param, TyperOption) or param.is_flag or param.required:
                continue
            if set(param.opts) & NOT_GIVEN_BY_DEFAULT:
                continue
            shown = (
                param.show_default
                if isinstance(param.show_default, str)
                else (param.default is not None and param.show_default)
            )
            if not shown:
                missing.append(f"{name} {param.opts[0]}")
    assert not missing, missing


def test_help_texts_keep_their_words(capsys):
    assert main(["translate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())  # wrapped lines joined
    assert "the bundled model" in text and "the model's default key" in text and " ." not in text
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(preset in text for preset in ("released", "small", "demo", "tiny"))


@pytest.mark.parametrize(
    "command", ["translate", "preprocess", "train", "histogram", "synthesize", "sources", "info", "evaluate", "report"]
)
def test_help_names_values_plainly(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    import re

    assert not re.search(r"<(bool|int|float|str|Path|list|tuple|int,|float,)", text), text  # no <bool>, <list[Path]>
    rows = {
        line.split()[1]: line for line in text.splitlines() if line.startswith("│ --") or line.startswith("│    --")
    }
    assert "--help" in rows and "bool" not in rows["--help"].lower()


def test_help_shows_value_kinds_and_no_kind_for_flags(capsys):
    assert main(["translate", "--help"]) == 0
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("│ --")}
    assert rows["--steps"][2] == "INTEGER" and rows["--step-size"][2] == "FLOAT" and rows["--style"][3] == "TEXT"
    assert rows["--force"][2] == "Overwrite" and rows["--paper"][2] == "The"  # a flag takes no value
    assert main(["preprocess", "--help"]) == 0
    assert "INTEGER INTEGER" in capsys.readouterr().out  # --size H W
