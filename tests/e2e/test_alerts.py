"""Alerts after the nightly, end to end: the committed sample's nightly through the CLI, a
real custom-webhook block on the session's Prefect server, and a real HTTP receiver on
127.0.0.1 that records what arrives.

The alerts expected are worked out here from the warehouse with SQL of this file (the
suspects table, rules.toml severities, the ingest ledger), not by the code under test.
"""

from __future__ import annotations

import json
import shutil
import threading
import tomllib
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, SAMPLE, TEST_KEY, SampleRun, lrs_row
from tests.contract.test_privacy import candidates, personal_values
from tests.unit.cli.test_cli import run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated"),
]
KEY = {"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
BLOCK = "accesswatch-test-alerts"
REPORT_URL = "https://accesswatch.example/reports"
SUSPECT_DAY = date(2026, 9, 4)  # three organisations qualify for the first time
DIGEST_DAY = date(2026, 8, 23)  # nothing new, and no npd/2026-08-23/ folder
REFUSED_DAY = date(2026, 9, 19)


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POSTed JSON body and answers with the
    next planned status (200 once the plan is used up)."""

    def __init__(self) -> None:
        self.received: list[tuple[int, dict[str, str]]] = []
        self.plan: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.plan.pop(0) if receiver.plan else 200
                receiver.received.append((status, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, str]]:
        """Bodies the receiver accepted (HTTP 200), in order."""
        return [body for status, body in self.received if status == 200]

    def reset(self) -> None:
        self.received.clear()
        self.plan.clear()


@pytest.fixture(scope="module")
def receiver(prefect_api: str) -> Iterator[Receiver]:
    """The receiver, and the block pointing at it saved by ``accesswatch alerts setup``."""
    r = Receiver()
    out = run("alerts", "setup", "--webhook-url", r.url, "--name", BLOCK)
    assert out.returncode == 0, out.stderr
    assert f"custom-webhook/{BLOCK}" in out.stdout and r.url not in out.stdout
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def fresh(receiver: Receiver) -> Receiver:
    receiver.reset()
    return receiver


def home_copy(sample_home: SampleRun, tmp_path: Path, block: str = BLOCK) -> tuple[Path, Path]:
    """A private copy of the sample home and a settings file that turns alerts on."""
    home = tmp_path / "home"
    shutil.copytree(sample_home.home, home)
    config = tmp_path / "accesswatch.toml"
    config.write_text(f'[alerts]\nenabled = true\nblock = "{block}"\nreport_url = "{REPORT_URL}"\n')
    return home, config


def nightly(day: date, home: Path, config: Path, landing: Path = SAMPLE / "landing") -> str:
    out = run(
        "nightly", "--day", day.isoformat(), "--home", str(home), "--landing", str(landing),
        "--config", str(config), env=KEY,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    return out.stdout + out.stderr


def expected_keys(home: Path, day: date, quiet_days: int = 7) -> set[str]:
    """The alerts of ``day`` by the rules of docs/operations.md, from the warehouse: each org
    of the day's list with score >= 60 or a high/critical rule that qualified on none of the
    7 days before; else the digest; plus each missing or refused delivery still standing."""
    rules = tomllib.loads((REPO / "detectors" / "rules.toml").read_text())["rules"]
    severe = [r["id"] for r in rules if r["severity"] in ("high", "critical")]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        con.execute(
            "CREATE TEMP TABLE q AS SELECT day, org_id FROM suspects WHERE level = 'org' "
            "AND (score >= 60 OR list_has_any(from_json(rules, '[\"VARCHAR\"]'), $severe))",
            {"severe": severe},
        )
        due = con.execute(
            "SELECT org_id FROM q AS t WHERE day = $d AND NOT EXISTS (SELECT 1 FROM q AS e "
            "WHERE e.org_id = t.org_id AND e.day BETWEEN $lo AND $d - 1)",
            {"d": day, "lo": day - timedelta(days=quiet_days)},
        ).fetchall()
        problems = con.execute(
            "SELECT DISTINCT source, status FROM ingest_ledger AS l WHERE delivery_day = $d "
            "AND status IN ('missing', 'refused') AND NOT EXISTS (SELECT 1 FROM ingest_ledger "
            "AS c WHERE c.status = 'committed' AND c.source = l.source AND c.delivery_day = $d "
            "AND c.started_at >= l.started_at AND (l.status = 'missing' "
            "OR c.source_file = l.source_file))",
            {"d": day},
        ).fetchall()
    keys = {f"suspect:{day}:{org}" for (org,) in due} or {f"digest:{day}"}
    return keys | {f"delivery:{day}:{source}:{status}" for source, status in problems}


def key_of(body: dict[str, str]) -> str:
    last = body["body"].splitlines()[-1]
    assert last.startswith("alert: "), body
    return last.removeprefix("alert: ")


def sent_record(home: Path) -> list[str]:
    path = home / "alerts" / "sent.jsonl"
    return [json.loads(x)["key"] for x in path.read_text().splitlines()] if path.exists() else []


def assert_private(bodies: list[dict[str, str]], values: set[str]) -> None:
    assert values, "no personal values to look for: the check would prove nothing"
    for body in bodies:
        text = f"{body['subject']}\n{body['body']}"
        leaked = sorted(candidates(text) & values)
        assert not leaked, f"{key_of(body)} holds personal values, e.g. {leaked[:3]}"


def test_the_nightly_sends_exactly_the_expected_alerts_with_no_personal_data(
    sample_home: SampleRun, tmp_path: Path, fresh: Receiver
) -> None:
    home, config = home_copy(sample_home, tmp_path)
    nightly(SUSPECT_DAY, home, config)
    bodies = fresh.delivered()
    keys = [key_of(b) for b in bodies]
    expected = expected_keys(home, SUSPECT_DAY)
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert all(k.startswith("suspect:") for k in keys) and len(keys) >= 2
    assert sorted(sent_record(home)) == sorted(expected)
    for body in bodies:
        assert f"report: {REPORT_URL}/{SUSPECT_DAY}.html" in body["body"]
        assert "score: " in body["body"] and "rules: " in body["body"]
    assert_private(bodies, personal_values(SAMPLE / "landing"))
    # The preview of the day shows the same alerts, marked as sent, and sends nothing.
    preview = run("alerts", "preview", "--day", str(SUSPECT_DAY), "--home", str(home),
                  "--config", str(config))  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.count("(already sent)") == len(expected)
    assert all(f"alert: {k}" in preview.stdout for k in expected)
    assert len(fresh.received) == len(bodies)


def test_a_refused_send_is_retried_by_the_next_run_and_delivered_once(
    sample_home: SampleRun, tmp_path: Path, fresh: Receiver
) -> None:
    home, config = home_copy(sample_home, tmp_path)
    fresh.plan = [500]
    first = nightly(SUSPECT_DAY, home, config)
    assert "1 of 1 days done" in first
    refused = key_of(fresh.received[0][1])
    assert fresh.received[0][0] == 500
    assert (
        f"alert {refused} not sent through block '{BLOCK}': the receiver answered HTTP 500" in first
    )
    assert fresh.url not in first and "127.0.0.1:" not in first  # the block's URL is never logged
    assert refused not in sent_record(home)
    outbox = (home / "alerts" / "outbox.jsonl").read_text()
    assert refused in outbox
    nightly(SUSPECT_DAY, home, config)  # the retry
    delivered = [key_of(b) for b in fresh.delivered()]
    assert sorted(delivered) == sorted(expected_keys(home, SUSPECT_DAY))
    assert delivered.count(refused) == 1 and delivered[-1] == refused
    before = len(fresh.received)
    nightly(SUSPECT_DAY, home, config)  # a rerun of the same day sends nothing
    assert len(fresh.received) == before
    assert sorted(sent_record(home)) == sorted(set(delivered))


def test_a_quiet_day_with_a_missing_npd_delivery_sends_a_digest_and_a_delivery_alert(
    sample_home: SampleRun, tmp_path: Path, fresh: Receiver
) -> None:
    home, config = home_copy(sample_home, tmp_path)
    assert not (SAMPLE / "landing" / "npd" / str(DIGEST_DAY)).exists()
    nightly(DIGEST_DAY, home, config)
    bodies = {key_of(b): b for b in fresh.delivered()}
    expected = {f"digest:{DIGEST_DAY}", f"delivery:{DIGEST_DAY}:npd:missing"}
    assert set(bodies) == expected == expected_keys(home, DIGEST_DAY)
    digest = bodies[f"digest:{DIGEST_DAY}"]["body"]
    assert "no new or returned suspect" in digest and f"{REPORT_URL}/{DIGEST_DAY}.html" in digest
    missing = bodies[f"delivery:{DIGEST_DAY}:npd:missing"]
    assert "npd delivery missing" in missing["subject"]
    assert "no delivery folder arrived" in missing["body"]
    assert_private(list(bodies.values()), personal_values(SAMPLE / "landing"))


def _latest_summary(api_url: str) -> str:
    """The newest nightly summary on the session server. The URL is passed explicitly: this
    process may have loaded Prefect's settings before the fixture set PREFECT_API_URL, and
    would then start a temporary server of its own (which timed out under load)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.artifacts import NIGHTLY_SUMMARY_KEY

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[NIGHTLY_SUMMARY_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found
    return str(found[0].data)


def test_a_headerless_file_gives_a_refused_alert_and_no_output_quotes_its_rows(
    sample_home: SampleRun, tmp_path: Path, fresh: Receiver, prefect_api: str
) -> None:
    """Regression (issue 18): a file with no header row had its first data row quoted as
    the "found" columns, into the ledger, the summary artifact, the flow message, the CLI."""
    home, config = home_copy(sample_home, tmp_path)
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE / "landing" / "reference", landing / "reference")
    for source in ("lrs", "npd"):
        day = Path(source) / str(REFUSED_DAY)
        shutil.copytree(SAMPLE / "landing" / day, landing / day)
    rows = [
        lrs_row(f"hx{i}", uln=f"98765432{i}0", dob=f"2007-0{i + 1}-1{i}",
                postcode=f"QX{i} 7WT", user_name=f"zed.leaker{i}")
        for i in range(3)
    ]  # fmt: skip
    bad = landing / "lrs" / str(REFUSED_DAY) / "lrs_events_headerless.csv"
    bad.write_text("".join(",".join(str(v) for v in r.values()) + "\n" for r in rows))
    output = nightly(REFUSED_DAY, home, config, landing)
    assert "lrs_events_headerless.csv" in output and "none of them a known column" in output
    bodies = {key_of(b): b for b in fresh.delivered()}
    assert set(bodies) == expected_keys(home, REFUSED_DAY)
    refused = bodies[f"delivery:{REFUSED_DAY}:lrs:refused"]["body"]
    assert "files refused: 1" in refused and "reason: a required column is missing" in refused
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        reasons = [r for (r,) in con.execute("SELECT reason FROM ingest_ledger").fetchall()]
    places = {
        "cli": output,
        "ledger": "\n".join(reasons),
        "summary": _latest_summary(prefect_api),
        "alerts": "\n".join(b["subject"] + "\n" + b["body"] for b in bodies.values()),
    }
    assert "lrs_events_headerless.csv" in places["summary"]
    for r in rows:
        for field in ("uln", "dob", "postcode", "user_name", "event_id"):
            for where, text in places.items():
                assert str(r[field]) not in text, f"{field} {r[field]} in the {where}"


def test_without_the_block_the_nightly_completes_and_keeps_the_alerts_queued(
    sample_home: SampleRun, tmp_path: Path, fresh: Receiver
) -> None:
    home, config = home_copy(sample_home, tmp_path, block="no-such-block")
    output = nightly(DIGEST_DAY, home, config)
    assert "1 of 1 days done" in output
    assert "notification block 'no-such-block' could not be loaded" in output
    assert fresh.received == [] and sent_record(home) == []
    queued = (home / "alerts" / "outbox.jsonl").read_text()
    assert f"digest:{DIGEST_DAY}" in queued


def test_an_org_judged_legitimate_is_not_alerted(sample_home: SampleRun, tmp_path: Path) -> None:
    home, config = home_copy(sample_home, tmp_path)
    common = ["--home", str(home), "--config", str(config)]
    before = run("alerts", "preview", "--day", str(SUSPECT_DAY), *common)
    assert before.returncode == 0, before.stderr
    keys = sorted(expected_keys(home, SUSPECT_DAY))
    assert (
        all(f"alert: {k}" in before.stdout for k in keys) and "(already sent)" not in before.stdout
    )
    org = keys[0].rsplit(":", 1)[1]
    verdict = run(
        "triage", org, "--verdict", "legitimate", "--note", "known bulk re-registration",
        "--analyst", "test", "--day", str(SUSPECT_DAY), "--home", str(home),
    )  # fmt: skip
    assert verdict.returncode == 0, verdict.stderr
    after = run("alerts", "preview", "--day", str(SUSPECT_DAY), *common)
    assert f"suspect:{SUSPECT_DAY}:{org}" not in after.stdout
    assert all(f"alert: {k}" in after.stdout for k in keys[1:])
