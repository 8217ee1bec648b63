"""Stored scores: one ``scores`` row per org (account) and day, one ``detector_scores`` row
per model detector; a warehouse written before (one ``scores`` column per model) is migrated
when it is next opened for writing, its per-model scores kept."""

from __future__ import annotations

from datetime import date

import duckdb

from detectors.rules import load_config
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.store.warehouse import connect
from schemas.detection import DetectorScoreRow, ScoreRow
from schemas.settings import Settings
from tests.unit.pipeline.profile.test_profile import DAY2, world

DAY = date(2026, 9, 1)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = $t ORDER BY column_index",
        {"t": table},
    ).fetchall()
    return [r[0] for r in rows]


def test_an_old_scores_table_with_model_columns_is_migrated_on_write(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    old = duckdb.connect(str(settings.warehouse))
    old.execute(
        "CREATE TABLE scores (day DATE, level VARCHAR, org_id VARCHAR, user_name VARCHAR, "
        "rules DOUBLE, iforest DOUBLE, ecod DOUBLE, models DOUBLE, score DOUBLE, "
        "hard_fact BOOLEAN)"
    )
    old.execute(
        "INSERT INTO scores VALUES ($d, 'org', 'O1', '', 0.5, 0.25, 0.75, 0.55, 50.0, false), "
        "($d, 'account', 'O1', 'u1', 0.0, 0.1, 0.2, 0.16, 8.8, false)",
        {"d": DAY},
    )
    old.close()

    with connect(settings) as con:
        assert _columns(con, "scores") == list(ScoreRow.model_fields)
        assert _columns(con, "detector_scores") == list(DetectorScoreRow.model_fields)
        kept = con.execute(
            "SELECT level, org_id, user_name, rules, models, score, hard_fact FROM scores "
            "ORDER BY level"
        ).fetchall()
        parts = con.execute(
            "SELECT level, user_name, detector, score FROM detector_scores ORDER BY ALL"
        ).fetchall()
    assert kept == [
        ("account", "O1", "u1", 0.0, 0.16, 8.8, False),
        ("org", "O1", "", 0.5, 0.55, 50.0, False),
    ]
    assert parts == [
        ("account", "u1", "ecod", 0.2),
        ("account", "u1", "iforest", 0.1),
        ("org", "", "ecod", 0.75),
        ("org", "", "iforest", 0.25),
    ]
    # a second open finds nothing left to migrate and keeps the rows as they are
    with connect(settings) as con:
        assert con.execute("SELECT count(*) FROM detector_scores").fetchone() == (4,)
    with connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM scores").fetchone() == (2,)


def test_detect_stores_one_detector_scores_row_per_configured_detector(
    settings: Settings,
) -> None:
    world(settings)
    build_profiles(settings, DAY2)
    detect(settings, DAY2)
    names = list(load_config().ensemble.weights)
    with connect(settings, read_only=True) as con:
        (n,) = con.execute("SELECT count(*) FROM scores WHERE day = $d", {"d": DAY2}).fetchone()
        per = con.execute(
            "SELECT detector, count(*) FROM detector_scores WHERE day = $d GROUP BY ALL "
            "ORDER BY ALL",
            {"d": DAY2},
        ).fetchall()
        unmatched = con.execute(
            "SELECT count(*) FROM detector_scores AS p ANTI JOIN scores AS s "
            "USING (day, level, org_id, user_name)"
        ).fetchone()
    assert per == [(name, n) for name in sorted(names)]
    assert unmatched == (0,)
