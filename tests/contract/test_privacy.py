"""No ULN, date of birth or postcode from the input appears anywhere under the home folder:
not in the lake, the quarantine, the warehouse, nor any other file."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.ingest.deliveries import ingest
from schemas.settings import Settings, load_settings
from tests.conftest import (
    LRS_COLUMNS,
    SAMPLE,
    TEST_KEY,
    SampleRun,
    lrs_row,
    write_csv,
    write_jsonl,
)

PERSONAL = ("uln", "dob", "postcode")


def personal_values(landing: Path) -> set[str]:
    """Every ULN, date of birth and postcode in the LRS deliveries, as written."""
    found: set[str] = set()
    for path in sorted((landing / "lrs").rglob("*.*")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", errors="replace") as f:  # type: ignore[operator]
            if ".jsonl" in path.name:
                for line in f:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        found.update(str(obj[k]) for k in PERSONAL if obj.get(k))
            else:
                for row in csv.DictReader(f):
                    found.update(row[k] for k in PERSONAL if row.get(k))
    return {v.strip() for v in found if len(v.strip()) >= 5}


def texts_under(home: Path) -> list[tuple[str, str]]:
    """(where, text) for every value stored under the home: Parquet and DuckDB cells as text,
    other files as raw bytes decoded leniently."""
    out: list[tuple[str, str]] = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            for name in frame.columns:
                out.append((f"{path}:{name}", "\n".join(map(str, frame[name].to_list()))))
        elif path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as con:
                tables = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
                for t in tables:
                    frame = con.sql(f"SELECT * FROM {t}").pl()
                    for name, dtype in frame.schema.items():
                        if dtype == pl.String:
                            out.append((f"{path}:{t}.{name}", "\n".join(map(str, frame[name]))))
        else:
            out.append((str(path), path.read_bytes().decode("utf-8", "replace")))
    return out


DIGITS = re.compile(r"\d{10,}")
DATES = re.compile(r"\d{4}-\d{2}-\d{2}")
POSTCODES = re.compile(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}")


def candidates(text: str) -> set[str]:
    """Every substring of ``text`` that could be a ULN, a date or a postcode."""
    found = {m[i : i + 10] for m in DIGITS.findall(text) for i in range(len(m) - 9)}
    found.update(DATES.findall(text))
    for m in POSTCODES.finditer(text):
        # also the shorter postcodes that end where a longer match ends (e.g. "M1 1AE")
        found.update(text[start : m.end()] for start in range(m.start(), m.end() - 4))
    return found


def assert_no_personal_data(home: Path, values: set[str]) -> None:
    assert values, "the input held no personal values: the test would prove nothing"
    for where, text in texts_under(home):
        leaked = sorted(candidates(text) & values)
        assert not leaked, f"{where} holds personal values, e.g. {leaked[:3]}"


def test_no_personal_data_under_home_for_literal_deliveries(settings: Settings) -> None:
    day = settings.landing / "lrs" / "2026-03-02"
    write_csv(
        day / "a.csv",
        [
            lrs_row("e1"),
            lrs_row("e2", uln="1174112637", dob="1999-12-31", postcode="M1 1AE"),
            lrs_row("e3", ukprn="bad", uln="1234567890", dob="1985-06-15", postcode="SW1A 1AA"),
        ],
        LRS_COLUMNS,
    )
    write_jsonl(day / "b.jsonl", [lrs_row("e4", uln="1026893096", dob="2001-01-01"), "{oops"])
    lenient = load_settings(
        home=settings.home, landing=settings.landing, pseudonym_key=TEST_KEY, max_bad_share=1
    )
    ingest(lenient, "lrs", None)
    values = personal_values(settings.landing)
    assert {"1234567890", "1985-06-15", "SW1A 1AA"} <= values  # the quarantined row's values too
    assert_no_personal_data(settings.home, values)


def test_the_leak_detector_finds_planted_values(tmp_path: Path) -> None:
    """Guards the guard: values planted in Parquet, DuckDB and text files are found."""
    home = tmp_path / "home"
    home.mkdir()
    pl.DataFrame({"x": ["ua 1026893096 x"]}).write_parquet(home / "a.parquet")
    (home / "note.txt").write_text("born 2001-01-01")
    with duckdb.connect(str(home / "w.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 'lives at LS6 2AB' AS s")
    for planted in ("1026893096", "2001-01-01", "LS6 2AB"):
        with pytest.raises(AssertionError, match="holds personal values"):
            assert_no_personal_data(home, {planted})


@pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet")
def test_no_personal_data_under_home_for_the_sample(sample_home: SampleRun) -> None:
    """The session's demo home of the whole sample (read only): its lake, quarantine and
    ledger, and also the features, scores and suspects and the Prefect results."""
    assert (sample_home.home / "lake" / "source=lrs").is_dir()
    assert_no_personal_data(sample_home.home, personal_values(SAMPLE / "landing"))
