"""Accountability outputs: a learner's access history, its audit trail, and the settings of
the public transparency report's statistical disclosure control (SDC).

See ``docs/transparency.md`` for what each output shows and what it can never show.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class SdcSettings(BaseModel):
    """Disclosure control of the transparency report's tables, as official statistics do it.

    Primary suppression hides every cell under ``threshold``; secondary suppression hides
    further cells until no hidden cell can be worked out from the published row and column
    totals; every published count (cells and totals) is rounded to the nearest multiple of
    ``rounding_base``, totals from the unrounded values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: int = Field(
        default=10, ge=1, le=1_000, description="Cells with fewer than this are suppressed"
    )
    rounding_base: int = Field(
        default=5, ge=1, le=100, description="Published counts are rounded to a multiple of this"
    )
    suppress_zeros: bool = Field(
        default=True,
        description="Zero cells are under the threshold too (False publishes them as 0)",
    )


class AccessRecord(BaseModel):
    """One access to one learner's record, as the learner is told of it."""

    model_config = ConfigDict(frozen=True)

    reference: str = Field(description="The event id: quote it to ask about this access")
    occurred_at: datetime = Field(description="UTC")
    source: str = Field(description="lrs or npd")
    org_id: str
    org_name: str
    org_type: str
    operation: str = Field(description="The operation in plain words")
    operation_name: str = Field(description="The service's own name for the operation")
    result: str = Field(description="What the service answered, in plain words")
    channel: str
    later_flagged: date | None = Field(
        default=None, description="First day on or after the access the org was flagged"
    )
    verdict: str | None = Field(default=None, description="The org's latest triage verdict")
    verdict_on: date | None = None


class AuditEntry(BaseModel):
    """One use of ``accesswatch access-history``: never the ULN, only its pseudonym."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime = Field(description="When it ran (UTC)")
    who: str = Field(min_length=1, description="The operating-system user who ran it")
    pseudonym: str = Field(pattern=r"^[0-9a-f]{32}$")
    date_from: date
    date_to: date
    rows: int = Field(ge=0)
    output: str = Field(description="table, csv, json or html")
