"""Load reference data (organisations, NPD agreements) into the warehouse.

Same discipline as event ingest: every row is validated against its model; bad rows are
quarantined with file, line, field and reason; duplicate keys are kept once; a file with
too many bad rows is refused whole; the tables are replaced in one transaction together
with their ledger rows, so a crash leaves the previous reference data in place.

A quarantined reference row is never silent. With ``allow_bad_rows=False`` (what
``accesswatch load-reference`` does unless given ``--allow-bad-rows``) any bad row refuses
the load: :class:`BadReferenceRows` carries one :class:`schemas.reference.ReferenceProblem`
per row (file, line, field, reason, org) and nothing is replaced. With ``allow_bad_rows=True``
the good rows are loaded, the bad ones quarantined and counted in the ledger, and
:func:`reference_problems` lists them afterwards (for warnings, the nightly summary and the
report).

Only the fields the input contract requires must have a value (``org_id``, ``name``,
``org_type``, ``status``; for agreements ``agreement_ref``, ``org_id``, ``valid_from``,
``valid_to``); what an empty optional field means is documented on the models in
:mod:`schemas.reference` and in the README's data contract.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from pipeline.ingest.deliveries import (
    check_rows,
    new_run_id,
    quarantine_rows,
)
from pipeline.ingest.readers import DeliveryError, read_delivery
from pipeline.ingest.validate import ERROR_FIELD, ERROR_REASON
from pipeline.store.lake import commit_files, file_sha256, home_lock, quarantine_dir, staging_dir
from pipeline.store.warehouse import connect, ledger_frame, transaction
from schemas.frames import polars_schema, required_fields
from schemas.ingest import DeliveryReport, DeliveryStatus
from schemas.reference import Agreement, Organisation, ReferenceProblem
from schemas.settings import Settings

REFERENCE: dict[str, tuple[type[BaseModel], str]] = {
    "organisations": (Organisation, "org_id"),
    "agreements": (Agreement, "agreement_ref"),
}

_EXTRA: dict[str, list[tuple[str, pl.Expr, str]]] = {
    "organisations": [],
    "agreements": [
        ("year_to", pl.col("year_to") < pl.col("year_from"), "year_to is before year_from"),
        ("valid_to", pl.col("valid_to") < pl.col("valid_from"), "valid_to is before valid_from"),
    ],
}


class ReferenceError(Exception):
    """A reference file that was refused (names the file and the problem)."""


class BadReferenceRows(ReferenceError):
    """Reference rows failed validation and bad rows were not allowed: nothing was loaded.

    ``problems`` holds one entry per bad row (file, line, field, reason, org)."""

    def __init__(self, problems: list[ReferenceProblem]) -> None:
        self.problems = problems
        orgs = sorted({p.org_id for p in problems if p.org_id})
        head = (
            f"{len(problems):,} reference row(s) failed validation"
            + (f" ({len(orgs):,} organisation(s))" if orgs else "")
            + "; nothing was loaded (fix the file, or allow bad rows to load the rest)"
        )
        super().__init__("\n".join([head, *(p.describe() for p in problems)]))


def load_reference(
    settings: Settings, lock_wait_seconds: float = 0.0, *, allow_bad_rows: bool = True
) -> list[DeliveryReport]:
    """Validate and load ``reference/organisations.csv`` and ``reference/agreements.csv``.

    Raises :class:`ReferenceError` when a file is refused, and :class:`BadReferenceRows`
    when any row is bad and ``allow_bad_rows`` is false; nothing is replaced then. With
    ``allow_bad_rows`` (the default, as the flows run) good rows are loaded and bad rows
    are quarantined; :func:`problems_of` / :func:`reference_problems` name them.
    """
    run_id = new_run_id()
    started = datetime.now(UTC)
    today = started.date()
    stage = staging_dir(settings.home, run_id)
    frames: dict[str, pl.DataFrame] = {}
    reports: list[DeliveryReport] = []
    moves: list[tuple[Path, Path]] = []
    refused_rows: list[ReferenceProblem] = []
    with home_lock(settings.home, lock_wait_seconds, purpose="load-reference"):
        for table, (model, key) in REFERENCE.items():
            path = settings.landing / "reference" / f"{table}.csv"
            if not path.is_file():
                raise ReferenceError(f"{path}: reference file is missing")
            good, bad, reasons, rows_read = _read_reference(path, model, table, settings, today)
            rel = str(path.relative_to(settings.landing))
            n_bad = bad.height
            share = n_bad / rows_read if rows_read else 0.0
            if share > settings.max_bad_share and n_bad >= settings.refuse_min_bad_rows:
                (reason, count), *_ = reasons.most_common(1)
                raise ReferenceError(
                    f"{path}: refused: {share:.1%} of {rows_read:,} rows are bad "
                    f"(limit {settings.max_bad_share:.1%}); commonest problem: {reason} "
                    f"({count:,} rows)"
                )
            if n_bad and not allow_bad_rows:
                refused_rows += _problems(bad, table, key, run_id)
                continue
            deduped = good.unique(subset=[key], keep="first", maintain_order=True)
            frames[table] = deduped.select(list(polars_schema(model)))
            if n_bad:
                qpath = stage / f"{table}.parquet"
                qpath.parent.mkdir(parents=True, exist_ok=True)
                bad.write_parquet(qpath)
                moves.append(
                    (
                        qpath,
                        quarantine_dir(settings.home, "reference", today)
                        / f"{table}-{run_id}.parquet",
                    )
                )
            reports.append(
                DeliveryReport(
                    run_id=run_id,
                    source="reference",
                    delivery_day=today,
                    source_file=rel,
                    file_sha256=file_sha256(path),
                    status=DeliveryStatus.committed,
                    rows_read=rows_read,
                    rows_written=deduped.height,
                    duplicates=good.height - deduped.height,
                    quarantined=n_bad,
                    late_events=0,
                    quarantine_reasons=dict(reasons.most_common()),
                    started_at=started,
                    finished_at=datetime.now(UTC),
                )
            )
        if refused_rows:
            raise BadReferenceRows(refused_rows)

        def replace_tables() -> None:
            with connect(settings) as con, transaction(con):
                for table, frame in frames.items():
                    con.register("incoming", frame)
                    con.execute(f"DELETE FROM {table}")
                    con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
                    con.unregister("incoming")
                con.register("new_rows", ledger_frame(reports))
                con.execute("INSERT INTO ingest_ledger SELECT * FROM new_rows")

        commit_files(settings.home, run_id, moves, replace_tables)
    return reports


def _problems(bad: pl.DataFrame, table: str, key: str, run_id: str) -> list[ReferenceProblem]:
    """Quarantine records (:class:`schemas.ingest.QuarantineRecord` rows) as problems."""
    out = []
    for r in bad.iter_rows(named=True):
        try:
            raw = json.loads(r["raw"]) if r["raw"] else {}
        except ValueError:
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        key_value = raw.get(key) or None
        out.append(
            ReferenceProblem(
                table=table,
                source_file=r["source_file"],
                line=r["source_line"],
                field=r["field"],
                reason=r["reason"],
                key=str(key_value) if key_value is not None else None,
                org_id=str(raw["org_id"]) if raw.get("org_id") else None,
                run_id=run_id,
            )
        )
    return sorted(out, key=lambda p: p.line)


def reference_problems(settings: Settings) -> list[ReferenceProblem]:
    """The rows quarantined by the reference load now in force (the latest committed
    ``reference`` run of the ledger), organisations then agreements, by line; empty when
    none or never loaded.

    For warnings (``load-reference --allow-bad-rows``), the nightly summary and the report:
    an organisation whose register row was quarantined is missing from the register, so its
    events count as an unregistered caller's (rule REG-01) until the row is fixed."""
    if not settings.warehouse.exists():
        return []
    with connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT run_id, delivery_day, source_file FROM ingest_ledger "
            "WHERE source = 'reference' AND status = 'committed' AND quarantined > 0 "
            "AND run_id = (SELECT max(run_id) FROM ingest_ledger "
            "WHERE source = 'reference' AND status = 'committed')"
        ).fetchall()
    out: list[ReferenceProblem] = []
    for run_id, day, source_file in rows:
        table = Path(source_file).name.split(".")[0]
        qfile = quarantine_dir(settings.home, "reference", day) / f"{table}-{run_id}.parquet"
        if not qfile.is_file() or table not in REFERENCE:
            continue
        out += _problems(pl.read_parquet(qfile), table, REFERENCE[table][1], run_id)
    order = list(REFERENCE)
    return sorted(out, key=lambda p: (order.index(p.table), p.line))


def _read_reference(
    path: Path, model: type[BaseModel], table: str, settings: Settings, today: date
) -> tuple[pl.DataFrame, pl.DataFrame, Counter[str], int]:
    columns = list(model.model_fields)
    goods: list[pl.DataFrame] = []
    bads: list[pl.DataFrame] = []
    reasons: Counter[str] = Counter()
    rows_read = 0
    try:
        for chunk in read_delivery(path, columns, settings.chunk_rows, required_fields(model)):
            checked = check_rows(chunk, model, _EXTRA[table])
            mask = checked.get_column(ERROR_FIELD).is_not_null()
            rows_read += checked.height
            goods.append(checked.filter(~mask))
            bad = checked.filter(mask)
            reasons.update(bad.get_column(ERROR_REASON).to_list())
            rel = str(path.relative_to(settings.landing))
            bads.append(quarantine_rows(bad, chunk.filter(mask), model, "reference", today, rel))
    except DeliveryError as e:
        raise ReferenceError(str(e)) from e
    return pl.concat(goods), pl.concat(bads), reasons, rows_read
