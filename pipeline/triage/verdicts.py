"""Triage: analysts' verdicts, stored append-only, and how they change the ranked list.

Storage
-------
One JSON file per decision, ``<home>/triage/<decision_id>.json``, never changed or deleted.
A decision is written to a private temporary file, flushed to disk, then published with
``os.link`` (which refuses an existing name) and the folder is flushed too, so a reader sees
a whole file or none, and two analysts recording at the same moment - in any number of
processes - never touch each other's files. Nothing here takes the home's writer lock or
opens the warehouse for writing, so a nightly or backfill job that holds them for hours
does not block a verdict. ``record`` reads the org's score and rules of the day from the
warehouse when it can (read-only, waiting at most ``triage.context_wait_seconds``); when a
job holds the warehouse it records the verdict without them, and they are read from that
day's results whenever the list is read. Every file is validated with
:class:`schemas.triage.TriageDecision` when read; one that does not validate is an error
that names it.

Effect on the ranked list (applied when the list is read, by ``pipeline.rank.listing.suspects``,
so a verdict takes effect at once; the stored ``suspects`` table stays as ``detect`` wrote it)
---------------------------------------------------------------------------------------------
For the list of day ``D``:

- A decision applies to the lists of its own ``day`` and later days (one with no known day
  applies to every list). Of the decisions on an org that apply, the latest recorded
  (``decided_at``) is in force: a new verdict supersedes the old one.
- A verdict with ``until`` applies up to and including that day; after it, it is no longer
  in force (a ``legitimate`` org then comes back as ``returned``).
- ``misuse``: the org is pinned - listed above the ranked rows whatever its score (even when
  it fell out of the stored top list), status ``misuse``, ``pinned`` true. ``top`` counts
  the ranked rows only; pinned rows come on top of them.
- ``legitimate``: the org is left out of the list (status ``legitimate`` when suppressed
  rows are asked for) until its behaviour changes materially: on some detected day from
  the verdict's day to ``D``, a rule fired that had not fired at the verdict
  (``rules_at_decision``), or its score rose more than ``triage.return_score_margin``
  points above ``score_at_decision`` (a missing baseline counts as score 0, no rules).
  From then on it is listed again with status ``returned`` (and stays so until a new
  verdict, even if the behaviour settles back), or when ``until`` has passed.
- ``needs_info`` / ``data_issue``: listed where its score puts it, with that status.
- No verdict in force: ``new`` when the row was first flagged after the last review (the
  latest ranked-list day before ``D`` that any verdict was made against; without one,
  first flagged on ``D`` itself), else ``recurring``.
- Account rows (``by="account"``) carry their org's verdict: suppressed, pinned or marked
  with it; without one they are ``new`` / ``recurring`` by their own first flag.
- Ranks are positions in the list as shown: pinned rows first (highest score first), then
  the rest in score order, numbered from 1.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
from pydantic import ValidationError

from pipeline.store.lake import fsync_dir
from schemas.detection import DetectionConfig, Suspect, TriageConfig, TriageStatus
from schemas.settings import Settings
from schemas.triage import TriageDecision, Verdict

TRIAGE_DIR = "triage"
NOTE_CHARS = 100


class TriageFileError(ValueError):
    """A file in ``<home>/triage/`` that is not a valid decision (named in the message)."""


def triage_dir(home: Path) -> Path:
    return home / TRIAGE_DIR


def new_decision_id(now: datetime) -> str:
    """A unique id that sorts by time: ``20260920T101530123456Z-1f2e3d4c5b6a``."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(6)}"


# --- Storage ------------------------------------------------------------------------------


def write_decision(home: Path, decision: TriageDecision) -> Path:
    """Publish ``decision`` as ``<home>/triage/<decision_id>.json``, whole or not at all.

    The file is read-only once written. Raises ``FileExistsError`` rather than replace an
    existing decision. A process killed midway leaves at most a hidden ``.<id>.<pid>.tmp``
    file, which readers ignore.
    """
    folder = triage_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{decision.decision_id}.json"
    tmp = folder / f".{decision.decision_id}.{os.getpid()}.tmp"
    data = (decision.model_dump_json(indent=2) + "\n").encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, final)  # atomic, and never over an existing file (unlike rename)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)
    return final


def read_decision(path: Path) -> TriageDecision:
    """One decision file, validated; :class:`TriageFileError` naming it when it is not."""
    try:
        decision = TriageDecision.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "file"
        raise TriageFileError(
            f"{path} is not a valid triage decision ({e.error_count()} error(s); "
            f"{where}: {first['msg']}); decisions are never edited - move the file aside "
            "and record the verdict again"
        ) from None
    if decision.decision_id != path.stem:
        raise TriageFileError(
            f"{path} holds decision {decision.decision_id!r}: a decision file must be named "
            "<decision_id>.json"
        )
    return decision


def history(settings: Settings, org_id: str | None = None) -> list[TriageDecision]:
    """Every recorded decision (of ``org_id`` only, when given), oldest first.

    Raises :class:`TriageFileError` for a file that is not a valid decision.
    """
    folder = triage_dir(settings.home)
    if not folder.is_dir():
        return []
    out: list[TriageDecision] = []
    for path in sorted(folder.glob("*.json")):
        try:
            decision = read_decision(path)
        except FileNotFoundError:  # moved aside by an operator while we listed
            continue
        if org_id is None or decision.org_id == org_id:
            out.append(decision)
    return sorted(out, key=TriageDecision.order_key)


@dataclass(frozen=True)
class _Context:
    day: date | None
    score: float | None
    rules: list[str]


def _is_lock_conflict(e: duckdb.Error) -> bool:
    return "Could not set lock" in str(e) or "Conflicting lock" in str(e)


def _read_context(
    settings: Settings, org_id: str, day: date | None, wait_seconds: float
) -> _Context | None:
    """The org's score and rules on ``day`` (default: the latest detected day), read-only.

    None when there is no warehouse yet or a writer holds it beyond ``wait_seconds``.
    Raises ``KeyError`` for an unknown org and ``LookupError`` for a day with no results.
    """
    from pipeline.store.lake import HomeBusy
    from pipeline.store.warehouse import connect

    if not settings.warehouse.exists():
        return None
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            # connect() retries a lock conflict itself, within the wait given here
            with connect(settings, read_only=True, wait_seconds=wait_seconds) as con:
                return _context_from(con, org_id, day)
        except HomeBusy:
            return None
        except duckdb.IOException as e:
            if not _is_lock_conflict(e):
                raise
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)


def _unregistered(con: duckdb.DuckDBPyConnection, org_id: str) -> bool:
    """Whether profiling has seen ``org_id`` as an organisation not in the register
    (``UKPRN-<ukprn>`` or an NPD org_id; table ``unregistered_orgs``): it can be triaged."""
    have = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = 'unregistered_orgs' "
        "AND database_name <> 'temp'"
    ).fetchall()
    if not have:
        return False
    found = con.execute("SELECT 1 FROM unregistered_orgs WHERE org_id = $o", {"o": org_id})
    return bool(found.fetchall())


def _context_from(con: duckdb.DuckDBPyConnection, org_id: str, day: date | None) -> _Context:
    known = con.execute("SELECT 1 FROM organisations WHERE org_id = $o", {"o": org_id})
    if not known.fetchall() and not _unregistered(con, org_id):
        raise KeyError(f"unknown organisation {org_id!r}")
    if day is None:
        row = con.execute("SELECT max(day) FROM scores WHERE level = 'org'").fetchone()
        day = row[0] if row else None
        if day is None:
            return _Context(day=None, score=None, rules=[])
    elif not con.execute("SELECT 1 FROM scores WHERE day = $d LIMIT 1", {"d": day}).fetchall():
        raise LookupError(f"no detection results for {day}: run detect first")
    score, rules = baseline(con, org_id, day)
    return _Context(day=day, score=score, rules=rules)


def baseline(
    con: duckdb.DuckDBPyConnection, org_id: str, day: date
) -> tuple[float | None, list[str]]:
    """The org's score (None when unscored) and the ids of the rules that fired for it (or
    one of its accounts) on ``day``: what a verdict made against that day's list saw."""
    found = con.execute(
        "SELECT score FROM scores WHERE level = 'org' AND org_id = $o AND day = $d",
        {"o": org_id, "d": day},
    ).fetchall()
    rules = con.execute(
        "SELECT DISTINCT rule_id FROM rule_hits WHERE org_id = $o AND day = $d ORDER BY 1",
        {"o": org_id, "d": day},
    ).fetchall()
    return (float(found[0][0]) if found else None), [r[0] for r in rules]


def record(
    settings: Settings,
    org_id: str,
    verdict: Verdict | str,
    note: str,
    analyst: str,
    until: date | None = None,
    day: date | None = None,
    *,
    config: DetectionConfig | None = None,
) -> TriageDecision:
    """Record one verdict on ``org_id``, made against the ranked list of ``day`` (default:
    the latest detected day), and return it as stored.

    Appends a new file; never changes an earlier decision. Does not take the home's writer
    lock. Raises ``pydantic.ValidationError`` (a ``ValueError``) for an invalid verdict,
    empty note or analyst, or ``until`` before ``day``; ``KeyError`` for an org unknown to
    the warehouse and ``LookupError`` for a ``day`` with no detection results (both checked
    only when the warehouse can be read: see the module doc).
    """
    if config is None:
        from detectors.rules import load_config

        config = load_config()
    # Validate what the analyst typed before looking anything up.
    now = datetime.now(UTC)
    draft = TriageDecision(
        decision_id=new_decision_id(now),
        org_id=org_id,
        verdict=verdict,  # a string is checked by pydantic
        note=note,
        analyst=analyst,
        decided_at=now,
        until=until,
        day=day,
    )
    ctx = _read_context(settings, draft.org_id, day, config.triage.context_wait_seconds)
    decision = draft
    if ctx is not None:
        decision = TriageDecision.model_validate(
            {
                **draft.model_dump(),
                "day": ctx.day,
                "score_at_decision": ctx.score,
                "rules_at_decision": ctx.rules,
            }
        )
    for attempt in range(3):
        try:
            write_decision(settings.home, decision)
            return decision
        except FileExistsError:  # the same id drawn twice: 48 random bits, so never twice more
            if attempt == 2:
                raise
            decision = decision.model_copy(update={"decision_id": new_decision_id(now)})
    raise AssertionError("unreachable")


# --- Effect on the ranked list (pure: literal data in, list out) ----------------------------


@dataclass(frozen=True)
class DayBehaviour:
    """An org's score and the rules that fired for it on one detected day."""

    day: date
    score: float
    rules: frozenset[str]


@dataclass(frozen=True)
class Standing:
    """Where one org stands with the analysts on one list day."""

    status: TriageStatus
    detail: str | None
    pinned: bool = False
    suppressed: bool = False


def _applies(d: TriageDecision, day: date) -> bool:
    return d.day is None or d.day <= day


def decisions_in_force(decisions: Iterable[TriageDecision], day: date) -> dict[str, TriageDecision]:
    """Per org, the latest recorded decision that applies to the list of ``day`` (it was
    made against that day's list or an earlier one). Its ``until`` is not checked here."""
    out: dict[str, TriageDecision] = {}
    for d in sorted(decisions, key=TriageDecision.order_key):
        if _applies(d, day):
            out[d.org_id] = d
    return out


def last_review(decisions: Iterable[TriageDecision], day: date) -> date | None:
    """The latest ranked-list day before ``day`` that any verdict was made against."""
    days = [d.day for d in decisions if d.day is not None and d.day < day]
    return max(days) if days else None


def untriaged_status(first_flagged: date, reviewed: date | None, day: date) -> TriageStatus:
    """``new`` when first flagged after the last review (on ``day`` itself without one)."""
    if reviewed is None:
        return "new" if first_flagged >= day else "recurring"
    return "new" if first_flagged > reviewed else "recurring"


def _by(d: TriageDecision) -> str:
    return f"by {d.analyst} on {d.decided_at:%Y-%m-%d}"


def _note(d: TriageDecision) -> str:
    text = " ".join(d.note.split())
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 3] + "..."


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def behaviour_change(
    decision: TriageDecision,
    behaviour: Sequence[DayBehaviour],
    day: date,
    cfg: TriageConfig,
) -> tuple[date, str] | None:
    """The first detected day from a ``legitimate`` verdict's day to ``day`` (or its
    ``until``, if sooner) on which the org's behaviour changed materially - a rule fired
    that had not at the verdict, or its score rose more than ``return_score_margin``
    above its score then - and the change in words; None when it did not change."""
    base_score = decision.score_at_decision or 0.0
    base_rules = set(decision.rules_at_decision)
    last = min(day, decision.until) if decision.until is not None else day
    first = decision.day or date.min
    for b in sorted(behaviour, key=lambda b: b.day):
        if not first <= b.day <= last:
            continue
        new_rules = sorted(b.rules - base_rules)
        if new_rules:
            return b.day, (
                f"{', '.join(new_rules)} fired, not at the legitimate verdict {_by(decision)}"
            )
        if b.score > base_score + cfg.return_score_margin:
            return b.day, (
                f"score {_num(b.score)} rose more than {_num(cfg.return_score_margin)} above "
                f"{_num(base_score)} at the legitimate verdict {_by(decision)}"
            )
    return None


def standing(
    decision: TriageDecision | None,
    behaviour: Sequence[DayBehaviour],
    day: date,
    cfg: TriageConfig,
) -> Standing | None:
    """The standing ``decision`` (the one in force for the org) gives it on ``day``'s list;
    None when no verdict is in force. ``behaviour`` is the org's detected days (any range:
    days outside the verdict's day..``day`` are ignored)."""
    if decision is None or not _applies(decision, day):
        return None
    expired = decision.until is not None and day > decision.until
    v = decision.verdict
    if v is not Verdict.legitimate:
        if expired:
            return None
        if v is Verdict.misuse:
            return Standing("misuse", f"{_by(decision)}: {_note(decision)}", pinned=True)
        status: TriageStatus = "needs_info" if v is Verdict.needs_info else "data_issue"
        return Standing(status, f"{_by(decision)}: {_note(decision)}")
    change = behaviour_change(decision, behaviour, day, cfg)
    if change is not None:
        return Standing("returned", f"back on {change[0]}: {change[1]}")
    if expired:
        return Standing(
            "returned", f"back: the legitimate verdict {_by(decision)} ended on {decision.until}"
        )
    until = f"until {decision.until} or " if decision.until is not None else "until "
    return Standing(
        "legitimate",
        f"{_by(decision)}: {_note(decision)} (suppressed {until}its behaviour changes)",
        suppressed=True,
    )


def apply_triage(
    rows: Sequence[Suspect],
    decisions: Sequence[TriageDecision],
    behaviour: Mapping[str, Sequence[DayBehaviour]],
    day: date,
    cfg: TriageConfig,
    top: int,
    *,
    include_suppressed: bool = False,
    pinned_extra: Sequence[Suspect] = (),
) -> list[Suspect]:
    """The list of ``day`` as analysts see it (see the module doc for every rule).

    ``rows`` is the stored ranked list (best first, org or account rows); ``behaviour`` the
    detected days of each org with a ``legitimate`` verdict; ``pinned_extra`` rows for
    ``misuse`` orgs missing from ``rows``. At most ``top`` ranked rows are returned, plus
    every pinned row above them.
    """
    in_force = decisions_in_force(decisions, day)
    reviewed = last_review(decisions, day)
    standings: dict[str, Standing | None] = {
        org: standing(d, behaviour.get(org, ()), day, cfg) for org, d in in_force.items()
    }
    present = {r.org_id for r in rows}
    extra = [
        r
        for r in pinned_extra
        if r.org_id not in present and (s := standings.get(r.org_id)) is not None and s.pinned
    ]
    pinned: list[tuple[int, Suspect]] = []
    ranked: list[Suspect] = []
    for i, r in enumerate([*rows, *extra]):
        s = standings.get(r.org_id)
        if s is None:
            status = untriaged_status(r.first_flagged, reviewed, day)
            row = r.model_copy(
                update={"triage_status": status, "triage_detail": None, "pinned": False}
            )
        else:
            if s.suppressed and not include_suppressed:
                continue
            row = r.model_copy(
                update={"triage_status": s.status, "triage_detail": s.detail, "pinned": s.pinned}
            )
        if row.pinned:
            pinned.append((i, row))
        else:
            ranked.append(row)
    pinned.sort(key=lambda p: (-p[1].score, p[0]))
    return [
        r.model_copy(update={"rank": i})
        for i, r in enumerate([*(r for _, r in pinned), *ranked[:top]], start=1)
    ]
