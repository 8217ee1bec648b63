"""Who looked at my record: one learner's LRS accesses, told in plain words, and the audit
trail of every time somebody asked.

The learner's ULN is checked (:mod:`pipeline.ingest.uln`) and turned into the keyed
pseudonym that ingest stored (:func:`pipeline.ingest.pseudonymise.pseudonym`), in memory:
the ULN is never written, logged or printed. The lake is then read for that pseudonym
only, so no other learner's row is ever read into the answer. Each access names the
organisation (from the register), the operation and the service's answer in plain words,
the channel, and whether the organisation was later flagged (in the top
``ranking.flag_top`` of an org-level ranked list on or after the access) or given a triage
verdict.

NPD events carry no learner-level identifier (see ``schemas/events.py``): an NPD extract
cannot be attributed to one learner, so the history says how many identifying NPD extracts
(items of identifiability 1-2) were made in the period instead of listing any as the
learner's.

Every use is appended to ``<home>/audit/access-history.jsonl`` (:class:`AuditEntry`: who,
when, which pseudonym, how many rows); nothing in this module rewrites or deletes it.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from detectors.rules import load_config
from pipeline.ingest.deliveries import check_key
from pipeline.ingest.pseudonymise import pseudonym
from pipeline.ingest.uln import PLACEHOLDER_ULN, check_digit
from pipeline.outputs import sql
from pipeline.outputs.report import _environment, latest_of
from pipeline.outputs.safe_text import csv_cell, visible
from pipeline.profile import define_macros
from pipeline.store.lake import fsync_dir, lake_dir, lake_glob
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import history as triage_history
from schemas.detection import DetectionConfig
from schemas.settings import Settings
from schemas.transparency import AccessRecord, AuditEntry

AUDIT_FILE = Path("audit") / "access-history.jsonl"
TEMPLATE = "access_history.html.j2"
FORMATS = ("table", "csv", "json", "html")

RESULTS = {
    "WSRC0001": "no record was found",
    "WSRC0002": "too many possible records: none was returned",
    "WSRC0003": "a possible match was returned",
    "WSRC0004": "your record was returned",
    "WSRC0022": "your linked record was returned",
    "WSEC0206": "refused: you chose not to share your learning record",
    "WSEC0208": "refused: you could not be verified",
}
"""What each LRS response code meant for the learner."""


class NoKeyError(ValueError):
    """No pseudonym key is configured: the learner's pseudonym cannot be computed."""


class UlnError(ValueError):
    """The ULN given is not a well-formed ULN; the message names what is wrong."""


class NoAccessesError(LookupError):
    """No access to the learner's record was found in the period (the message says which
    period and from when data is held)."""


def uln_problem(uln: str) -> str | None:
    """What is wrong with ``uln`` as a ULN, in words, or None when it is valid. The message
    never repeats the ULN itself."""
    if len(uln) != 10:
        return f"a ULN has 10 digits, this has {len(uln)} characters"
    bad = [i + 1 for i, ch in enumerate(uln) if not (ch.isascii() and ch.isdigit())]
    if bad:
        where = ", ".join(str(i) for i in bad)
        return f"a ULN is digits only; position(s) {where} are not digits 0-9"
    if uln == PLACEHOLDER_ULN:
        return "9999999999 is the placeholder used in returns, not a learner's number"
    digit = check_digit(uln[:9])
    if digit is None:
        return "no learner number starts with these nine digits (their check sum is 0)"
    if int(uln[9]) != digit:
        return "the last digit (the check digit) does not match the first nine: a typing error?"
    return None


def learner_pseudonym(settings: Settings, uln: str) -> str:
    """The pseudonym ingest stored for ``uln``, computed in memory.

    Raises :class:`NoKeyError` without a key and :class:`UlnError` for a malformed ULN.
    """
    if settings.pseudonym_key is None:
        raise NoKeyError(
            "no pseudonym key: set ACCESSWATCH_PSEUDONYM_KEY (or pseudonym_key in the "
            "settings file) to the key the lake was built with"
        )
    uln = uln.strip()
    problem = uln_problem(uln)
    if problem is not None:
        raise UlnError(f"not a valid ULN: {problem}")
    return pseudonym(settings.pseudonym_key.get_secret_value().encode(), uln, "uln")


def held_range(home: Path) -> tuple[date, date] | None:
    """The first and last event day held in the lake (LRS and NPD partitions), or None."""
    days: list[date] = []
    for source in ("lrs", "npd"):
        folder = lake_dir(home, source)
        if folder.is_dir():
            for p in folder.glob("event_date=*"):
                if any(p.glob("*.parquet")):
                    days.append(date.fromisoformat(p.name.split("=", 1)[1]))
    return (min(days), max(days)) if days else None


@dataclass(frozen=True)
class History:
    """One learner's accesses in a period; ``pseudonym`` is what the audit records."""

    pseudonym: str
    date_from: date
    date_to: date
    held_from: date | None
    held_to: date | None
    records: list[AccessRecord]
    npd_identifying_extracts: int = 0
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def warehouse_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The names of the warehouse's tables (a home scored by no detect has no ``suspects``)."""
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name <> 'temp'")
    return {r[0] for r in rows.fetchall()}


def _organisations(settings: Settings) -> tuple[dict[str, tuple[str, str, str]], set[str]]:
    """Register rows by UKPRN (org_id, name, type) and the warehouse's table names."""
    with connect(settings, read_only=True) as con:
        tables = warehouse_tables(con)
        if settings.pseudonym_key is not None and "key_fingerprint" in tables:
            check_key(con, settings.pseudonym_key.get_secret_value().encode())
        rows = con.execute(
            "SELECT ukprn, org_id, name, org_type FROM organisations WHERE ukprn IS NOT NULL"
        ).fetchall()
    return {u: (o, n, t) for u, o, n, t in rows}, tables


def _first_flagged(
    settings: Settings, orgs: Iterable[str], cfg: DetectionConfig
) -> dict[str, list[date]]:
    """The days each org was flagged (in the top ``flag_top`` of the org-level list)."""
    wanted = pl.DataFrame({"org_id": sorted(set(orgs))}, schema={"org_id": pl.String})
    with connect(settings, read_only=True) as con:
        con.register("history_orgs", wanted)
        rows = con.execute(
            "SELECT org_id, day FROM suspects WHERE level = 'org' AND rank <= $top "
            "AND org_id IN (SELECT org_id FROM history_orgs) ORDER BY org_id, day",
            {"top": cfg.ranking.flag_top},
        ).fetchall()
    out: dict[str, list[date]] = {}
    for org, day in rows:
        out.setdefault(org, []).append(day)
    return out


def access_history(
    settings: Settings,
    uln: str,
    date_from: date | None = None,
    date_to: date | None = None,
    config: DetectionConfig | None = None,
) -> History:
    """Every LRS access to the learner ``uln`` from ``date_from`` to ``date_to`` (default:
    all the data held). Raises :class:`NoKeyError`, :class:`UlnError`, ``ValueError`` for a
    reversed period and :class:`pipeline.ingest.deliveries.KeyMismatch` when the home was
    built with another key; an empty result is a :class:`History` with no records."""
    pid = learner_pseudonym(settings, uln)
    held = held_range(settings.home)
    lo = date_from or (held[0] if held else date.today())
    hi = date_to or (held[1] if held else date.today())
    if hi < lo:
        raise ValueError(f"--from {lo} is after --to {hi}")
    register, tables = _organisations(settings)
    records: list[AccessRecord] = []
    npd_extracts = 0
    if held is not None:
        with connect(settings, read_only=True) as con:
            define_macros(con)
            params = {"pid": pid, "date_from": lo, "date_to": hi}
            if any(lake_dir(settings.home, "lrs").glob("*/*.parquet")):
                frame = con.sql(
                    sql("access_history_lrs"),
                    params={**params, "files": lake_glob(settings.home, "lrs")},
                ).pl()
            else:
                frame = pl.DataFrame()
            if any(lake_dir(settings.home, "npd").glob("*/*.parquet")):
                got = con.execute(
                    "SELECT count(DISTINCT event_id) FROM read_parquet($files, "
                    "hive_partitioning = true, union_by_name = true) WHERE "
                    "min_identifiability <= 2 AND CAST(event_date AS DATE) BETWEEN $lo AND $hi",
                    {"files": lake_glob(settings.home, "npd"), "lo": lo, "hi": hi},
                ).fetchone()
                npd_extracts = int(got[0]) if got else 0
        cfg = config or load_config()
        rows = frame.to_dicts()
        org_of = {
            r["ukprn"]: register.get(r["ukprn"], (f"UKPRN-{r['ukprn']}", "", "unknown"))
            for r in rows
        }
        org_ids = {o for o, _, _ in org_of.values()}
        flagged = _first_flagged(settings, org_ids, cfg) if "suspects" in tables else {}
        verdicts = latest_of(triage_history(settings), org_ids)
        zone = ZoneInfo(settings.timezone)
        for r in rows:
            org_id, name, org_type = org_of[r["ukprn"]]
            when: datetime = r["occurred_at"]
            day = when.astimezone(zone).date()  # the event's day, as the lake's partitions
            later = next((d for d in flagged.get(org_id, []) if d >= day), None)
            v = verdicts.get(org_id)
            records.append(
                AccessRecord(
                    reference=r["event_id"],
                    occurred_at=when.astimezone(UTC),
                    source="lrs",
                    org_id=org_id,
                    org_name=name or f"an organisation not in the register (UKPRN {r['ukprn']})",
                    org_type=org_type.replace("_", " "),
                    operation=r["plain_operation"],
                    operation_name=r["operation"],
                    result=RESULTS.get(r["response_code"], f"answer code {r['response_code']}"),
                    channel=r["channel"],
                    later_flagged=later,
                    verdict=v.verdict if v else None,
                    verdict_on=v.decided_at.date() if v else None,
                )
            )
    return History(
        pseudonym=pid,
        date_from=lo,
        date_to=hi,
        held_from=held[0] if held else None,
        held_to=held[1] if held else None,
        records=records,
        npd_identifying_extracts=npd_extracts,
    )


def none_found_message(h: History) -> str:
    held = f"data held from {h.held_from}" if h.held_from else "no data held yet"
    return f"no accesses found between {h.date_from} and {h.date_to} ({held})"


# --- The audit file -----------------------------------------------------------------------


def audit_path(home: Path) -> Path:
    return home / AUDIT_FILE


def record_use(home: Path, h: History, output: str, who: str | None = None) -> AuditEntry:
    """Append one :class:`AuditEntry` for ``h`` (the pseudonym, never the ULN) to the audit
    file, flushed to disk; the file is only ever opened for appending."""
    entry = AuditEntry(
        at=datetime.now(UTC),
        who=who or getpass.getuser(),
        pseudonym=h.pseudonym,
        date_from=h.date_from,
        date_to=h.date_to,
        rows=len(h.records),
        output=output,
    )
    path = audit_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (entry.model_dump_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    return entry


def read_audit(home: Path) -> list[AuditEntry]:
    """Every audit entry, oldest first (empty when nobody has asked yet)."""
    path = audit_path(home)
    if not path.is_file():
        return []
    return [
        AuditEntry.model_validate_json(ln) for ln in path.read_text().splitlines() if ln.strip()
    ]


# --- Output forms -------------------------------------------------------------------------

COLUMNS = ("when", "organisation", "type", "what they did", "answer", "channel",
           "later flagged", "verdict", "reference")  # fmt: skip


def _cells(r: AccessRecord) -> list[str]:
    return [
        r.occurred_at.strftime("%Y-%m-%d %H:%M UTC"),
        r.org_name,
        r.org_type,
        r.operation,
        r.result,
        r.channel,
        str(r.later_flagged) if r.later_flagged else "no",
        f"{r.verdict} ({r.verdict_on})" if r.verdict else "none",
        r.reference,
    ]


def rows_for_table(h: History) -> list[list[str]]:
    return [[visible(c) for c in _cells(r)] for r in h.records]


def to_csv(h: History) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for r in h.records:
        w.writerow([csv_cell(visible(c)) for c in _cells(r)])
    return out.getvalue()


def to_json(h: History) -> str:
    """ASCII JSON (``\\uXXXX`` escapes): the period, the held range and the accesses."""
    return json.dumps(
        {
            "from": h.date_from.isoformat(),
            "to": h.date_to.isoformat(),
            "data_held_from": h.held_from.isoformat() if h.held_from else None,
            "npd_identifying_extracts": h.npd_identifying_extracts,
            "accesses": [r.model_dump(mode="json") for r in h.records],
        },
        indent=2,
    )


def to_html(h: History) -> str:
    """A self-contained, letter-ready page (no script, nothing loaded: the report's CSP)."""
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            h=h,
            columns=COLUMNS,
            rows=[_cells(r) for r in h.records],
            none_found=none_found_message(h),
            generated=h.generated_at.strftime("%d %B %Y"),
        )
    )


def render(h: History, output: str) -> str:
    """``h`` as csv, json or html text."""
    if output == "csv":
        return to_csv(h)
    if output == "json":
        return to_json(h)
    if output == "html":
        return to_html(h)
    raise ValueError(f"no text form {output!r}; expected csv, json or html")
