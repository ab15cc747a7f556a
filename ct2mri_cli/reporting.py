"""Messages to the user: one stderr console, ``--quiet``/``--verbose`` state, warnings.

Core modules report through here (never print directly), so the CLI's verbosity applies to
them and Python users can silence them with ``settings.quiet = True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console


@dataclass
class Settings:
    verbose: bool = False
    quiet: bool = False
    said: set[str] = field(default_factory=set)  # notices already shown in this run


settings = Settings()
console = Console(stderr=True, highlight=False)


def info(message: str) -> None:
    """Print a status line unless ``--quiet``."""
    if not settings.quiet:
        console.print(message)


def warn(message: str) -> None:
    """Print a warning; warnings are shown even with ``--quiet``."""
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def notice(message: str) -> None:
    """A warning about the run rather than the data: shown once per run, not with ``--quiet``."""
    if not settings.quiet and message not in settings.said:
        warn(message)
    settings.said.add(message)
