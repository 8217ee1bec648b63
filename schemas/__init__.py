"""The one definition of every record, setting and parameter in accesswatch.

Column names and types used by ingest (polars) and by profiles (DuckDB) are derived from
these pydantic models by :mod:`schemas.frames`; they are never typed out a second time.
"""

from schemas.events import (
    LRS_OPERATIONS,
    LrsChannel,
    LrsEvent,
    LrsLakeEvent,
    NpdChannel,
    NpdEvent,
    NpdLakeEvent,
    ResponseCode,
)
from schemas.ingest import DeliveryReport, IngestReport, QuarantineRecord
from schemas.reference import Agreement, Organisation, OrgStatus, OrgType, Region
from schemas.settings import Settings

__all__ = [
    "LRS_OPERATIONS",
    "Agreement",
    "DeliveryReport",
    "IngestReport",
    "LrsChannel",
    "LrsEvent",
    "LrsLakeEvent",
    "NpdChannel",
    "NpdEvent",
    "NpdLakeEvent",
    "OrgStatus",
    "OrgType",
    "Organisation",
    "QuarantineRecord",
    "Region",
    "ResponseCode",
    "Settings",
]
