"""Ingest: from delivery files in the landing folder to a trustworthy Parquet lake.

For each delivery day of a source, every new file is read in chunks, validated field by
field, pseudonymised, and staged; then duplicates (within the run and against the lake)
are dropped and the result is committed all-or-nothing with its ledger rows. For every
file: ``rows_read = rows_written + duplicates + quarantined``.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from pydantic import BaseModel, Field

from pipeline.ingest.pseudonymise import pseudonymise_lrs
from pipeline.ingest.readers import (
    LINE,
    MALFORMED,
    MALFORMED_FIELD,
    MAX_MESSAGE_CHARS,
    SUFFIXES,
    DeliveryError,
    clip,
    delivery_type,
    read_delivery,
)
from pipeline.ingest.validate import ERROR_FIELD, ERROR_REASON, masked_raw, validate
from pipeline.store.lake import (
    commit_files,
    file_sha256,
    home_lock,
    partition_dir,
    quarantine_dir,
    recover,
    run_lock,
    staging_dir,
)
from pipeline.store.version import digest
from pipeline.store.warehouse import (
    committed_runs,
    connect,
    ledger_frame,
    record_missing,
    transaction,
)
from schemas.events import LrsEvent, LrsLakeEvent, NpdEvent, NpdLakeEvent
from schemas.frames import _base_type, polars_schema, required_fields
from schemas.ingest import DeliveryReport, DeliveryStatus, IngestReport, QuarantineRecord
from schemas.settings import Settings

SOURCES = ("lrs", "npd")
ROW = "_row"  # a staged row's place in delivery order
MAX_AGE_YEARS = 120
DAY_FOLDER = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
KEY_FINGERPRINT_DOMAIN = b"accesswatch-key-fingerprint"
_HOME_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_HOME_MESSAGES = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Permission denied",
)
log = logging.getLogger(__name__)


class HomeWriteError(RuntimeError):
    """The home folder cannot be written: disk full, read-only or no permission.

    The message is one line naming the path and the problem. Whatever the failed step had
    staged is removed and nothing of it is committed, so the home is as it was.
    """


class KeyMismatch(ValueError):
    """The pseudonym key differs from the one the home's learner pseudonyms were made with."""


def _home_problem(e: BaseException) -> str | None:
    """Why writing the home failed, when ``e`` is a full disk, read-only or permission error."""
    if isinstance(e, OSError) and e.errno in _HOME_ERRNOS:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}"
    if isinstance(e, OSError | pl.exceptions.PolarsError | duckdb.Error):
        text = str(e)
        return next((m for m in _HOME_MESSAGES if m in text), None)
    return None


@contextlib.contextmanager
def writing_home(home: Path, cleanup: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Turn a full disk, read-only or permission error under ``home`` into one
    :class:`HomeWriteError`, after ``cleanup`` (which removes what was staged)."""
    try:
        yield
    except HomeWriteError:
        with contextlib.suppress(OSError):
            cleanup()
        raise
    except Exception as e:
        problem = _home_problem(e)
        if problem is None:
            raise
        with contextlib.suppress(OSError):
            cleanup()
        raise HomeWriteError(
            f"cannot write to the home folder {home}: {clip(problem, 200)}; "
            "nothing was committed and the home is as it was"
        ) from e


def key_fingerprint(key: bytes) -> str:
    """A fingerprint of the pseudonym key (HMAC of a fixed text, 64 bits): tells keys apart,
    reveals nothing of the key."""
    return hmac.digest(key, KEY_FINGERPRINT_DOMAIN, "sha256").hex()[:16]


def check_key(con: duckdb.DuckDBPyConnection, key: bytes) -> bool:
    """Raise :class:`KeyMismatch` when the home was built with another pseudonym key.

    Returns True when the home has no fingerprint yet (its first LRS ingest records one).
    """
    row = con.execute("SELECT fingerprint FROM key_fingerprint LIMIT 1").fetchone()
    mine = key_fingerprint(key)
    if row is None:
        return True
    if row[0] != mine:
        raise KeyMismatch(
            f"the pseudonym key differs from the one this home was built with (fingerprint "
            f"{row[0]} vs {mine}); learner pseudonyms would not match. Set "
            "ACCESSWATCH_PSEUDONYM_KEY to the home's key, or use a new home"
        )
    return False


@dataclass(frozen=True)
class SourceSpec:
    """What differs between sources: models, cross-field checks, and the transform."""

    raw: type[BaseModel]
    lake: type[BaseModel]
    extra_checks: Callable[[date, str], list[tuple[str, pl.Expr, str]]]
    needs_key: bool


def _event_date(tz: str) -> pl.Expr:
    return pl.col("occurred_at").dt.convert_time_zone(tz).dt.date()


def _common_checks(delivery_day: date, tz: str) -> list[tuple[str, pl.Expr, str]]:
    return [
        (
            "occurred_at",
            _event_date(tz) > pl.lit(delivery_day).dt.offset_by("1d"),
            "occurred_at is more than a day after the delivery day",
        )
    ]


def _lrs_checks(delivery_day: date, tz: str) -> list[tuple[str, pl.Expr, str]]:
    occurred = _event_date(tz)
    return [
        *_common_checks(delivery_day, tz),
        ("dob", pl.col("dob") > occurred, "dob is after the time of the query"),
        (
            "dob",
            pl.col("dob") < occurred.dt.offset_by(f"-{MAX_AGE_YEARS}y"),
            f"dob is more than {MAX_AGE_YEARS} years before the query",
        ),
    ]


def _npd_checks(delivery_day: date, tz: str) -> list[tuple[str, pl.Expr, str]]:
    return [
        *_common_checks(delivery_day, tz),
        ("year_to", pl.col("year_to") < pl.col("year_from"), "year_to is before year_from"),
    ]


SPECS: dict[str, SourceSpec] = {
    "lrs": SourceSpec(LrsEvent, LrsLakeEvent, _lrs_checks, needs_key=True),
    "npd": SourceSpec(NpdEvent, NpdLakeEvent, _npd_checks, needs_key=False),
}


class StagedFile(BaseModel):
    """One delivery file after staging: its counts and the staged Parquet files."""

    seq: int
    path: Path
    rel: str
    sha256: str
    rows_read: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    staged: list[Path] = Field(default_factory=list)
    quarantine: list[Path] = Field(default_factory=list)
    refused: str = ""


class StagedDelivery(BaseModel):
    """One delivery day of one source, staged and not yet committed.

    Staging needs no lock, so deliveries can be staged in parallel (threads, processes or
    Dask workers sharing the home); :func:`commit_delivery` then commits them one at a time.
    """

    run_id: str
    source: str
    day: date
    started_at: datetime
    stage: Path
    files: list[StagedFile] = Field(default_factory=list)
    skipped: list[DeliveryReport] = Field(default_factory=list)
    prepared: PreparedDelivery | None = None


class PreparedDelivery(BaseModel):
    """A staged delivery with its duplicates dropped and its partition files written in
    staging, against the lake partitions as they were (``basis``: folder -> file names)."""

    files: list[int] = Field(description="seq of the staged files prepared")
    written: dict[int, int] = Field(default_factory=dict)
    late: dict[int, int] = Field(default_factory=dict)
    moves: list[tuple[Path, Path]] = Field(default_factory=list)
    basis: dict[str, list[str]] = Field(default_factory=dict)


class CommittedDelivery(BaseModel):
    """What committing one delivery day did, and which event days it changed."""

    source: str
    day: date
    reports: list[DeliveryReport]
    event_dates: list[date] = Field(default_factory=list)

    @property
    def refused(self) -> list[DeliveryReport]:
        return [r for r in self.reports if r.status is DeliveryStatus.refused]


def _day_of(entry: Path) -> date | None:
    """The delivery day a landing entry is the folder of: a folder named exactly YYYY-MM-DD.

    (``date.fromisoformat`` alone also takes ``20260811`` and ``2026-W33-2``, whose folder
    ``2026-08-11`` then does not exist.)
    """
    if not DAY_FOLDER.match(entry.name) or not entry.is_dir():
        return None
    try:
        return date.fromisoformat(entry.name)
    except ValueError:
        return None


def delivery_days(landing: Path, source: str) -> list[date]:
    """Delivery days present in the landing folder for one source, oldest first.

    Only folders named exactly ``YYYY-MM-DD`` count; see :func:`unexpected_entries` for
    what else is there.
    """
    root = landing / source
    days: list[date] = []
    if root.is_dir():
        for child in root.iterdir():
            day = _day_of(child)
            if day is not None:
                days.append(day)
    return sorted(days)


def unexpected_entries(landing: Path, source: str) -> list[str]:
    """Warnings, one per entry of ``<landing>/<source>`` that ingest does not read.

    Each names the entry relative to the landing folder and why: a name that is not a
    day folder (``20260811``, ``2026-W33-2``, ``notes.txt``), a regular file named like a
    day, or a hidden file inside a day folder (``.part.csv``: an upload in flight or OS
    metadata). Files of an unknown type inside a day folder are not listed here: ingest
    refuses them in the ledger. The CLI prints these as warnings.
    """
    root = landing / source
    out: list[str] = []
    if not root.is_dir():
        return out
    for child in sorted(root.iterdir()):
        rel = f"{source}/{child.name}"
        if _day_of(child) is None:
            if DAY_FOLDER.match(child.name) and not child.is_dir():
                why = "is named like a delivery day but is not a folder"
            else:
                why = "is not a delivery day folder (expected a folder named YYYY-MM-DD)"
            out.append(f"{clip(rel, 200)} {why}; not read")
            continue
        for entry in sorted(child.iterdir()):
            if entry.name.startswith("."):
                out.append(f"{clip(rel + '/' + entry.name, 200)} is a hidden file; not read")
    return out


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def check_rows(
    chunk: pl.DataFrame, model: type[BaseModel], extra: list[tuple[str, pl.Expr, str]]
) -> pl.DataFrame:
    """Validate one chunk of raw rows; malformed lines get their reader's reason."""
    columns = list(model.model_fields)
    if MALFORMED_FIELD not in chunk.columns:
        chunk = chunk.with_columns(pl.lit(None, dtype=pl.String).alias(MALFORMED_FIELD))
    checked = validate(
        chunk.select([*columns, LINE, MALFORMED, MALFORMED_FIELD]), model, extra_checks=extra
    )
    malformed = pl.col(MALFORMED).is_not_null()
    whole_line = pl.col(MALFORMED_FIELD).is_null()
    return checked.with_columns(
        pl.when(malformed)
        .then(pl.coalesce(pl.col(MALFORMED_FIELD), pl.lit("line")))
        .otherwise(pl.col(ERROR_FIELD))
        .alias(ERROR_FIELD),
        pl.when(malformed & whole_line)
        .then(pl.format("line {}", pl.col(MALFORMED)))
        .when(malformed)
        .then(pl.col(MALFORMED))
        .otherwise(pl.col(ERROR_REASON))
        .alias(ERROR_REASON),
    ).drop(MALFORMED_FIELD)


def to_lake_rows(
    good: pl.DataFrame, spec: SourceSpec, key: bytes | None, delivery_day: date, rel: str, tz: str
) -> pl.DataFrame:
    """Valid rows in the lake's shape (pseudonymised, with provenance)."""
    rows = good.with_columns(
        _event_date(tz).alias("event_date"),
        pl.lit(delivery_day).alias("delivery_day"),
        pl.lit(rel).alias("source_file"),
    )
    if spec.needs_key:
        assert key is not None
        rows = pseudonymise_lrs(rows, key)
    schema = polars_schema(spec.lake)
    return rows.select([pl.col(n).cast(t) for n, t in schema.items()])


def quarantine_rows(
    bad: pl.DataFrame,
    raw: pl.DataFrame,
    model: type[BaseModel],
    source: str,
    delivery_day: date,
    rel: str,
) -> pl.DataFrame:
    """Bad rows as :class:`QuarantineRecord` rows; personal values are masked."""
    out = bad.select(
        pl.lit(source).alias("source"),
        pl.lit(delivery_day).alias("delivery_day"),
        pl.lit(rel).alias("source_file"),
        pl.col(LINE).alias("source_line"),
        pl.col(ERROR_FIELD).alias("field"),
        pl.col(ERROR_REASON).alias("reason"),
    ).with_columns(raw.select(masked_raw(raw, model).alias("raw")))
    schema = polars_schema(QuarantineRecord)
    return out.select([pl.col(n).cast(t) for n, t in schema.items()])


def _stage_file(
    run: StagedFile,
    spec: SourceSpec,
    settings: Settings,
    source: str,
    day: date,
    stage: Path,
) -> None:
    if run.refused:
        return  # refused before reading (see _entry_problem)
    columns = list(spec.raw.model_fields)
    numeric = [
        n for n, f in spec.raw.model_fields.items() if _base_type(f.annotation) in (int, float)
    ]
    key = settings.key_bytes() if spec.needs_key else None
    tz = settings.timezone
    try:
        chunks = read_delivery(
            run.path, columns, settings.chunk_rows, required_fields(spec.raw), numeric
        )
        for i, chunk in enumerate(chunks):
            checked = check_rows(chunk, spec.raw, spec.extra_checks(day, tz))
            is_bad = pl.col(ERROR_FIELD).is_not_null()
            bad_mask = checked.select(is_bad).to_series()
            good = checked.filter(~bad_mask)
            bad = checked.filter(bad_mask)
            run.rows_read += checked.height
            if bad.height:
                run.quarantined += bad.height
                for reason, n in Counter(bad.get_column(ERROR_REASON).to_list()).items():
                    run.reasons[reason] = run.reasons.get(reason, 0) + n
                qpath = stage / "bad" / f"{run.seq:05d}-{i:05d}.parquet"
                raw_bad = chunk.filter(bad_mask)
                _write_staged(
                    quarantine_rows(bad, raw_bad, spec.raw, source, day, run.rel), qpath, stage
                )
                run.quarantine.append(qpath)
            if good.height:
                lake_rows = to_lake_rows(good, spec, key, day, run.rel, tz)
                gpath = stage / "good" / f"{run.seq:05d}-{i:05d}.parquet"
                _write_staged(lake_rows, gpath, stage)
                run.staged.append(gpath)
    except DeliveryError as e:
        run.refused = f"refused: {e.problem}"
    except HomeWriteError:
        raise
    except (Exception, pl.exceptions.PanicException) as e:
        # One file's surprise must not stop the day: the file is refused, the rest go on.
        log.debug("unexpected error staging %s", run.rel, exc_info=True)
        run.refused = clip(
            f"refused: could not be read ({type(e).__name__}: {e})", MAX_MESSAGE_CHARS
        )
    if not run.refused and run.rows_read:
        share = run.quarantined / run.rows_read
        if share > settings.max_bad_share and run.quarantined >= settings.refuse_min_bad_rows:
            reason, count = max(run.reasons.items(), key=lambda kv: kv[1])
            run.refused = (
                f"refused: {share:.1%} of {run.rows_read:,} rows are bad "
                f"(limit {settings.max_bad_share:.1%}); commonest problem: {reason} "
                f"({count:,} rows)"
            )
    if run.refused:
        for p in [*run.staged, *run.quarantine]:
            p.unlink(missing_ok=True)
        run.staged, run.quarantine = [], []


def _write_staged(frame: pl.DataFrame, path: Path, stage: Path) -> None:
    """Write one staged chunk; a full disk or read-only home is a :class:`HomeWriteError`."""
    with writing_home(stage.parent.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)


def committed_files(settings: Settings, source: str) -> dict[tuple[str, str], str]:
    """(file, sha256) -> run id of every committed delivery file of ``source``."""
    with connect(settings, read_only=True) as con:
        return {
            (r[0], r[1]): r[2]
            for r in con.execute(
                "SELECT source_file, file_sha256, run_id FROM ingest_ledger "
                "WHERE source = ? AND status = 'committed'",
                [source],
            ).fetchall()
        }


def delivery_files(settings: Settings, source: str, day: date) -> list[Path]:
    """Every entry of one source's day folder but hidden ones, in name order.

    Entries that are not readable delivery files (an unknown type, a folder, a symlink out
    of the landing folder) are listed too: ingest refuses each in the ledger, so nothing
    is dropped silently. Hidden entries (``.name``: uploads in flight, OS metadata) are
    left out; :func:`unexpected_entries` reports them.
    """
    folder = settings.landing / source / day.isoformat()
    if not folder.is_dir():
        raise FileNotFoundError(f"no delivery folder {folder}")
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _entry_problem(path: Path, landing: Path) -> str | None:
    """Why a day-folder entry is refused before it is opened, or None when it may be read.

    A symlink is followed only inside the landing folder; its target is never opened
    otherwise, so nothing outside the landing folder is read or echoed.
    """
    try:
        # resolve() follows a link anywhere on the path, e.g. a day folder linked elsewhere.
        target = path.resolve(strict=False)
        if not target.is_relative_to(landing.resolve()):
            return "is a symbolic link that points outside the landing folder; not read"
        if path.is_symlink() and not target.exists():
            return "is a broken symbolic link"
        if path.is_dir():
            return "is a folder, not a delivery file"
        if not path.is_file():
            return "is not a regular file (a pipe, socket or device); not read"
    except OSError as e:
        return f"cannot be inspected: {e.strerror or e}"
    if delivery_type(path.name) is None:
        suffix = "".join(path.suffixes[-2:]) or "no suffix"
        return (
            f"unknown file type ({clip(suffix, 20)}); expected one of "
            f"{', '.join(SUFFIXES)} (any case)"
        )
    return None


def stage_delivery(
    settings: Settings,
    source: str,
    day: date,
    run_id: str,
    done: dict[tuple[str, str], str] | None = None,
) -> StagedDelivery:
    """Read, validate and pseudonymise one delivery day into ``staging/<run_id>``.

    Touches neither the lake nor the warehouse, so needs no lock. Files listed in ``done``
    (see :func:`committed_files`) are reported as skipped and not read again.
    """
    spec = SPECS[source]
    if spec.needs_key:
        settings.key_bytes()  # refuse to start without a key
    staged = StagedDelivery(
        run_id=run_id,
        source=source,
        day=day,
        started_at=datetime.now(UTC),
        stage=staging_dir(settings.home, run_id),
    )
    for path in delivery_files(settings, source, day):
        rel = str(path.relative_to(settings.landing))
        problem = _entry_problem(path, settings.landing)
        sha = ""
        if problem is None:
            try:
                sha = file_sha256(path)
            except OSError as e:
                problem = f"cannot be read: {e.strerror or e}"
        if done and (rel, sha) in done:
            staged.skipped.append(_skipped(staged, rel, sha, done[(rel, sha)]))
            continue
        staged.files.append(
            StagedFile(
                seq=len(staged.files),
                path=path,
                rel=rel,
                sha256=sha,
                refused=f"refused: {problem}" if problem else "",
            )
        )

    def cleanup() -> None:
        shutil.rmtree(staged.stage, ignore_errors=True)

    with writing_home(settings.home, cleanup):
        if staged.files:
            staged.stage.mkdir(parents=True, exist_ok=True)
        for run in staged.files:
            _stage_file(run, spec, settings, source, day, staged.stage)
    return staged


def _skipped(staged: StagedDelivery, rel: str, sha: str, by_run: str) -> DeliveryReport:
    return _report(
        staged.run_id, staged.source, staged.day, rel, sha, DeliveryStatus.skipped,
        staged.started_at,
    ).model_copy(update={"reason": f"already ingested by run {by_run}"})  # fmt: skip


def prepare_delivery(settings: Settings, staged: StagedDelivery) -> StagedDelivery:
    """Drop duplicates against the lake and write the partition files, in staging.

    Needs no lock: it only reads the lake. :func:`commit_delivery` then publishes the result
    under the lock if the partitions it read are unchanged, and prepares again if not, so a
    commit holds the lock only to move files and write the ledger.
    """
    return staged.model_copy(update={"prepared": _prepare(settings, staged, staged.files)})


def _prepare(
    settings: Settings, staged: StagedDelivery, runs: list[StagedFile]
) -> PreparedDelivery:
    for leftover in (staged.stage / "out", staged.stage / "quarantine.parquet"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink(missing_ok=True)
    written, late, moves, basis = _dedup_and_place(
        settings, staged.source, staged.day, staged.run_id, runs, staged.stage
    )
    return PreparedDelivery(
        files=[r.seq for r in runs], written=written, late=late, moves=moves, basis=basis
    )


def _still_current(prepared: PreparedDelivery | None, runs: list[StagedFile]) -> bool:
    """Prepared for exactly these files, against partitions that have not changed since."""
    if prepared is None or prepared.files != [r.seq for r in runs]:
        return False
    return all(_partition_names(Path(folder)) == names for folder, names in prepared.basis.items())


def _partition_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.parquet"))


def commit_delivery(settings: Settings, staged: StagedDelivery) -> CommittedDelivery:
    """Drop duplicates and commit a staged delivery with its ledger rows, all or nothing.

    The caller holds the writer lock. Files committed since staging (by another run) are
    reported as skipped, so a delivery is never committed twice. A delivery already
    prepared (:func:`prepare_delivery`) against partitions that are still as they were is
    published as prepared; otherwise it is prepared again here.
    """
    source, day, run_id = staged.source, staged.day, staged.run_id
    done = committed_files(settings, source)
    reports = list(staged.skipped)
    runs: list[StagedFile] = []
    for run in staged.files:
        if (run.rel, run.sha256) in done:
            reports.append(_skipped(staged, run.rel, run.sha256, done[(run.rel, run.sha256)]))
        else:
            runs.append(run)
    if not runs:
        shutil.rmtree(staged.stage, ignore_errors=True)
        return CommittedDelivery(source=source, day=day, reports=reports)
    fingerprint: str | None = None
    if SPECS[source].needs_key:
        key = settings.key_bytes()
        with connect(settings) as con:
            if check_key(con, key):
                fingerprint = key_fingerprint(key)

    def cleanup() -> None:
        shutil.rmtree(staged.stage, ignore_errors=True)
        (settings.home / "journal" / f"{run_id}.json.tmp").unlink(missing_ok=True)

    with writing_home(settings.home, cleanup):
        return _commit(settings, staged, runs, reports, fingerprint)


def _commit(
    settings: Settings,
    staged: StagedDelivery,
    runs: list[StagedFile],
    reports: list[DeliveryReport],
    fingerprint: str | None,
) -> CommittedDelivery:
    source, day, run_id = staged.source, staged.day, staged.run_id
    prepared = staged.prepared
    if not _still_current(prepared, runs):
        prepared = _prepare(settings, staged, runs)
    assert prepared is not None
    written, late, moves = prepared.written, prepared.late, prepared.moves
    finished = datetime.now(UTC)
    new_reports = []
    for run in runs:
        status = DeliveryStatus.refused if run.refused else DeliveryStatus.committed
        n_written = written.get(run.seq, 0)
        good = run.rows_read - run.quarantined
        new_reports.append(
            DeliveryReport(
                run_id=run_id,
                source=source,
                delivery_day=day,
                source_file=run.rel,
                file_sha256=run.sha256,
                status=status,
                rows_read=run.rows_read,
                rows_written=n_written,
                duplicates=0 if run.refused else good - n_written,
                quarantined=run.quarantined,
                late_events=late.get(run.seq, 0),
                reason=run.refused,
                quarantine_reasons=dict(
                    sorted(run.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                ),
                started_at=staged.started_at,
                finished_at=finished,
            )
        )

    def record() -> None:
        with connect(settings) as con, transaction(con):
            if fingerprint is not None:
                con.execute(
                    "INSERT INTO key_fingerprint SELECT ?, ?, ? "
                    "WHERE NOT EXISTS (SELECT 1 FROM key_fingerprint)",
                    [fingerprint, run_id, finished],
                )
            con.register("new_rows", ledger_frame(new_reports))
            con.execute("INSERT INTO ingest_ledger SELECT * FROM new_rows")

    commit_files(settings.home, run_id, moves, record)
    event_dates = sorted(
        {date.fromisoformat(dst.parent.name.split("=", 1)[1]) for _src, dst in moves
         if dst.parent.name.startswith("event_date=")}
    )  # fmt: skip
    return CommittedDelivery(
        source=source, day=day, reports=reports + new_reports, event_dates=event_dates
    )


def ingest_day(
    settings: Settings, source: str, day: date, run_id: str | None = None
) -> list[DeliveryReport]:
    """Ingest every not-yet-ingested file of one delivery day. Hold the writer lock.

    A day with no delivery folder is recorded as ``missing`` (not an error: see
    :func:`pipeline.store.warehouse.record_missing`).
    """
    run_id = run_id or new_run_id()
    if not (settings.landing / source / day.isoformat()).is_dir():
        return record_missing(settings, source, [day], run_id)
    staged = stage_delivery(settings, source, day, run_id, committed_files(settings, source))
    return commit_delivery(settings, staged).reports


def _report(
    run_id: str,
    source: str,
    day: date,
    rel: str,
    sha: str,
    status: DeliveryStatus,
    started: datetime,
) -> DeliveryReport:
    return DeliveryReport(
        run_id=run_id,
        source=source,
        delivery_day=day,
        source_file=rel,
        file_sha256=sha,
        status=status,
        rows_read=0,
        rows_written=0,
        duplicates=0,
        quarantined=0,
        late_events=0,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


def _dedup_and_place(
    settings: Settings,
    source: str,
    day: date,
    run_id: str,
    runs: list[StagedFile],
    stage: Path,
) -> tuple[dict[int, int], dict[int, int], list[tuple[Path, Path]], dict[str, list[str]]]:
    """Drop duplicates, write final partition files in staging, and list the moves.

    Returns rows written per file, late events per file, (staged, final) path pairs, and
    the lake partitions read (folder -> file names).
    """
    moves: list[tuple[Path, Path]] = []
    basis: dict[str, list[str]] = {}
    accepted = [r for r in runs if not r.refused]
    quarantine_files = [str(p) for r in accepted for p in r.quarantine]
    if quarantine_files:
        qout = stage / "quarantine.parquet"
        pl.scan_parquet(quarantine_files).sink_parquet(qout)
        moves.append((qout, quarantine_dir(settings.home, source, day) / f"part-{run_id}.parquet"))
    staged = [str(p) for r in accepted for p in r.staged]
    if not staged:
        return {}, {}, moves, basis
    # Staged chunks are listed in file then line order, so "first" is the first delivered.
    rows = pl.scan_parquet(staged).with_row_index(ROW)
    firsts = (
        rows.select(ROW, "event_id")
        .unique(subset="event_id", keep="first")
        .select(ROW)
        .collect()
        .to_series()
        .implode()
    )
    dates = rows.select(pl.col("event_date").unique()).collect()["event_date"].to_list()
    written: Counter[int] = Counter()
    late: Counter[int] = Counter()
    out = stage / "out"
    out.mkdir(parents=True, exist_ok=True)
    name = f"part-{day.isoformat()}-{run_id}.parquet"
    seq_of = {r.rel: r.seq for r in accepted}
    # One event day at a time, streamed to its file: a national day's partition is never
    # held in memory whole. Rows stay in delivery order (file, then line), which makes
    # the file deterministic; sorting by time would need the whole partition in memory
    # (1.8 GB instead of 0.5 GB at 2M rows) and no query depends on the order.
    for event_date in sorted(dates):
        assert isinstance(event_date, date)
        fresh = rows.filter(pl.col("event_date") == event_date, pl.col(ROW).is_in(firsts))
        folder = partition_dir(settings.home, source, event_date)
        basis[str(folder)] = _partition_names(folder)
        existing = [str(folder / name) for name in basis[str(folder)]]
        if existing:
            lake_ids = pl.scan_parquet(existing).select("event_id")
            fresh = fresh.join(lake_ids, on="event_id", how="anti", maintain_order="left")
        path = out / f"{event_date.isoformat()}-{name}"
        # The partition value lives in the folder name (hive style), not in the file.
        fresh.drop(ROW, "event_date").sink_parquet(path, compression="zstd", statistics=True)
        per_file = pl.scan_parquet(path).group_by("source_file").len().collect()
        if not per_file.height:
            path.unlink()
            continue
        for rel, n in per_file.iter_rows():
            written[seq_of[rel]] += n
            late[seq_of[rel]] += n if event_date < day else 0
        moves.append((path, partition_dir(settings.home, source, event_date) / name))
    moves.sort(key=lambda m: str(m[1]))
    return dict(written), dict(late), moves, basis


def recover_home(settings: Settings) -> list[str]:
    """Roll back any interrupted commit (call with the lock held)."""
    with connect(settings) as con:
        done = committed_runs(con)
    return recover(settings.home, lambda run_id: run_id in done)


def ingest(
    settings: Settings,
    source: str,
    days: list[date] | None = None,
    progress: Callable[[date, list[DeliveryReport]], None] | None = None,
    lock_wait_seconds: float = 0.0,
) -> IngestReport:
    """Ingest the given delivery days (when None: every day from the landing folder's first
    to its last delivery day of any source; a day without this source's folder is recorded
    as ``missing``, unless the source has no delivery at all)."""
    if source not in SPECS:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SPECS)}")
    run_id = new_run_id()
    report = IngestReport(run_id=run_id, source=source)
    purpose = f"ingest {source}"
    with (
        writing_home(settings.home),
        run_lock(settings.home, lock_wait_seconds, purpose),
        home_lock(settings.home, lock_wait_seconds, purpose),
    ):
        recover_home(settings)
        if SPECS[source].needs_key:
            with connect(settings, read_only=True) as con:
                check_key(con, settings.key_bytes())  # refuse before any work is done
        if days is None:
            days = delivery_days(settings.landing, source)
            if days:
                found = {d for src in SOURCES for d in delivery_days(settings.landing, src)}
                first, last = min(found), max(found)
                days = [first + timedelta(i) for i in range((last - first).days + 1)]
        for day in days:
            day_reports = ingest_day(settings, source, day, run_id=f"{run_id}-{day:%Y%m%d}")
            report.deliveries.extend(day_reports)
            if progress is not None:
                progress(day, day_reports)
    return report


def staged_fingerprint(staged: StagedDelivery) -> str:
    """Names and SHA-256 of one delivery day's files, as staging hashed them (read or
    skipped), so that they are not read and hashed a second time."""
    parts = [f"{f.rel}:{f.sha256}" for f in staged.files]
    parts += [f"{r.source_file}:{r.file_sha256}" for r in staged.skipped]
    return digest(sorted(parts))
