"""Property tests: whatever bytes a delivery holds, readers account for every line and
raise nothing but :class:`DeliveryError`; the IP check agrees with ``ipaddress``; the
vectorised pseudonyms agree with ``hmac`` bit for bit."""

from __future__ import annotations

import csv
import hmac
import io
import ipaddress
import json
import re
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import pipeline.ingest.readers as readers
from pipeline.ingest.pseudonymise import PID_HEX_CHARS, pseudonym, pseudonymise_column
from pipeline.ingest.readers import LINE, MALFORMED, DeliveryError, read_delivery
from schemas.events import ip_address_pattern
from tests.conftest import LRS_COLUMNS, lrs_row

FAST = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _row_line(**overrides: object) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([lrs_row("e", **overrides)[c] for c in LRS_COLUMNS])
    return out.getvalue()


noise = st.text(alphabet=st.sampled_from([*'ab,"\r\x00é日 ', "\udc80"]), max_size=30)
lines = st.lists(
    st.one_of(noise, st.builds(lambda ua: _row_line(user_agent=ua), noise)), max_size=25
)


def _read(data: bytes, name: str) -> pl.DataFrame | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return pl.concat(list(read_delivery(path, LRS_COLUMNS, 1000, numeric=[])))
        except DeliveryError:
            return None


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@FAST
@given(lines)
def test_csv_every_physical_line_is_a_row_or_inside_one(body: list[str]) -> None:
    text = "\n".join([",".join(LRS_COLUMNS), *[b.replace("\n", " ") for b in body]]) + "\n"
    data = _encode(text)
    frame = _read(data, "d.csv")
    n = data.count(b"\n") - 1
    if frame is None:
        return  # refused whole, with a reason (e.g. a lone carriage return in the header)
    got = frame[LINE].to_list()
    assert got == sorted(set(got)) and all(2 <= k <= n + 1 for k in got)
    if b'"' not in data:
        assert got == list(range(2, n + 2))  # no quotes: one row per line, exactly


@FAST
@given(st.lists(st.one_of(
    st.builds(lambda ua: json.dumps(lrs_row("e", user_agent=ua)), st.text(max_size=10)),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                     st.sampled_from([*LRS_COLUMNS, "x"]), kids, max_size=4)).map(json.dumps),
    noise,
), max_size=25))  # fmt: skip
def test_jsonl_every_non_blank_line_is_a_row(body: list[str]) -> None:
    text = "".join(b.replace("\n", " ") + "\n" for b in body)
    data = _encode(text)
    frame = _read(data, "d.jsonl")
    if frame is None:
        return
    expected = [i + 1 for i, ln in enumerate(data.split(b"\n")[:-1]) if ln.strip()]
    assert frame[LINE].to_list() == expected


def _hmac_pid(key: bytes, value: str | None, domain: str) -> str | None:
    if value is None:
        return None
    return hmac.digest(key, f"{domain}:{value}".encode(), "sha256").hex()[:PID_HEX_CHARS]


any_text = st.text(st.characters(codec="utf-8"))  # NUL, controls, any plane, no surrogates
keys = st.one_of(
    any_text.map(str.encode),  # what Settings gives: text, here empty up to hundreds of bytes
    st.binary(min_size=60, max_size=70).map(lambda b: b"k" + b),  # around the 64-byte block
    st.binary(max_size=100),  # raw bytes, mostly not UTF-8
)


@hsettings(max_examples=300, deadline=None)
@given(
    keys,
    st.lists(st.none() | st.sampled_from(["", "\x00", "1026893096"]) | any_text, max_size=30),
    st.sampled_from(["uln", "uln-block", "é"]),
)
def test_vectorised_pseudonyms_are_the_hmac_of_each_value(
    key: bytes, values: list[str | None], domain: str
) -> None:
    got = pseudonymise_column(pl.Series(values, dtype=pl.String), key, domain).to_list()
    assert got == [_hmac_pid(key, v, domain) for v in values]
    assert [pseudonym(key, v, domain) for v in values if v is not None] == [
        g for g in got if g is not None
    ]


def test_pseudonyms_are_those_lakes_already_hold() -> None:
    """Known answers, from the Python ``hmac`` code before the vectorised path: lakes built
    before and after it hold the same pseudonyms."""
    key = b"benchmark-key-not-secret-0123456789"
    got = pseudonymise_column(pl.Series(["1026893096", "1026893", None]), key, "uln").to_list()
    assert got == ["95087c719a6b222b033082d49fd45891", "7b540556f83a06b541273ebb8bc844a8", None]


IP = re.compile(ip_address_pattern())


def _python_accepts(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


@hsettings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789abcdefABCDEF:.")), max_size=45))
def test_the_ip_pattern_agrees_with_ipaddress_on_any_string(text: str) -> None:
    assert bool(IP.match(text)) == _python_accepts(text), text


@hsettings(max_examples=200, deadline=None)
@given(st.ip_addresses(), st.booleans())
def test_every_ip_address_is_accepted_compressed_or_exploded(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, exploded: bool
) -> None:
    text = address.exploded if exploded else address.compressed
    assert IP.match(text), text


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl"])
def test_a_line_longer_than_the_limit_is_quarantined_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Memory stays bounded: a 64 MiB line (here 4 KiB) is skipped, not read whole."""
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(readers, "_block_bytes", lambda chunk_rows: 1024)
    path = tmp_path / name
    if name.endswith(".csv"):
        rows = [",".join(LRS_COLUMNS), _row_line(), _row_line(user_agent="A" * 20_000), _row_line()]
    else:
        rows = [
            json.dumps(lrs_row(f"e{i}", user_agent="A" * n)) for i, n in enumerate([1, 20_000, 1])
        ]
    path.write_text("\n".join(rows) + "\n")
    frame = pl.concat(list(read_delivery(path, LRS_COLUMNS, 1000)))
    first = 2 if name.endswith(".csv") else 1
    assert frame[LINE].to_list() == [first, first + 1, first + 2]
    assert frame[MALFORMED].to_list() == [None, "is longer than 4,096 bytes", None]
