"""What ingest reports: per-delivery counts, quarantined rows and the run ledger."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, computed_field


class DeliveryStatus(StrEnum):
    committed = "committed"
    skipped = "skipped"  # already ingested with the same content
    refused = "refused"  # too many bad rows, a missing column, unreadable file
    # No delivery folder for the source and day (and nothing committed for it): the feed
    # did not arrive. Not a quiet day - that is a committed delivery of 0 rows.
    missing = "missing"


class QuarantineRecord(BaseModel):
    """One bad row: where it was, which field failed and why. Personal values are masked."""

    source: str
    delivery_day: date
    source_file: str
    source_line: int = Field(ge=1)
    field: str
    reason: str
    raw: str = Field(description="The row as JSON with ULN, date of birth and postcode masked")


class DeliveryReport(BaseModel):
    """The outcome of ingesting one delivery file. ``rows_read`` always reconciles."""

    run_id: str
    source: str
    delivery_day: date
    source_file: str
    file_sha256: str
    status: DeliveryStatus
    rows_read: int = Field(ge=0)
    rows_written: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    quarantined: int = Field(ge=0)
    late_events: int = Field(
        ge=0, description="Written rows whose event date is before the delivery day"
    )
    reason: str = ""
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reconciles(self) -> bool:
        """rows read = rows written + duplicates + quarantined (refused files write nothing,
        a missing delivery has no rows at all)."""
        if self.status in (DeliveryStatus.refused, DeliveryStatus.missing):
            return self.rows_written == 0
        return self.rows_read == self.rows_written + self.duplicates + self.quarantined


class IngestReport(BaseModel):
    """The outcome of one ingest run over one or more delivery days of one source."""

    run_id: str
    source: str
    deliveries: list[DeliveryReport] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def refused(self) -> list[DeliveryReport]:
        return [d for d in self.deliveries if d.status is DeliveryStatus.refused]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def missing(self) -> list[DeliveryReport]:
        return [d for d in self.deliveries if d.status is DeliveryStatus.missing]

    def total(self, field: str) -> int:
        return sum(int(getattr(d, field)) for d in self.deliveries)
