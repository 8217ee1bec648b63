"""Streaming readers: exact line numbers, malformed lines kept as rows, whole-file errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest.readers import LINE, MALFORMED, DeliveryError, read_delivery
from tests.conftest import LRS_COLUMNS, lrs_row, write_csv, write_jsonl


def _read(path: Path, chunk_rows: int = 1000) -> pl.DataFrame:
    return pl.concat(list(read_delivery(path, LRS_COLUMNS, chunk_rows)))


def test_csv_rows_keep_their_physical_line_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [lrs_row(f"e{i}") for i in range(5)], LRS_COLUMNS)
    lines = path.read_text().splitlines()
    lines.insert(3, "too,few,fields")  # becomes line 4
    lines.insert(5, "")  # a blank line is a row of empty fields, line 6
    path.write_text("\n".join(lines) + "\n")
    frame = _read(path, chunk_rows=2)
    assert frame[LINE].to_list() == [2, 3, 4, 5, 6, 7, 8]
    by_line = dict(zip(frame[LINE], frame["event_id"], strict=True))
    assert by_line[2] == "e0" and by_line[5] == "e2" and by_line[7] == "e3" and by_line[8] == "e4"
    malformed = frame.filter(pl.col(MALFORMED).is_not_null())
    assert malformed[LINE].to_list() == [4]
    assert malformed[MALFORMED].item() == "has 3 fields where the header has 14"


def test_csv_gz_with_other_column_order_and_unknown_columns(tmp_path: Path) -> None:
    columns = ["surprise", *reversed(LRS_COLUMNS)]
    rows = [{**lrs_row(f"e{i}", user_agent='Agent "q", <b>x</b>'), "surprise": 1} for i in range(3)]
    frame = _read(write_csv(tmp_path / "d.csv.gz", rows, columns))
    assert frame.columns[: len(LRS_COLUMNS)] == LRS_COLUMNS
    assert "surprise" not in frame.columns
    assert frame["user_agent"].to_list() == ['Agent "q", <b>x</b>'] * 3


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [lrs_row("e1")], [c for c in LRS_COLUMNS if c != "ukprn"])
    with pytest.raises(DeliveryError, match=r"d\.csv: missing required column\(s\): ukprn"):
        _read(path)


def test_a_headerless_file_is_refused_without_quoting_its_first_row(tmp_path: Path) -> None:
    """Regression: the reason quoted the first data row (ULN, date of birth, postcode) as
    the "found" columns, and it went on to the ledger, the summary and the CLI."""
    row = lrs_row("e1", uln="9876543210", dob="2007-02-03", postcode="ZZ9 9ZZ", user_name="bob1")
    path = tmp_path / "d.csv"
    path.write_text(",".join(str(v) for v in row.values()) + "\n")
    with pytest.raises(DeliveryError) as caught:
        _read(path)
    reason = str(caught.value)
    assert "the first line is not a header: 14 field(s), none of them a known column" in reason
    for field in ("uln", "dob", "postcode", "user_name", "client_ip", "user_agent", "ukprn"):
        assert str(row[field]) not in reason.replace(str(path), ""), field


def test_found_columns_are_named_only_when_they_are_known_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("event_id,occurred_at,1026893096\nx1,2026-08-12T10:00:00Z,1\n")
    with pytest.raises(DeliveryError, match=r"\(found: event_id, occurred_at and 1 other field"):
        _read(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"event_id,occurred_at\n", "missing required column"),
    ],
)
def test_empty_files_are_refused_with_the_file_named(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DeliveryError, match=message) as info:
        _read(path)
    assert info.value.path == path


@pytest.mark.parametrize("name", ["h.csv", "h.csv.gz", "e.jsonl", "e.jsonl.gz"])
def test_header_only_and_empty_json_lines_files_are_deliveries_of_zero_rows(
    tmp_path: Path, name: str
) -> None:
    """Issue 13: a quiet day is a header-only CSV or an empty JSON Lines file (a gzip of
    either too): 0 rows, not an error. Regression: 'the file has a header but no rows'."""
    path = tmp_path / name
    if "csv" in name:
        write_csv(path, [], LRS_COLUMNS)
    else:
        write_jsonl(path, [])
    frame = _read(path)
    assert frame.height == 0 and frame.columns[: len(LRS_COLUMNS)] == LRS_COLUMNS


def test_unreadable_and_truncated_gzip_are_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.csv.gz"
    bogus.write_bytes(b"this is not gzip at all\n" * 10)
    with pytest.raises(DeliveryError, match=r"bogus\.csv\.gz"):
        _read(bogus)
    good = write_csv(tmp_path / "t.csv.gz", [lrs_row(f"e{i}") for i in range(2000)], LRS_COLUMNS)
    truncated = tmp_path / "truncated.jsonl.gz"
    data = gzip.compress(b"".join(b'{"event_id": "x"}\n' for _ in range(5000)))
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DeliveryError, match=r"truncated\.jsonl\.gz: cannot be read as gzip"):
        _read(truncated)
    short = tmp_path / "short.csv.gz"
    short.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DeliveryError, match=r"short\.csv\.gz"):
        _read(short)


def test_jsonl_bad_lines_become_malformed_rows_with_line_numbers(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [
        lrs_row("e1"),
        "{not json",
        "",
        '["an", "array"]',
        lrs_row("e2", result_count=3),
    ]
    frame = _read(write_jsonl(tmp_path / "d.jsonl.gz", rows))
    assert frame[LINE].to_list() == [1, 2, 4, 5]
    assert frame[MALFORMED].to_list() == [
        None,
        "is not valid JSON",
        "is not a JSON object (found an array)",
        None,
    ]
    assert frame.filter(pl.col(LINE) == 5)["result_count"].item() == "3"


def test_jsonl_optional_key_absent_everywhere_is_fine(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [
        {k: v for k, v in lrs_row(f"e{i}").items() if k != "batch_size"} for i in range(3)
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    frame = pl.concat(list(read_delivery(path, LRS_COLUMNS, 1000, required=["event_id"])))
    assert frame["batch_size"].to_list() == [None] * 3


def test_jsonl_key_absent_from_every_row_is_a_missing_column(tmp_path: Path) -> None:
    rows: list[dict[str, object] | str] = [
        {k: v for k, v in lrs_row(f"e{i}").items() if k != "client_ip"} for i in range(3)
    ]
    with pytest.raises(DeliveryError, match=r"missing required column.*client_ip"):
        _read(write_jsonl(tmp_path / "d.jsonl", rows))


def test_chunks_never_exceed_the_limit_by_much_and_cover_every_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [lrs_row(f"e{i}") for i in range(5000)], LRS_COLUMNS)
    chunks = list(read_delivery(path, LRS_COLUMNS, 1000))
    assert len(chunks) >= 2
    lines = pl.concat(chunks)[LINE].to_list()
    assert lines == list(range(2, 5002))
