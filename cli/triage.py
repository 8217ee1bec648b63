"""``accesswatch triage``: record an analyst's verdict on an organisation, or list them."""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.options import ConfigOpt, console, err, fail, lookup_message, parse_day, settings
from pipeline.outputs.safe_text import line, markup, text
from schemas.triage import TriageDecision, Verdict

if TYPE_CHECKING:
    from schemas.settings import Settings

TriageHomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="State folder (lake, warehouse, triage). Env ACCESSWATCH_HOME."),
]


class ListFormat(StrEnum):
    table = "table"
    json = "json"


VERDICT_STYLE = {"misuse": "bold red", "legitimate": "green", "needs_info": "yellow",
                 "data_issue": "magenta"}  # fmt: skip
"""Rich style of each verdict (as in cli/scoring.py's TRIAGE_STYLE)."""


def decisions_table(
    rows: list[TriageDecision], *, title: str | None = None, show_org: bool = True
) -> Table:
    """``rows`` (analysts' decisions) as a table, one row each, in the order given: used
    by ``triage --list`` and by ``explain``'s verdict history (``show_org=False``)."""
    table = Table(title=title)
    for col in ("decided (UTC)", "org", "verdict", "analyst", "list day", "until", "score then",
                "rules then", "note"):  # fmt: skip
        if show_org or col != "org":
            table.add_column(col, overflow="fold")
    for d in rows:
        table.add_row(
            f"{d.decided_at:%Y-%m-%d %H:%M:%S}",
            *([text(d.org_id)] if show_org else []),
            text(d.verdict.value, VERDICT_STYLE.get(d.verdict.value, "")),
            text(d.analyst),
            str(d.day or "-"),
            str(d.until or "-"),
            "-" if d.score_at_decision is None else f"{d.score_at_decision:.2f}",
            text(", ".join(d.rules_at_decision) or "-"),
            text(d.note, newlines=True),
        )
    return table


def triage_cmd(
    org: Annotated[
        str | None,
        typer.Argument(metavar="ORG", help="Organisation id, e.g. ORG00050.", show_default=False),
    ] = None,
    verdict: Annotated[
        Verdict | None,
        typer.Option("--verdict", help="misuse, legitimate, needs_info or data_issue."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept verbatim).")] = None,
    analyst: Annotated[str | None, typer.Option("--analyst", help="Who decided.")] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last list day YYYY-MM-DD the verdict applies to."),
    ] = None,
    day: Annotated[
        str | None,
        typer.Option("--day", help="The ranked-list day it is made against (default: the latest)."),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="Show the recorded decisions, oldest first.")
    ] = False,
    org_filter: Annotated[
        str | None, typer.Option("--org", help="With --list: one organisation only.")
    ] = None,
    fmt: Annotated[
        ListFormat, typer.Option("--format", help="With --list: table or json.")
    ] = ListFormat.table,
    home: TriageHomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Record an analyst's verdict on an organisation, or list the verdicts.

    Verdicts are appended, never changed: a new one supersedes the last. misuse pins the
    organisation at the top of the list; legitimate hides it until --until or until its
    behaviour changes (a new rule fires, or its score rises well above the level at the
    verdict), when it comes back as "returned"; needs_info and data_issue are shown as
    its status. Recording never waits for a running nightly or backfill job.
    """
    effective = settings(config, home=home)
    if list_:
        if any(x is not None for x in (verdict, note, analyst, until, day)):
            fail(
                "--list shows decisions; --verdict, --note, --analyst, --until and --day record one"
            )
        if org and org_filter and org != org_filter:
            fail(f"give one organisation, not {org!r} and --org {org_filter!r}")
        _list(effective, org_filter or org, fmt)
        return
    if org is None:
        fail("give ORG with --verdict, --note and --analyst, or --list [--org ORG]")
    missing = [
        flag
        for flag, value in (("--verdict", verdict), ("--note", note), ("--analyst", analyst))
        if value is None
    ]
    if missing:
        fail(f"recording a verdict needs {', '.join(missing)}")
    assert verdict is not None and note is not None and analyst is not None
    _record(
        effective,
        org,
        verdict,
        note,
        analyst,
        None if until is None else parse_day(until, "--until"),
        None if day is None else parse_day(day, "--day"),
    )


def _list(settings: Settings, org: str | None, fmt: ListFormat) -> None:
    from pipeline.triage.verdicts import TriageFileError, history

    try:
        rows = history(settings, org)
    except TriageFileError as e:
        fail(str(e))
    if fmt is ListFormat.json:
        print(json.dumps([d.model_dump(mode="json") for d in rows], indent=2))
        return
    if not rows:
        console.print(line(f"no verdicts{f' on {org}' if org else ''} in {settings.home}"))
        return
    console.print(decisions_table(rows))


def _record(
    settings: Settings,
    org: str,
    verdict: Verdict,
    note: str,
    analyst: str,
    until: date | None,
    day: date | None,
) -> None:
    from pydantic import ValidationError

    from pipeline.triage.verdicts import record

    try:
        d = record(settings, org, verdict, note, analyst, until=until, day=day)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in p['loc']) or 'decision'}: {p['msg']}" for p in e.errors()
        )
        fail(f"invalid verdict: {problems}")
    except LookupError as e:  # an unknown organisation, or a day not detected yet
        fail(lookup_message(e))
    busy = settings.warehouse.exists() and d.score_at_decision is None
    if d.day is not None:
        against = f"the list of {d.day}"
    else:
        against = "the latest list" if busy else "no ranked list yet"
    console.print(
        f"recorded {markup(d.decision_id)}: {markup(d.org_id)} [bold]{d.verdict.value}[/] by "
        f"{markup(d.analyst)}, against {against}" + (f", until {d.until}" if d.until else ""),
        highlight=False,
    )
    if d.score_at_decision is not None:
        rules = ", ".join(d.rules_at_decision) or "none"
        console.print(
            line(f"score at the verdict {d.score_at_decision:.2f}; rules {rules}"),
            highlight=False,
        )
    elif busy:
        err.print(
            "note: no score at the verdict was recorded (the warehouse was busy, or the org "
            "had no score that day); it is read from that day's results when the list is read",
            highlight=False,
        )
