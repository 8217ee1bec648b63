"""Ingest end to end on literal deliveries: counts reconcile, re-runs change nothing,
late events and duplicates are placed right, bad deliveries are refused whole."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from pipeline.ingest.deliveries import (
    commit_delivery,
    ingest,
    prepare_delivery,
    recover_home,
    stage_delivery,
)
from pipeline.ingest.pseudonymise import BLOCK_DIGITS, pseudonym
from pipeline.store.lake import HomeBusy, commit_files, home_lock, lake_glob
from schemas.ingest import DeliveryStatus
from schemas.settings import Settings, load_settings
from tests.conftest import (
    LRS_COLUMNS,
    NPD_COLUMNS,
    TEST_KEY,
    lrs_row,
    npd_row,
    write_csv,
    write_jsonl,
)

DAY = date(2026, 3, 2)


def lake(settings: Settings, source: str = "lrs") -> pl.DataFrame:
    return pl.read_parquet(lake_glob(settings.home, source), hive_partitioning=True)


def lenient(tmp_path: Path) -> Settings:
    """Settings that accept a literal delivery with a high share of bad rows."""
    return load_settings(
        home=tmp_path / "h", landing=tmp_path / "l", pseudonym_key=TEST_KEY, max_bad_share=0.5
    )


def snapshot(home: Path) -> dict[str, str]:
    """Every file under the home (but the lock) with its content hash."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name not in (".lock", ".run.lock")
    }


def test_a_delivery_day_reconciles_and_lands_in_event_date_partitions(tmp_path: Path) -> None:
    settings = lenient(tmp_path)
    folder = settings.landing / "lrs" / DAY.isoformat()
    write_csv(
        folder / "part-1.csv",
        [
            lrs_row("e1"),
            lrs_row("e2", occurred_at="2026-03-01T09:00:00Z"),  # late: yesterday's event
            lrs_row("e3", ukprn="123"),  # bad
            lrs_row("e1"),  # duplicate inside the file
        ],
        LRS_COLUMNS,
    )
    write_jsonl(
        folder / "part-2.jsonl.gz",
        [lrs_row("e4", channel="batch", batch_size=40), lrs_row("e1"), "{broken"],
    )
    report = ingest(settings, "lrs", [DAY])
    by_file = {Path(d.source_file).name: d for d in report.deliveries}
    one, two = by_file["part-1.csv"], by_file["part-2.jsonl.gz"]
    assert (one.rows_read, one.rows_written, one.duplicates, one.quarantined) == (4, 2, 1, 1)
    assert (two.rows_read, two.rows_written, two.duplicates, two.quarantined) == (3, 1, 1, 1)
    assert one.late_events == 1 and two.late_events == 0
    assert all(d.reconciles and d.status is DeliveryStatus.committed for d in report.deliveries)
    rows = lake(settings)
    assert sorted(rows["event_id"]) == ["e1", "e2", "e4"]
    dates = dict(zip(rows["event_id"], rows["event_date"], strict=True))
    assert dates == {"e1": DAY, "e2": date(2026, 3, 1), "e4": DAY}
    q = pl.read_parquet(str(settings.quarantine / "**" / "*.parquet"))
    assert sorted(zip(q["source_file"], q["source_line"], q["field"], strict=True)) == [
        ("lrs/2026-03-02/part-1.csv", 4, "ukprn"),
        ("lrs/2026-03-02/part-2.jsonl.gz", 3, "line"),
    ]
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        ledger = con.execute(
            "SELECT sum(rows_read), sum(rows_written + duplicates + quarantined) FROM ingest_ledger"
        ).fetchone()
    assert ledger == (7, 7)


def test_ingesting_the_same_delivery_twice_changes_nothing(settings: Settings) -> None:
    write_csv(
        settings.landing / "lrs" / DAY.isoformat() / "a.csv",
        [lrs_row(f"e{i}") for i in range(20)],
        LRS_COLUMNS,
    )
    ingest(settings, "lrs", [DAY])
    before = snapshot(settings.home)
    again = ingest(settings, "lrs", [DAY])
    assert [d.status for d in again.deliveries] == [DeliveryStatus.skipped]
    assert snapshot(settings.home) == before


def test_events_already_in_the_lake_from_an_earlier_delivery_are_duplicates(
    settings: Settings,
) -> None:
    write_csv(settings.landing / "lrs" / "2026-03-02" / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    write_csv(
        settings.landing / "lrs" / "2026-03-03" / "a.csv",
        [lrs_row("e1"), lrs_row("e9", occurred_at="2026-03-03T08:00:00Z")],
        LRS_COLUMNS,
    )
    report = ingest(settings, "lrs", None)
    second = next(d for d in report.deliveries if d.delivery_day == date(2026, 3, 3))
    assert (second.rows_written, second.duplicates) == (1, 1)
    assert lake(settings)["event_id"].sort().to_list() == ["e1", "e9"]


def test_a_delivery_prepared_before_the_lake_changed_is_prepared_again_at_commit(
    settings: Settings,
) -> None:
    """Duplicates are dropped before the lock is taken; if a commit lands in a partition
    the prepared delivery read, committing it drops duplicates again against the new lake."""
    write_csv(settings.landing / "lrs" / "2026-03-02" / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    write_csv(
        settings.landing / "lrs" / "2026-03-03" / "a.csv",
        [lrs_row("e1"), lrs_row("e9", occurred_at="2026-03-03T08:00:00Z")],
        LRS_COLUMNS,
    )
    later = prepare_delivery(settings, stage_delivery(settings, "lrs", date(2026, 3, 3), "r2"))
    assert later.prepared is not None and later.prepared.written == {0: 2}  # e1 not seen yet
    with home_lock(settings.home):
        commit_delivery(settings, stage_delivery(settings, "lrs", DAY, "r1"))
        committed = commit_delivery(settings, later)
    assert (committed.reports[0].rows_written, committed.reports[0].duplicates) == (1, 1)
    assert lake(settings)["event_id"].sort().to_list() == ["e1", "e9"]


def test_a_prepared_delivery_whose_partitions_are_unchanged_is_published_as_prepared(
    settings: Settings,
) -> None:
    write_csv(
        settings.landing / "lrs" / DAY.isoformat() / "a.csv",
        [lrs_row(f"e{i}") for i in range(5)],
        LRS_COLUMNS,
    )
    staged = prepare_delivery(settings, stage_delivery(settings, "lrs", DAY, "r1"))
    assert staged.prepared is not None
    files = [dst for src, dst in staged.prepared.moves]
    inodes = {src: src.stat().st_ino for src, _dst in staged.prepared.moves}
    with home_lock(settings.home):
        commit_delivery(settings, staged)
    assert all(dst.is_file() for dst in files)
    assert {src: dst.stat().st_ino for src, dst in staged.prepared.moves} == inodes
    assert lake(settings).height == 5


def test_a_new_file_in_an_ingested_day_is_the_only_work_done(settings: Settings) -> None:
    folder = settings.landing / "lrs" / DAY.isoformat()
    write_csv(folder / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    ingest(settings, "lrs", [DAY])
    write_csv(folder / "b.csv", [lrs_row("e2"), lrs_row("e1")], LRS_COLUMNS)
    report = ingest(settings, "lrs", [DAY])
    statuses = {Path(d.source_file).name: d.status for d in report.deliveries}
    assert statuses == {"a.csv": DeliveryStatus.skipped, "b.csv": DeliveryStatus.committed}
    assert lake(settings)["event_id"].sort().to_list() == ["e1", "e2"]


def test_a_delivery_with_too_many_bad_rows_is_refused_whole(settings: Settings) -> None:
    folder = settings.landing / "lrs" / DAY.isoformat()
    rows = [lrs_row(f"g{i}") for i in range(90)]
    rows += [lrs_row(f"b{i}", occurred_at="02/03/2026 10:00") for i in range(8)]
    rows += [lrs_row("c1", channel="fax"), lrs_row("c2", channel="fax")]
    write_csv(folder / "drifted.csv", rows, LRS_COLUMNS)
    write_csv(folder / "fine.csv", [lrs_row("f1")], LRS_COLUMNS)
    report = ingest(settings, "lrs", [DAY])
    refused = {Path(d.source_file).name: d for d in report.refused}
    assert list(refused) == ["drifted.csv"]
    reason = refused["drifted.csv"].reason
    assert "10.0% of 100 rows are bad (limit 5.0%)" in reason
    assert "commonest problem: occurred_at is not an ISO 8601 timestamp" in reason
    assert "(8 rows)" in reason
    assert lake(settings)["event_id"].to_list() == ["f1"]
    assert not settings.quarantine.exists() or not list(settings.quarantine.rglob("*.parquet"))
    # After the feed is fixed, the file is ingested on the next run.
    write_csv(folder / "drifted.csv", rows[:90], LRS_COLUMNS)
    again = ingest(settings, "lrs", [DAY])
    assert {Path(d.source_file).name: d.status.value for d in again.deliveries} == {
        "drifted.csv": "committed",
        "fine.csv": "skipped",
    }
    assert lake(settings).height == 91


def test_the_bad_row_limit_is_a_setting(tmp_path: Path) -> None:
    rows = [lrs_row("g1"), lrs_row("g2"), lrs_row("b1", ukprn="x")]
    strict = load_settings(
        home=tmp_path / "h1", landing=tmp_path / "l", pseudonym_key=TEST_KEY, refuse_min_bad_rows=1
    )
    write_csv(strict.landing / "lrs" / DAY.isoformat() / "a.csv", rows, LRS_COLUMNS)
    assert ingest(strict, "lrs", [DAY]).refused
    assert not ingest(lenient(tmp_path), "lrs", [DAY]).refused


def test_a_few_bad_rows_in_a_small_file_are_quarantined_not_refused(settings: Settings) -> None:
    rows = [lrs_row("g1"), lrs_row("g2"), lrs_row("b1", ukprn="x")]
    write_csv(settings.landing / "lrs" / DAY.isoformat() / "a.csv", rows, LRS_COLUMNS)
    report = ingest(settings, "lrs", [DAY])
    assert not report.refused and report.total("quarantined") == 1


def test_lrs_ingest_refuses_to_run_without_a_key(tmp_path: Path) -> None:
    keyless = load_settings(home=tmp_path / "h", landing=tmp_path / "l")
    write_csv(keyless.landing / "lrs" / DAY.isoformat() / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    with pytest.raises(ValueError, match="ACCESSWATCH_PSEUDONYM_KEY"):
        ingest(keyless, "lrs", [DAY])
    assert not (keyless.home / "lake").exists()


def test_npd_events_need_no_key_and_keep_their_fields(tmp_path: Path) -> None:
    keyless = load_settings(home=tmp_path / "h", landing=tmp_path / "l", max_bad_share=0.5)
    write_csv(
        keyless.landing / "npd" / DAY.isoformat() / "a.csv",
        [npd_row("n1"), npd_row("n2", year_from=2022, year_to=2018)],
        NPD_COLUMNS,
    )
    report = ingest(keyless, "npd", [DAY])
    assert (report.total("rows_written"), report.total("quarantined")) == (1, 1)
    row = lake(keyless, "npd").row(0, named=True)
    assert (row["dataset"], row["min_identifiability"], row["max_sensitivity"]) == ("ks4", 4, "D")


def test_pseudonyms_are_stable_keyed_and_personal_data_is_gone(settings: Settings) -> None:
    write_csv(
        settings.landing / "lrs" / DAY.isoformat() / "a.csv",
        [
            lrs_row("e1"),
            lrs_row("e2", occurred_at="2026-03-02T11:00:00Z"),
            lrs_row("e3", uln="1026893097", dob="1990-03-03", postcode="m1 1aa"),
        ],
        LRS_COLUMNS,
    )
    ingest(settings, "lrs", [DAY])
    rows = lake(settings).sort("event_id")
    assert not {"uln", "dob", "postcode"} & set(rows.columns)
    pids = rows["learner_pid"].to_list()
    assert pids[0] == pids[1] != pids[2] and len(pids[0]) == 32
    key, uln = settings.key_bytes(), str(lrs_row("e1")["uln"])
    assert pids[0] == pseudonym(key, uln, "uln")
    assert rows["uln_block_pid"][0] == pseudonym(key, uln[:BLOCK_DIGITS], "uln-block")
    assert rows["uln_valid"].to_list() == [True, True, False]
    assert rows["learner_age"].to_list() == [17, 17, 35]
    assert rows["postcode_area"].to_list() == ["LS", "LS", "M"]
    other_home = load_settings(
        home=settings.home.parent / "other",
        landing=settings.landing,
        pseudonym_key="a-completely-different-key-999",
    )
    ingest(other_home, "lrs", [DAY])
    assert lake(other_home).sort("event_id")["learner_pid"][0] != pids[0]


def test_a_second_writer_gets_a_clear_busy_error(settings: Settings) -> None:
    write_csv(settings.landing / "lrs" / DAY.isoformat() / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    with (
        home_lock(settings.home, purpose="test holder"),
        pytest.raises(HomeBusy, match="holds its writer lock"),
    ):
        ingest(settings, "lrs", [DAY])


def one_staged_file(settings: Settings, run: str, event_id: str) -> tuple[Path, Path]:
    """A one-event Parquet file in run ``run``'s staging, and where a commit would put it."""
    staged = settings.home / "staging" / f"run-{run}" / "f.parquet"
    staged.parent.mkdir(parents=True)
    pl.DataFrame({"event_id": [event_id]}).write_parquet(staged)
    return (
        staged,
        settings.home / "lake" / "source=lrs" / "event_date=2026-03-02" / f"part-{run}.parquet",
    )


def test_a_commit_interrupted_before_the_ledger_is_rolled_back(settings: Settings) -> None:
    """Pins the journal protocol: files moved but unrecorded are removed on recovery."""
    write_csv(settings.landing / "lrs" / DAY.isoformat() / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    staged, target = one_staged_file(settings, "x", "ghost")

    def crash() -> None:
        raise KeyboardInterrupt("killed between the moves and the ledger")

    with pytest.raises(KeyboardInterrupt):
        commit_files(settings.home, "run-x", [(staged, target)], crash)
    assert target.exists()
    with home_lock(settings.home):
        assert recover_home(settings) == ["run-x"]
    assert not target.exists()
    ingest(settings, "lrs", [DAY])
    assert lake(settings)["event_id"].to_list() == ["e1"]


def test_a_commit_whose_ledger_write_fails_puts_its_files_back_for_a_retry(
    settings: Settings,
) -> None:
    """An error (not a kill) after the moves leaves nothing in the lake and no journal, so a
    retry in the same process commits the same staged files."""
    staged, target = one_staged_file(settings, "y", "e1")

    def ledger_busy() -> None:
        raise OSError("the warehouse is busy")

    with pytest.raises(OSError, match="busy"):
        commit_files(settings.home, "run-y", [(staged, target)], ledger_busy)
    assert staged.exists() and not target.exists()
    assert list((settings.home / "journal").glob("*")) == []
    recorded: list[str] = []
    commit_files(settings.home, "run-y", [(staged, target)], lambda: recorded.append("ok"))
    assert target.exists() and recorded == ["ok"]


good_rows = st.builds(
    lambda i, late: lrs_row(
        f"g{i}", occurred_at="2026-03-01T12:00:00Z" if late else "2026-03-02T12:00:00Z"
    ),
    st.integers(0, 30),
    st.booleans(),
)
bad_rows = st.sampled_from(
    [
        {"ukprn": "12"},
        {"channel": "telex"},
        {"occurred_at": "yesterday"},
        {"result_count": "-1"},
        {"dob": "2030-01-01"},
        {"uln": "ABC"},
    ]
).flatmap(lambda bad: st.integers(100, 200).map(lambda i: lrs_row(f"b{i}", **bad)))


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(good_rows, bad_rows), min_size=1, max_size=40),
    st.lists(st.one_of(good_rows, bad_rows), min_size=1, max_size=40),
)
def test_rows_read_always_equals_written_plus_duplicates_plus_quarantined(
    first: list[dict[str, object]], second: list[dict[str, object]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(
            home=Path(tmp) / "h", landing=Path(tmp) / "l", pseudonym_key=TEST_KEY, max_bad_share=1
        )
        folder = s.landing / "lrs" / DAY.isoformat()
        write_csv(folder / "a.csv", first, LRS_COLUMNS)
        write_jsonl(folder / "b.jsonl", second)
        report = ingest(s, "lrs", [DAY])
        for d in report.deliveries:
            assert d.rows_read == d.rows_written + d.duplicates + d.quarantined
        good_ids = {
            str(r["event_id"]) for r in first + second if str(r["event_id"]).startswith("g")
        }
        assert report.total("rows_written") == len(good_ids)
        written = lake(s)["event_id"].to_list() if good_ids else []
        assert sorted(written) == sorted(good_ids)


# --- Real feeds ---------------------------------------------------------------------------


def test_quiet_days_are_committed_deliveries_of_zero_rows(settings: Settings) -> None:
    """Regression: a header-only CSV was refused, so weekends went unscored."""
    folder = settings.landing / "lrs" / DAY.isoformat()
    write_csv(folder / "a.csv", [], LRS_COLUMNS)
    write_jsonl(folder / "b.jsonl.gz", [])
    (folder / "c.jsonl").write_bytes(b"")
    report = ingest(settings, "lrs", [DAY])
    assert [(d.status, d.rows_read) for d in report.deliveries] == [
        (DeliveryStatus.committed, 0)
    ] * 3
    assert all(d.reconciles for d in report.deliveries)
    again = ingest(settings, "lrs", [DAY])
    assert {d.status for d in again.deliveries} == {DeliveryStatus.skipped}


def test_only_folders_named_yyyy_mm_dd_are_delivery_days(tmp_path: Path) -> None:
    """Regression: date.fromisoformat takes 20260811 and 2026-W33-2, whose folder
    2026-08-11 then did not exist, and --all ended with exit 2."""
    from pipeline.ingest.deliveries import delivery_days, unexpected_entries

    root = tmp_path / "lrs"
    for name in ["2026-08-10", "20260811", "2026-W33-2", "2026-02-30", "misc"]:
        (root / name).mkdir(parents=True)
    (root / "2026-08-12").write_text("a stray file")
    (root / "2026-08-10" / ".upload.csv.tmp").write_text("in flight")
    assert delivery_days(tmp_path, "lrs") == [date(2026, 8, 10)]
    warnings = unexpected_entries(tmp_path, "lrs")
    assert len(warnings) == 6
    assert "lrs/2026-08-12 is named like a delivery day but is not a folder; not read" in warnings
    assert any(w.startswith("lrs/2026-W33-2 is not a delivery day folder") for w in warnings)
    assert "lrs/2026-08-10/.upload.csv.tmp is a hidden file; not read" in warnings
    assert unexpected_entries(tmp_path, "npd") == []


def test_an_unexpected_error_in_one_file_refuses_that_file_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.ingest.deliveries as ingest_module

    folder = settings.landing / "lrs" / DAY.isoformat()
    write_csv(folder / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    write_csv(folder / "b.csv", [lrs_row("e2")], LRS_COLUMNS)
    real = ingest_module.read_delivery

    def flaky(path: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if path.name == "a.csv":
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_module, "read_delivery", flaky)
    report = ingest(settings, "lrs", [DAY])
    by_file = {Path(d.source_file).name: d for d in report.deliveries}
    assert by_file["a.csv"].status is DeliveryStatus.refused
    assert by_file["a.csv"].reason == (
        "refused: could not be read (RecursionError: maximum recursion depth exceeded)"
    )
    assert by_file["b.csv"].status is DeliveryStatus.committed
    assert lake(settings)["event_id"].to_list() == ["e2"]


def test_a_different_pseudonym_key_is_refused(settings: Settings, tmp_path: Path) -> None:
    from pipeline.ingest.deliveries import KeyMismatch, key_fingerprint

    write_csv(settings.landing / "lrs" / DAY.isoformat() / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    ingest(settings, "lrs", [DAY])
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        stored = con.execute("SELECT fingerprint FROM key_fingerprint").fetchall()
    assert stored == [(key_fingerprint(TEST_KEY.encode()),)]
    assert TEST_KEY not in str(stored) and len(stored[0][0]) == 16
    other = settings.model_copy(update={"pseudonym_key": SecretStr("another-key-0123456789")})
    write_csv(settings.landing / "lrs" / DAY.isoformat() / "b.csv", [lrs_row("e2")], LRS_COLUMNS)
    before = snapshot(settings.home)
    with pytest.raises(
        KeyMismatch, match=r"pseudonym key differs .* \(fingerprint [0-9a-f]{16} vs"
    ):
        ingest(other, "lrs", [DAY])
    assert snapshot(settings.home) == before
    # NPD carries no learner data and needs no key.
    write_csv(settings.landing / "npd" / DAY.isoformat() / "n.csv", [npd_row("n1")], NPD_COLUMNS)
    assert not ingest(other, "npd", [DAY]).refused


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root with mount rights; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (needs root): full-disk test not run")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _random_rows(n: int, prefix: str) -> list[dict[str, object]]:
    return [lrs_row(f"{prefix}{i}", user_agent=os.urandom(60).hex()) for i in range(n)]


def test_a_full_disk_is_one_clear_error_and_leaves_the_home_as_it_was(
    small_disk: Path, tmp_path: Path
) -> None:
    from pipeline.ingest.deliveries import HomeWriteError

    s = load_settings(home=small_disk / "home", landing=tmp_path / "l", pseudonym_key=TEST_KEY)
    folder = s.landing / "lrs" / DAY.isoformat()
    write_csv(folder / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    ingest(s, "lrs", [DAY])
    before = snapshot(s.home)
    write_csv(folder / "big.csv", _random_rows(30_000, "b"), LRS_COLUMNS)
    with pytest.raises(HomeWriteError, match="No space left on device") as info:
        ingest(s, "lrs", [DAY])
    assert "\n" not in str(info.value) and str(s.home) in str(info.value)
    assert not (s.home / "staging").exists() or not any((s.home / "staging").iterdir())
    assert snapshot(s.home) == before


def test_a_read_only_home_is_one_clear_error(small_disk: Path, tmp_path: Path) -> None:
    from pipeline.ingest.deliveries import HomeWriteError

    s = load_settings(home=small_disk / "home", landing=tmp_path / "l", pseudonym_key=TEST_KEY)
    folder = s.landing / "lrs" / DAY.isoformat()
    write_csv(folder / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    ingest(s, "lrs", [DAY])
    before = snapshot(s.home)
    write_csv(folder / "b.csv", [lrs_row("e2")], LRS_COLUMNS)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(HomeWriteError, match="Read-only file system"):
        ingest(s, "lrs", [DAY])
    assert snapshot(s.home) == before
