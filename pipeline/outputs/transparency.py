"""The public transparency report of a month: aggregate tables with statistical disclosure
control, as CSV files and one self-contained HTML page with inline SVG charts.

Every table is two-way (rows by columns) with row totals, column totals and a grand total,
all counted from the lake and the warehouse of one home. Disclosure control
(:class:`schemas.transparency.SdcSettings`) is the standard cell-suppression method of
official statistics:

1. **Primary suppression.** Every cell under the threshold (default 10; zeros too unless
   ``suppress_zeros`` is off) is hidden, totals included: a total is a published count.
2. **Secondary suppression.** A published table is a set of linear constraints: each row's
   cells add up to its total, each column's to its total, the totals to the grand total.
   A line (row, column or a margin) with exactly one hidden value gives it away by
   subtraction, so another value of that line is hidden too: its smallest published cell,
   or its total when it has no published cell left. The same is done where the hidden
   values of a line with a published total add up to less than the threshold: counts are
   never negative, so such a sum bounds every one of them (a sum of 0 gives each away).
   Hiding one value can expose another line, so this repeats until no line exposes one (a
   fixed point).
   That condition is necessary, not sufficient; the result is then audited exactly
   (:func:`recoverable`): a hidden value is recoverable when the constraints determine it
   (its unit vector lies in the row space of the constraint matrix over the hidden
   values). Each recoverable value gets one more complement in a line it shares, and the
   audit repeats until no hidden value is determined.
3. **Rounding.** Every published value is rounded to the nearest multiple of the base
   (default 5), totals from the unrounded values, so a published total need not equal the
   sum of its published cells.

Hidden values are written ``[c]`` (confidential), as the UK's official statistics do.
:func:`protect` is pure, on a numpy matrix; :func:`collect` reads the month's tables and
:func:`write_transparency` writes the files.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from markupsafe import Markup

from detectors.rules import load_config
from pipeline.outputs import sql
from pipeline.outputs.access_history import warehouse_tables
from pipeline.outputs.report import _e, _environment, _num, _publish
from pipeline.outputs.safe_text import csv_cell
from pipeline.profile import define_macros
from pipeline.store.lake import lake_dir, lake_glob
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import history as triage_history
from schemas.detection import SEVERITY_ORDER, DetectionConfig
from schemas.geography import AREA_REGION
from schemas.settings import Settings
from schemas.transparency import SdcSettings

TEMPLATE = "transparency.html.j2"
SUPPRESSED = "[c]"
TOTAL = "total"


def parse_month(value: str) -> date:
    """``YYYY-MM`` as the first day of that month; ValueError naming the value otherwise."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", value.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"--month: not a month (YYYY-MM): {value!r}")
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_end(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


# --- Disclosure control (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Protection:
    """Which values of an m x n table are hidden: ``cells`` (m x n), ``rows`` (m row
    totals), ``columns`` (n column totals), ``grand``; and which cells were primary."""

    cells: npt.NDArray[np.bool_]
    rows: npt.NDArray[np.bool_]
    columns: npt.NDArray[np.bool_]
    grand: bool
    primary: npt.NDArray[np.bool_]


def _lines(m: int, n: int) -> list[list[int]]:
    """The table's constraints as lists of variable indices: cells are ``i*n+j``, row
    totals ``m*n+i``, column totals ``m*n+m+j``, the grand total ``m*n+m+n``. Each line's
    variables add up (the last is the line's total)."""
    cell = lambda i, j: i * n + j  # noqa: E731 - a local name for an index formula
    row_total, col_total, grand = m * n, m * n + m, m * n + m + n
    lines = [[cell(i, j) for j in range(n)] + [row_total + i] for i in range(m)]
    lines += [[cell(i, j) for i in range(m)] + [col_total + j] for j in range(n)]
    lines.append([col_total + j for j in range(n)] + [grand])
    lines.append([row_total + i for i in range(m)] + [grand])
    return lines


def _values(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Every variable's value, in :func:`_lines` order."""
    return np.concatenate(
        [counts.ravel(), counts.sum(axis=1), counts.sum(axis=0), [counts.sum()]]
    ).astype(np.int64)


def _constraints(m: int, n: int) -> npt.NDArray[np.float64]:
    lines = _lines(m, n)
    a = np.zeros((len(lines), m * n + m + n + 1))
    for k, line in enumerate(lines):
        a[k, line[:-1]] = 1.0
        a[k, line[-1]] = -1.0
    return a


def recoverable(m: int, n: int, hidden: npt.NDArray[np.bool_]) -> list[int]:
    """The hidden variables (indices, :func:`_lines` order) that the published values and
    the table's additivity determine exactly."""
    a = _constraints(m, n)[:, hidden]
    if a.shape[1] == 0:
        return []
    rank = np.linalg.matrix_rank(a)
    out = []
    for k, var in enumerate(np.flatnonzero(hidden)):
        unit = np.zeros((1, a.shape[1]))
        unit[0, k] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, unit])) == rank:
            out.append(int(var))
    return out


def protect(counts: npt.NDArray[np.int64], sdc: SdcSettings) -> Protection:
    """Primary and secondary suppression of an m x n table of counts (see module doc)."""
    counts = np.asarray(counts, dtype=np.int64)
    m, n = counts.shape
    values = _values(counts)
    small = values < sdc.threshold
    if not sdc.suppress_zeros:
        small &= values > 0
    hidden = small.copy()
    cells = m * n
    lines = _lines(m, n)

    def complement(line: list[int]) -> int | None:
        """The value to hide next in ``line``: its smallest published cell (interior
        before totals), or None when everything in it is hidden."""
        shown = [v for v in line if not hidden[v]]
        if not shown:
            return None
        return min(shown, key=lambda v: (v >= cells, values[v], v))

    def exposes(line: list[int]) -> bool:
        """A lone hidden value in ``line``, or hidden values whose sum the published total
        shows to be under the threshold (with counts never negative, a sum of 0 tells
        every one of them)."""
        count = int(hidden[line].sum())
        if count == 1:
            return True
        total_shown = not hidden[line[-1]]
        return count > 1 and total_shown and int(values[line][hidden[line]].sum()) < sdc.threshold

    while True:
        changed = True
        while changed:  # the lone-hidden-value rule, to a fixed point
            changed = False
            for line in lines:
                if exposes(line):
                    v = complement(line)
                    if v is not None:
                        hidden[v] = True
                        changed = True
        exposed = recoverable(m, n, hidden)
        if not exposed:
            break
        var = exposed[0]
        options = [c for line in lines if var in line for c in [complement(line)] if c is not None]
        if not options:  # cannot happen: hiding everything leaves nothing determined
            raise RuntimeError("secondary suppression found no complement")
        hidden[min(options, key=lambda v: (v >= cells, values[v], v))] = True
    return Protection(
        cells=hidden[:cells].reshape(m, n),
        rows=hidden[cells : cells + m],
        columns=hidden[cells + m : cells + m + n],
        grand=bool(hidden[-1]),
        primary=small[:cells].reshape(m, n),
    )


def rounded(value: int, base: int) -> int:
    """``value`` to the nearest multiple of ``base`` (halves up)."""
    return int((value + base // 2) // base * base) if base > 1 else int(value)


# --- The tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatTable:
    """One published table: true counts (never published) and what is published."""

    name: str
    title: str
    what: str
    row_label: str
    column_label: str
    rows: list[str]
    columns: list[str]
    counts: npt.NDArray[np.int64]
    protection: Protection
    base: int

    def cell(self, i: int, j: int) -> int | None:
        hidden = self.protection.cells[i, j]
        return None if hidden else rounded(int(self.counts[i, j]), self.base)

    def row_total(self, i: int) -> int | None:
        hidden = self.protection.rows[i]
        return None if hidden else rounded(int(self.counts[i].sum()), self.base)

    def column_total(self, j: int) -> int | None:
        hidden = self.protection.columns[j]
        return None if hidden else rounded(int(self.counts[:, j].sum()), self.base)

    def grand_total(self) -> int | None:
        return None if self.protection.grand else rounded(int(self.counts.sum()), self.base)

    def published(self) -> list[list[str]]:
        """The table as published: a header, one line per row and the totals line."""

        def shown(v: int | None) -> str:
            return SUPPRESSED if v is None else str(v)

        out = [[self.row_label, *self.columns, TOTAL]]
        for i, r in enumerate(self.rows):
            cells = [shown(self.cell(i, j)) for j in range(len(self.columns))]
            out.append([r, *cells, shown(self.row_total(i))])
        totals = [shown(self.column_total(j)) for j in range(len(self.columns))]
        out.append([TOTAL, *totals, shown(self.grand_total())])
        return out


def _pivot(frame: pl.DataFrame, row: str, column: str) -> tuple[list[str], list[str], Any]:
    """Long counts (``row``, ``column``, ``n``) as a matrix over the rows and columns seen."""
    rows = sorted({str(v) for v in frame[row].to_list()}) if frame.height else []
    cols = sorted({str(v) for v in frame[column].to_list()}) if frame.height else []
    counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for r, c, k in frame.select(row, column, "n").iter_rows():
        counts[rows.index(str(r)), cols.index(str(c))] += int(k)
    return rows, cols, counts


def _table(
    name: str, title: str, what: str, frame: pl.DataFrame, row: str, column: str,
    labels: tuple[str, str], sdc: SdcSettings,
) -> StatTable | None:  # fmt: skip
    rows, cols, counts = _pivot(frame, row, column)
    if not rows or not cols:
        return None
    return StatTable(name, title, what, labels[0], labels[1], rows, cols, counts,
                     protect(counts, sdc), sdc.rounding_base)  # fmt: skip


def _has_files(home: Path, source: str) -> bool:
    return any(lake_dir(home, source).glob("*/*.parquet"))


def month_counts(settings: Settings, first: date, config: DetectionConfig | None = None
                 ) -> dict[str, pl.DataFrame]:  # fmt: skip
    """The month's long counts per table (``row``, ``column``, ``n``), from the lake and
    the warehouse: the unprotected truth, never published as it is."""
    cfg = config or load_config()
    last = month_end(first)
    params = {"date_from": first, "date_to": last}
    out: dict[str, pl.DataFrame] = {}
    empty = pl.DataFrame(schema={"row": pl.String, "column": pl.String, "n": pl.Int64})
    with connect(settings, read_only=True) as con:
        define_macros(con)
        have = warehouse_tables(con)
        if _has_files(settings.home, "lrs"):
            lrs = con.sql(
                sql("transparency_lrs_accesses"),
                params={**params, "files": lake_glob(settings.home, "lrs")},
            ).pl()
            for key, col in (("channel", "channel"), ("operation", "operation_kind")):
                out[f"lrs_by_{key}"] = (
                    lrs.group_by("org_type", col).agg(pl.col("n").sum())
                    .rename({"org_type": "row", col: "column"})
                )  # fmt: skip
            regions = pl.DataFrame(
                {
                    "postcode_area": list(AREA_REGION),
                    "region": [str(r) for r in AREA_REGION.values()],
                }
            )
            con.register("transparency_regions", regions)
            out["people"] = (
                con.sql(
                    sql("transparency_people"),
                    params={**params, "files": lake_glob(settings.home, "lrs")},
                )
                .pl()
                .rename({"age_band": "row", "region": "column"})
            )
        if _has_files(settings.home, "npd"):
            out["npd"] = (
                con.sql(
                    sql("transparency_npd"),
                    params={**params, "files": lake_glob(settings.home, "npd")},
                )
                .pl()
                .rename({"purpose": "row", "channel": "column"})
            )
        out["status"] = con.sql(
            "SELECT org_type AS row, status AS column, count(*) AS n FROM organisations "
            "WHERE status IN ('suspended', 'revoked') AND status_changed_on BETWEEN "
            "$date_from AND $date_to GROUP BY ALL",
            params=params,
        ).pl()
        flagged = (
            con.execute(
                "SELECT org_id, rules FROM suspects WHERE level = 'org' AND rank <= $top "
                "AND day BETWEEN $date_from AND $date_to",
                {**params, "top": cfg.ranking.flag_top},
            ).fetchall()
            if "suspects" in have
            else []
        )
    out["flagged"] = _flagged(flagged, cfg, settings, last)
    return {k: (v if v.height else empty) for k, v in out.items()}


def _flagged(
    rows: Iterable[tuple[str, str]], cfg: DetectionConfig, settings: Settings, last: date
) -> pl.DataFrame:
    """Flagged organisations (in the top ``flag_top`` of an org-level list on a day of the
    month), each once: by the family (``ENT`` of ``ENT-01``) of the most severe rule that
    fired for it on those days, and by its latest verdict recorded by the month's end."""
    severity = {r.id: SEVERITY_ORDER.get(r.severity.value, 9) for r in cfg.rules}
    rules: dict[str, set[str]] = {}
    for org, listed in rows:
        rules.setdefault(org, set()).update(json.loads(listed) if listed else [])
    end = datetime.combine(last, datetime.max.time(), tzinfo=UTC)
    latest: dict[str, tuple[datetime, str]] = {}
    for d in triage_history(settings):
        known = latest.get(d.org_id)
        if (
            d.org_id in rules
            and d.decided_at <= end
            and (known is None or d.decided_at >= known[0])
        ):
            latest[d.org_id] = (d.decided_at, str(d.verdict))
    out = []
    for org, ids in rules.items():
        top = min(ids, key=lambda r: (severity.get(r, 9), r)) if ids else None
        family = top.split("-", 1)[0] if top else "models only (no rule)"
        out.append((family, latest[org][1] if org in latest else "no verdict", 1))
    return pl.DataFrame(out, schema=["row", "column", "n"], orient="row")


TABLES: tuple[tuple[str, str, str, tuple[str, str]], ...] = (
    ("lrs_by_channel", "LRS accesses by organisation type and channel",
     "Calls to the Learning Records Service in the month, by the type of the calling "
     "organisation (from the register) and the channel used.",
     ("organisation type", "channel")),
    ("lrs_by_operation", "LRS accesses by organisation type and operation",
     "The same calls by what they did.", ("organisation type", "operation")),
    ("people", "People looked up by age band and region",
     "Distinct learners whose valid ULN was sent or returned in the month, each counted "
     "once, by their age and home region at their first lookup in the month.",
     ("age band", "region")),
    ("flagged", "Organisations flagged, by rule family and verdict",
     "Organisations our monitoring listed among those whose use looks like misuse on a day "
     "of the month, each once: by the family of the most severe rule that fired for it and "
     "by the latest verdict of an analyst recorded by the month's end.",
     ("rule family", "verdict")),
    ("status", "Suspensions and revocations",
     "Organisations whose access the register shows suspended or revoked during the month, "
     "by organisation type.", ("organisation type", "status")),
    ("npd", "NPD queries by agreement purpose",
     "Queries and extracts of the National Pupil Database in the month, by the purpose of "
     "the data-sharing agreement they cite and the channel.", ("purpose", "channel")),
)  # fmt: skip


@dataclass(frozen=True)
class TransparencyData:
    month: date
    sdc: SdcSettings
    tables: list[StatTable]
    empty: list[str]
    days_held: int


def collect(settings: Settings, first: date, sdc: SdcSettings | None = None) -> TransparencyData:
    """Every table of the month, protected."""
    sdc = sdc or SdcSettings()
    counts = month_counts(settings, first)
    tables, empty = [], []
    for name, title, what, labels in TABLES:
        frame = counts.get(name)
        t = (
            _table(name, title, what, frame, "row", "column", labels, sdc)
            if frame is not None
            else None
        )
        if t is None:
            empty.append(title)
        else:
            tables.append(t)
    last = month_end(first)
    held = {
        p.name
        for source in ("lrs", "npd")
        for p in lake_dir(settings.home, source).glob("event_date=*")
        if first.isoformat() <= p.name.split("=", 1)[1] <= last.isoformat()
    }
    return TransparencyData(first, sdc, tables, empty, len(held))


# --- Output -------------------------------------------------------------------------------


def bars_svg(t: StatTable, width: int = 560) -> Markup:
    """A horizontal bar per row of ``t``: its published (rounded) total; a hidden total is
    drawn as no bar, labelled [c]. Every string escaped."""
    row_h, label_w, pad = 22, 190, 8
    height = pad * 2 + row_h * len(t.rows)
    totals = [t.row_total(i) for i in range(len(t.rows))]
    top = max([v for v in totals if v is not None] or [1]) or 1
    bar_w = width - label_w - 60
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(t.title)}: '
        "row totals</title>"
    ]
    for i, (label, v) in enumerate(zip(t.rows, totals, strict=True)):
        y = pad + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="label">'
            f"{_e(label)}</text>"
        )
        if v is None:
            parts.append(f'<text x="{label_w}" y="{y + 15}" class="tick">{SUPPRESSED}</text>')
            continue
        w = max(bar_w * v / top, 1.0)
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{_num(w)}" height="{row_h - 8}" class="bar"/>'
            f'<text x="{_num(label_w + w + 4)}" y="{y + 15}" class="tick">{v}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def to_csv(t: StatTable) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    for row in t.published():
        w.writerow([csv_cell(c) for c in row])
    return out.getvalue()


def to_html(data: TransparencyData, generated_at: datetime | None = None) -> str:
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return _environment().get_template(TEMPLATE).render(
        data=data, charts={t.name: bars_svg(t) for t in data.tables}, generated_at=when,
        month=data.month.strftime("%B %Y"), suppressed=SUPPRESSED,
    )  # fmt: skip


def write_transparency(
    settings: Settings, first: date, out: Path, sdc: SdcSettings | None = None
) -> list[Path]:
    """Write ``<out>/<table>.csv`` for each table and ``<out>/index.html``; return them."""
    data = collect(settings, first, sdc)
    written = []
    for t in data.tables:
        path = out / f"{first:%Y-%m}-{t.name}.csv"
        _publish(path, to_csv(t))
        written.append(path)
    page = out / f"{first:%Y-%m}-transparency.html"
    _publish(page, to_html(data))
    written.append(page)
    return written
