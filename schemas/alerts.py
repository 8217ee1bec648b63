"""Alerts after the nightly: the ``[alerts]`` settings and the messages composed from a day.

A message carries no personal data (no ULN, date of birth, postcode, learner pseudonym or
account): organisation, score, rules, rank and a link to the report. Sending is Prefect's
(a notification block named by ``block``, see ``flows/alerts.py``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.detection import Severity

DEFAULT_BLOCK = "accesswatch-alerts"


class AlertSettings(BaseModel):
    """``[alerts]`` in the TOML file, or ``ACCESSWATCH_ALERTS__<FIELD>`` in the environment."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    block: str = Field(
        default=DEFAULT_BLOCK,
        min_length=1,
        max_length=200,
        description="The Prefect notification block alerts go through: its name, or "
        "<block-type-slug>/<name> (e.g. custom-webhook/accesswatch-alerts)",
    )
    enabled: bool = Field(
        default=False, description="Send alerts after each nightly (false: compose nothing)"
    )
    min_score: float = Field(
        default=60, ge=0, le=100, description="A suspect at or above this score is alerted"
    )
    min_severity: Severity = Field(
        default=Severity.high,
        description="A suspect with a rule of this severity or worse is alerted (any score)",
    )
    quiet_days: int = Field(
        default=7,
        ge=1,
        le=3650,
        description="A suspect that qualified before is alerted again ('returned') once it has "
        "not qualified for at least this many days",
    )
    digest: bool = Field(
        default=True, description="Send a digest (counts only) when no suspect alert is due"
    )
    report_url: str | None = Field(
        default=None,
        max_length=500,
        description="Base URL where <home>/reports is served; the link is <report_url>/<day>.html",
    )


class AlertKind(StrEnum):
    suspect = "suspect"
    digest = "digest"
    delivery = "delivery"


class AlertMessage(BaseModel):
    """One alert: a stable ``key`` (the same day and finding give the same key, so it is sent
    once), a title and a plain-text body that ends with the line ``alert: <key>``."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1)
    kind: AlertKind
    day: date
    title: str
    body: str
