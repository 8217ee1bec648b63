"""``accesswatch report``: a day's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import ConfigOpt, DayOpt, HomeOpt, console, fail, parse_day, settings
from pipeline.outputs.safe_text import line
from schemas.detection import REPORT_TOP


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
    ] = REPORT_TOP,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write the self-contained HTML report of a day: ranked list, a card per suspect
    with reasons and charts, data quality and run metadata. Opens offline."""
    from pipeline.outputs.report import ReportPathError, stated_hash, write_report
    from pipeline.rank.listing import NotProfiledError

    effective = settings(config, home=home)
    try:
        path = write_report(effective, parse_day(day), out, top=top)
    except (NotProfiledError, ReportPathError) as e:
        fail(str(e))
    digest = stated_hash(path.read_text(encoding="utf-8"))
    console.print(line(f"wrote {path} (body sha256 {digest})"), highlight=False, soft_wrap=True)
