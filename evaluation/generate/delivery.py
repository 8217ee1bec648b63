"""Delivery: cut each day's events into landing files the way real feeds arrive.

A day's delivery folder holds several files, CSV or JSON Lines, mostly gzipped, each with
its own column order and sometimes an extra unknown column. Some events arrive one or two
deliveries late; some rows are repeated (same ``event_id``, same values) within a delivery
or in the next one; a configurable share of rows is malformed in one of several ways.
Files are byte-for-byte deterministic: gzip headers carry no time stamp or file name.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from schemas.generate import DeliveryParams

EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("feed_version", "2.3"),
    ("source_system", "LRS-PROD-2"),
    ("_batch_ref", "B{day}"),
)

Mutator = Callable[[dict[str, Any], np.random.Generator], None]


def _bad_ts(r: dict[str, Any], rng: np.random.Generator) -> None:
    r["occurred_at"] = str(rng.choice(["2026-13-45T25:61:00Z", "not-a-date", "32/08/2026 14:05"]))


def _naive_ts(r: dict[str, Any], rng: np.random.Generator) -> None:
    ts = str(r["occurred_at"])
    r["occurred_at"] = ts[:19]


def _bad_ukprn(r: dict[str, Any], rng: np.random.Generator) -> None:
    u = str(r.get("ukprn") or "10000000")
    r["ukprn"] = u[:7] if rng.random() < 0.5 else u + "9"


def _bad_channel(r: dict[str, Any], rng: np.random.Generator) -> None:
    r["channel"] = str(rng.choice(["fax", "email", "sftp"]))


def _bad_count(field_name: str) -> Mutator:
    def mutate(r: dict[str, Any], rng: np.random.Generator) -> None:
        r[field_name] = str(rng.choice(["two", "1.5", "-", "lots"]))

    return mutate


def _no_id(r: dict[str, Any], rng: np.random.Generator) -> None:
    r["event_id"] = None


def _uln_letters(r: dict[str, Any], rng: np.random.Generator) -> None:
    u = str(r.get("uln") or "1234567890")
    r["uln"] = u[:5] + "AB" + u[7:]


def _bad_dob(r: dict[str, Any], rng: np.random.Generator) -> None:
    r["dob"] = str(rng.choice(["2009-02-30", "2031-13-01", "1999-00-10"]))


def _bad_ident(r: dict[str, Any], rng: np.random.Generator) -> None:
    r["min_identifiability"] = str(rng.choice(["7", "high", "0"]))


def _bad_sens(r: dict[str, Any], rng: np.random.Generator) -> None:
    r["max_sensitivity"] = str(rng.choice(["Z", "AA", "1"]))


MALFORMED: dict[str, dict[str, Mutator]] = {
    "lrs": {
        "bad_timestamp": _bad_ts,
        "naive_timestamp": _naive_ts,
        "bad_ukprn": _bad_ukprn,
        "unknown_channel": _bad_channel,
        "bad_result_count": _bad_count("result_count"),
        "missing_event_id": _no_id,
        "uln_letters": _uln_letters,
        "impossible_dob": _bad_dob,
    },
    "npd": {
        "bad_timestamp": _bad_ts,
        "naive_timestamp": _naive_ts,
        "unknown_channel": _bad_channel,
        "bad_rows_returned": _bad_count("rows_returned"),
        "missing_event_id": _no_id,
        "bad_identifiability": _bad_ident,
        "bad_sensitivity": _bad_sens,
    },
}
"""Row-level defects per source; plus ``truncated_line`` (CSV) and ``invalid_json`` (JSONL)."""


@dataclass
class DeliveryStats:
    rows: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    late: int = 0
    files: int = 0
    header_only: int = 0


def _json_value(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


@dataclass
class Deliverer:
    """Writes one source's deliveries under ``landing/<source>/<YYYY-MM-DD>/``."""

    landing: Path
    source: str
    columns: list[str]
    params: DeliveryParams
    malformed_rate: float
    late_rate: float
    duplicate_rate: float
    last_day: int
    pool: ThreadPoolExecutor
    files_range: tuple[int, int]
    header_only: bool = False
    """A day with no rows is written as a header-only CSV (a valid delivery of 0 rows)
    rather than no file (which the contract reads as a missing delivery)."""
    stats: DeliveryStats = field(default_factory=DeliveryStats)
    _late: dict[int, list[pl.DataFrame]] = field(default_factory=dict)
    _dups: dict[int, list[pl.DataFrame]] = field(default_factory=dict)
    _futures: list[Future[None]] = field(default_factory=list)

    def deliver(self, day: int, d: date, frame: pl.DataFrame, rng: np.random.Generator) -> None:
        """Deliver ``frame`` (the day's events, with ``_ts``) plus whatever is due today."""
        n = frame.height
        if self.late_rate > 0 and day < self.last_day and n:
            delay = np.where(
                rng.random(n) < self.late_rate,
                rng.integers(1, self.params.max_delay_days + 1, n),
                0,
            )
            delay = np.where(day + delay > self.last_day, 0, delay)
            for k in np.unique(delay[delay > 0]).tolist():
                self._late.setdefault(day + k, []).append(frame.filter(pl.Series(delay == k)))
            self.stats.late += int((delay > 0).sum())
            frame = frame.filter(pl.Series(delay == 0))
        parts = [frame, *self._late.pop(day, [])]
        base = pl.concat(parts, rechunk=False) if len(parts) > 1 else frame
        del frame, parts
        carried = self._dups.pop(day, [])

        m = base.height
        keep = np.ones(m, dtype=bool)
        bad_rows: list[dict[str, Any]] = []
        if self.malformed_rate > 0 and m:
            k = int(rng.binomial(m, self.malformed_rate))
            if k:
                idx = rng.choice(m, size=k, replace=False)
                keep[idx] = False
                bad_rows = base[np.sort(idx)].drop("_ts").to_dicts()
        good = base.filter(pl.Series(keep)) if len(bad_rows) else base
        del base

        dup_parts: list[pl.DataFrame] = list(carried)
        if self.duplicate_rate > 0 and good.height:
            k = int(rng.binomial(good.height, self.duplicate_rate))
            if k:
                idx = np.sort(rng.choice(good.height, size=k, replace=False))
                copies = good[idx]
                later = (rng.random(k) < self.params.cross_delivery_duplicates) & (
                    day < self.last_day
                )
                if later.any():
                    self._dups.setdefault(day + 1, []).append(copies.filter(pl.Series(later)))
                dup_parts.append(copies.filter(pl.Series(~later)))
        n_dups = sum(p.height for p in dup_parts)
        if dup_parts:
            good = pl.concat([good, *dup_parts], rechunk=False)
        self.stats.duplicates += n_dups
        self._write_files(day, d, good, bad_rows, rng)

    def _write_files(
        self,
        day: int,
        d: date,
        good: pl.DataFrame,
        bad_rows: list[dict[str, Any]],
        rng: np.random.Generator,
    ) -> None:
        total = good.height + len(bad_rows)
        if total == 0:
            if self.header_only:
                self._write_header_only(d)
            return
        lo, hi = self.files_range
        n_files = max(1, min(int(rng.integers(lo, hi + 1)), total))
        file_of = rng.integers(0, n_files, size=good.height)
        bad_file = rng.integers(0, n_files, size=len(bad_rows))
        folder = self.landing / self.source / d.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        file_col = pl.Series(file_of, dtype=pl.Int64)
        for f in range(n_files):
            rows = good.filter(file_col == f).sort("_ts", maintain_order=True).drop("_ts")
            bad = [bad_rows[i] for i in np.flatnonzero(bad_file == f).tolist()]
            if rows.height == 0 and not bad:
                continue
            self._write_one(day, d, f, folder, rows, bad, rng)

    def _write_one(
        self,
        day: int,
        d: date,
        f: int,
        folder: Path,
        rows: pl.DataFrame | None,
        bad: list[dict[str, Any]],
        rng: np.random.Generator,
    ) -> None:
        p = self.params
        jsonl = bool(rng.random() < p.jsonl_share)
        gz = bool(rng.random() >= p.uncompressed_share)
        order = [self.columns[int(i)] for i in rng.permutation(len(self.columns))]
        extra: tuple[str, str] | None = None
        if rng.random() < p.extra_column_share:
            name, value = EXTRA_COLUMNS[int(rng.integers(0, len(EXTRA_COLUMNS)))]
            extra = (name, value.format(day=f"{d:%Y%m%d}"))
            order.insert(int(rng.integers(0, len(order) + 1)), name)
        if rows is None:
            rows = pl.DataFrame(schema={c: pl.String for c in self.columns})
        if extra is not None:
            rows = rows.with_columns(pl.lit(extra[1]).alias(extra[0]))
        rows = rows.select(order)

        kinds = [*MALFORMED[self.source], "invalid_json" if jsonl else "truncated_line"]
        lines: list[bytes] = []
        for r in bad:
            r = dict(r)
            if extra is not None:
                r[extra[0]] = extra[1]
            kind = kinds[int(rng.integers(0, len(kinds)))]
            self.stats.malformed[kind] += 1
            if kind in ("invalid_json", "truncated_line"):
                pass
            else:
                MALFORMED[self.source][kind](r, rng)
            lines.append(_serialise(r, order, jsonl, kind, rng))
        cuts = np.sort(rng.integers(0, rows.height + 1, size=len(lines)))
        buf = io.BytesIO()
        prev = 0
        header = not jsonl
        for i, cut in enumerate([*cuts.tolist(), rows.height]):
            chunk = rows.slice(prev, cut - prev)
            if chunk.height or header:
                if jsonl:
                    chunk.write_ndjson(buf)
                else:
                    chunk.write_csv(buf, include_header=header)
                header = False
            if i < len(lines):
                buf.write(lines[i])
            prev = cut
        kind_name = "jsonl" if jsonl else "csv"
        stem = "lrs_events" if self.source == "lrs" else "npd_queries"
        path = folder / f"{stem}_{d:%Y%m%d}_part{f + 1:02d}.{kind_name}{'.gz' if gz else ''}"
        self.stats.rows += rows.height + len(lines)
        self.stats.files += 1
        self._futures.append(self.pool.submit(_store, path, buf, gz, p.gzip_level))
        if len(self._futures) > 2:
            self._futures.pop(0).result()

    def _write_header_only(self, d: date) -> None:
        """A quiet day: one uncompressed CSV file holding the header row only."""
        folder = self.landing / self.source / d.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        stem = "lrs_events" if self.source == "lrs" else "npd_queries"
        buf = io.BytesIO()
        buf.write((",".join(self.columns) + "\n").encode())
        self.stats.files += 1
        self.stats.header_only += 1
        self._futures.append(
            self.pool.submit(
                _store, folder / f"{stem}_{d:%Y%m%d}_part01.csv", buf, False, self.params.gzip_level
            )
        )

    def finish(self) -> None:
        """Wait for every file to be on disk (re-raises a writer's error)."""
        for fut in self._futures:
            fut.result()
        self._futures.clear()


def _serialise(
    r: dict[str, Any], order: list[str], jsonl: bool, kind: str, rng: np.random.Generator
) -> bytes:
    if jsonl:
        text = json.dumps({c: _json_value(r.get(c)) for c in order}, ensure_ascii=False)
        if kind == "invalid_json":
            text = text[: max(5, int(len(text) * rng.uniform(0.3, 0.8)))]
        return (text + "\n").encode()
    values = ["" if r.get(c) is None else str(_json_value(r.get(c))) for c in order]
    if kind == "truncated_line":
        values = values[: int(rng.integers(2, max(3, len(values) - 2)))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def _store(path: Path, buf: io.BytesIO, gz: bool, level: int) -> None:
    view = buf.getbuffer()
    try:
        path.write_bytes(gzip.compress(view, compresslevel=level, mtime=0) if gz else view)
    finally:
        view.release()
    buf.close()
