"""``accesswatch config``: inspect settings."""

from __future__ import annotations

import json

import typer

from cli.options import ConfigOpt, HomeOpt, LandingOpt, console, settings

config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@config_app.command("show")
def config_show(home: HomeOpt = None, landing: LandingOpt = None, config: ConfigOpt = None) -> None:
    """Print the effective settings (flags > env > TOML file > defaults), secrets masked."""
    effective = settings(config, home=home, landing=landing)
    console.print_json(json.dumps(effective.masked()))
