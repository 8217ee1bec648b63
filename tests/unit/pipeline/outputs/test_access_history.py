"""``accesswatch access-history`` on the sample: the reseller's search of a learner is shown,
nothing of any other learner is, every use is audited once, and no ULN reaches any output.

The learner is found at test time from the sample's landing files and its truth labels
(a learner the age-verification reseller searched after its onset), never hard-coded.
"""

from __future__ import annotations

import csv
import getpass
import gzip
import json
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest.pseudonymise import pseudonym
from pipeline.ingest.uln import is_valid_uln, make_valid_ulns
from pipeline.outputs.access_history import audit_path, uln_problem
from tests.conftest import SAMPLE, TEST_KEY, SampleRun
from tests.unit.cli.test_cli import ACCESSWATCH, run

SEARCHES = ("learnerByDemographics", "verifyLearner")


def reseller_searched_learner() -> tuple[str, dict[str, object]]:
    """(org_id, the first search event with a valid ULN that the reseller made after its
    onset), read from the landing files and truth labels."""
    with (SAMPLE / "truth" / "labels.csv").open(newline="") as f:
        label = next(r for r in csv.DictReader(f) if r["scenario"] == "age_verification_reseller")
    with (SAMPLE / "landing" / "reference" / "organisations.csv").open(newline="") as f:
        ukprn = next(r["ukprn"] for r in csv.DictReader(f) if r["org_id"] == label["org_id"])
    start = date.fromisoformat(label["start_date"])
    for folder in sorted((SAMPLE / "landing" / "lrs").iterdir()):
        if date.fromisoformat(folder.name) < start:
            continue
        for path in sorted(folder.glob("*.jsonl.gz")):
            with gzip.open(path, "rt") as f:
                for ln in f:
                    try:
                        event = json.loads(ln)
                    except ValueError:
                        continue  # the sample's deliberately malformed rows
                    if (
                        isinstance(event, dict)
                        and event.get("ukprn") == ukprn
                        and event.get("operation") in SEARCHES
                        and isinstance(event.get("uln"), str)
                        and is_valid_uln(event["uln"])
                    ):
                        return label["org_id"], event
    raise AssertionError("the sample's reseller made no search with a valid ULN")


def lake_pids(home: Path) -> pl.DataFrame:
    """event_id and learner_pid of every LRS event in the lake (read directly)."""
    files = sorted(str(p) for p in (home / "lake" / "source=lrs").glob("*/*.parquet"))
    return pl.concat([pl.read_parquet(f, columns=["event_id", "learner_pid"]) for f in files])


@pytest.fixture(scope="module")
def home_copy(sample_home: SampleRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample home (the session's home is read-only): access-history appends
    to its audit file."""
    home = tmp_path_factory.mktemp("history") / "home"
    shutil.copytree(sample_home.home, home)
    return home


def history(home: Path, *args: str, key: str | None = TEST_KEY) -> tuple[int, str, str]:
    env = {"ACCESSWATCH_PSEUDONYM_KEY": key} if key else {}
    done = run("access-history", *args, "--home", str(home), env=env)
    return done.returncode, done.stdout, done.stderr


def audit_lines(home: Path) -> list[dict[str, object]]:
    path = audit_path(home)
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_uln_problems_are_named_without_repeating_the_uln() -> None:
    assert uln_problem("1026893096") is None
    assert "10 digits" in str(uln_problem("12345"))
    assert "position(s) 3" in str(uln_problem("10a6893096"))
    assert "check digit" in str(uln_problem("1026893097"))
    assert "placeholder" in str(uln_problem("9999999999"))
    for bad in ("12345", "10a6893096", "1026893097"):
        assert bad not in str(uln_problem(bad))


def test_a_learner_searched_by_the_reseller_sees_that_search_and_nothing_else(
    home_copy: Path, tmp_path: Path
) -> None:
    org, event = reseller_searched_learner()
    uln = str(event["uln"])
    before = len(audit_lines(home_copy))
    code, out, err = history(home_copy, "--uln", uln, "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    refs = {a["reference"] for a in shown["accesses"]}
    # the reseller's search, in plain words
    search = next(a for a in shown["accesses"] if a["reference"] == event["event_id"])
    assert search["org_id"] == org
    assert search["operation"] in (
        "searched for you by name and date of birth",
        "checked that your name and date of birth match your record",
    )
    assert search["operation_name"] == event["operation"]
    # exactly this learner's events: every lake row with the pseudonym, and no other
    lake = lake_pids(home_copy)
    pid = pseudonym(TEST_KEY.encode(), uln)
    mine = set(lake.filter(pl.col("learner_pid") == pid)["event_id"].to_list())
    assert refs == mine
    others = set(lake.filter(pl.col("learner_pid") != pid)["learner_pid"].unique().to_list())
    assert not any(p in out for p in others)
    # one audit entry, with the pseudonym and the row count, never the ULN
    entries = audit_lines(home_copy)
    assert len(entries) == before + 1
    assert entries[-1]["pseudonym"] == pid and entries[-1]["rows"] == len(refs)
    assert entries[-1]["who"] == getpass.getuser() and entries[-1]["output"] == "json"
    # the letter: another call, another entry; the ULN is in no output and no audit line
    code, page, err = history(home_copy, "--uln", uln, "--format", "html")
    assert code == 0, err
    assert "Who has looked at your learner record" in page and str(event["event_id"]) in page
    assert len(audit_lines(home_copy)) == before + 2
    code, table, err = history(home_copy, "--uln", uln)
    code_csv, as_csv, _ = history(home_copy, "--uln", uln, "--format", "csv")
    assert code == code_csv == 0 and len(audit_lines(home_copy)) == before + 4
    listed = run("access-history", "--audit", "--home", str(home_copy)).stdout
    assert pid in listed
    for text in (out, page, table, as_csv, err, listed, audit_path(home_copy).read_text()):
        assert uln not in text


def test_refusals_are_clear_and_leave_no_audit_entry(home_copy: Path) -> None:
    before = len(audit_lines(home_copy))
    code, _, err = history(home_copy, "--uln", "1026893096", key=None)
    assert code == 2 and "no pseudonym key" in err
    for bad, words in (
        ("12345", "10 digits"),
        ("10a6893096", "position(s) 3"),
        ("1026893097", "check digit"),
    ):
        code, out, err = history(home_copy, "--uln", bad)
        assert code == 2 and words in err and bad not in err + out
    assert len(audit_lines(home_copy)) == before


def test_a_learner_never_seen_gets_an_explicit_answer(home_copy: Path) -> None:
    lake = lake_pids(home_copy)
    seen = set(lake["learner_pid"].drop_nulls().to_list())
    import numpy as np

    candidates = make_valid_ulns(np.arange(987_654_300, 987_654_400, dtype=np.int64))
    uln = next(
        str(u) for u in candidates if u > 0 and pseudonym(TEST_KEY.encode(), str(u)) not in seen
    )
    held_from = min(p.name.split("=")[1] for p in (home_copy / "lake").glob("source=*/event_*"))
    before = len(audit_lines(home_copy))
    code, out, err = history(home_copy, "--uln", uln, "--from", "2026-09-01", "--to", "2026-09-07")
    assert code == 0, err
    expected = f"no accesses found between 2026-09-01 and 2026-09-07 (data held from {held_from})"
    assert expected in out
    assert uln not in out + err
    entries = audit_lines(home_copy)
    assert len(entries) == before + 1 and entries[-1]["rows"] == 0


def test_the_uln_can_come_from_standard_input_and_gives_the_same_answer(home_copy: Path) -> None:
    _, event = reseller_searched_learner()
    uln = str(event["uln"])
    env = {**os.environ, "ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
    args = [*ACCESSWATCH, "access-history", "--uln", "-", "--format", "json"]
    args += ["--home", str(home_copy)]
    before = len(audit_lines(home_copy))
    piped = subprocess.run(args, input=f"{uln}\n", capture_output=True, text=True, env=env)
    assert piped.returncode == 0, piped.stderr
    code, direct, err = history(home_copy, "--uln", uln, "--format", "json")
    assert code == 0, err
    assert json.loads(piped.stdout)["accesses"] == json.loads(direct)["accesses"]
    assert len(audit_lines(home_copy)) == before + 2 and uln not in piped.stdout + piped.stderr
    two = subprocess.run(args, input=f"{uln}\n{uln}\n", capture_output=True, text=True, env=env)
    assert two.returncode == 2 and "2 non-empty lines" in two.stderr and uln not in two.stderr
    assert len(audit_lines(home_copy)) == before + 2
