"""The HTML report: charts and escaping on literal data, then real reports in a real browser.

Browser tests run Debian's headless ``chromium`` through Selenium with Debian's
``/usr/bin/chromedriver`` (so Selenium Manager never downloads a driver). The session
fixture installs both with apt-get when they are missing; the tests skip, saying why, only
when that is impossible. Screenshots go to ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.outputs.report import (
    BODY_BEGIN,
    BODY_END,
    Card,
    ReportData,
    RunMetadata,
    Verdict,
    _environment,
    body_hash,
    latest_verdicts,
    peers_svg,
    render,
    stated_hash,
    timeline_svg,
    top_features,
    write_report,
)
from pipeline.triage.verdicts import write_decision
from schemas.detection import (
    AccountShare,
    FeatureComparison,
    OrgExplanation,
    Reason,
    Suspect,
    TimelinePoint,
)
from schemas.flows import DaySummary
from schemas.settings import Settings, load_settings
from schemas.triage import TriageDecision
from tests.conftest import LRS_COLUMNS, REPO, SAMPLE, TEST_KEY, SampleRun, lrs_row, write_csv
from tests.unit.cli.test_cli import run

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "chromium"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SAMPLE_DAY = date(2026, 9, 20)

# Attacker-controlled text, each of which sets a window flag (or opens a dialog) if it runs.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=2">',
    "<svg onload=window.__xss=3>",
]


# --- Charts and rendering on literal data ---------------------------------------------------


def _point(day: int, score: float, rank: int | None = None) -> TimelinePoint:
    return TimelinePoint(day=date(2026, 9, day), score=score, rank=rank)


def test_timeline_is_well_formed_svg_with_a_gap_for_days_without_scores() -> None:
    points = [_point(1, 10), _point(2, 20, 20), _point(4, 90, 30)]
    svg = timeline_svg(points, date(2026, 9, 4), top=25)
    root = ET.fromstring(svg)  # well-formed XML: the browser parses it as SVG
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 1  # 1-2 Sep joined; 3 Sep missing: a gap
    dots = root.findall(f"{ns}circle")
    assert [d.get("class") for d in dots] == ["dot", "dot ranked", "dot"]  # filled: top 25
    assert dots[-1].findtext(f"{ns}title") == "2026-09-04: score 90.0, rank 30"


def _comparison(feature: str, value: float, peer: float, z: float) -> FeatureComparison:
    return FeatureComparison(
        feature=feature, definition="d", value=value, peer_median=peer, peer_z=z, text="t"
    )


def test_peer_chart_keeps_one_feature_per_family_and_escapes_the_peer_group() -> None:
    chosen = top_features(
        [
            _comparison("sweep_share_1d", 1.0, 0.0, 20.0),
            _comparison("sweep_share_7d", 0.9, 0.0, 19.0),  # same family: left out
            _comparison("calls_7d", 300.0, 40.0, 5.0),
            _comparison("search_share_7d", 0.1, 0.1, 0.0),
        ],
        n=2,
    )
    assert [c.feature for c in chosen] == ["sweep_share_1d", "calls_7d"]
    svg = peers_svg(chosen, "<b>peers</b> & co")
    root = ET.fromstring(svg)
    assert "&lt;b&gt;peers&lt;/b&gt; &amp; co" in svg and "<b>" not in svg
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "sweep share, today" in texts and "100%" in texts and "calls, 7 days" in texts


def _literal_report(payload: str, verdict: Verdict | None = None) -> ReportData:
    """A one-card report whose every logged string is ``payload``."""
    suspect = Suspect(
        rank=1,
        org_id=f"ORG{payload}",
        org_name=payload,
        org_type="training_provider",
        score=91.5,
        rules=["ENT-01"],
        reasons=[Reason(feature="calls_7d", text=f"account {payload}: 9 calls")],
        accounts=[AccountShare(user_name=payload, share=1.0, score=80.0)],
        first_flagged=date(2026, 9, 1),
        triage_status="new",
    )
    explanation = OrgExplanation(
        org_id=suspect.org_id,
        org_name=payload,
        org_type="training_provider",
        day=date(2026, 9, 4),
        peer_group=payload,
        score=91.5,
        rank=1,
    )
    from pipeline.outputs.report import AgentView

    card = Card(
        anchor="suspect-1",
        suspect=suspect,
        explanation=explanation,
        status=f"revoked since {payload}",
        rules=[],
        agents=[AgentView(user_agent=payload, calls=9, accounts=1, script=False)],
        verdict=verdict,
        timeline_svg=timeline_svg([_point(4, 91.5, 1)], date(2026, 9, 4)),
        peers_svg=peers_svg([], payload),
    )
    return ReportData(
        day=date(2026, 9, 4),
        top=1,
        cards=[card],
        summary=DaySummary(
            day=date(2026, 9, 4),
            quarantine_reasons={payload: 1},
            refused=[f"lrs/2026-09-04/{payload}.csv: {payload}"],
        ),
        deliveries=[],
        meta=RunMetadata(None, None, None, None, 0, "r", "d", "c", "t"),
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_logged_string_is_escaped(payload: str) -> None:
    verdict = Verdict(
        verdict="legitimate", analyst=payload, decided_at=datetime(2026, 9, 3, tzinfo=UTC),
        note=payload,
    )  # fmt: skip
    html = render(_literal_report(payload, verdict))
    assert _environment().autoescape is True
    assert payload not in html
    assert "<script" not in html and "<img" not in html and "<svg onload" not in html
    assert html.count("&lt;") >= 10  # name, id, reason, account, agent, note, ... as text


def test_the_stated_hash_covers_the_body_and_changes_with_it() -> None:
    data = _literal_report("Acme")
    html = render(data, generated_at=datetime(2026, 9, 4, 3, 0, tzinfo=UTC))
    later = render(data, generated_at=datetime(2026, 9, 5, 3, 0, tzinfo=UTC))
    assert stated_hash(html) == body_hash(html) == stated_hash(later)  # time is not content
    assert html.index(BODY_BEGIN) < html.index(BODY_END)
    tampered = html.replace("91.5", "19.5")
    assert body_hash(tampered) != stated_hash(tampered)


def test_latest_verdict_per_org_comes_from_triage_history(settings: Settings) -> None:
    """The report shows each org's latest decision, as ``pipeline.triage.verdicts`` stored
    it, with the analyst's note escaped."""

    def decision(org: str, verdict: str, day: int, note: str) -> TriageDecision:
        return TriageDecision(
            decision_id=f"decision-{org}-{day}", org_id=org, verdict=verdict, note=note,
            analyst="ana", decided_at=datetime(2026, 9, day, tzinfo=UTC), until=None,
            day=date(2026, 9, day), score_at_decision=88.0, rules_at_decision=["ENT-01"],
        )  # fmt: skip

    for d in (
        decision("ORG1", "needs_info", 1, "asked"),
        decision("ORG1", "misuse", 3, "<b>confirmed</b>"),
        decision("ORG2", "legitimate", 2, "surge"),
    ):
        write_decision(settings.home, d)
    latest = latest_verdicts(settings, ["ORG1", "ORG3"])
    assert latest is not None and set(latest) == {"ORG1"}
    assert (latest["ORG1"].verdict, latest["ORG1"].note) == ("misuse", "<b>confirmed</b>")
    html = render(_literal_report("Acme", latest["ORG1"]))
    assert '<span class="verdict misuse">misuse</span>' in html
    assert "&lt;b&gt;confirmed&lt;/b&gt;" in html


# --- A real browser -----------------------------------------------------------------------


def _install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver when missing; None when ready, else
    why they cannot be installed."""
    if shutil.which(CHROMIUM) and CHROMEDRIVER.exists():
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        return "chromium is missing and there is no apt-get to install it"
    if os.geteuid() != 0:
        return "chromium is missing and installing it needs root (apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", CHROMIUM, "chromium-driver"]
    out = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:  # package lists missing or stale on a fresh machine
        subprocess.run([apt, "update"], capture_output=True, env=env, timeout=600)
        out = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0 or not shutil.which(CHROMIUM) or not CHROMEDRIVER.exists():
        return f"apt-get install chromium chromium-driver failed: {out.stderr.strip()[-400:]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary, installed with apt-get when missing."""
    why = _install_chromium()
    if why is not None:
        pytest.skip(why)
    path = shutil.which(CHROMIUM)
    assert path is not None
    return path


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    """Headless chromium at a laptop's size, logging the console and the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1440,900", "--hide-scrollbars", "--no-first-run",
                "--disable-background-networking", "--disable-component-update"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Load ``path``; return the page's console entries and every URL it requested."""
    driver.get_log("browser")  # drop anything logged before this page
    driver.get_log("performance")
    driver.get(path.resolve().as_uri())
    console = driver.get_log("browser")
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return console, urls


def _assert_self_contained(driver: Any, path: Path) -> None:
    console, urls = _open(driver, path)
    assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == []
    assert urls == [path.resolve().as_uri()]  # the file itself, nothing else
    html = path.read_text(encoding="utf-8")
    assert stated_hash(html) == body_hash(html)
    dom = driver.execute_script(
        "return {scripts: document.scripts.length, images: document.images.length,"
        " links: [...document.querySelectorAll('link[href]')].map(l => l.href),"
        " handlers: [...document.querySelectorAll('*')].filter(el => [...el.attributes]"
        "   .some(a => a.name.startsWith('on'))).length}"
    )
    assert dom == {"scripts": 0, "images": 0, "links": ["data:,"], "handlers": 0}


def _screenshot(driver: Any, name: str, anchor: str | None = None) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    if anchor:
        driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", anchor)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    return path


def _text(driver: Any, selector: str) -> str:
    """The text content of the first element matching ``selector`` (hidden parts too)."""
    return str(driver.execute_script("return document.querySelector(arguments[0]).textContent",
                                     selector))  # fmt: skip


def _count(driver: Any, selector: str) -> int:
    return int(driver.execute_script(f"return document.querySelectorAll('{selector}').length"))


@pytest.mark.slow
def test_sample_report_through_the_cli_opens_offline_in_a_browser(
    sample_home: SampleRun, browser: Any, tmp_path: Path
) -> None:
    """The sample's report: one file, no console errors, no request but itself, 25 cards
    with two charts each, and the data-quality and metadata sections."""
    out = tmp_path / "report.html"
    args = ["--day", str(SAMPLE_DAY), "--out", str(out), "--home", str(sample_home.home)]
    done = run("report", *args)
    assert done.returncode == 0, done.stderr
    digest = stated_hash(out.read_text(encoding="utf-8"))
    assert digest is not None and f"wrote {out} (body sha256 {digest})" in done.stdout
    _assert_self_contained(browser, out)
    assert _count(browser, "article.suspect") == 25
    assert _count(browser, "table.ranked tbody tr") == 25
    assert _count(browser, "article.suspect svg.chart") == 50
    text = _text(browser, "body")
    for heading in ("Ranked list", "Data quality", "Run metadata", "Refused deliveries"):
        assert heading in text
    assert "2026-08-10 to 2026-09-20 (42 days)" in text  # the data range
    _screenshot(browser, "report-sample.png")
    _screenshot(browser, "report-sample-card.png", "suspect-1")
    # a day that was never scored is a clear error, not an empty report
    missing = run("report", "--day", "2026-01-01", "--out", str(tmp_path / "x.html"),
                  "--home", str(sample_home.home))  # fmt: skip
    assert missing.returncode == 2 and "no detection results for 2026-01-01" in missing.stderr
    assert not (tmp_path / "x.html").exists()


def _xss_world(sample_home: SampleRun, root: Path) -> tuple[Settings, str]:
    """A copy of the sample with one more delivery day (2026-09-21) in which a revoked org
    whose registered name is HTML calls the LRS from accounts and user agents that are HTML,
    and a refused delivery file whose name is HTML. Returns the settings and that org."""
    shutil.copytree(sample_home.home, root / "home")
    shutil.copytree(SAMPLE / "landing", root / "landing")
    register = root / "landing" / "reference" / "organisations.csv"
    with register.open(newline="") as f:
        orgs = list(csv.DictReader(f))
    target = next(o for o in orgs if o["ukprn"] and o["org_type"] == "training_provider")
    target.update(name=PAYLOADS[2] + 'Evil & "Co"', status="revoked",
                  status_changed_on="2026-09-01")  # fmt: skip
    with register.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(orgs[0]))
        writer.writeheader()
        writer.writerows(orgs)
    day = root / "landing" / "lrs" / "2026-09-21"
    rows = [
        lrs_row(
            f"XSS-{i}",
            occurred_at=f"2026-09-21T10:{i // 60:02d}:{i % 60:02d}Z",
            ukprn=target["ukprn"],
            user_name=PAYLOADS[3] if i % 2 else PAYLOADS[4],
            user_agent=PAYLOADS[i % len(PAYLOADS)],
        )
        for i in range(40 * len(PAYLOADS))  # enough calls to be the org's top user agents
    ]
    write_csv(day / "calls.csv", rows, LRS_COLUMNS)
    write_csv(day / "<b>bad<b>.csv", rows[:1], [c for c in LRS_COLUMNS if c != "channel"])
    settings = load_settings(home=root / "home", landing=root / "landing", pseudonym_key=TEST_KEY)
    return settings, target["org_id"]


@pytest.mark.slow
def test_html_in_the_logs_is_shown_as_text_and_never_runs(
    sample_home: SampleRun, browser: Any, tmp_path: Path
) -> None:
    """Org name, user names and user agents with script and event-handler payloads go
    through ingest, profiles and detection into the nightly report path; the browser shows
    them as text, runs nothing (no flag set, no dialog) and fetches nothing."""
    from selenium.common.exceptions import NoAlertPresentException

    from pipeline.ingest.deliveries import ingest
    from pipeline.ingest.reference import load_reference
    from pipeline.profile.build import build_profiles
    from pipeline.rank.detect import detect
    from pipeline.triage.verdicts import record

    settings, org = _xss_world(sample_home, tmp_path)
    day = date(2026, 9, 21)
    load_reference(settings)
    ingested = ingest(settings, "lrs", [day])
    assert [d.status.value for d in ingested.deliveries] == ["refused", "committed"]
    build_profiles(settings, day)
    detect(settings, day)
    # triage notes and analysts' names are free text too
    record(settings, org, "needs_info", note=PAYLOADS[0], analyst=PAYLOADS[1], day=day)

    path = write_report(settings, day, top=10)
    assert path == settings.home / "reports" / "2026-09-21.html"
    html = path.read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in html

    _assert_self_contained(browser, path)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no dialog is open
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert _count(browser, "article.suspect") == 10
    card = browser.execute_script(
        "const row = [...document.querySelectorAll('article.suspect')]"
        ".find(a => a.innerText.includes(arguments[0])); return row ? row.id : null",
        org,
    )
    assert card is not None, f"{org} is not among the report's cards"
    shown = _text(browser, f"#{card}")  # text nodes, including collapsed example events
    assert PAYLOADS[2] + 'Evil & "Co"' in shown  # the registered name, as text
    for payload in PAYLOADS:  # user agents and account names, as text
        assert payload in shown
    assert f"needs_info by {PAYLOADS[1]}" in shown and PAYLOADS[0] in shown
    quality = _text(browser, "#quality")
    assert "lrs/2026-09-21/<b>bad<b>.csv" in quality  # the refused file, named as text
    _screenshot(browser, "report-xss.png", card)
