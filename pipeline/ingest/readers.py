"""Streaming readers for delivery files: CSV or JSON Lines, gzipped or not.

Each reader yields frames of about ``chunk_rows`` rows, with every contract column as a
nullable string plus ``source_line`` (the physical line number in the file where the row
starts, header = 1), ``_malformed`` and ``_malformed_field``, so memory does not grow with
file size. Problems with a whole file raise :class:`DeliveryError` naming the file; problems
with a row come back as that row with ``_malformed`` set to the reason (and
``_malformed_field`` to the field at fault, when one is), for validation to quarantine.

Every physical line of a file is accounted for: it is a row, part of a row (a quoted field
holding a newline, legal CSV), a malformed row, or - in JSON Lines only - blank. Files are
read in blocks of whole lines; a block that parses cleanly and whose row count matches its
line count takes the fast path (pyarrow for CSV, polars for JSON Lines); any other block is
parsed line by line in Python, which is slow but exact.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
import typing
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

LINE = "source_line"
MALFORMED = "_malformed"
MALFORMED_FIELD = "_malformed_field"
SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz")
"""Recognised delivery file types (matched case-insensitively)."""

MAX_LINE_BYTES = 64 << 20
"""A longer physical line is quarantined unread, so memory stays bounded."""
MAX_RECORD_LINES = 1000
"""A CSV record may span at most this many lines (a quoted field holding newlines)."""
MAX_MESSAGE_CHARS = 300
_BOM = b"\xef\xbb\xbf"


class DeliveryError(Exception):
    """A delivery file that cannot be read as a whole (names the file)."""

    def __init__(self, path: Path, problem: str) -> None:
        problem = clip(problem, MAX_MESSAGE_CHARS)
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def clip(text: str, limit: int = 60) -> str:
    """``text`` made safe to show: control characters escaped, at most ``limit`` chars."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[: limit + 1])
    return shown if len(shown) <= limit and len(text) <= limit else shown[: limit - 1] + "…"


def delivery_type(name: str) -> str | None:
    """The recognised suffix of a file name (case-insensitive), or None."""
    lower = name.lower()
    return next((s for s in SUFFIXES if lower.endswith(s)), None)


def is_delivery_file(path: Path) -> bool:
    """A regular, visible file of a recognised delivery type."""
    return path.is_file() and delivery_type(path.name) is not None and not path.name.startswith(".")


def _empty(columns: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            **{c: pl.String for c in columns},
            LINE: pl.Int64,
            MALFORMED: pl.String,
            MALFORMED_FIELD: pl.String,
        }
    )


def read_delivery(
    path: Path,
    columns: Sequence[str],
    chunk_rows: int,
    required: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the rows of one delivery file in chunks (see module docstring); at least one
    (possibly empty) frame.

    Only ``required`` fields (default: all ``columns``) must be present: as a CSV header
    column, or in JSON Lines as a key with a value in at least one row. Absent optional
    columns come back null. A header-only CSV or a JSON Lines file with no records (even
    0 bytes) is a valid file of 0 rows; a 0-byte CSV has no header and is refused.

    In JSON Lines, values must be JSON strings, except in ``numeric`` fields, which may
    also be JSON numbers (default None: any field may be a number); arrays, objects and
    duplicated keys make the row malformed.
    """
    try:
        kind = delivery_type(path.name)
        if kind is None:
            raise DeliveryError(
                path, f"unknown file type (expected one of {', '.join(SUFFIXES)}, any case)"
            )
        size = path.stat().st_size
        if size == 0 and kind.endswith(".gz"):
            raise DeliveryError(path, "cannot be read as gzip: the file is empty (0 bytes)")
        if size == 0 and kind == ".csv":
            raise DeliveryError(path, "the file is empty (0 bytes): a CSV needs a header row")
        req = list(columns if required is None else required)
        with _open_binary(path, kind) as f:
            if kind.startswith(".csv"):
                yield from _read_csv(path, f, columns, chunk_rows, req)
            else:
                num = list(columns) if numeric is None else list(numeric)
                yield from _read_jsonl(path, f, columns, chunk_rows, req, num)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DeliveryError(path, f"cannot be read as gzip: {e or 'truncated stream'}") from e
    except pa.ArrowInvalid as e:
        raise DeliveryError(path, f"cannot be read: {e}") from e
    except OSError as e:
        raise DeliveryError(path, f"cannot be read: {e.strerror or e}") from e


def _open_binary(path: Path, kind: str) -> IO[bytes]:
    if kind.endswith(".gz"):
        return typing.cast(IO[bytes], gzip.open(path, "rb"))
    f = open(path, "rb")  # noqa: SIM115 - returned to a with block
    if f.read(2) == b"\x1f\x8b":
        f.close()
        raise DeliveryError(path, "holds gzip data but its name does not end in .gz")
    f.seek(0)
    return f


def _line_blocks(f: IO[bytes], block_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Yield (index of its first line, data) for blocks of whole lines of ``f``.

    ``data`` is None for one line longer than :data:`MAX_LINE_BYTES`, which is skipped.
    The last line of the file may lack its newline.
    """
    first = 0
    while True:
        data = f.read(block_bytes)
        if not data:
            return
        if not data.endswith(b"\n"):
            rest = f.readline(MAX_LINE_BYTES)
            data += rest
            if not data.endswith(b"\n") and len(rest) == MAX_LINE_BYTES:
                head = data[: data.rfind(b"\n") + 1]
                if head:
                    yield first, head
                    first += head.count(b"\n")
                while (piece := f.readline(MAX_LINE_BYTES)) and not piece.endswith(b"\n"):
                    pass
                yield first, None
                first += 1
                continue
        yield first, data
        first += _count_lines(data)


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _block_bytes(chunk_rows: int) -> int:
    return min(4 << 20, max(64 << 10, chunk_rows * 128))


def _check_columns(
    path: Path,
    present: Sequence[str],
    required: Sequence[str],
    known: Sequence[str],
    *,
    what: str = "the first line is not a header",
) -> None:
    """Refuse a file lacking a ``required`` column. The reason names only our own column
    names: of what was found, the ``known`` columns, and a count of the rest. A file with
    no header row has its first data row here (ULN, date of birth, postcode), and the
    reason travels to the ledger, the summary artifact, the flow message and the CLI."""
    missing = [c for c in required if c not in present]
    if not missing:
        return
    lower = {k.lower() for k in known}
    names = [p for p in present if p in known or p.lower() in lower]  # ours, in any case
    others = len(present) - len(names)
    if not names:
        found = f"{what}: {len(present)} field(s), none of them a known column"
    else:
        found = "found: " + ", ".join(names) + (f" and {others} other field(s)" if others else "")
        if any(p not in known for p in names):
            found += "; column names are case-sensitive"
    raise DeliveryError(path, f"missing required column(s): {', '.join(missing)} ({found})")


def _malformed_frame(
    columns: Sequence[str], bad: Sequence[tuple[int, str, str | None]]
) -> pl.DataFrame:
    """Rows with every column null, for lines that cannot be split into fields."""
    if not bad:
        return _empty(columns)
    lines, reasons, fields = zip(*bad, strict=True)
    return pl.DataFrame(
        {
            **{c: pl.Series(c, [None] * len(bad), dtype=pl.String) for c in columns},
            LINE: pl.Series(LINE, lines, dtype=pl.Int64),
            MALFORMED: pl.Series(MALFORMED, reasons, dtype=pl.String),
            MALFORMED_FIELD: pl.Series(MALFORMED_FIELD, fields, dtype=pl.String),
        }
    )


def _chunked(
    frames: Iterator[pl.DataFrame], columns: Sequence[str], rows: int
) -> Iterator[pl.DataFrame]:
    """Group frames into chunks of at least ``rows`` rows; always yield at least one."""
    pending: list[pl.DataFrame] = []
    n = 0
    yielded = False
    for frame in frames:
        pending.append(frame)
        n += frame.height
        if n >= rows:
            yield pl.concat(pending).sort(LINE).rechunk()
            pending, n, yielded = [], 0, True
    if pending and (n or not yielded):
        yield pl.concat(pending).sort(LINE).rechunk()
    elif not yielded:
        yield _empty(columns)


# --- CSV -----------------------------------------------------------------------------------


def _read_csv(
    path: Path, f: IO[bytes], columns: Sequence[str], chunk_rows: int, required: Sequence[str]
) -> Iterator[pl.DataFrame]:
    first = f.readline(MAX_LINE_BYTES)
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DeliveryError(path, "is UTF-16 encoded; delivery files must be UTF-8")
    first = first.removeprefix(_BOM)
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DeliveryError(path, f"the header row is not valid UTF-8 (byte {e.start + 1})") from e
    if not text.strip():
        raise DeliveryError(path, "the file has no header row (the first line is blank)")
    if "\r" in text.rstrip("\r\n"):
        raise DeliveryError(
            path, "uses carriage returns alone as line breaks; expected LF or CRLF line endings"
        )
    try:
        header = [h.strip() for h in next(csv.reader([text]))]
    except csv.Error as e:
        raise DeliveryError(path, f"the header row cannot be split into fields ({e})") from e
    dup = sorted({h for h in header if h in columns and header.count(h) > 1})
    if dup:
        raise DeliveryError(path, f"column(s) named more than once in the header: {', '.join(dup)}")
    _check_columns(path, header, required, columns)
    picks = {c: header.index(c) for c in columns if c in header}
    frames = _csv_frames(f, columns, picks, len(header), chunk_rows)
    yield from _chunked(frames, columns, chunk_rows)


def _csv_frames(
    f: IO[bytes], columns: Sequence[str], picks: dict[str, int], width: int, chunk_rows: int
) -> Iterator[pl.DataFrame]:
    carry: tuple[int, bytes] | None = None
    blocks = _line_blocks(f, _block_bytes(chunk_rows))
    for index, data in itertools.chain(blocks, [(-1, b"")]):
        at_eof = index < 0
        if data is None:
            if carry is not None:  # the open record cannot run on past an unreadable line
                yield _csv_slow(carry[1], carry[0] + 2, columns, picks, width, True)[0]
                carry = None
            yield _malformed_frame(
                columns, [(index + 2, f"is longer than {MAX_LINE_BYTES:,} bytes", None)]
            )
            continue
        if carry is not None:
            index, data = carry[0], carry[1] + data
            carry = None
        if not data:
            continue
        frame = None if at_eof else _csv_fast(data, index + 2, columns, picks, width)
        if frame is None:
            frame, rest = _csv_slow(data, index + 2, columns, picks, width, at_eof)
            if rest:
                carry = (index + _count_lines(data) - _count_lines(rest), rest)
        yield frame


def _csv_fast(
    data: bytes, first_line: int, columns: Sequence[str], picks: dict[str, int], width: int
) -> pl.DataFrame | None:
    """Parse a block with pyarrow, or None when it needs the line-by-line path."""
    try:
        # pyarrow decodes a ragged row's text for the handler and fails on invalid UTF-8
        # with an unraisable traceback on stderr: such blocks take the exact path.
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(arr == ord('"'))
    if quotes.size:
        newlines = np.flatnonzero(arr == ord("\n"))
        if (np.bincount(np.searchsorted(newlines, quotes)) & 1).any():
            return None  # a quote left open at the end of a line: a record spans lines
    invalid: dict[int, str] = {}

    def on_invalid(row: Any) -> str:
        invalid[int(row.number)] = (
            f"has {row.actual_columns} fields where the header has {row.expected_columns}"
        )
        return "skip"

    names = [f"f{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.string() for i in picks.values()},
                include_columns=[f"f{i}" for i in picks.values()],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None  # e.g. invalid UTF-8 in a field: find the row line by line
    n_lines = _count_lines(data)
    if table.num_rows + len(invalid) != n_lines:
        return None  # e.g. a lone carriage return, which pyarrow takes for a line break
    lines = np.arange(first_line, first_line + n_lines, dtype=np.int64)
    if invalid:
        lines = np.delete(lines, np.array(sorted(invalid), dtype=np.int64) - 1)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.rename({f"f{i}": c for c, i in picks.items()}).select(
        pl.col(c) if c in picks else pl.lit(None, dtype=pl.String).alias(c) for c in columns
    )
    frame = frame.with_columns(
        pl.Series(LINE, lines),
        pl.lit(None, dtype=pl.String).alias(MALFORMED),
        pl.lit(None, dtype=pl.String).alias(MALFORMED_FIELD),
    )
    bad = [(first_line + k - 1, reason, None) for k, reason in invalid.items()]
    return pl.concat([frame, _malformed_frame(columns, bad)]) if bad else frame


def _csv_slow(
    data: bytes,
    first_line: int,
    columns: Sequence[str],
    picks: dict[str, int],
    width: int,
    at_eof: bool,
) -> tuple[pl.DataFrame, bytes]:
    """Parse a block line by line, exactly. Returns the rows and the bytes of a record
    still open at the end of the block (to be completed by the next block)."""
    csv.field_size_limit(MAX_LINE_BYTES)
    raw = data.split(b"\n")
    if data.endswith(b"\n"):
        raw.pop()
    texts = [ln.decode("utf-8", "surrogateescape") + "\n" for ln in raw]
    records: list[list[str | None]] = []
    lines: list[int] = []
    bad: list[tuple[int, str, str | None]] = []
    names = list(columns)
    i = 0
    while i < len(texts):
        reader = csv.reader(itertools.islice(texts, i, None))
        base = i
        restart = False
        while True:
            start = i
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                bad.append((first_line + start, f"cannot be split into fields ({e})", None))
                i, restart = start + 1, True
                break
            end = base + reader.line_num
            span = end - start
            reaches_end = end >= len(texts)
            # A record whose quotes do not pair up and that ran to the end of the input
            # opened a quote that never closed (before it closed, it would go on).
            open_quote = (span > 1 or reaches_end) and (
                sum(texts[k].count('"') for k in range(start, end)) % 2 == 1
            )
            if reaches_end and open_quote and not at_eof and span <= MAX_RECORD_LINES:
                rest = b"\n".join(raw[start:]) + (b"\n" if data.endswith(b"\n") else b"")
                return _csv_rows(names, records, lines, bad), rest
            if (reaches_end and open_quote) or (
                span > 1
                and (
                    len(rec) != width
                    or span > MAX_RECORD_LINES
                    or (
                        width > 1
                        and any(texts[k].count(",") >= width - 1 for k in range(start + 1, end))
                    )
                )
            ):
                # Quarantine the line where the quote opened and read on from the next line,
                # so one stray quote does not swallow the rest of the file.
                bad.append((first_line + start, "has a quote that is never closed", None))
                i, restart = start + 1, True
                break
            i = end
            if rec and len(rec) != width:
                bad.append(
                    (
                        first_line + start,
                        f"has {len(rec)} fields where the header has {width}",
                        None,
                    )
                )
                continue
            values: list[str | None] = []
            broken = None
            for c in names:
                if c not in picks:
                    values.append(None)
                    continue
                v = rec[picks[c]] if rec else ""
                if broken is None and not _is_utf8(v):
                    broken = c
                values.append(v)
            if broken is not None:
                bad.append((first_line + start, f"{broken} is not valid UTF-8 text", broken))
                continue
            records.append(values)
            lines.append(first_line + start)
        if not restart:
            break
    return _csv_rows(names, records, lines, bad), b""


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_rows(
    columns: list[str],
    records: list[list[str | None]],
    lines: list[int],
    bad: list[tuple[int, str, str | None]],
) -> pl.DataFrame:
    good = pl.DataFrame(records, schema={c: pl.String for c in columns}, orient="row")
    good = good.with_columns(
        pl.Series(LINE, lines, dtype=pl.Int64),
        pl.lit(None, dtype=pl.String).alias(MALFORMED),
        pl.lit(None, dtype=pl.String).alias(MALFORMED_FIELD),
    )
    return pl.concat([good, _malformed_frame(columns, bad)]).sort(LINE)


# --- JSON Lines ----------------------------------------------------------------------------


def _read_jsonl(
    path: Path,
    f: IO[bytes],
    columns: Sequence[str],
    chunk_rows: int,
    required: Sequence[str],
    numeric: Sequence[str],
) -> Iterator[pl.DataFrame]:
    seen_keys: set[str] = set()
    parsed = [0]  # well-formed object rows seen
    frames = _jsonl_frames(f, columns, chunk_rows, required, numeric, seen_keys, parsed)
    yield from _chunked(frames, columns, chunk_rows)
    if parsed[0] and not seen_keys.issuperset(required):
        # In JSON Lines an absent key and a null are the same; a required field with no value
        # in any row of the file is a missing column, as in CSV.
        _check_columns(path, sorted(seen_keys), required, columns, what="the keys of its rows")


def _jsonl_frames(
    f: IO[bytes],
    columns: Sequence[str],
    chunk_rows: int,
    required: Sequence[str],
    numeric: Sequence[str],
    seen_keys: set[str],
    parsed: list[int],
) -> Iterator[pl.DataFrame]:
    schema = {c: pl.String for c in columns}
    strings = [c for c in columns if c not in numeric]
    keys = "|".join(re.escape(c) for c in columns)
    key_re = f'"(?:{keys})"\\s*:'
    not_string = (
        f'"(?:{"|".join(re.escape(c) for c in strings)})"\\s*:\\s*[^"\\sn]' if strings else None
    )
    not_whole = (
        f'"(?:{"|".join(re.escape(c) for c in numeric)})"\\s*:\\s*-?[0-9]+[.eE]'
        if numeric
        else None
    )
    for index, data in _line_blocks(f, _block_bytes(chunk_rows)):
        if data is None:
            yield _malformed_frame(
                columns, [(index + 1, f"is longer than {MAX_LINE_BYTES:,} bytes", None)]
            )
            continue
        raw = data.split(b"\n")
        if data.endswith(b"\n"):
            raw.pop()
        numbers = np.arange(index + 1, index + 1 + len(raw), dtype=np.int64)
        try:
            lines = pl.Series("l", data.decode("utf-8").split("\n")[: len(raw)], dtype=pl.String)
        except UnicodeDecodeError:
            yield _jsonl_slow(raw, numbers, columns, numeric, seen_keys, parsed)
            continue
        stripped = lines.str.strip_chars()
        blank = (stripped == "").to_numpy()
        found = lines.str.extract_all(key_re)
        suspect = (
            ~stripped.str.starts_with("{")
            | ~stripped.str.ends_with("}")
            | lines.str.contains("[", literal=True)
            | (lines.str.count_matches("{", literal=True) > 1)
            | lines.str.contains("\\u", literal=True)
            | (found.list.len() != found.list.n_unique())
        )
        if not_string:
            suspect = suspect | lines.str.contains(not_string)
        if not_whole:
            suspect = suspect | lines.str.contains(not_whole)
        slow = suspect.to_numpy() & ~blank
        fast = ~slow & ~blank
        out: list[pl.DataFrame] = []
        if fast.any():
            text = "\n".join(lines.filter(pl.Series(fast)).to_list())
            try:
                frame = pl.read_ndjson(io.BytesIO(text.encode()), schema=schema)
            except pl.exceptions.PolarsError:
                slow, fast = ~blank, np.zeros_like(blank)
            else:
                parsed[0] += frame.height
                if not seen_keys.issuperset(required):
                    seen_keys.update(c for c in required if frame[c].null_count() < frame.height)
                out.append(
                    frame.with_columns(
                        pl.Series(LINE, numbers[fast]),
                        pl.lit(None, dtype=pl.String).alias(MALFORMED),
                        pl.lit(None, dtype=pl.String).alias(MALFORMED_FIELD),
                    )
                )
        if slow.any():
            picked = [raw[k] for k in np.flatnonzero(slow)]
            out.append(_jsonl_slow(picked, numbers[slow], columns, numeric, seen_keys, parsed))
        if out:
            yield pl.concat(out).sort(LINE)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def _jsonl_slow(
    raw: list[bytes],
    numbers: np.ndarray,
    columns: Sequence[str],
    numeric: Sequence[str],
    seen_keys: set[str],
    parsed: list[int],
) -> pl.DataFrame:
    """Line-by-line path for lines that may not be flat JSON objects of scalars."""
    records: list[dict[str, str | None]] = []
    for line, number in zip(raw, numbers.tolist(), strict=True):
        record: dict[str, str | None] = dict.fromkeys(columns)
        record[LINE] = number
        record[MALFORMED] = record[MALFORMED_FIELD] = None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            record[MALFORMED] = f"is not valid UTF-8 (byte {e.start + 1})"
            records.append(record)
            continue
        if not text.strip():
            continue  # a blank line is not a row
        try:
            obj = json.loads(text, object_pairs_hook=_no_duplicates)
        except _DuplicateKey as e:
            record[MALFORMED] = f"has the key {clip(e.key, 40)!r} more than once"
            if e.key in columns:
                record[MALFORMED_FIELD] = e.key
                record[MALFORMED] = f"{e.key} is given more than once"
        except RecursionError:
            record[MALFORMED] = "is nested too deeply"
        except ValueError:
            record[MALFORMED] = "is not valid JSON"
        else:
            if not isinstance(obj, dict):
                record[MALFORMED] = f"is not a JSON object (found {_json_kind(obj)})"
            else:
                _take_values(obj, record, columns, numeric)
                if record[MALFORMED] is None:
                    parsed[0] += 1
                    seen_keys.update(k for k in columns if obj.get(k) is not None)
        records.append(record)
    schema = {
        **{c: pl.String for c in columns},
        LINE: pl.Int64,
        MALFORMED: pl.String,
        MALFORMED_FIELD: pl.String,
    }
    return pl.DataFrame(records, schema=schema)


def _take_values(
    obj: dict[str, Any], record: dict[str, Any], columns: Sequence[str], numeric: Sequence[str]
) -> None:
    for c in columns:
        v = obj.get(c)
        if v is None or isinstance(v, str):
            record[c] = v
            continue
        kind = _json_kind(v)
        if c in numeric and kind == "a number":
            record[c] = json.dumps(v)
            continue
        expected = "a whole number or a string" if c in numeric else "a string"
        record[MALFORMED] = f"{c} is {kind} where {expected} is expected"
        record[MALFORMED_FIELD] = c
        return
