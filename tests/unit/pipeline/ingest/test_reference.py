"""Reference data: validated, deduplicated, quarantined and replaced in one transaction."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.ingest.reference import ReferenceError, load_reference
from schemas.reference import Agreement, Organisation
from schemas.settings import Settings, load_settings
from tests.conftest import write_csv

ORG_COLUMNS = list(Organisation.model_fields)
AGREEMENT_COLUMNS = list(Agreement.model_fields)


def org(org_id: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "org_id": org_id,
        "ukprn": "10001234",
        "name": "Leeds Example College",
        "org_type": "fe_college",
        "region": "Yorkshire and The Humber",
        "postcode_area": "LS",
        "registered_on": "2012-09-01",
        "status": "active",
        "status_changed_on": "",
        "previous_name": "",
        "name_changed_on": "",
        "expected_learners": 4000,
    }
    row.update(overrides)
    return row


def agreement(ref: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "agreement_ref": ref,
        "org_id": "ORG00002",
        "datasets": "ks4;census",
        "min_identifiability": 3,
        "max_sensitivity": "C",
        "year_from": 2015,
        "year_to": 2022,
        "max_rows": 600000,
        "valid_from": "2024-01-01",
        "valid_to": "2027-01-01",
        "purpose": "Attainment gaps research",
    }
    row.update(overrides)
    return row


def write_reference(
    s: Settings, orgs: list[dict[str, object]], agreements: list[dict[str, object]]
) -> None:
    write_csv(s.landing / "reference" / "organisations.csv", orgs, ORG_COLUMNS)
    write_csv(s.landing / "reference" / "agreements.csv", agreements, AGREEMENT_COLUMNS)


def table(s: Settings, name: str) -> pl.DataFrame:
    with duckdb.connect(str(s.warehouse), read_only=True) as con:
        return con.sql(f"SELECT * FROM {name}").pl()


def test_reference_rows_are_validated_deduplicated_and_loaded(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h", landing=tmp_path / "l", max_bad_share=0.5)
    orgs = [org(f"ORG{i:05d}") for i in range(1, 6)]
    orgs += [org("ORG00001"), org("ORG00009", org_type="casino")]
    agreements = [agreement("DS00752"), agreement("R0043", year_from=2023, year_to=2020)]
    write_reference(s, orgs, agreements)
    reports = load_reference(s)
    by = {r.source_file: r for r in reports}
    o = by["reference/organisations.csv"]
    assert (o.rows_read, o.rows_written, o.duplicates, o.quarantined) == (7, 5, 1, 1)
    a = by["reference/agreements.csv"]
    assert (a.rows_read, a.rows_written, a.quarantined) == (2, 1, 1)
    assert table(s, "organisations").height == 5
    q = pl.read_parquet(str(s.quarantine / "**" / "*.parquet")).sort("source_line")
    assert q.select("source_file", "source_line", "field").rows() == [
        ("reference/agreements.csv", 3, "year_to"),
        ("reference/organisations.csv", 8, "org_type"),
    ]


def test_a_refused_reference_file_leaves_the_previous_tables(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h", landing=tmp_path / "l", refuse_min_bad_rows=1)
    write_reference(s, [org("ORG00001")], [agreement("DS00752")])
    load_reference(s)
    write_reference(s, [org("ORG00001", status="asleep"), org("ORG00002")], [agreement("DS00752")])
    with pytest.raises(ReferenceError, match=r"organisations\.csv: refused: 50\.0% of 2 rows"):
        load_reference(s)
    assert table(s, "organisations")["org_id"].to_list() == ["ORG00001"]
