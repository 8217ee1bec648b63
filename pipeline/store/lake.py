"""The home folder's layout, its writer lock, and all-or-nothing commits of files.

Layout under the home folder::

    lake/source=<lrs|npd>/event_date=<YYYY-MM-DD>/part-<delivery_day>-<run_id>-<n>.parquet
    quarantine/source=<lrs|npd>/delivery_day=<YYYY-MM-DD>/part-<run_id>.parquet
    warehouse.duckdb
    staging/<run_id>/...      (work in progress, never read by anything else)
    journal/<run_id>.json     (a commit in flight)
    .lock                     (writer lock: held briefly by each step that writes)
    .run.lock                 (run lock: held by a whole job - ingest, nightly, backfill)

A commit writes a journal listing every move, renames the staged files into place, then
calls the caller's ``finalise`` (the ledger transaction), then deletes the journal. Recovery
rolls back any journal whose run is not in the ledger. So a process killed at any point
leaves the home as it was before that run, or with the run complete.

A journal exists only while the process that wrote it holds the writer lock. So whoever
takes the writer lock and finds a journal knows its writer is dead, and rolls it back
there and then (:func:`home_lock`): profile and detect never read files of a commit that
did not finish. Readers that take no lock call :func:`pipeline.store.warehouse.connect`
(read-only), which does the same before it opens the warehouse, or refuses.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path


class HomeBusy(RuntimeError):
    """Another accesswatch process holds the home's writer or run lock."""


WRITER_LOCK = ".lock"
RUN_LOCK = ".run.lock"


def lake_dir(home: Path, source: str) -> Path:
    return home / "lake" / f"source={source}"


def partition_dir(home: Path, source: str, event_date: date) -> Path:
    return lake_dir(home, source) / f"event_date={event_date.isoformat()}"


def quarantine_dir(home: Path, source: str, delivery_day: date) -> Path:
    return home / "quarantine" / f"source={source}" / f"delivery_day={delivery_day.isoformat()}"


def lake_glob(home: Path, source: str) -> str:
    """Glob of every Parquet file of one source (for DuckDB ``read_parquet``)."""
    return str(lake_dir(home, source) / "*" / "*.parquet")


def staging_dir(home: Path, run_id: str) -> Path:
    return home / "staging" / run_id


def _journal_dir(home: Path) -> Path:
    return home / "journal"


def pending_commits(home: Path) -> list[Path]:
    """Journals of commits in flight (or left by a process that died mid-commit)."""
    journal_dir = _journal_dir(home)
    return sorted(journal_dir.glob("*.json")) if journal_dir.is_dir() else []


_held: dict[tuple[str, str], int] = {}
_held_guard = threading.Lock()
_rolled_back_at_lock: dict[str, list[str]] = {}
"""Runs rolled back when this process took a home's writer lock, until a recovery reports
them (so :func:`recover` returns every run rolled back under the lock it is called in)."""


def holds_lock(home: Path, name: str = WRITER_LOCK) -> bool:
    """Whether a thread of this process holds one of the home's locks."""
    with _held_guard:
        return _held.get((str(home.resolve()), name), 0) > 0


def _note_held(home: Path, name: str, delta: int) -> None:
    key = (str(home.resolve()), name)
    with _held_guard:
        _held[key] = _held.get(key, 0) + delta
        if not _held[key]:
            del _held[key]


def fsync_dir(path: Path) -> None:
    """Flush the directory ``path`` itself, so that files created, renamed or linked in it
    survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_files(
    home: Path, run_id: str, moves: list[tuple[Path, Path]], finalise: Callable[[], None]
) -> None:
    """Move staged files into place and record the run, all or nothing (see module doc)."""
    journal_dir = _journal_dir(home)
    journal_dir.mkdir(parents=True, exist_ok=True)
    journal = journal_dir / f"{run_id}.json"
    tmp = journal.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "moves": [[str(s), str(d)] for s, d in moves]}))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, journal)
    fsync_dir(journal_dir)
    moved: list[tuple[Path, Path]] = []
    try:
        for src, dst in moves:
            if dst.exists():
                raise FileExistsError(f"{dst} already exists; refusing to overwrite lake data")
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append((src, dst))
        finalise()
    except Exception:
        # Still alive: put the files back, so that nothing of this commit stays in the lake
        # and a retry starts from where it began. (A process that dies here leaves the
        # journal, and recover() deletes the moved files instead.)
        for src, dst in reversed(moved):
            os.replace(dst, src)
        journal.unlink()
        raise
    journal.unlink()
    shutil.rmtree(staging_dir(home, run_id), ignore_errors=True)


def recover(
    home: Path, is_committed: Callable[[str], bool], clear_staging: bool = True
) -> list[str]:
    """Roll back every commit in flight whose run is not recorded; clear stale staging.

    Call with the writer lock held. Returns the run ids that were rolled back. Staging is
    left alone with ``clear_staging=False``: a job holding the run lock stages without the
    writer lock, so only the job's own recovery (under the run lock) may clear it.
    """
    with _held_guard:
        rolled_back: list[str] = _rolled_back_at_lock.pop(str(home.resolve()), [])
    journal_dir = _journal_dir(home)
    if journal_dir.is_dir():
        for stale in journal_dir.glob("*.json.tmp"):
            stale.unlink()  # a journal never finished: no file was moved yet
        for journal in sorted(journal_dir.glob("*.json")):
            entry = json.loads(journal.read_text())
            run_id = entry["run_id"]
            if not is_committed(run_id):
                for _src, dst in entry["moves"]:
                    Path(dst).unlink(missing_ok=True)
                rolled_back.append(run_id)
            journal.unlink()
    staging = home / "staging"
    if clear_staging and staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
    return rolled_back


@contextlib.contextmanager
def home_lock(
    home: Path, wait_seconds: float = 0.0, purpose: str = "write", name: str = WRITER_LOCK
) -> Iterator[None]:
    """Hold one of the home's locks; wait up to ``wait_seconds``, then raise :class:`HomeBusy`.

    The writer lock (``.lock``) is held by each step that changes the home, for as long as
    that step runs. The run lock (``.run.lock``, see :func:`run_lock`) is held by a whole
    job, so that one ingest, nightly or backfill runs at a time while its own steps - in
    threads or in other processes - take turns at the writer lock. Both are OS file locks:
    released when the process ends, however it ends.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    what = "writer lock" if name == WRITER_LOCK else "run lock"
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = path.read_text().strip() or "another process"
                    raise HomeBusy(
                        f"{home} is busy: {holder} holds its {what}; "
                        "only one ingest, nightly or backfill may write to a home at a time"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()} ({purpose}, since {stamp})".encode())
        _note_held(home, name, +1)
        try:
            if name == WRITER_LOCK and pending_commits(home):
                _roll_back_dead_commits(home)
            yield
        finally:
            _note_held(home, name, -1)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _roll_back_dead_commits(home: Path) -> list[str]:
    """Called with the writer lock just taken: every journal left is a dead writer's."""
    from pipeline.store.warehouse import committed_run_ids  # the ledger says which runs finished

    done = committed_run_ids(home)
    rolled_back = recover(home, lambda run_id: run_id in done, clear_staging=False)
    with _held_guard:
        _rolled_back_at_lock[str(home.resolve())] = rolled_back
    return rolled_back


def run_lock(
    home: Path, wait_seconds: float = 0.0, purpose: str = "run"
) -> contextlib.AbstractContextManager[None]:
    """Hold the home's run lock for a whole job (see :func:`home_lock`)."""
    return home_lock(home, wait_seconds, purpose, name=RUN_LOCK)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
