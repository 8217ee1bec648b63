"""``accesswatch profile``, ``detect``, ``suspects`` and ``explain``: a day's profiles, its
ranked list, and why an organisation is on it."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.options import (
    ConfigOpt,
    DayOpt,
    HomeOpt,
    LandingOpt,
    WaitOpt,
    console,
    fail,
    lookup_message,
    num,
    parse_day,
    settings,
)
from cli.triage import decisions_table
from pipeline.outputs.safe_text import csv_cell, line, markup, text, visible
from schemas.detection import LIST_TOP

if TYPE_CHECKING:
    from schemas.detection import Suspect
    from schemas.triage import TriageDecision


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class By(StrEnum):
    org = "org"
    account = "account"


def profile_cmd(
    day: DayOpt,
    wait: WaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Build every organisation's usage profile (1/7/28-day features) for one day.

    A day with no events in the lake and no delivery committed has nothing to profile.
    """
    from pipeline.profile.build import build_profiles
    from pipeline.store.warehouse import scorable

    effective = settings(config, home=home, landing=landing)
    when = parse_day(day)
    if not scorable(effective, when):
        console.print(f"no events on {when}: nothing to score", highlight=False)
        return
    report = build_profiles(effective, when, lock_wait_seconds=wait)
    console.print(
        f"{report.day}: {report.organisations:,} organisations "
        f"({report.active_organisations:,} active), {report.accounts:,} accounts, "
        f"{report.events_today:,} events, {report.seconds:.1f} s"
    )


def detect_cmd(
    day: DayOpt,
    wait: WaitOpt = 0.0,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score every organisation and account of a profiled day; store scores and reasons.

    A day with no events in the lake and no delivery committed gets no ranked list.
    """
    from pipeline.rank.detect import NoEventsError, detect
    from pipeline.rank.listing import NotProfiledError

    effective = settings(config, home=home, landing=landing)
    try:
        report = detect(effective, parse_day(day), lock_wait_seconds=wait)
    except NoEventsError as e:
        console.print(str(e), highlight=False)
        return
    except NotProfiledError as e:
        fail(str(e))
    console.print(
        f"{report.day}: scored {report.organisations:,} organisations and "
        f"{report.accounts:,} accounts; {report.rule_hits:,} rule hits "
        f"({report.hard_facts:,} hard facts); {report.suspects:,} suspects; "
        f"{report.seconds:.1f} s"
    )


def suspects_cmd(
    day: DayOpt,
    top: Annotated[int, typer.Option("--top", min=1, help="How many to list.")] = LIST_TOP,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
    by: Annotated[By, typer.Option("--by", help="Rank organisations or accounts.")] = By.org,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print the ranked list of suspect organisations (or accounts) as of a day."""
    from pipeline.rank.listing import NotProfiledError, suspects
    from pipeline.triage.verdicts import TriageFileError

    effective = settings(config, home=home)
    try:
        rows = suspects(effective, parse_day(day), top=top, by=by.value)
    except (NotProfiledError, TriageFileError) as e:
        fail(str(e))
    if fmt is Format.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    elif fmt is Format.csv:
        _print_csv(rows)
    else:
        print_suspects(rows, by)


def _print_csv(rows: list[Suspect]) -> None:
    import csv
    import sys

    writer = csv.writer(sys.stdout)
    writer.writerow(
        ["rank", "org_id", "org_name", "org_type", "user_name", "score", "rules", "reasons",
         "accounts", "first_flagged", "triage_status"]
    )  # fmt: skip
    for r in rows:
        writer.writerow(
            [
                r.rank,
                _cell(r.org_id),
                _cell(r.org_name),
                _cell(r.org_type),
                _cell(r.user_name or ""),
                f"{r.score:.1f}",
                _cell(";".join(r.rules)),
                _cell(" | ".join(x.text for x in r.reasons)),
                _cell(";".join(f"{a.user_name}:{a.share:.0%}" for a in r.accounts)),
                r.first_flagged.isoformat(),
                _cell(r.triage_status),
            ]
        )


def _cell(value: str) -> str:
    """A text cell of the CSV: formulas neutralised, and controls shown as escapes (the
    CSV may be read on a terminal). Rank, score and day are ours: numbers and dates."""
    return csv_cell(visible(value))


TRIAGE_STYLE = {
    "new": "bold cyan",
    "recurring": "dim",
    "misuse": "bold red",
    "returned": "bold yellow",
    "needs_info": "yellow",
    "data_issue": "magenta",
    "legitimate": "green",
}


def print_suspects(rows: list[Suspect], by: By) -> None:
    table = Table(show_lines=True)
    for col in ("#", "organisation", "score", "rules", "reasons", "accounts", "flagged / triage"):
        table.add_column(col, overflow="fold")
    for r in rows:
        who = f"{markup(r.org_id)} {markup(r.org_name)}\n[dim]{markup(r.org_type)}[/]"
        if by is By.account and r.user_name:
            who += f"\naccount [bold]{markup(r.user_name)}[/]"
        status = f"[{TRIAGE_STYLE.get(r.triage_status, '')}]{markup(r.triage_status)}[/]"
        if r.triage_detail:
            status += f"\n[dim]{markup(r.triage_detail)}[/]"
        table.add_row(
            f"{r.rank}\npinned" if r.pinned else str(r.rank),
            who,
            f"{r.score:.0f}",
            "\n".join(markup(x) for x in r.rules) or "-",
            "\n".join(f"- {markup(x.text)}" for x in r.reasons) or "-",
            "\n".join(f"{markup(a.user_name)} {a.share:.0%}" for a in r.accounts) or "-",
            f"{r.first_flagged}\n{status}",
        )
    console.print(table)


def explain_cmd(
    org: Annotated[str, typer.Argument(help="Organisation id, e.g. ORG00050.")],
    day: DayOpt,
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Show why an organisation scored as it did: features vs peers, timeline, evidence,
    and the legitimate explanations in force (rules.toml [[explanations]])."""
    from pipeline.rank.story import explain
    from pipeline.triage.verdicts import TriageFileError

    effective = settings(config, home=home)
    try:
        ex = explain(effective, org, parse_day(day))
    except LookupError as e:  # an unknown organisation, or a day not detected yet
        fail(lookup_message(e))
    except TriageFileError as e:
        fail(str(e))
    if fmt is Format.json:  # json.dumps writes every non-ASCII character as \uXXXX
        print(json.dumps(ex.model_dump(mode="json"), indent=2))
        return
    rank = f"rank {ex.rank}" if ex.rank else "unranked"
    console.print(
        f"[bold]{markup(ex.org_id)} {markup(ex.org_name)}[/] ({markup(ex.org_type)}, peers: "
        f"{markup(ex.peer_group)}) on "
        f"{ex.day}: score {ex.score:.0f}, {rank}",
        highlight=False,
    )
    if ex.triage_status:
        detail = f" - {ex.triage_detail}" if ex.triage_detail else ""
        console.print(
            f"triage: [{TRIAGE_STYLE.get(ex.triage_status, '')}]{markup(ex.triage_status)}[/]"
            f"{markup(detail)}",
            highlight=False,
        )
    for reason in ex.reasons:
        console.print(line("  - ", reason.text), highlight=False)
    for explained in ex.explanations:
        console.print(line("  ", ("explained", "green"), " ", explained), highlight=False)
    features = Table(title="features against peers")
    for col in ("feature", "value", "peer median", "peer z", "meaning"):
        features.add_column(col, overflow="fold")
    for f in ex.features:
        features.add_row(
            text(f.feature), num(f.value), num(f.peer_median), num(f.peer_z), text(f.text)
        )
    console.print(features)
    timeline = " ".join(f"{p.day:%d %b}:{p.score:.0f}" for p in ex.timeline)
    console.print(f"[bold]score timeline[/] {timeline}", highlight=False)
    for hit in ex.rule_hits:
        console.print(
            f"[bold]{markup(hit.rule_id)}[/] ({markup(hit.severity)}) "
            f"{markup(hit.message or hit.description)}",
            highlight=False,
        )
        counts = ", ".join(f"{k} {v:,.0f}" for k, v in hit.evidence.counts.items())
        if counts:
            console.print(line(f"    counts: {counts}"), highlight=False)
        for ex_event in hit.evidence.examples:
            console.print(
                line(
                    f"    {ex_event.occurred_at:%Y-%m-%d %H:%M} {ex_event.user_name} "
                    f"{ex_event.operation} learner {ex_event.learner_pid or '-'} "
                    f"(event {ex_event.event_id})"
                ),
                highlight=False,
            )
    _print_verdicts(ex.verdicts)


def _print_verdicts(verdicts: list[TriageDecision]) -> None:
    """The verdict history of ``explain``: every decision, oldest first."""
    if not verdicts:
        console.print("[bold]verdict history[/] none recorded", highlight=False)
        return
    console.print(decisions_table(verdicts, title="verdict history (oldest first)", show_org=False))
