"""Composing a day's alerts on literal data: new and returned suspects, thresholds, the
digest, delivery alerts, and bodies that hold no personal data; the outbox."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from pipeline.outputs.alerts import (
    DeliveryProblem,
    compose,
    deliveries_of,
    last_qualified,
    queue,
    record_sent,
    refusal_kind,
    sent_keys,
)
from schemas.alerts import AlertKind, AlertSettings
from schemas.detection import Severity, Suspect
from schemas.settings import Settings, load_settings

DAY = date(2026, 9, 10)
SEVERITIES = {"ENT-02": Severity.critical, "ACC-06": Severity.high, "HRS-01": Severity.low}
A = AlertSettings(enabled=True)
REPORT = "https://aw.example/reports/2026-09-10.html"


def suspect(org: str, score: float, rules: list[str] | None = None, rank: int = 1) -> Suspect:
    return Suspect(
        rank=rank,
        org_id=org,
        org_name=f"{org} College",
        org_type="fe_college",
        score=score,
        rules=rules or [],
        first_flagged=DAY,
        triage_status="new",
    )


def keys(
    ranked: list[Suspect] | None,
    last: dict[str, date] | None = None,
    deliveries: list[DeliveryProblem] | None = None,
    a: AlertSettings = A,
) -> list[str]:
    return [
        m.key for m in compose(DAY, ranked, last or {}, SEVERITIES, deliveries or [], a, REPORT)
    ]


def test_a_qualifying_suspect_never_seen_before_is_new_and_its_body_says_what_matters() -> None:
    ranked = [suspect("ORG1", 72.5, ["HRS-01", "ACC-06"], rank=3)]
    [m] = compose(DAY, ranked, {}, SEVERITIES, [], A, REPORT)
    assert m.key == "suspect:2026-09-10:ORG1" and m.kind is AlertKind.suspect
    assert "new suspect ORG1" in m.title
    assert "organisation: ORG1, ORG1 College (fe_college)" in m.body
    assert "score: 72.5 of 100, rank 3 of 1 in the ranked list" in m.body
    assert "rules: ACC-06 (high), HRS-01 (low)" in m.body  # most severe first
    assert f"report: {REPORT}" in m.body
    assert m.body.splitlines()[-1] == "alert: suspect:2026-09-10:ORG1"


@pytest.mark.parametrize(
    ("score", "rules", "alerted"),
    [
        (60.0, [], True),  # at the score threshold
        (59.9, [], False),
        (10.0, ["ACC-06"], True),  # a high rule, whatever the score
        (10.0, ["ENT-02"], True),  # critical is worse than high
        (59.9, ["HRS-01"], False),  # a low rule is not enough
        (59.9, ["UNKNOWN-9"], False),  # a rule rules.toml does not know has no severity
    ],
)
def test_thresholds(score: float, rules: list[str], alerted: bool) -> None:
    assert keys([suspect("ORG1", score, rules)]) == (
        ["suspect:2026-09-10:ORG1"] if alerted else ["digest:2026-09-10"]
    )


def test_min_severity_critical_leaves_high_rules_to_the_score() -> None:
    a = AlertSettings(min_severity=Severity.critical, min_score=90)
    assert keys([suspect("ORG1", 50, ["ACC-06"]), suspect("ORG2", 50, ["ENT-02"])], a=a) == [
        "suspect:2026-09-10:ORG2"
    ]


@pytest.mark.parametrize(
    ("days_ago", "due", "seen"),
    [
        (1, False, ""),  # qualified yesterday: still the same finding
        (7, False, ""),  # inside the 7 quiet days
        (8, True, "returned"),  # absent for the 7 days before: returned
    ],
)
def test_a_suspect_returns_after_quiet_days(days_ago: int, due: bool, seen: str) -> None:
    last = {"ORG1": DAY - timedelta(days=days_ago)}
    messages = compose(DAY, [suspect("ORG1", 80)], last, SEVERITIES, [], A, REPORT)
    assert [m.kind for m in messages] == [AlertKind.suspect if due else AlertKind.digest]
    if due:
        assert f"{seen} suspect ORG1" in messages[0].title
        assert f"last qualified on {last['ORG1']}" in messages[0].body


def test_last_qualified_counts_only_days_that_passed_the_thresholds() -> None:
    rows = [
        ("ORG1", DAY - timedelta(days=9), 80.0, []),
        ("ORG1", DAY - timedelta(days=2), 20.0, ["HRS-01"]),  # listed, not qualifying
        ("ORG2", DAY - timedelta(days=3), 20.0, ["ENT-02"]),
        ("ORG3", DAY - timedelta(days=1), 20.0, []),
    ]
    assert last_qualified(rows, SEVERITIES, A) == {
        "ORG1": DAY - timedelta(days=9),
        "ORG2": DAY - timedelta(days=3),
    }


def test_the_digest_counts_when_nothing_is_due_and_can_be_turned_off() -> None:
    ranked = [suspect("ORG1", 80, rank=1), suspect("ORG2", 30, rank=2)]
    [digest] = compose(DAY, ranked, {"ORG1": DAY - timedelta(days=1)}, SEVERITIES, [], A, REPORT)
    assert digest.key == "digest:2026-09-10" and digest.kind is AlertKind.digest
    assert "ranked list: 2 organisation(s); 1 at or above the alert thresholds" in digest.body
    assert "top score: 80.0" in digest.body and f"report: {REPORT}" in digest.body
    assert "ORG1" not in digest.body  # counts only
    assert keys(ranked, {"ORG1": DAY}, a=AlertSettings(digest=False)) == []
    assert keys([suspect("ORG9", 90)]) == ["suspect:2026-09-10:ORG9"]  # no digest beside it


def test_a_day_not_scored_gets_a_digest_saying_so() -> None:
    [digest] = compose(DAY, None, {}, SEVERITIES, [], A, REPORT)
    assert "the day was not scored" in digest.body


def test_delivery_problems_come_first_with_a_fixed_form_reason() -> None:
    ledger = [
        ("npd", "missing", ""),
        ("lrs", "refused", "refused: missing required column(s): uln (found: 1026893096, ...)"),
        ("lrs", "refused", "refused: 12.0% of 100 rows are bad (limit 5.0%); commonest: LS6 2AB"),
        ("lrs", "refused", "refused: cannot be read as gzip: Error -3 while decompressing"),
    ]
    problems = deliveries_of(ledger)
    assert [(p.source, p.state, p.files) for p in problems] == [
        ("lrs", "refused", 3),
        ("npd", "missing", 0),
    ]
    messages = compose(DAY, [suspect("ORG1", 90)], {}, SEVERITIES, problems, A, REPORT)
    assert [m.key for m in messages] == [
        "delivery:2026-09-10:lrs:refused",
        "delivery:2026-09-10:npd:missing",
        "suspect:2026-09-10:ORG1",
    ]
    refused = messages[0].body
    assert "files refused: 3" in refused
    assert (
        "reason: a required column is missing; the file could not be read; too many bad rows"
        in refused
    )
    for quoted in ("1026893096", "LS6 2AB", "Error -3", "commonest"):
        assert quoted not in refused  # never the ledger's own text
    assert "no delivery folder arrived" in messages[1].body


def test_refusal_kinds() -> None:
    assert refusal_kind("refused: missing required column(s): x") == "a required column is missing"
    assert refusal_kind("refused: 9.0% of 1,000 rows are bad") == "too many bad rows"
    assert refusal_kind("refused: anything else") == "the file could not be read"


def test_bodies_hold_no_personal_data_and_no_control_characters() -> None:
    s = suspect("ORG1", 95, ["ACC-06"])
    s = s.model_copy(
        update={
            "org_name": "Evil\x1b[2J College\u202e",
            "user_name": "amy.admin",
            "accounts": [],
            "triage_detail": "note about learner 1026893096",
        }
    )
    [m] = compose(DAY, [s], {}, SEVERITIES, [], A, REPORT)
    assert "\x1b" not in m.body and "\u202e" not in m.body and "\\x1b" in m.body
    assert "amy.admin" not in m.body and "1026893096" not in m.body


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


def test_the_outbox_queues_once_and_keeps_unsent_messages(home: Settings) -> None:
    ranked = [suspect("ORG1", 90), suspect("ORG2", 90, rank=2)]
    first = compose(DAY, ranked, {}, SEVERITIES, [], A, REPORT)
    assert [m.key for m in queue(home, first)] == [m.key for m in first]
    record_sent(home, first[0].key, "accesswatch-alerts")
    assert sent_keys(home) == {first[0].key}
    # the same day again: nothing new queued, the unsent one still pending
    assert [m.key for m in queue(home, first)] == [first[1].key]
    outbox = (home.home / "alerts" / "outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 2
    # a line cut short by a crash is skipped, not fatal
    with (home.home / "alerts" / "sent.jsonl").open("a") as f:
        f.write('{"key": "suspect:2026-09-10:OR')
    assert sent_keys(home) == {first[0].key}
