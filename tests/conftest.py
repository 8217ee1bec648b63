"""Shared fixtures: a private home and landing folder per test, and literal delivery files."""

from __future__ import annotations

import atexit
import csv
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas.events import LrsEvent, NpdEvent
from schemas.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
TEST_KEY = "test-key-for-unit-tests-only-0123456789"

# Offline and private by rule: no telemetry, and Prefect state in a throwaway folder.
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="accesswatch-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
for name in list(os.environ):
    if name.startswith("ACCESSWATCH_"):
        del os.environ[name]  # tests never see the developer's own settings

LRS_COLUMNS = list(LrsEvent.model_fields)
NPD_COLUMNS = list(NpdEvent.model_fields)


def lrs_row(event_id: str, **overrides: object) -> dict[str, object]:
    """A valid LRS event; override any field."""
    row: dict[str, object] = {
        "event_id": event_id,
        "occurred_at": "2026-03-02T10:00:00Z",
        "ukprn": "10001234",
        "user_name": "amy.admin",
        "channel": "webservice",
        "operation": "learnerByULN",
        "uln": "1026893096",
        "dob": "2008-05-01",
        "postcode": "LS6 2AB",
        "response_code": "WSRC0004",
        "result_count": 1,
        "batch_size": "",
        "client_ip": "10.0.0.1",
        "user_agent": "CollegeMIS/4.2",
    }
    row.update(overrides)
    return row


def npd_row(event_id: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "event_id": event_id,
        "occurred_at": "2026-03-02T10:00:00Z",
        "org_id": "ORG00002",
        "user_name": "researcher1",
        "agreement_ref": "DS00752",
        "channel": "srs",
        "dataset": "ks4",
        "items": "KS4_ATT8;KS4_PTEBACC",
        "min_identifiability": 4,
        "max_sensitivity": "D",
        "year_from": 2018,
        "year_to": 2022,
        "rows_returned": 5000,
    }
    row.update(overrides)
    return row


def write_csv(path: Path, rows: Iterable[dict[str, object]], columns: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as f:  # type: ignore[operator]
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def write_jsonl(path: Path, rows: Iterable[dict[str, object] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt") as f:  # type: ignore[operator]
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh home and landing folder under the test's temp dir."""
    return load_settings(
        home=tmp_path / "home", landing=tmp_path / "landing", pseudonym_key=TEST_KEY
    )


@dataclass(frozen=True)
class SampleRun:
    """A home made by ``accesswatch demo`` on the committed sample (once per session)."""

    home: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> SampleRun:
    """The demo - a single-process Prefect backfill of data/sample - run once and shared.

    Tests that read it must not write to it; copy it first (``shutil.copytree``).
    """
    from tests.unit.cli.test_cli import run

    home = tmp_path_factory.mktemp("sample") / "home"
    args = ["--home", str(home), "--landing", str(SAMPLE / "landing")]
    out = run("demo", *args, env={"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY})
    assert out.returncode == 0, out.stderr
    return SampleRun(home=home, stdout=out.stdout, stderr=out.stderr)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on 127.0.0.1 for the session (own PREFECT_HOME, analytics off).

    Sets ``PREFECT_API_URL`` for this process and every CLI subprocess, so flows run
    against it instead of each starting a temporary server of their own.
    """
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    prefect_home = tmp_path_factory.mktemp("prefect-server")
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    log = open(prefect_home / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    prefect = Path(sys.executable).with_name("prefect")
    proc = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    previous = os.environ.get("PREFECT_API_URL")
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prefect server did not start: {(prefect_home / 'server.log').read_text()}"
                )
            time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
