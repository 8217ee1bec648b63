"""Field validation derived from the pydantic models, on tiny literal frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest.validate import ERROR_FIELD, ERROR_REASON, constraints_of, masked_raw, validate
from schemas.events import LrsEvent, NpdEvent
from tests.conftest import LRS_COLUMNS, lrs_row, npd_row


def _frame(rows: list[dict[str, object]], columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{c: None if r.get(c) is None else str(r[c]) for c in columns} for r in rows],
        schema={c: pl.String for c in columns},
    )


def _errors(rows: list[dict[str, object]]) -> list[tuple[str | None, str | None]]:
    out = validate(_frame(rows, LRS_COLUMNS), LrsEvent)
    return list(zip(out[ERROR_FIELD].to_list(), out[ERROR_REASON].to_list(), strict=True))


def test_constraints_come_from_the_model() -> None:
    c = constraints_of(LrsEvent.model_fields["uln"])
    assert c.pattern == r"^[0-9]{10}$"
    assert constraints_of(LrsEvent.model_fields["channel"]).choices == (
        "portal",
        "webservice",
        "batch",
    )
    assert constraints_of(NpdEvent.model_fields["min_identifiability"]).le == 5


def test_a_valid_row_has_no_error_and_typed_values() -> None:
    out = validate(_frame([lrs_row("e1")], LRS_COLUMNS), LrsEvent)
    assert out[ERROR_FIELD].to_list() == [None]
    assert out["result_count"].dtype == pl.Int64
    assert out["occurred_at"].to_list() == [datetime(2026, 3, 2, 10, tzinfo=UTC)]


def test_each_kind_of_bad_field_is_named_with_a_reason() -> None:
    cases = {
        "occurred_at": lrs_row("a", occurred_at="2026-03-02 10:00:00"),
        "ukprn": lrs_row("b", ukprn="1234567"),
        "channel": lrs_row("c", channel="fax"),
        "result_count": lrs_row("d", result_count="three"),
        "uln": lrs_row("e", uln="12345A7890"),
        "dob": lrs_row("f", dob="2008-02-30"),
        "event_id": lrs_row(""),
        "postcode": lrs_row("g", postcode="not a postcode"),
        "client_ip": lrs_row("h", client_ip="999 bad"),
    }
    got = _errors(list(cases.values()))
    for (field, reason), expected in zip(got, cases, strict=True):
        assert field == expected
        assert reason is not None and reason.startswith(expected)
    assert got[1][1] == r"ukprn does not match the pattern ^[0-9]{8}$"
    assert got[2][1] == "channel is not one of portal, webservice, batch"
    assert got[6][1] == "event_id is missing"


def test_optional_fields_may_be_empty() -> None:
    assert _errors([lrs_row("e", uln="", dob="", postcode="", batch_size="")]) == [(None, None)]


def test_bounds_are_checked_on_parsed_values() -> None:
    out = validate(
        _frame(
            [npd_row("n1", min_identifiability=0), npd_row("n2", rows_returned=-5)],
            list(npd_row("x")),
        ),
        NpdEvent,
    )
    assert out[ERROR_REASON].to_list() == [
        "min_identifiability must be at least 1",
        "rows_returned must be at least 0",
    ]


def test_extra_checks_apply_after_field_checks() -> None:
    extra = [("result_count", pl.col("result_count") > 5, "result_count is too big")]
    out = validate(
        _frame(
            [lrs_row("a", result_count=9), lrs_row("b", ukprn="x", result_count=9)], LRS_COLUMNS
        ),
        LrsEvent,
        extra,
    )
    assert out[ERROR_REASON].to_list()[0] == "result_count is too big"
    assert out[ERROR_FIELD].to_list()[1] == "ukprn"  # the first failing field wins


def test_masked_raw_hides_personal_values() -> None:
    frame = _frame([lrs_row("e1")], LRS_COLUMNS)
    text = frame.select(masked_raw(frame, LrsEvent)).item()
    assert "1026893096" not in text and "2008-05-01" not in text and "LS6 2AB" not in text
    assert "<masked: 10 chars>" in text and "CollegeMIS/4.2" in text


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))
moments = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2090, 12, 31)).map(
    lambda d: d.replace(microsecond=(d.microsecond // 1000) * 1000)
)


@given(moments, offsets, st.booleans())
def test_timestamps_with_any_offset_parse_to_the_same_utc_instant(
    moment: datetime, offset: timedelta, zulu: bool
) -> None:
    aware = moment.replace(tzinfo=timezone(offset))
    text = aware.isoformat(timespec="milliseconds")
    if zulu and offset == timedelta(0):
        text = text.replace("+00:00", "Z")
    out = validate(_frame([lrs_row("e", occurred_at=text)], LRS_COLUMNS), LrsEvent)
    assert out[ERROR_FIELD].to_list() == [None], text
    assert out["occurred_at"].item() == aware.astimezone(UTC)


@given(moments)
def test_timestamps_without_an_offset_are_rejected(moment: datetime) -> None:
    text = moment.isoformat()
    assert _errors([lrs_row("e", occurred_at=text)])[0][0] == "occurred_at"
