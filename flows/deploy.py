"""Deployments of the nightly and backfill flows, served by ``accesswatch serve``.

``prefect.yaml`` at the top of the repository declares the same two deployments for a
process work pool (see docs/operations.md); this module is the one-machine way to run them.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.schedules import Cron

from flows.backfill import backfill
from flows.nightly import nightly
from schemas.flows import JobPaths

NIGHTLY_DEPLOYMENT = "nightly"
BACKFILL_DEPLOYMENT = "backfill"


def _parameters(paths: JobPaths) -> dict[str, Any]:
    return {k: str(v) for k, v in paths.model_dump().items() if v is not None}


def deployments(paths: JobPaths, cron: str, timezone: str) -> list[Any]:
    """The nightly deployment on ``cron`` in ``timezone``, and an unscheduled backfill.

    Both allow one run at a time (a second run of either also finds the home's run lock).
    """
    params = _parameters(paths)
    return [
        nightly.to_deployment(
            name=NIGHTLY_DEPLOYMENT,
            schedule=Cron(cron, timezone=timezone),
            parameters=params,
            concurrency_limit=1,
            description="Yesterday's LRS and NPD deliveries in, suspects out.",
            tags=["accesswatch"],
        ),
        backfill.to_deployment(
            name=BACKFILL_DEPLOYMENT,
            parameters=params,
            concurrency_limit=1,
            description="Ingest and score a range of days (parameters start, end).",
            tags=["accesswatch"],
        ),
    ]


def serve_deployments(paths: JobPaths, cron: str, timezone: str, limit: int | None = 1) -> None:
    """Register both deployments with the Prefect API and run their flow runs until stopped."""
    serve(*deployments(paths, cron, timezone), limit=limit, print_starting_message=True)
