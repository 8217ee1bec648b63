"""The `accesswatch triage` command (registered on the main app by flows/cli.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
