"""Fingerprints that say when work is already done: code version, inputs and home identity.

Flows key their task caches on these (see ``flows/tasks.py``): a re-run with the same code,
the same input files and the same warehouse skips the work; any change redoes it.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import date, timedelta
from importlib import metadata
from pathlib import Path

from pipeline.ingest.deliveries import StagedDelivery, file_sha256
from pipeline.profile.summaries import LOOKBACK_DAYS
from pipeline.store.lake import partition_dir
from schemas.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("pipeline", "detectors", "schemas")
CODE_SUFFIXES = {".py", ".sql", ".toml"}
HOME_ID_FILE = ".warehouse-id"


def _package_version() -> str:
    try:
        return metadata.version("accesswatch")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def code_version() -> str:
    """``<package version>+<hash>`` over every source, SQL and rule file that computes results."""
    h = hashlib.sha256()
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(REPO)).encode())
                h.update(path.read_bytes())
    return f"{_package_version()}+{h.hexdigest()[:12]}"


def home_id(settings: Settings) -> str:
    """The identity of the home's warehouse; a new warehouse gets a new one.

    Cached task results name it, so deleting the warehouse means work is redone rather
    than skipped as if its results were still there.
    """
    path = settings.home / HOME_ID_FILE
    if not settings.warehouse.exists() or not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(uuid.uuid4().hex)
        tmp.replace(path)
    return path.read_text().strip()


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def staged_fingerprint(staged: StagedDelivery) -> str:
    """Names and SHA-256 of one delivery day's files, as staging hashed them (read or
    skipped), so that they are not read and hashed a second time."""
    parts = [f"{f.rel}:{f.sha256}" for f in staged.files]
    parts += [f"{r.source_file}:{r.file_sha256}" for r in staged.skipped]
    return _digest(sorted(parts))


def reference_fingerprint(settings: Settings) -> str:
    """SHA-256 of the reference files in the landing folder."""
    folder = settings.landing / "reference"
    return _digest(
        [f"{p.name}:{file_sha256(p)}" for p in sorted(folder.glob("*.csv")) if p.is_file()]
    )


def day_inputs_fingerprint(settings: Settings, day: date) -> str:
    """Every lake file a day's profile reads (``[day - 34, day]``, both sources) and the
    reference files. Lake file names carry their run id, so a new commit changes this."""
    parts = [reference_fingerprint(settings)]
    for source in ("lrs", "npd"):
        for offset in range(LOOKBACK_DAYS, -1, -1):
            folder = partition_dir(settings.home, source, day - timedelta(days=offset))
            if folder.is_dir():
                for p in sorted(folder.glob("*.parquet")):
                    st = p.stat()
                    parts.append(f"{source}/{folder.name}/{p.name}:{st.st_size}")
    return _digest(parts)
