"""``accesswatch access-history`` (who looked at one learner's record, and the audit of its
uses) and ``accesswatch transparency`` (the public monthly report with disclosure control)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import ConfigOpt, HomeOpt, console, err, fail, parse_day, settings
from pipeline.outputs.safe_text import line, text

if TYPE_CHECKING:
    from schemas.transparency import AuditEntry


def access_history_cmd(
    uln: Annotated[
        str | None,
        typer.Option(
            "--uln",
            help="The learner's ULN, or - to read it from standard input (so it stays out "
            "of shell history and the process list). It is turned into its pseudonym in "
            "memory and never written, logged or printed.",
        ),
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day YYYY-MM-DD (default: data held from).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last day YYYY-MM-DD (default: last day held).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv, json or html (a letter-ready page).")
    ] = "table",
    audit: Annotated[
        bool, typer.Option("--audit", help="List every use of this command instead.")
    ] = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Every LRS access to one learner's record: when, which organisation (name and type),
    what it did in plain words, the answer, the channel, and whether the organisation was
    later flagged or given a verdict. Each use is appended to <home>/audit/access-history.jsonl
    (who, when, the pseudonym, rows); --audit lists them. Needs the pseudonym key."""
    from pipeline.ingest.deliveries import KeyMismatch
    from pipeline.outputs import access_history as ah

    effective = settings(config, home=home)
    if audit:
        _print_audit(ah.read_audit(effective.home))
        return
    if fmt not in ah.FORMATS:
        fail(f"--format must be one of {', '.join(ah.FORMATS)}; got {fmt!r}")
    if uln is None:
        fail("give --uln ULN or --uln - (or --audit to list the uses of this command)")
    if uln == "-":
        uln = _uln_from_stdin()
    lo = parse_day(date_from, "--from") if date_from else None
    hi = parse_day(date_to, "--to") if date_to else None
    try:
        history = ah.access_history(effective, uln, lo, hi)
    except (ah.NoKeyError, ah.UlnError, KeyMismatch, ValueError) as e:
        fail(str(e))
    ah.record_use(effective.home, history, fmt)
    if fmt != "table":
        print(ah.render(history, fmt), end="" if fmt == "csv" else "\n")
    elif not history.records:
        console.print(line(ah.none_found_message(history)), highlight=False)
    else:
        from rich.table import Table

        table = Table(title=f"accesses {history.date_from} to {history.date_to}")
        for c in ah.COLUMNS:
            table.add_column(c)
        for row in ah.rows_for_table(history):
            table.add_row(*(text(c) for c in row))
        console.print(table)
    if not history.records and fmt != "table":  # the file stays valid; the note goes to stderr
        err.print(line(ah.none_found_message(history)), highlight=False)


def _uln_from_stdin() -> str:
    """The first line of standard input, stripped; nothing else may follow it."""
    import sys

    lines = [x.strip() for x in sys.stdin.read().splitlines() if x.strip()]
    if len(lines) != 1:
        fail(f"--uln - reads one ULN from standard input; got {len(lines)} non-empty lines")
    return lines[0]


def _print_audit(entries: list[AuditEntry]) -> None:
    from rich.table import Table

    table = Table(title="uses of access-history (append-only)")
    for c in ("when (UTC)", "who", "pseudonym", "from", "to", "rows", "output"):
        table.add_column(c)
    for e in entries:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"), text(e.who), e.pseudonym,
            str(e.date_from), str(e.date_to), str(e.rows), e.output,
        )  # fmt: skip
    console.print(table)
    console.print(line(f"{len(entries)} use(s)"), highlight=False)


def transparency_cmd(
    month: Annotated[str, typer.Option("--month", help="The month YYYY-MM.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the CSV files and index.html in.")
    ],
    threshold: Annotated[
        int | None,
        typer.Option("--threshold", min=1, help="Suppress cells under this (default 10)."),
    ] = None,
    rounding: Annotated[
        int | None,
        typer.Option("--rounding", min=1, help="Round counts to a multiple of this (default 5)."),
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The public transparency report of a month: aggregate tables (accesses by
    organisation type, channel and operation; people looked up by age band and region;
    organisations flagged by rule family and verdict; suspensions and revocations; NPD
    queries by agreement purpose) with small cells suppressed, secondary suppression so
    none can be worked out from the totals, and counts rounded. Writes one CSV per table
    and one self-contained HTML page with charts."""
    from pipeline.outputs.transparency import parse_month, write_transparency
    from schemas.transparency import SdcSettings

    effective = settings(config, home=home)
    try:
        first = parse_month(month)
    except ValueError as e:
        fail(str(e))
    overrides = {k: v for k, v in (("threshold", threshold), ("rounding_base", rounding)) if v}
    sdc = SdcSettings(**overrides)
    if not out.is_dir():
        try:
            out.mkdir(parents=True)
        except OSError as e:
            fail(f"cannot write {out}: {e.strerror or e}")
    written = write_transparency(effective, first, out, sdc)
    for path in written:
        console.print(line(f"wrote {path}"), highlight=False, soft_wrap=True)
