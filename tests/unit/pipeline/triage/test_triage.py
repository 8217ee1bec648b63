"""Triage verdicts: the rules that suppress, return and pin (pure, on literal rows), the
append-only store under concurrent writers (real processes), recording while a job holds
the home, and the CLI end to end on the committed sample."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from detectors.rules import load_config
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.rank.listing import suspects
from pipeline.rank.story import explain
from pipeline.store.lake import home_lock
from pipeline.triage.verdicts import (
    DayBehaviour,
    TriageFileError,
    apply_triage,
    history,
    new_decision_id,
    record,
    triage_dir,
    write_decision,
)
from schemas.detection import DetectionConfig, Suspect, TriageConfig
from schemas.settings import Settings, load_settings
from schemas.triage import TriageDecision, Verdict
from tests.conftest import REPO, SAMPLE, TEST_KEY, SampleRun
from tests.unit.cli.test_cli import ACCESSWATCH, run
from tests.unit.pipeline.profile.test_profile import DAY1, DAY2, world

D = date(2026, 9, 20)
CFG = TriageConfig(return_score_margin=10)
T0 = datetime(2026, 9, 21, 9, 0, tzinfo=UTC)


# --- literal rows and decisions -------------------------------------------------------------


def row(
    org: str,
    score: float,
    *,
    first: date = D,
    rules: tuple[str, ...] = (),
    user: str | None = None,
) -> Suspect:
    return Suspect(
        rank=1,
        org_id=org,
        org_name=f"{org} name",
        org_type="school",
        user_name=user,
        score=score,
        rules=list(rules),
        first_flagged=first,
        triage_status="new" if first == D else "recurring",
    )


def dec(
    org: str,
    verdict: str,
    day: date | None = D,
    *,
    minutes: int = 0,
    until: date | None = None,
    score: float | None = 50.0,
    rules: tuple[str, ...] = (),
    note: str = "checked",
) -> TriageDecision:
    at = T0 + timedelta(minutes=minutes)
    return TriageDecision(
        decision_id=new_decision_id(at),
        org_id=org,
        verdict=Verdict(verdict),
        note=note,
        analyst="amy",
        decided_at=at,
        until=until,
        day=day,
        score_at_decision=score,
        rules_at_decision=list(rules),
    )


def days(*points: tuple[date, float, tuple[str, ...]]) -> list[DayBehaviour]:
    return [DayBehaviour(day=d, score=s, rules=frozenset(r)) for d, s, r in points]


def view(
    rows: list[Suspect],
    decisions: list[TriageDecision],
    behaviour: dict[str, list[DayBehaviour]] | None = None,
    *,
    day: date = D,
    top: int = 10,
    include_suppressed: bool = False,
    pinned_extra: list[Suspect] | None = None,
) -> list[Suspect]:
    return apply_triage(
        rows,
        decisions,
        behaviour or {},
        day,
        CFG,
        top,
        include_suppressed=include_suppressed,
        pinned_extra=pinned_extra or [],
    )


def ids(rows: list[Suspect]) -> list[str]:
    return [r.org_id for r in rows]


ROWS = [row("A", 95, first=D - timedelta(days=5)), row("B", 60), row("C", 40), row("D", 20)]


# --- pure: how verdicts change the list -----------------------------------------------------


def test_without_verdicts_the_list_is_as_stored_and_new_means_first_flagged_today() -> None:
    out = view(ROWS, [], top=3)
    assert ids(out) == ["A", "B", "C"] and [r.rank for r in out] == [1, 2, 3]
    assert [r.triage_status for r in out] == ["recurring", "new", "new"]
    assert not any(r.pinned or r.triage_detail for r in out)


def test_misuse_pins_the_org_above_the_ranked_rows_even_off_the_stored_list() -> None:
    gone = row("Z", 3, first=D - timedelta(days=9))  # fell out of the stored top list
    decisions = [dec("C", "misuse", note="referred to DfE"), dec("Z", "misuse", minutes=1)]
    out = view(ROWS, decisions, top=2, pinned_extra=[gone])
    assert ids(out) == ["C", "Z", "A", "B"]  # pinned by score, then `top` ranked rows
    assert [r.rank for r in out] == [1, 2, 3, 4]
    assert [r.pinned for r in out] == [True, True, False, False]
    assert out[0].triage_status == "misuse" and "referred to DfE" in (out[0].triage_detail or "")
    # an extra row for an org without a misuse verdict is not listed
    assert ids(view(ROWS, [], top=2, pinned_extra=[gone])) == ["A", "B"]


def test_legitimate_suppresses_until_a_new_rule_fires_and_then_stays_returned() -> None:
    verdict = dec("A", "legitimate", D, score=95, rules=("ENT-01",))
    same = days((D, 95, ("ENT-01",)), (D + timedelta(days=1), 96, ("ENT-01",)))
    d1 = D + timedelta(days=1)
    assert "A" not in ids(view(ROWS, [verdict], {"A": same}, day=d1))
    fired = [*same, *days((D + timedelta(days=2), 90, ("ENT-01", "RES-01")))]
    d2, d3 = D + timedelta(days=2), D + timedelta(days=3)
    (a,) = [r for r in view(ROWS, [verdict], {"A": fired}, day=d2) if r.org_id == "A"]
    assert a.triage_status == "returned" and not a.pinned
    assert a.triage_detail is not None and f"back on {d2}: RES-01 fired" in a.triage_detail
    # the rule stops firing the next day: the org stays back until a new verdict
    settled = [*fired, *days((d3, 90, ("ENT-01",)))]
    (a,) = [r for r in view(ROWS, [verdict], {"A": settled}, day=d3) if r.org_id == "A"]
    assert a.triage_status == "returned" and f"back on {d2}" in (a.triage_detail or "")
    # a rule that fired before the verdict's day does not count
    before = days((D - timedelta(days=1), 99, ("XYZ-01",)), (D, 95, ("ENT-01",)))
    assert "A" not in ids(view(ROWS, [verdict], {"A": before}))


def test_legitimate_returns_only_when_the_score_rises_more_than_the_margin() -> None:
    verdict = dec("B", "legitimate", D, score=60)
    at_margin = {"B": days((D, 70, ()))}  # 60 + 10: not more than the margin
    assert "B" not in ids(view(ROWS, [verdict], at_margin))
    above = {"B": days((D, 70.01, ()))}
    (b,) = [r for r in view(ROWS, [verdict], above) if r.org_id == "B"]
    assert b.triage_status == "returned"
    assert "score 70.01 rose more than 10 above 60" in (b.triage_detail or "")
    falls = {"B": days((D, 5, ()))}  # a lower score keeps it suppressed
    assert "B" not in ids(view(ROWS, [verdict], falls))


def test_legitimate_until_is_inclusive_then_the_org_returns() -> None:
    until = D + timedelta(days=2)
    verdict = dec("B", "legitimate", D, until=until, score=60)
    assert "B" not in ids(view(ROWS, [verdict], day=until))
    (b,) = [r for r in view(ROWS, [verdict], day=until + timedelta(days=1)) if r.org_id == "B"]
    assert b.triage_status == "returned" and f"ended on {until}" in (b.triage_detail or "")


def test_a_missing_baseline_counts_as_score_zero_and_no_rules() -> None:
    verdict = dec("D", "legitimate", D, score=None)
    assert "D" not in ids(view(ROWS, [verdict], {"D": days((D, 10, ()))}))
    (d,) = [r for r in view(ROWS, [verdict], {"D": days((D, 20, ()))}) if r.org_id == "D"]
    assert d.triage_status == "returned"


def test_suppressed_rows_are_kept_when_asked_for() -> None:
    verdict = dec("B", "legitimate", D, score=60)
    out = view(ROWS, [verdict], {"B": days((D, 60, ()))}, include_suppressed=True)
    assert ids(out) == ["A", "B", "C", "D"]
    assert out[1].triage_status == "legitimate" and "suppressed until" in (
        out[1].triage_detail or ""
    )


def test_the_latest_verdict_is_in_force_and_only_from_its_list_day_on() -> None:
    first, then = dec("A", "misuse"), dec("A", "legitimate", score=95, minutes=5)
    assert "A" not in ids(view(ROWS, [then, first]))  # order of the input does not matter
    assert view(ROWS, [dec("A", "legitimate", score=95), dec("A", "misuse", minutes=5)])[0].pinned
    later = dec("A", "misuse", D + timedelta(days=1))
    out = view(ROWS, [later])  # made against tomorrow's list: today's list is untouched
    assert ids(out)[0] == "A" and not out[0].pinned and out[0].triage_status == "recurring"


def test_needs_info_and_data_issue_are_shown_in_place_and_expired_verdicts_lapse() -> None:
    decisions = [dec("B", "needs_info"), dec("C", "data_issue", minutes=1)]
    out = view(ROWS, decisions)
    assert ids(out) == ["A", "B", "C", "D"]
    assert [r.triage_status for r in out] == ["recurring", "needs_info", "data_issue", "new"]
    expired = dec("C", "misuse", D - timedelta(days=3), until=D - timedelta(days=1))
    out = view(ROWS, [expired])
    assert not any(r.pinned for r in out) and out[2].triage_detail is None
    assert out[2].triage_status == "new"  # first flagged after the review of D - 3


def test_new_means_first_flagged_after_the_last_review() -> None:
    reviewed = D - timedelta(days=3)
    rows = [
        row("A", 90, first=D - timedelta(days=10)),
        row("B", 80, first=D - timedelta(days=3)),  # on the list that was reviewed
        row("C", 70, first=D - timedelta(days=2)),  # appeared after it
        row("D", 60),
    ]
    out = view(rows, [dec("Q", "needs_info", reviewed)])
    assert [r.triage_status for r in out] == ["recurring", "recurring", "new", "new"]
    # a verdict made against today's list does not change what is new today
    out = view(rows, [dec("Q", "needs_info", reviewed), dec("A", "needs_info", D, minutes=1)])
    assert [r.triage_status for r in out] == ["needs_info", "recurring", "new", "new"]


def test_account_rows_carry_their_orgs_verdict() -> None:
    accounts = [
        row("A", 90, user="a1", first=D - timedelta(days=4)),
        row("B", 80, user="b1"),
        row("C", 70, user="c1"),
        row("B", 60, user="b2"),
    ]
    decisions = [dec("B", "legitimate", score=80), dec("C", "misuse", minutes=1)]
    out = view(accounts, decisions, {"B": days((D, 80, ()))})
    assert [(r.org_id, r.user_name) for r in out] == [("C", "c1"), ("A", "a1")]
    assert out[0].triage_status == "misuse" and out[0].pinned
    assert out[1].triage_status == "recurring"


# --- failure paths ------------------------------------------------------------------------


def test_an_invalid_decision_names_the_problem() -> None:
    with pytest.raises(ValidationError, match=r"until \(2026-09-19\) must not be before"):
        dec("A", "legitimate", D, until=D - timedelta(days=1))
    with pytest.raises(ValidationError, match="decided_at must carry a time zone"):
        naive = {**dec("A", "misuse").model_dump(), "decided_at": "2026-09-21T09:00:00"}
        TriageDecision.model_validate(naive)
    with pytest.raises(ValidationError, match="note"):
        dec("A", "misuse", note="   ")
    with pytest.raises(ValidationError, match="verdict"):
        TriageDecision.model_validate({**dec("A", "misuse").model_dump(), "verdict": "maybe"})
    with pytest.raises(ValidationError, match="org_id"):
        dec("../etc", "misuse")
    with pytest.raises(ValidationError, match="return_score_margin"):
        TriageConfig(return_score_margin=0)
    with pytest.raises(ValidationError, match="triage"):
        DetectionConfig.model_validate({"triage": {"margin": 5}})


def test_a_corrupt_or_misnamed_decision_file_is_an_error_naming_it(settings: Settings) -> None:
    good = write_decision(settings.home, dec("A", "misuse"))
    assert [d.org_id for d in history(settings)] == ["A"]
    bad = triage_dir(settings.home) / "20260921T000000000000Z-0123456789ab.json"
    bad.write_text('{"org_id": "A", "verdict": "misuse"')  # cut short
    with pytest.raises(TriageFileError, match=str(bad)):
        history(settings)
    bad.unlink()
    renamed = good.with_name("20260101T000000000000Z-aaaaaaaaaaaa.json")
    good.rename(renamed)
    with pytest.raises(TriageFileError, match=f"{renamed}.*named <decision_id>.json"):
        history(settings)
    renamed.rename(good)
    with pytest.raises(FileExistsError):  # a decision is never replaced
        write_decision(settings.home, TriageDecision.model_validate_json(good.read_text()))


# --- recording, on a real (tiny) warehouse -----------------------------------------------


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four-org literal world of tests/unit/pipeline/profile/test_profile.py, profiled
    and detected on DAY1 and DAY2 (ORG00002 and ORG00004 rank first on hard facts)."""
    root = tmp_path_factory.mktemp("tiny")
    s = load_settings(home=root / "home", landing=root / "landing", pseudonym_key=TEST_KEY)
    world(s)
    for d in (DAY1, DAY2):
        build_profiles(s, d)
        detect(s, d)
    return s.home


@pytest.fixture
def home(tiny_home: Path, tmp_path: Path) -> Settings:
    shutil.copytree(tiny_home, tmp_path / "home")
    return load_settings(home=tmp_path / "home")


def test_record_reads_the_score_and_rules_of_the_day_and_appends(home: Settings) -> None:
    d = record(home, "ORG00004", "legitimate", "agreement being renewed", "amy")
    assert d.day == DAY2 and d.score_at_decision == 90.0
    assert d.rules_at_decision == ["ENT-02", "ENT-06"] and d.decided_at.tzinfo is UTC
    assert (triage_dir(home.home) / f"{d.decision_id}.json").is_file()
    assert "ORG00004" not in ids(suspects(home, DAY2))  # at once, without re-running detect
    assert "ORG00004" in ids(suspects(home, DAY1))  # a list before the verdict's day
    again = record(home, "ORG00004", Verdict.misuse, "renewal refused", "bob", day=DAY1)
    assert [x.verdict for x in history(home, "ORG00004")] == ["legitimate", "misuse"]
    assert history(home, "ORG00004")[-1] == again
    top = suspects(home, DAY2, top=1)
    assert ids(top) == ["ORG00004", "ORG00002"] and top[0].pinned
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        stored = con.execute("SELECT DISTINCT triage_status FROM suspects").fetchall()
    assert {s for (s,) in stored} <= {"new", "recurring"}  # the stored list is as detected
    ex = explain(home, "ORG00004", DAY2)
    assert ex.triage_status == "misuse" and [v.note for v in ex.verdicts] == [
        "agreement being renewed",
        "renewal refused",
    ]


def test_record_refuses_an_unknown_org_and_a_day_without_results(home: Settings) -> None:
    with pytest.raises(KeyError, match="unknown organisation 'ORG09999'"):
        record(home, "ORG09999", "misuse", "typo", "amy")
    with pytest.raises(LookupError, match="no detection results for 2031-01-01"):
        record(home, "ORG00001", "misuse", "wrong day", "amy", day=date(2031, 1, 1))
    with pytest.raises(ValidationError, match="until"):
        record(home, "ORG00001", "legitimate", "x", "amy", until=DAY1)  # before DAY2
    assert history(home) == []


def test_a_legitimate_org_returns_when_a_rule_fires_that_did_not_at_the_verdict(
    home: Settings,
) -> None:
    record(home, "ORG00002", "legitimate", "closure is a data error", "amy", day=DAY1)
    hidden = suspects(home, DAY2)
    assert "ORG00002" not in ids(hidden)  # ENT-01 fired at the verdict too
    with duckdb.connect(str(home.warehouse)) as con:  # a new rule fires on DAY2
        con.execute(
            "INSERT INTO rule_hits SELECT * REPLACE ('AUT-01' AS rule_id) FROM rule_hits "
            "WHERE day = $d AND org_id = 'ORG00002' AND rule_id = 'ENT-01'",
            {"d": DAY2},
        )
    (back,) = [r for r in suspects(home, DAY2) if r.org_id == "ORG00002"]
    assert back.triage_status == "returned" and "AUT-01 fired" in (back.triage_detail or "")


def test_recording_does_not_wait_for_a_job_holding_the_home(home: Settings) -> None:
    """A nightly job holds the writer lock and the warehouse (read-write) for a long time:
    the verdict is recorded at once, without its baseline, which is read later."""
    code = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()"  # noqa: E501
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(home.warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    cfg = load_config().model_copy(update={"triage": TriageConfig(context_wait_seconds=0.3)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with home_lock(home.home, purpose="nightly"):
            began = time.monotonic()
            d = record(home, "ORG00004", "legitimate", "renewed", "amy", config=cfg)
            took = time.monotonic() - began
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert took < 3, took
    assert d.day is None and d.score_at_decision is None and d.rules_at_decision == []
    # the job is done: the list reads the baseline of the latest day, and suppresses the org
    assert "ORG00004" not in ids(suspects(home, DAY2))
    assert "ORG00004" in ids(suspects(home, DAY2, include_suppressed=True))


def test_a_fresh_home_records_without_a_warehouse(settings: Settings) -> None:
    d = record(settings, "ORG00001", "needs_info", "asked for their DPIA", "amy")
    assert d.day is None and d.score_at_decision is None
    assert not settings.warehouse.exists()  # recording never creates one
    assert history(settings) == [d]


# --- concurrency: real processes --------------------------------------------------------


WORKER = """
import sys, time
from datetime import date
from pathlib import Path
from pipeline.triage.verdicts import record
from schemas.settings import load_settings
from schemas.triage import Verdict

home, who, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
settings = load_settings(home=Path(home))
verdicts = list(Verdict)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
for i in range(n):
    org = f"ORG0000{1 + i % 4}"
    record(settings, org, verdicts[i % 4], f"{who} note {i}", who, day=date(2026, 8, 11))
"""


def test_two_processes_recording_at_once_lose_nothing_and_corrupt_nothing(
    home: Settings, tmp_path: Path
) -> None:
    n, go = 25, tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home.home), who, str(n), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("amy", "bob")
    ]
    for w in workers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    go.touch()  # both begin together
    errors = [w.communicate(timeout=120)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    decisions = history(home)  # every file validates
    assert len(decisions) == 2 * n and len({d.decision_id for d in decisions}) == 2 * n
    spans = []
    for who in ("amy", "bob"):
        mine = [d for d in decisions if d.analyst == who]
        assert {d.note for d in mine} == {f"{who} note {i}" for i in range(n)}
        spans.append((min(d.decided_at for d in mine), max(d.decided_at for d in mine)))
    assert max(s[0] for s in spans) < min(s[1] for s in spans)  # they really overlapped
    assert decisions == sorted(decisions, key=TriageDecision.order_key)
    assert sorted(p.name for p in triage_dir(home.home).iterdir()) == sorted(
        f"{d.decision_id}.json" for d in decisions
    )  # no temporary file left behind


def test_two_cli_processes_recording_at_once(home: Settings) -> None:
    def loop(who: str) -> subprocess.Popen[str]:
        cmds = [
            [
                *ACCESSWATCH,
                "triage",
                f"ORG0000{i}",
                "--verdict",
                "needs_info",
                "--note",
                f"{who} {i}",
                "--analyst",
                who,
                "--home",
                str(home.home),
            ]
            for i in (1, 2)
        ]
        script = " && ".join(" ".join(f"'{a}'" for a in c) for c in cmds)
        return subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)

    procs = [loop("amy"), loop("bob")]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    notes = sorted(d.note for d in history(home))
    assert notes == sorted(f"{w} {i}" for w in ("amy", "bob") for i in (1, 2))


# --- the CLI end to end on the committed sample ------------------------------------------


@pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet")
def test_verdicts_change_the_sample_list_end_to_end(sample_home: SampleRun, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(sample_home.home, home)
    h = ["--home", str(home)]
    day = "2026-09-20"

    before = suspects(load_settings(home=home), date(2026, 9, 20), top=10)
    first, second, sixth = (before[i].org_id for i in (0, 1, 5))
    # an org of the stored list for which a rule fired after 2026-09-13 that had not fired
    # on that day: a legitimate verdict made against that day's list no longer holds
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        found = con.execute(
            "SELECT n.org_id FROM rule_hits AS n WHERE n.day > $w AND n.day <= $d "
            "AND NOT EXISTS (SELECT 1 FROM rule_hits AS o WHERE o.day = $w "
            "AND o.org_id = n.org_id AND o.rule_id = n.rule_id) "
            "AND n.org_id IN (SELECT org_id FROM suspects WHERE day = $d AND level = 'org') "
            "AND n.org_id NOT IN ($a, $b, $c) ORDER BY 1 LIMIT 1",
            {"d": date(2026, 9, 20), "w": date(2026, 9, 13), "a": first, "b": second, "c": sixth},
        ).fetchone()
    assert found is not None
    changed = found[0]
    steps = [
        (first, "legitimate", "MIS supplier's test account", "amy", []),
        (sixth, "misuse", "referred to the DPO", "amy", []),
        (changed, "legitimate", "looked fine last week", "bob", ["--day", "2026-09-13"]),
    ]
    for org, verdict, note, who, extra in steps:
        out = run("triage", org, "--verdict", verdict, "--note", note, "--analyst", who, *extra, *h)
        assert out.returncode == 0, out.stderr
        assert f"{org} {verdict} by {who}" in out.stdout
    settings = load_settings(home=home)
    record(settings, second, "needs_info", "asked the provider", "bob")
    after = suspects(settings, date(2026, 9, 20), top=200)
    assert after[0].org_id == sixth and after[0].pinned and not after[1].pinned
    status = {r.org_id: r.triage_status for r in after}
    assert status[sixth] == "misuse"
    assert first not in status  # suppressed
    assert status[second] == "needs_info" and status[changed] == "returned"
    accounts = suspects(settings, date(2026, 9, 20), top=200, by="account")
    assert accounts and not any(r.org_id == first for r in accounts)
    assert all(r.triage_status == "misuse" for r in accounts if r.org_id == sixth)
    table = run("suspects", "--day", day, "--top", "5", *h)
    assert "pinned" in table.stdout and "referred to the DPO" in table.stdout, table.stdout
    shown = run("explain", first, "--day", day, *h)
    assert shown.returncode == 0 and "verdict history" in shown.stdout
    assert "MIS supplier's test account" in shown.stdout and "legitimate" in shown.stdout
    history_json = run("triage", "--list", "--org", changed, "--format", "json", *h)
    (only,) = json.loads(history_json.stdout)
    assert only["verdict"] == "legitimate" and only["day"] == "2026-09-13"
    table = run("triage", "--list", *h)
    assert table.returncode == 0 and all(org in table.stdout for org in (first, second, sixth))
    # a damaged decision file is an error that names it, not a traceback
    bad = home / "triage" / "20260921T000000000000Z-0123456789ab.json"
    bad.write_text("{}")
    broken = run("suspects", "--day", day, *h)
    assert broken.returncode == 2 and "0123456789ab.json" in broken.stderr
    assert "Traceback" not in broken.stderr
