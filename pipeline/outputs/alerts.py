"""The alerts of a day, composed from the warehouse, and the outbox they wait in.

After each nightly (``flows/alerts.py``) the day gives:

- one **suspect** alert per organisation of the ranked list (verdicts applied, so an org
  judged legitimate is not alerted) that *qualifies* - score >= ``min_score`` or a rule of
  severity ``min_severity`` or worse - and is *new* (it qualified on no stored day before)
  or *returned* (it qualified before, but on none of the ``quiet_days`` days before this
  one). Earlier days count from their stored lists, so the same warehouse always gives the
  same alerts, whoever ran what before;
- a **digest** (counts and the report link only) when no suspect alert is due;
- one **delivery** alert per source whose delivery of the day is missing or refused, with
  a reason of a fixed form: a refusal's own text can quote the file's contents.

A message names the organisation (id, name and type, as the report shows them), score,
rank, rule ids with their severity and a link to the report; never a ULN, date of birth,
postcode, learner pseudonym or account. Its key is stable (``suspect:<day>:<org>``,
``digest:<day>``, ``delivery:<day>:<source>:<state>``) and its body ends ``alert: <key>``.

:func:`compose` is pure (literal data in, messages out); :func:`day_alerts` reads its
inputs. The outbox (``<home>/alerts/outbox.jsonl``) keeps every message queued and
``sent.jsonl`` every key delivered, so a message is sent once and a failed one waits for
the next run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from detectors.rules import load_config
from pipeline.outputs import sql
from pipeline.outputs.safe_text import visible
from pipeline.rank.listing import NotProfiledError, suspects
from pipeline.store.warehouse import connect
from schemas.alerts import AlertKind, AlertMessage, AlertSettings
from schemas.detection import SEVERITY_ORDER, DetectionConfig, Severity, Suspect
from schemas.settings import Settings

ALERTS_DIR = "alerts"
OUTBOX = "outbox.jsonl"
SENT = "sent.jsonl"

REFUSAL_KINDS: tuple[tuple[str, str], ...] = (
    ("missing required column", "a required column is missing"),
    ("rows are bad", "too many bad rows"),
)
"""How a refusal reason (our own text, then data) is told in an alert: by its opening."""
UNREADABLE = "the file could not be read"


@dataclass(frozen=True)
class DeliveryProblem:
    """A source's delivery of the day that is missing, or has ``files`` refused files."""

    source: str
    state: str  # "missing" or "refused"
    files: int = 0
    kinds: tuple[str, ...] = ()


def refusal_kind(reason: str) -> str:
    """The fixed-form kind of a ledger refusal reason (never the reason itself)."""
    return next((kind for opening, kind in REFUSAL_KINDS if opening in reason), UNREADABLE)


def severe(rules: Iterable[str], severities: dict[str, Severity], a: AlertSettings) -> bool:
    """A rule of severity ``min_severity`` or worse among ``rules``."""
    worst = SEVERITY_ORDER[a.min_severity]
    return any(r in severities and SEVERITY_ORDER[severities[r]] <= worst for r in rules)


def qualifies(
    score: float, rules: Iterable[str], severities: dict[str, Severity], a: AlertSettings
) -> bool:
    """Score at or above ``min_score``, or a rule of severity ``min_severity`` or worse."""
    return score >= a.min_score or severe(rules, severities, a)


def last_qualified(
    rows: Iterable[tuple[str, date, float, Sequence[str]]],
    severities: dict[str, Severity],
    a: AlertSettings,
) -> dict[str, date]:
    """org_id -> the last day it qualified, from stored rows ``(org, day, score, rules)``."""
    out: dict[str, date] = {}
    for org, day, score, rules in rows:
        if qualifies(score, rules, severities, a) and day > out.get(org, date.min):
            out[org] = day
    return out


def deliveries_of(rows: Iterable[tuple[str, str, str]]) -> list[DeliveryProblem]:
    """Ledger rows ``(source, status, reason)`` as one problem per source and state."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for source, status, reason in rows:
        grouped.setdefault((source, status), []).append(reason or "")
    return [
        DeliveryProblem(
            source=source,
            state=state,
            files=len(reasons) if state == "refused" else 0,
            kinds=tuple(sorted({refusal_kind(r) for r in reasons})) if state == "refused" else (),
        )
        for (source, state), reasons in sorted(grouped.items())
    ]


def _rules_text(rules: Sequence[str], severities: dict[str, Severity]) -> str:
    ordered = sorted(rules, key=lambda r: (SEVERITY_ORDER.get(severities.get(r, ""), 9), r))
    return ", ".join(f"{r} ({severities[r]})" if r in severities else r for r in ordered)


def _finish(key: str, kind: AlertKind, day: date, title: str, lines: list[str]) -> AlertMessage:
    return AlertMessage(
        key=key, kind=kind, day=day, title=title, body="\n".join([*lines, f"alert: {key}"])
    )


def _suspect_message(
    day: date,
    s: Suspect,
    listed: int,
    last: date | None,
    severities: dict[str, Severity],
    a: AlertSettings,
    report: str,
) -> AlertMessage:
    org = visible(s.org_id)
    seen = "new" if last is None else "returned"
    why = []
    if s.score >= a.min_score:
        why.append(f"score {s.score:.1f} >= {a.min_score:g}")
    if severe(s.rules, severities, a):
        why.append(f"a rule of severity {a.min_severity} or worse")
    history = (
        "it qualified on no earlier day"
        if last is None
        else f"last qualified on {last}, more than {a.quiet_days} days before"
    )
    return _finish(
        f"suspect:{day}:{org}",
        AlertKind.suspect,
        day,
        f"accesswatch {day}: {seen} suspect {org}, score {s.score:.1f}",
        [
            f"accesswatch nightly {day}: a {seen} suspect organisation ({history})",
            f"organisation: {org}, {visible(s.org_name)} ({visible(s.org_type)})",
            f"score: {s.score:.1f} of 100, rank {s.rank} of {listed} in the ranked list",
            f"rules: {_rules_text(s.rules, severities) or 'none'}",
            f"alerted because: {'; '.join(why)}",
            f"first flagged: {s.first_flagged}; triage: {s.triage_status}",
            f"report: {report}",
        ],
    )


def _delivery_message(day: date, p: DeliveryProblem) -> AlertMessage:
    if p.state == "missing":
        what = [
            "reason: no delivery folder arrived (a quiet day is a delivery of 0 rows)",
            "the day was scored from what else came in; re-run the nightly for the day "
            "once the folder arrives",
        ]
    else:
        what = [
            f"files refused: {p.files}",
            f"reason: {'; '.join(p.kinds)}",
            "the day is not scored until the files are fixed or replaced and the nightly "
            "re-run for it; the nightly summary and ingest_ledger name the files",
        ]
    return _finish(
        f"delivery:{day}:{p.source}:{p.state}",
        AlertKind.delivery,
        day,
        f"accesswatch {day}: {p.source} delivery {p.state}",
        [
            f"accesswatch nightly {day}: the {p.source} delivery is {p.state}",
            f"source: {p.source}; day: {day}; state: {p.state}",
            *what,
        ],
    )


def _digest_message(
    day: date, ranked: Sequence[Suspect] | None, qualifying: int, a: AlertSettings, report: str
) -> AlertMessage:
    if ranked is None:
        lines = [
            f"accesswatch nightly {day}: the day was not scored, so there is no ranked list",
            "see the delivery alerts and the nightly summary",
        ]
    else:
        top = max((s.score for s in ranked), default=None)
        lines = [
            f"accesswatch nightly {day}: no new or returned suspect to alert",
            f"ranked list: {len(ranked)} organisation(s); {qualifying} at or above the alert "
            f"thresholds (score {a.min_score:g}, severity {a.min_severity}), each alerted "
            f"within the {a.quiet_days} days before",
            f"top score: {'-' if top is None else f'{top:.1f}'}",
        ]
    return _finish(
        f"digest:{day}",
        AlertKind.digest,
        day,
        f"accesswatch {day}: no new suspects",
        [*lines, f"report: {report}"],
    )


def compose(
    day: date,
    ranked: Sequence[Suspect] | None,
    last: dict[str, date],
    severities: dict[str, Severity],
    deliveries: Sequence[DeliveryProblem],
    a: AlertSettings,
    report: str,
) -> list[AlertMessage]:
    """The alerts of ``day``: delivery problems first, then due suspects by rank, or the
    digest. ``ranked`` is the day's list with verdicts applied (None: the day was not
    scored); ``last`` the last day before ``day`` on which each org qualified."""
    out = [_delivery_message(day, p) for p in deliveries]
    qualifying = [s for s in ranked or [] if qualifies(s.score, s.rules, severities, a)]
    due = [
        s
        for s in qualifying
        if s.org_id not in last or last[s.org_id] < day - timedelta(days=a.quiet_days)
    ]
    out += [
        _suspect_message(day, s, len(ranked or []), last.get(s.org_id), severities, a, report)
        for s in sorted(due, key=lambda s: s.rank)
    ]
    if not due and a.digest:
        out.append(_digest_message(day, ranked, len(qualifying), a, report))
    return out


def report_link(settings: Settings, day: date) -> str:
    """``<report_url>/<day>.html``, or the report's path on this machine."""
    base = settings.alerts.report_url
    if base:
        return f"{base.rstrip('/')}/{day}.html"
    return str((settings.home / "reports" / f"{day}.html").resolve())


def day_alerts(
    settings: Settings, day: date, config: DetectionConfig | None = None
) -> list[AlertMessage]:
    """The alerts of ``day`` from the warehouse (:func:`compose` on what it stores)."""
    cfg = config or load_config()
    a = settings.alerts
    severities = {r.id: r.severity for r in cfg.rules}
    try:
        ranked: list[Suspect] | None = suspects(
            settings, day, top=cfg.ranking.store_top, config=cfg
        )
    except NotProfiledError:
        ranked = None
    with connect(settings, read_only=True) as con:
        history = [
            (org, d, float(score), json.loads(rules))
            for org, d, score, rules in con.execute(
                sql("alert_history"), {"day": day, "min_score": a.min_score}
            ).fetchall()
        ]
        ledger = con.execute(sql("alert_deliveries"), {"day": day}).fetchall()
    last = last_qualified(history, severities, a)
    return compose(
        day, ranked, last, severities, deliveries_of(ledger), a, report_link(settings, day)
    )


# --- The outbox ------------------------------------------------------------------------------


def alerts_dir(settings: Settings) -> Path:
    return settings.home / ALERTS_DIR


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    """The records of ``path``; a line cut short by a crash mid-write is skipped."""
    if not path.is_file():
        return []
    out = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _append(path: Path, records: Iterable[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def sent_keys(settings: Settings) -> set[str]:
    """Keys of every alert delivered from this home."""
    return {str(r["key"]) for r in _read_jsonl(alerts_dir(settings) / SENT) if "key" in r}


def queue(settings: Settings, messages: Iterable[AlertMessage]) -> list[AlertMessage]:
    """Add ``messages`` not sent or queued before to the outbox; return every queued
    message not sent yet, oldest first (earlier failures, then these)."""
    path = alerts_dir(settings) / OUTBOX
    sent = sent_keys(settings)
    queued = [AlertMessage.model_validate(r) for r in _read_jsonl(path)]
    known = {m.key for m in queued}
    new = [m for m in messages if m.key not in known and m.key not in sent]
    _append(path, (m.model_dump(mode="json") for m in new))
    return [m for m in [*queued, *new] if m.key not in sent]


def record_sent(settings: Settings, key: str, block: str) -> None:
    """``key`` was delivered through ``block`` (its name: never its URL)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    _append(alerts_dir(settings) / SENT, [{"key": key, "block": block, "sent_at": now}])
