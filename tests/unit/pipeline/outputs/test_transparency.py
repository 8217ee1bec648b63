"""The transparency report's disclosure control: on literal and random tables, then every
published cell of the sample's month recomputed from the lake.

What is checked, independently of the code under test: no published value (cell or total)
counts fewer than the threshold; every published value is its true count rounded; and no
hidden value can be worked out from the published totals - no line (row, column or margin)
with a published total holds exactly one hidden value or hidden values adding up to less
than the threshold, and no hidden value is fixed by the linear system of the totals.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from detectors.rules import load_config
from pipeline.outputs.transparency import parse_month, protect, rounded
from schemas.geography import AREA_REGION
from schemas.transparency import SdcSettings
from tests.conftest import SAMPLE, SampleRun
from tests.unit.cli.test_cli import run

SDC = SdcSettings()
MONTH = "2026-09"
FIRST, LAST = date(2026, 9, 1), date(2026, 9, 30)


def grid(cells: list[list[int | None]]) -> tuple[np.ndarray, np.ndarray]:
    """(values, hidden) of a published table: cells plus a totals column and row; None is
    hidden. ``cells`` include the totals (last column and last row)."""
    hidden = np.array([[c is None for c in r] for r in cells])
    values = np.array([[0 if c is None else c for c in r] for r in cells])
    return values, hidden


def exposed(truth: np.ndarray, hidden: np.ndarray, threshold: int) -> list[str]:
    """Lines of a table with margins (last row and column are totals) that give a hidden
    value away: a published total with one hidden value, or hidden values summing under
    the threshold; then the exact linear check. Written for the test, independently."""
    m, n = truth.shape
    problems = []
    lines = [("row", i, [(i, j) for j in range(n)]) for i in range(m)]
    lines += [("column", j, [(i, j) for i in range(m)]) for j in range(n)]
    for kind, k, line in lines:
        total, parts = line[-1], line[:-1]
        if hidden[total]:
            continue
        secret = [p for p in parts if hidden[p]]
        if len(secret) == 1:
            problems.append(f"{kind} {k}: one hidden value")
        elif secret and sum(truth[p] for p in secret) < threshold:
            problems.append(f"{kind} {k}: hidden values add up to under {threshold}")
    # exact: each line's parts add up to its total; hidden values are the unknowns
    unknowns = [(i, j) for i in range(m) for j in range(n) if hidden[i, j]]
    if unknowns:
        a = np.zeros((len(lines), len(unknowns)))
        for r, (_, _, line) in enumerate(lines):
            for p in line[:-1]:
                if hidden[p]:
                    a[r, unknowns.index(p)] += 1
            if hidden[line[-1]]:
                a[r, unknowns.index(line[-1])] -= 1
        rank = np.linalg.matrix_rank(a)
        for u, p in enumerate(unknowns):
            unit = np.zeros((1, len(unknowns)))
            unit[0, u] = 1
            if np.linalg.matrix_rank(np.vstack([a, unit])) == rank:
                problems.append(f"cell {p}: determined by the totals")
    return problems


def with_margins(counts: np.ndarray) -> np.ndarray:
    full = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.int64)
    full[:-1, :-1] = counts
    full[:-1, -1] = counts.sum(axis=1)
    full[-1, :-1] = counts.sum(axis=0)
    full[-1, -1] = counts.sum()
    return full


def hidden_of(counts: np.ndarray, sdc: SdcSettings) -> np.ndarray:
    p = protect(counts, sdc)
    m, n = counts.shape
    hidden = np.zeros((m + 1, n + 1), dtype=bool)
    hidden[:-1, :-1] = p.cells
    hidden[:-1, -1] = p.rows
    hidden[-1, :-1] = p.columns
    hidden[-1, -1] = p.grand
    return hidden


def test_a_lone_small_cell_gets_a_complement_in_its_row_and_column() -> None:
    counts = np.array([[3, 40, 50], [60, 70, 80], [90, 15, 11]])
    hidden = hidden_of(counts, SDC)
    assert hidden[0, 0]  # primary
    assert hidden[0].sum() >= 2 and hidden[:, 0].sum() >= 2
    assert exposed(with_margins(counts), hidden, SDC.threshold) == []


def test_zeros_hidden_with_a_published_total_are_not_given_away_by_their_sum() -> None:
    counts = np.array([[0, 0, 410], [30, 95, 12]])
    hidden = hidden_of(counts, SDC)
    assert hidden[0, 0] and hidden[0, 1]
    assert exposed(with_margins(counts), hidden, SDC.threshold) == []
    shown = hidden_of(counts, SdcSettings(suppress_zeros=False))
    assert not shown[0, 0]  # published as 0 when asked


@pytest.mark.parametrize("seed", range(6))
def test_random_tables_publish_nothing_small_and_nothing_recoverable(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        m, n = rng.integers(1, 6, size=2)
        counts = np.where(
            rng.random((m, n)) < 0.35, rng.integers(0, 10, (m, n)), rng.integers(10, 500, (m, n))
        )
        full, hidden = with_margins(counts), hidden_of(counts, SDC)
        assert not (full[~hidden] < SDC.threshold).any()
        assert exposed(full, hidden, SDC.threshold) == [], counts


def test_rounding_and_months() -> None:
    assert [rounded(v, 5) for v in (10, 12, 13, 17, 18)] == [10, 10, 15, 15, 20]
    assert parse_month("2026-09") == date(2026, 9, 1)
    with pytest.raises(ValueError, match="not a month"):
        parse_month("2026-13")


# --- The sample's month, recomputed from the lake ------------------------------------------

LRS_KINDS = {
    "learnerByDemographics": "search by name and date of birth",
    "verifyLearner": "verify a learner",
    "learnerByULN": "look up by ULN",
    "LearnerByUln": "look up by ULN",
    "GetLearnerLearningEvents": "read a learning record",
    "registerSingleLearner": "register or update",
    "updateSingleLearner": "register or update",
    "UpdateLearnerSubsetFields": "register or update",
    "submitBatchRegistration": "register or update",
    "getBatchRegistrationOutput": "batch file",
    "submitVerifyBatch": "batch file",
    "getVerifyBatchOutput": "batch file",
}


def _lake(home: Path, source: str) -> pl.DataFrame:
    files = sorted((home / "lake" / f"source={source}").glob("event_date=*/*.parquet"))
    frames = [
        pl.read_parquet(f).with_columns(event_date=pl.lit(date.fromisoformat(f.parent.name[11:])))
        for f in files
        if FIRST.isoformat() <= f.parent.name[11:] <= LAST.isoformat()
    ]
    return pl.concat(frames, how="diagonal_relaxed").unique("event_id", keep="first")


def _truth(home: Path) -> dict[str, dict[tuple[str, str], int]]:
    """Every table's true counts, recomputed here from the lake and the landing register."""
    with (SAMPLE / "landing" / "reference" / "organisations.csv").open(newline="") as f:
        orgs = list(csv.DictReader(f))
    org_type = pl.DataFrame(
        [(o["ukprn"], o["org_type"]) for o in orgs if o["ukprn"]],
        schema=["ukprn", "org_type"],
        orient="row",
    )
    lrs = _lake(home, "lrs").join(org_type, on="ukprn", how="left")
    lrs = lrs.with_columns(
        pl.col("org_type").fill_null("not in the register"),
        kind=pl.col("operation").replace_strict(LRS_KINDS, default="other"),
    )

    def counts(frame: pl.DataFrame, row: str, col: str) -> dict[tuple[str, str], int]:
        grouped = frame.group_by(row, col).len()
        return {(str(r), str(c)): int(k) for r, c, k in grouped.iter_rows()}

    people = (
        lrs.filter(pl.col("learner_pid").is_not_null() & pl.col("uln_valid"))
        .sort("occurred_at", "event_id")
        .group_by("learner_pid")
        .first()
    )
    bands = [(16, "under 16"), (19, "16 to 18"), (25, "19 to 24"), (50, "25 to 49")]
    band = pl.when(pl.col("learner_age").is_null()).then(pl.lit("not known"))
    for limit, name in bands:
        band = band.when(pl.col("learner_age") < limit).then(pl.lit(name))
    regions = {a: str(r) for a, r in AREA_REGION.items()}
    people = people.with_columns(
        band=band.otherwise(pl.lit("50 and over")),
        region=pl.col("postcode_area").replace_strict(regions, default="not known"),
    )
    with (SAMPLE / "landing" / "reference" / "agreements.csv").open(newline="") as f:
        purposes = {a["agreement_ref"]: a["purpose"] for a in csv.DictReader(f)}

    def purpose(ref: str | None) -> str:
        if not ref:
            return "no agreement cited"
        if ref not in purposes:
            return "agreement not on file"
        head, sep, _ = purposes[ref].partition(":")
        is_word = sep and head and all(c.islower() or c == "_" for c in head)
        return head.replace("_", " ") if is_word else "approved project"

    npd = _lake(home, "npd")
    npd = npd.with_columns(
        purpose=pl.col("agreement_ref").map_elements(purpose, return_dtype=pl.String)
    )
    status = {}
    for o in orgs:
        changed = o["status_changed_on"]
        in_month = bool(changed) and FIRST.isoformat() <= changed <= LAST.isoformat()
        if o["status"] in ("suspended", "revoked") and in_month:
            key = (o["org_type"], o["status"])
            status[key] = status.get(key, 0) + 1
    cfg = load_config()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        listed = con.execute(
            "SELECT org_id, rules FROM suspects WHERE level = 'org' AND rank <= ? "
            "AND day BETWEEN ? AND ?",
            [cfg.ranking.flag_top, FIRST, LAST],
        ).fetchall()
    rules: dict[str, set[str]] = {}
    for org, ids in listed:
        rules.setdefault(org, set()).update(json.loads(ids))
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    severity = {r.id: order[r.severity.value] for r in cfg.rules}
    assert not list((home / "triage").glob("*.json"))  # the sample has no verdicts
    flagged: dict[tuple[str, str], int] = {}
    for ids in rules.values():
        worst = min(ids, key=lambda r: (severity[r], r)).split("-")[0] if ids else None
        key = (worst or "models only (no rule)", "no verdict")
        flagged[key] = flagged.get(key, 0) + 1
    return {
        "lrs_by_channel": counts(lrs, "org_type", "channel"),
        "lrs_by_operation": counts(lrs, "org_type", "kind"),
        "people": counts(people, "band", "region"),
        "npd": counts(npd, "purpose", "channel"),
        "status": status,
        "flagged": flagged,
    }


def _published(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return [r[0] for r in rows[1:]], rows[0][1:], [r[1:] for r in rows[1:]]


def test_every_published_cell_of_the_sample_month_is_safe_and_true(
    sample_home: SampleRun, tmp_path: Path
) -> None:
    out = tmp_path / "transparency"
    done = run("transparency", "--month", MONTH, "--out", str(out), "--home", str(sample_home.home))
    assert done.returncode == 0, done.stderr
    truth = _truth(sample_home.home)
    checked = 0
    for name, cells in truth.items():
        path = out / f"{MONTH}-{name}.csv"
        if not path.exists():
            assert sum(cells.values()) == 0, f"{name} has data but was not published"
            continue
        rows, cols, table = _published(path)
        assert rows[-1] == cols[-1] == "total"
        full = np.zeros((len(rows), len(cols)), dtype=np.int64)
        for i, r in enumerate(rows[:-1]):
            for j, c in enumerate(cols[:-1]):
                full[i, j] = cells.get((r, c), 0)
        assert sum(cells.values()) == full.sum()  # every true cell has its place
        full[:-1, -1] = full[:-1, :-1].sum(axis=1)
        full[-1, :] = full[:-1, :].sum(axis=0)
        hidden = np.array([[v == "[c]" for v in r] for r in table])
        for (i, j), value in np.ndenumerate(full):
            if hidden[i, j]:
                continue
            assert value >= SDC.threshold, f"{name} {rows[i]}/{cols[j]}: {value} published"
            assert int(table[i][j]) == rounded(int(value), SDC.rounding_base), (name, i, j)
            checked += 1
        assert exposed(full, hidden, SDC.threshold) == [], name
    assert checked > 50  # the sample's month publishes plenty
    page = (out / f"{MONTH}-transparency.html").read_text(encoding="utf-8")
    assert "default-src 'none'" in page and "<script" not in page.lower()
