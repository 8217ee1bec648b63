"""The ULN check digit: known values, the scalar rule, and the vectorised forms agree."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ingest.uln import check_digit, is_valid_uln, make_valid_ulns, valid_uln_expr

stems = st.integers(min_value=100_000_000, max_value=999_999_999)


def test_published_examples_are_valid() -> None:
    assert is_valid_uln("1026893096")
    assert is_valid_uln("1174112637")


def test_placeholder_and_malformed_are_invalid() -> None:
    for bad in ("9999999999", "102689309", "10268930961", "10268930a6", ""):
        assert not is_valid_uln(bad)


@given(stems)
def test_check_digit_makes_a_valid_uln_and_any_other_digit_does_not(stem: int) -> None:
    digit = check_digit(str(stem))
    for d in range(10):
        assert is_valid_uln(f"{stem}{d}") == (digit is not None and d == digit)


@given(st.lists(stems, min_size=1, max_size=50))
def test_vectorised_generation_matches_the_scalar_rule(values: list[int]) -> None:
    made = make_valid_ulns(np.array(values, dtype=np.int64))
    for stem, uln in zip(values, made.tolist(), strict=True):
        digit = check_digit(str(stem))
        assert (uln == -1) == (digit is None)
        if uln != -1:
            assert is_valid_uln(str(uln))


@given(st.lists(st.text(alphabet="0123456789x", min_size=0, max_size=11), max_size=40))
def test_polars_expression_matches_the_scalar_rule(values: list[str]) -> None:
    frame = pl.DataFrame({"uln": [*values, None]}, schema={"uln": pl.String})
    got = frame.select(valid_uln_expr("uln")).to_series().to_list()
    assert got[:-1] == [is_valid_uln(v) for v in values]
    assert got[-1] is None
