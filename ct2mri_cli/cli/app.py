"""Typer application: global options, subcommand registration and error reporting."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Optional

import typer

from .. import __version__
from ..errors import Ct2mriError
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
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    common.settings.verbose = verbose
    common.settings.quiet = quiet and not verbose


def _register() -> None:
    """Subcommands in the order ``--help`` lists them (their modules import heavy code lazily)."""
    from . import histogram, info, preprocess, sources, synthesize, train, translate

    app.command("translate")(translate.translate)
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


def global_flags_first(argv: list[str]) -> list[str]:
    """Move ``-q/--quiet`` and ``-v/--verbose`` typed after the subcommand to the front, where
    the application reads them (users put them at the end of a line)."""
    head, tail = argv, []
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    flags = [a for a in head if a in GLOBAL_FLAGS]
    return flags + [a for a in head if a not in GLOBAL_FLAGS] + tail


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    common.settings.verbose = False
    common.settings.quiet = False
    common.settings.said.clear()
    args = global_flags_first(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = app(args=args, prog_name="ct2mri", standalone_mode=False)
    except Ct2mriError as exc:
        if common.settings.verbose:
            traceback.print_exc()
        common.console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        common.console.print("[red]aborted[/red]")
        return 130
    except Exception as exc:  # click usage errors and anything unexpected
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a usage error: click prints it with the command's usage line
            return exc.exit_code
        if common.settings.verbose:
            traceback.print_exc()
        common.console.print(
            f"[red]error:[/red] {type(exc).__name__}: {exc} (run with --verbose for the traceback)", soft_wrap=True
        )
        return 1
    return rv if isinstance(rv, int) else 0


def run() -> None:
    code = main()
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        # A process of a torchrun job has written and closed everything by now; leaving without
        # the C++ exit-time destructors keeps a late gloo thread from aborting a finished job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
