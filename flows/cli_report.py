"""The `accesswatch report` command (registered on the main app by flows/cli.py)."""

# No `from __future__ import annotations`: typer reads the option annotations, which name
# helpers imported inside register() (flows.cli imports this module while it is loading).
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    # flows.cli is complete up to the call of this function: its helpers can be imported.
    from flows.cli import ConfigOpt, DayOpt, HomeOpt, _fail, _parse_day, _settings, console
    from pipeline.outputs.safe_text import line

    @app.command("report")
    def report_cmd(
        day: DayOpt,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="HTML file to write, or an existing folder to write <day>.html in "
                "(default: <home>/reports/<day>.html). Its folder must exist.",
            ),
        ] = None,
        top: Annotated[
            int, typer.Option("--top", min=1, help="Suspects in the list and as cards.")
        ] = 25,
        home: HomeOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Write the self-contained HTML report of a day: ranked list, a card per suspect
        with reasons and charts, data quality and run metadata. Opens offline."""
        from pipeline.outputs.report import ReportPathError, stated_hash, write_report
        from pipeline.rank.listing import NotProfiledError

        settings = _settings(config, home=home)
        try:
            path = write_report(settings, _parse_day(day), out, top=top)
        except (NotProfiledError, ReportPathError) as e:
            _fail(str(e))
            return
        digest = stated_hash(path.read_text(encoding="utf-8"))
        console.print(line(f"wrote {path} (body sha256 {digest})"), highlight=False, soft_wrap=True)
