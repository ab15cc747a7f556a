"""Typer application: global options, subcommand registration and error reporting."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import typer

from .. import __version__
from ..errors import Ct2mriError
from ..launcher import in_multiprocess_job
from . import common

app = typer.Typer(
    name="ct2mri",
    help="Brain CT to synthetic T1 MRI with a slice-consistent Brownian-bridge diffusion model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ct2mri {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More output; full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors (for clusters and loops)."),
    version: bool | None = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    common.settings.verbose = verbose
    common.settings.quiet = quiet and not verbose


def _register() -> None:
    """Subcommands in the order ``--help`` lists them (their modules import heavy code lazily)."""
    from . import histogram, info, preprocess, report, sources, synthesize, train, translate

    app.command("translate")(translate.translate)
    app.command("report")(report.report)
    app.command("preprocess")(preprocess.preprocess)
    app.command("train")(train.train)
    app.command("histogram")(histogram.histogram)
    app.command("synthesize")(synthesize.synthesize)
    app.command("sources")(sources.sources)
    app.command("info")(info.info)
    from . import evaluate

    app.command("evaluate")(evaluate.evaluate)


_register()


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")
_PLAIN_TYPES = {bool: "", int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH"}


def _plain_metavar(annotation: Any) -> str | None:
    """What help shows for a value of this type: nothing for a flag, TEXT, PATH..., not ``<list[Path]>``."""
    if get_origin(annotation) is Union:
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _plain_metavar(inner[0]) if len(inner) == 1 else None
    if get_origin(annotation) in (tuple, tuple):
        elements = [_plain_metavar(a) for a in get_args(annotation)]
        return " ".join(elements) if all(elements) else None  # type: ignore[arg-type]
    if get_origin(annotation) in (list, list):
        element = _plain_metavar(get_args(annotation)[0])
        return f"{element}..." if element else None
    return _PLAIN_TYPES.get(annotation)


def _command() -> Any:
    """The click command of the application, with plain value names in every command's help."""
    command = typer.main.get_command(app)
    for sub in [command, *getattr(command, "commands", {}).values()]:
        params = list(sub.params)
        try:  # the --help option is made on demand
            params.append(sub.get_help_option(typer.Context(sub)))
        except (AttributeError, TypeError):
            pass
        for param in params:
            descriptor = getattr(param, "type_descriptor", None)
            plain = _plain_metavar(descriptor.annotation) if descriptor is not None else None
            if plain is None:
                continue
            if getattr(param, "param_type_name", "") == "argument":  # its metavar would replace its name
                param.display_type_rich = lambda ctx, plain=plain: plain
            elif param.metavar is None:
                param.metavar = plain
    return command


def global_flags_first(argv: list[str]) -> list[str]:
    """Move ``-q/--quiet`` and ``-v/--verbose`` typed after the subcommand to the front, where
    the application reads them (users put them at the end of a line)."""
    head, tail = argv, []
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    flags = [a for a in head if a in GLOBAL_FLAGS]
    return flags + [a for a in head if a not in GLOBAL_FLAGS] + tail


INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def _say_interrupted() -> None:
    common.console.print(
        "[red]interrupted[/red] (Ctrl-C): what was finished is kept; nothing half-written was left", soft_wrap=True
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    common.settings.verbose = False
    common.settings.quiet = False
    common.settings.said.clear()
    args = global_flags_first(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = _command().main(args=args, prog_name="ct2mri", standalone_mode=False)
    except Ct2mriError as exc:
        if common.settings.verbose:
            traceback.print_exc()
        common.console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _say_interrupted()
        return INTERRUPTED
    except Exception as exc:  # click usage errors and anything unexpected
        exit_code = getattr(exc, "exit_code", None)
        if hasattr(exc, "show") and isinstance(exit_code, int):
            exc.show()  # a usage error: click prints it with the command's usage line
            return exit_code
        if common.settings.verbose:
            traceback.print_exc()
        common.console.print(
            f"[red]error:[/red] {type(exc).__name__}: {exc} (run with --verbose for the traceback)", soft_wrap=True
        )
        return 1
    code = rv if isinstance(rv, int) else 0  # without standalone mode, typer returns an Exit's code
    if code == INTERRUPTED:  # typer's answer to Ctrl-C (SIGINT)
        _say_interrupted()
    return code


def run() -> None:
    code = main()
    if in_multiprocess_job():
        # A process of a torchrun job has written and closed everything by now; leaving without
        # the C++ exit-time destructors keeps a late gloo thread from aborting a finished job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
