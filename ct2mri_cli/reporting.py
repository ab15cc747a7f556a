"""Messages to the user: one stderr console, ``--quiet``/``--verbose`` state, warnings.

Core modules report through here (never print directly), so the CLI's verbosity applies to
them and Python users can silence them with ``settings.quiet = True``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console


@dataclass
class Settings:
    verbose: bool = False
    quiet: bool = False


settings = Settings()
console = Console(stderr=True, highlight=False)


def info(message: str) -> None:
    """Print a status line unless ``--quiet``."""
    if not settings.quiet:
        console.print(message)


def warn(message: str) -> None:
    """Print a warning; warnings are shown even with ``--quiet``."""
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
