"""What every command shares: the ``--home``/``--landing``/``--config`` options, settings,
day parsing, the one-line error and the consoles.

Every data string printed goes through pipeline/outputs/safe_text.py: ``text``/``line`` (never
parsed as markup) or ``markup`` (escaped) - names, file names and notes may hold "[/]",
ESC sequences or bidi overrides.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from pipeline.outputs.safe_text import console as make_console
from pipeline.outputs.safe_text import line, text
from schemas.settings import Settings, load_settings

console = make_console()
err = make_console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="State folder (lake, quarantine, warehouse). Env ACCESSWATCH_HOME."
    ),
]
LandingOpt = Annotated[
    Path | None,
    typer.Option("--landing", help="Raw delivery folder. Env ACCESSWATCH_LANDING."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file. Env ACCESSWATCH_CONFIG."),
]
DayOpt = Annotated[str, typer.Option("--day", help="Day YYYY-MM-DD (Europe/London).")]
WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, help="Seconds to wait when another job holds the home."),
]


def fail(message: str, code: int = 2, *, soft_wrap: bool = True) -> NoReturn:
    """Print ``message`` (plain text, never markup: it may quote data) and exit.
    ``soft_wrap`` (the default) keeps it unwrapped, so a long path in it is never broken
    across lines at the console's width."""
    err.print(line(("error:", "bold red"), " ", text(message, newlines=True)), soft_wrap=soft_wrap)
    raise typer.Exit(code)


def settings(config: Path | None, *, soft_wrap: bool = False, **overrides: object) -> Settings:
    """The effective settings (flags in ``overrides`` > env > ``config`` > defaults), or exit 2
    naming what is wrong."""
    try:
        return load_settings(config, **overrides)
    except Exception as e:  # pydantic ValidationError or a missing file: both user errors
        fail(f"invalid settings: {e}", soft_wrap=soft_wrap)


def parse_day(value: str, flag: str | None = None, *, soft_wrap: bool = False) -> date:
    """``value`` (YYYY-MM-DD) as a date, or exit 2; ``flag`` names the option in the error."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        prefix = f"{flag}: " if flag else ""
        fail(f"{prefix}not a date (YYYY-MM-DD): {value!r}", soft_wrap=soft_wrap)


def lookup_message(e: LookupError) -> str:
    """The message of an unknown organisation or a day not detected yet (``str()`` of a
    KeyError would quote it)."""
    return str(e.args[0]) if e.args else str(e)


def write_error(e: OSError, path: Path | str) -> str:
    """One line for an output path that cannot be written (missing folder, read-only,
    full disk), naming the path."""
    return f"cannot write {e.filename or path}: {e.strerror or e}"


def num(value: float | None) -> str:
    """A figure of a table: three significant digits, ``-`` for none."""
    return "-" if value is None else f"{value:,.3g}"
