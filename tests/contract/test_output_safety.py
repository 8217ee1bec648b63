"""Outputs that cannot attack their reader.

A small world whose register, deliveries and analysts' notes hold rich markup (``[/]``),
ESC sequences (clear screen, OSC-8 hyperlinks), C1 controls, bidi overrides and
spreadsheet formulas goes through the real CLI: nothing raw reaches the terminal, no
traceback, the true text is shown (controls as escapes), CSV cells are neutralised. Then
the evidence verifier on tampered packs (zip slip, duplicates, symlinks, a zip bomb) and
output paths that cannot be written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from markupsafe import escape

from pipeline.ingest.deliveries import ingest
from pipeline.ingest.reference import load_reference
from pipeline.outputs.evidence import MANIFEST, build_pack, verify_pack
from pipeline.outputs.safe_text import csv_cell, markup, visible
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from schemas.evidence import VerifyLimits
from schemas.settings import Settings, load_settings
from tests.conftest import LRS_COLUMNS, NPD_COLUMNS, TEST_KEY, lrs_row, npd_row, write_csv
from tests.unit.cli.test_cli import run
from tests.unit.pipeline.ingest.test_reference import agreement, org, write_reference

DAY = date(2026, 8, 10)
ESC_CLEAR = "\x1b[2J"
OSC8 = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"
ORG_NAME = f'=HYPERLINK("http://evil.example","y") [/] {ESC_CLEAR}{OSC8} \u202eegelloC'
RESEARCH = "@SUM(1)[/]"  # an org id: markup and a formula
RESEARCH_NAME = "-2+3 Research \x9b31m"  # a formula and a C1 CSI
USER = f"+cmd|' /C calc'!A0 [/bold]{ESC_CLEAR}:warning:amy"  # :x: is no emoji
FILE = f"x[@click=(]y{ESC_CLEAR}.csv"
NOTE = f"asked [/b]{OSC8} \u202eok"
ANALYST = f"ana[/]{ESC_CLEAR}"
WIDE = {"COLUMNS": "400"}  # tables fold long cells over lines; wide enough not to


@dataclass(frozen=True)
class Hostile:
    settings: Settings
    ingest: subprocess.CompletedProcess[str]
    pack: Path


def _home(settings: Settings) -> list[str]:
    return ["--home", str(settings.home)]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    """Three orgs (one with a hostile name, one with a hostile id and name, one revoked),
    a delivery file with a hostile name, an account with a hostile name and user agent;
    ingested through the CLI, profiled and detected for one day, a verdict with a hostile
    analyst and note recorded through the CLI, and an evidence pack of the research org."""
    root = tmp_path_factory.mktemp("hostile")
    s = load_settings(home=root / "home", landing=root / "landing", pseudonym_key=TEST_KEY)
    write_reference(
        s,
        [
            org("ORG00001", ukprn="10000001", name=ORG_NAME),
            org("ORG00002", ukprn="10000002", org_type="training_provider", status="revoked",
                status_changed_on="2026-08-01", expected_learners=200),
            org(RESEARCH, ukprn="", org_type="research", expected_learners=0,
                name=RESEARCH_NAME),
        ],
        [agreement("DS00752", org_id=RESEARCH)],
    )  # fmt: skip
    c = "10000001"
    write_csv(
        s.landing / "lrs" / DAY.isoformat() / FILE,
        [
            lrs_row("e1", ukprn=c, occurred_at="2026-08-10T10:00:00Z", user_name=USER,
                    operation="learnerByDemographics", user_agent=OSC8),
            lrs_row("e2", ukprn=c, occurred_at="2026-08-10T21:30:00Z", user_name=USER,
                    operation="registerSingleLearner"),
            lrs_row("e3", ukprn="10000002", occurred_at="2026-08-10T10:00:00Z"),
        ],
        LRS_COLUMNS,
    )  # fmt: skip
    write_csv(
        s.landing / "npd" / DAY.isoformat() / "part-1.csv",
        [npd_row("n1", org_id=RESEARCH, occurred_at="2026-08-10T10:00:00Z", agreement_ref="")],
        NPD_COLUMNS,
    )
    load_reference(s)
    env = {"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
    ingested = run("ingest", "--source", "lrs", "--all", *_home(s),
                   "--landing", str(s.landing), env=env)  # fmt: skip
    ingest(s, "npd")
    build_profiles(s, DAY)
    detect(s, DAY)
    recorded = run("triage", "ORG00001", "--verdict", "needs_info", "--analyst", ANALYST,
                   "--note", NOTE, "--day", DAY.isoformat(), *_home(s))  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    _assert_safe(recorded)
    assert "ana[/]\\x1b[2J" in recorded.stdout
    pack = build_pack(s, RESEARCH, DAY, root / "packs" / "research").zip_path
    return Hostile(settings=s, ingest=ingested, pack=pack)


def _assert_safe(out: subprocess.CompletedProcess[str]) -> None:
    """Nothing raw from the data reached the terminal, and no traceback."""
    for stream in (out.stdout, out.stderr):
        assert "Traceback" not in stream and "MarkupError" not in stream
        assert "\x1b" not in stream and "\x9b" not in stream and "\u202e" not in stream


# --- The sanitising functions --------------------------------------------------------------


def test_controls_bidi_and_surrogates_are_shown_as_escapes_and_plain_text_is_untouched() -> None:
    assert visible(f"a{ESC_CLEAR}b\u202ec\x9bd\x00\ud800\u2028") == (
        "a\\x1b[2Jb\\u202ec\\x9bd\\x00\\ud800\\u2028"
    )
    assert visible("Ysgol Gymraeg Llanelli – Pen-y-groes [ok] 漢字") == (
        "Ysgol Gymraeg Llanelli – Pen-y-groes [ok] 漢字"
    )
    assert visible("two\nlines\t") == "two\\x0alines\\x09"
    assert visible("two\nlines", newlines=True) == "two\nlines"
    assert markup("a[/]b") == "a\\[/]b"


def test_formula_cells_get_an_apostrophe_and_other_text_does_not() -> None:
    cells = ["=HYPERLINK(1)", "+cmd|x", "-2+3", "@SUM(1)", "\tx", "\rx", "curl/8", "", "a=b"]
    assert [csv_cell(c) for c in cells] == [
        "'=HYPERLINK(1)", "'+cmd|x", "'-2+3", "'@SUM(1)", "'\tx", "'\rx", "curl/8", "", "a=b"
    ]  # fmt: skip


# --- The CLI on the hostile world -----------------------------------------------------------


def test_ingest_names_the_true_file_with_markup_kept_and_esc_shown(hostile: Hostile) -> None:
    """Regression: ``x[@click=(]y.csv`` was printed as ``xy.csv`` (taken as markup)."""
    assert hostile.ingest.returncode == 0, hostile.ingest.stderr
    _assert_safe(hostile.ingest)
    assert "lrs/2026-08-10/x[@click=(]y\\x1b[2J.csv" in hostile.ingest.stdout


def test_suspects_table_shows_hostile_names_as_text(hostile: Hostile) -> None:
    out = run("suspects", "--day", DAY.isoformat(), "--by", "account",
              *_home(hostile.settings), env=WIDE)  # fmt: skip
    assert out.returncode == 0, out.stderr
    _assert_safe(out)
    assert f"ORG00001 {visible(ORG_NAME)}" in out.stdout
    assert f"account {visible(USER)}" in out.stdout


@pytest.mark.parametrize(("by", "formulas"), [("org", 3), ("account", 2)])
def test_suspects_csv_neutralises_formula_cells_and_keeps_numbers(
    hostile: Hostile, by: str, formulas: int
) -> None:
    import csv

    out = run("suspects", "--day", DAY.isoformat(), "--format", "csv", "--by", by,
              *_home(hostile.settings))  # fmt: skip
    assert out.returncode == 0, out.stderr
    _assert_safe(out)
    rows = list(csv.DictReader(out.stdout.splitlines()))
    text_cells = [v for r in rows for k, v in r.items() if k not in ("rank", "score")]
    assert not [v for v in text_cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert sum(v.startswith("'") for v in text_cells) == formulas
    assert all(float(r["score"]) >= 0 and int(r["rank"]) >= 1 for r in rows)
    names = {r["org_name"] for r in rows}
    assert "'" + visible(ORG_NAME) in names
    if by == "org":
        assert {"'" + RESEARCH, "'" + visible(RESEARCH_NAME)} <= {
            v for r in rows for v in r.values()
        }
    else:
        assert "'" + visible(USER) in {r["user_name"] for r in rows}


def test_explain_and_triage_list_survive_markup_and_escapes(hostile: Hostile) -> None:
    """Regression: ``explain`` ended in a MarkupError traceback on ``[/]`` in a name."""
    home = _home(hostile.settings)
    research = run("explain", RESEARCH, "--day", DAY.isoformat(), *home)
    assert research.returncode == 0, research.stderr
    _assert_safe(research)
    assert f"{RESEARCH} {visible(RESEARCH_NAME)}" in research.stdout
    shown = run("explain", "ORG00001", "--day", DAY.isoformat(), *home)
    assert shown.returncode == 0, shown.stderr
    _assert_safe(shown)
    assert visible(ORG_NAME) in shown.stdout
    assert f"needs_info - by {visible(ANALYST)}" in shown.stdout
    assert visible(NOTE) in shown.stdout  # on the triage line (and in the history table)
    listed = run("triage", "--list", *home, env=WIDE)
    assert listed.returncode == 0, listed.stderr
    _assert_safe(listed)
    assert visible(NOTE) in listed.stdout and visible(ANALYST) in listed.stdout


def test_explain_json_is_ascii_and_round_trips(hostile: Hostile) -> None:
    out = run("explain", "ORG00001", "--day", DAY.isoformat(), "--format", "json",
              *_home(hostile.settings))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.isascii()  # every control and bidi character as \uXXXX
    assert json.loads(out.stdout)["org_name"] == ORG_NAME


def test_negative_top_is_refused(hostile: Hostile) -> None:
    """Regression: ``--top -5`` returned every row but five."""
    out = run("suspects", "--day", DAY.isoformat(), "--top", "-5", *_home(hostile.settings))
    assert out.returncode == 2 and "--top" in out.stderr


def test_an_org_id_cannot_name_a_path_and_errors_quote_it_safely(
    hostile: Hostile, tmp_path: Path
) -> None:
    """The org id is data, never part of a path: ``../../x`` is an unknown organisation,
    nothing is written, and the error quotes it with its markup and ESC made harmless."""
    bad = f"../../x[/]{ESC_CLEAR}"
    out = run("evidence", bad, "--day", DAY.isoformat(), "--out", str(tmp_path / "p"),
              *_home(hostile.settings))  # fmt: skip
    assert out.returncode == 2
    _assert_safe(out)
    assert "unknown organisation '../../x[/]\\x1b[2J'" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_evidence_pack_csvs_neutralise_formulas(hostile: Hostile) -> None:
    with zipfile.ZipFile(hostile.pack) as z:
        names = z.namelist()
        npd = z.read(next(n for n in names if n.endswith("events_npd.csv"))).decode()
    assert f",'{RESEARCH}," in npd and f",{RESEARCH}," not in npd


# --- Output paths ------------------------------------------------------------------------


def test_report_out_a_folder_writes_the_day_inside_it(hostile: Hostile, tmp_path: Path) -> None:
    out = run("report", "--day", DAY.isoformat(), "--out", str(tmp_path),
              *_home(hostile.settings))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"wrote {tmp_path / f'{DAY}.html'}" in out.stdout
    html = (tmp_path / f"{DAY}.html").read_text(encoding="utf-8")
    for raw in ("\x1b", "\x9b", "\u202e"):
        assert raw not in html  # shown as escapes: a bidi override would reverse the name
    assert str(escape(visible(ORG_NAME))) in html


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("missing/r.html", "the folder {tmp}/missing does not exist"),
        # /proc takes no new files, even from root (tests run as root: chmod cannot show it)
        ("/proc/r.html", "cannot write /proc/r.html:"),
    ],
)
def test_report_out_that_cannot_be_written_is_one_clear_line(
    hostile: Hostile, tmp_path: Path, out: str, message: str
) -> None:
    target = out if out.startswith("/") else str(tmp_path / out)
    done = run("report", "--day", DAY.isoformat(), "--out", target, *_home(hostile.settings))
    assert done.returncode == 2
    _assert_safe(done)
    assert message.format(tmp=tmp_path) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- Verifying tampered packs ------------------------------------------------------------


def _tampered(pack: Path, dst: Path, add: dict[str, bytes] | None = None) -> Path:
    """A copy of ``pack`` with members appended (zipfile warns on duplicates: expected)."""
    import warnings

    with zipfile.ZipFile(pack) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info, a.read(info))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, data in (add or {}).items():
                b.writestr(name, data)
    return dst


def _symlink_member(pack: Path, dst: Path) -> Path:
    _tampered(pack, dst)
    with zipfile.ZipFile(dst, "a") as z:
        info = zipfile.ZipInfo("research/link")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        z.writestr(info, "/etc/passwd")
    return dst


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("research/../../evil.txt", "'..' (climbs out of the pack)"),
        ("/etc/evil", "an absolute path"),
        ("C:/evil", "a drive letter"),
        ("research\\..\\evil", "a backslash"),
        ("research/summary.json", "appears more than once (the same name)"),
        ("research/SUMMARY.JSON", "appears more than once (names differing only in case)"),
    ],
)
def test_verify_refuses_unsafe_members(
    hostile: Hostile, tmp_path: Path, member: str, problem: str
) -> None:
    """Regression: a duplicate entry with other bytes passed verification."""
    bad = _tampered(hostile.pack, tmp_path / "bad.zip", {member: b"tampered"})
    result = verify_pack(bad)
    assert not result.ok and result.checked == 0  # refused before anything was hashed
    assert [p for p in result.problems if problem in p and repr(member) in p]


def test_verify_refuses_a_symlink_member_and_a_symlink_in_a_folder(
    hostile: Hostile, tmp_path: Path
) -> None:
    result = verify_pack(_symlink_member(hostile.pack, tmp_path / "link.zip"))
    assert result.problems == ["entry 'research/link' is a symbolic link"]
    folder = tmp_path / "folder"
    with zipfile.ZipFile(hostile.pack) as z:
        z.extractall(tmp_path / "x")
    shutil.move(tmp_path / "x" / "research", folder)
    (folder / "summary.json").unlink()
    (folder / "summary.json").symlink_to("/etc/passwd")
    os.mkfifo(folder / "pipe")  # never opened: it would block
    result = verify_pack(folder)
    assert result.problems == [
        "'pipe' is not a regular file",
        "'summary.json' is a symbolic link",
    ]


def test_verify_on_the_cli_names_a_markup_entry_without_a_traceback(
    hostile: Hostile, tmp_path: Path
) -> None:
    """Regression: an entry named ``a[/bold]b.txt`` ended in a MarkupError traceback."""
    name = f"a[/bold]b{ESC_CLEAR}.txt"
    bad = _tampered(hostile.pack, tmp_path / "markup.zip", {f"research/{name}": b"x"})
    out = run("evidence", "--verify", str(bad))
    assert out.returncode == 1
    _assert_safe(out)
    assert f"not in the manifest: {visible(name)}" in out.stderr
    assert "NOT VERIFIED" in out.stderr


def _bomb(path: Path, mib: int, consistent: bool) -> Path:
    """A pack zip with ``mib`` MiB of zeros as ``zeros.csv`` (about 1,000 to 1 deflated),
    written in a stream; with ``consistent`` the manifest lists it with its true hash."""
    zero = bytes(1024 * 1024)
    digest = hashlib.sha256()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("p/zeros.csv")
        info.compress_type = zipfile.ZIP_DEFLATED  # a ZipInfo of its own is stored otherwise
        with z.open(info, "w", force_zip64=True) as f:
            for _ in range(mib):
                f.write(zero)
                digest.update(zero)
        entry = {"path": "zeros.csv", "bytes": mib * len(zero), "sha256": digest.hexdigest()}
        manifest = {"org_id": "ORG1", "day": "2026-08-10", "generated_at": "2026-08-11T00:00:00Z",
                    "code_version": "test", "files": [entry] if consistent else []}  # fmt: skip
        z.writestr("p/" + MANIFEST, json.dumps(manifest))
    return path


def test_a_zip_bomb_is_refused_from_its_declared_sizes(tmp_path: Path) -> None:
    result = verify_pack(_bomb(tmp_path / "bomb.zip", 200, consistent=False))
    assert not result.ok and result.checked == 0
    assert "'p/zeros.csv' inflates" in result.problems[0] and "zip bomb" in result.problems[0]
    small = VerifyLimits(max_member_bytes=1024 * 1024, max_ratio=100_000)
    result = verify_pack(tmp_path / "bomb.zip", limits=small)
    assert "declares 209,715,200 bytes, over the limit of 1,048,576" in result.problems[0]


def test_verify_hashes_a_large_member_in_a_stream(tmp_path: Path) -> None:
    """Regression: a 1 GiB bomb drove --verify to 2.4 GB. Even when the limits let a
    200 MiB member through, it is hashed in a stream: memory grows by far less."""
    bomb = _bomb(tmp_path / "big.zip", 200, consistent=True)
    script = (
        "import resource, sys\n"
        "from pipeline.outputs.evidence import verify_pack\n"
        "from schemas.evidence import VerifyLimits\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = verify_pack(sys.argv[1], limits=VerifyLimits(max_ratio=100_000))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(r.ok, r.checked, (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    ok, checked, grown_mib = out.stdout.split()
    assert (ok, checked) == ("True", "1")
    assert int(grown_mib) < 32, out.stdout
