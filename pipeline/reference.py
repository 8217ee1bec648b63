"""Load reference data (organisations, NPD agreements) into the warehouse.

Same discipline as event ingest: every row is validated against its model; bad rows are
quarantined with file, line, field and reason; duplicate keys are kept once; a file with
too many bad rows is refused whole; the tables are replaced in one transaction together
with their ledger rows, so a crash leaves the previous reference data in place.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from pipeline.ingest import check_rows, file_sha256, ledger_frame, new_run_id, quarantine_rows
from pipeline.lake import commit_files, home_lock, quarantine_dir, staging_dir
from pipeline.readers import DeliveryError, read_delivery
from pipeline.validate import ERROR_FIELD, ERROR_REASON
from pipeline.warehouse import connect
from schemas.frames import polars_schema, required_fields
from schemas.ingest import DeliveryReport, DeliveryStatus
from schemas.reference import Agreement, Organisation
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


def load_reference(settings: Settings, lock_wait_seconds: float = 0.0) -> list[DeliveryReport]:
    """Validate and load ``reference/organisations.csv`` and ``reference/agreements.csv``.

    Raises :class:`ReferenceError` when a file is refused; nothing is replaced then.
    """
    run_id = new_run_id()
    started = datetime.now(UTC)
    today = started.date()
    stage = staging_dir(settings.home, run_id)
    frames: dict[str, pl.DataFrame] = {}
    reports: list[DeliveryReport] = []
    moves: list[tuple[Path, Path]] = []
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

        def replace_tables() -> None:
            with connect(settings) as con:
                con.execute("BEGIN TRANSACTION")
                for table, frame in frames.items():
                    con.register("incoming", frame)
                    con.execute(f"DELETE FROM {table}")
                    con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
                    con.unregister("incoming")
                con.register("new_rows", ledger_frame(reports))
                con.execute("INSERT INTO ingest_ledger SELECT * FROM new_rows")
                con.execute("COMMIT")

        commit_files(settings.home, run_id, moves, replace_tables)
    return reports


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
