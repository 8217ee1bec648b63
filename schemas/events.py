"""Query events: as delivered in the landing folder (raw) and as kept in the lake.

The raw models are the input contract (the README's "Data contract"). The lake models are what
ingest writes: personal data (ULN, date of birth, postcode) is replaced by a keyed
pseudonym, the learner's age at query time and the postcode area.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints


def ip_address_pattern() -> str:
    """A regular expression accepting exactly the IPv4 and IPv6 addresses that Python's
    ``ipaddress.ip_address`` accepts (without IPv6 scope ids), so it can run vectorised.

    IPv4: four decimal octets 0-255 without leading zeros. IPv6: eight groups of 1-4 hex
    digits, the last two of which may be an IPv4 address, with at most one ``::`` standing
    for one or more zero groups.
    """
    octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    v4 = rf"{octet}(?:\.{octet}){{3}}"
    h = "[0-9A-Fa-f]{1,4}"

    def groups(n: int) -> str:
        return "" if n == 0 else h if n == 1 else rf"{h}(?::{h}){{{n - 1}}}"

    forms = [groups(8), f"{groups(6)}:{v4}"]
    for total, tail_v4 in ((8, False), (6, True)):
        for head in range(total):
            for tail in range(total - head):  # "::" stands for at least one group
                end = groups(tail)
                if tail_v4:
                    end = f"{end}:{v4}" if end else v4
                forms.append(f"{groups(head)}::{end}")
    return f"^(?:{v4}|{'|'.join(forms)})$"


# ASCII digits only: in Python and Rust regular expressions \d also matches full-width and
# other Unicode digits, which are not ULNs or UKPRNs.
Ukprn = Annotated[str, StringConstraints(pattern=r"^[0-9]{8}$")]
Uln = Annotated[str, StringConstraints(pattern=r"^[0-9]{10}$")]
UkPostcode = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}$")
]
IpAddress = Annotated[
    str,
    StringConstraints(min_length=2, max_length=45, pattern=ip_address_pattern()),
    Field(json_schema_extra={"expected": "an IPv4 or IPv6 address"}),
]
EARLIEST_EVENT = datetime(1990, 1, 1, tzinfo=UTC)
"""Events before this are clock or format errors (also keeps time-zone arithmetic in range)."""
LATEST_EVENT = datetime(2100, 1, 1, tzinfo=UTC)


class LrsChannel(StrEnum):
    portal = "portal"
    webservice = "webservice"
    batch = "batch"


class NpdChannel(StrEnum):
    srs = "srs"
    direct_supply = "direct_supply"
    home_office_match = "home_office_match"
    internal = "internal"


class ResponseCode(StrEnum):
    """LRS response codes that carry meaning for detection (others are passed through)."""

    no_match = "WSRC0001"
    too_many = "WSRC0002"
    possible_match = "WSRC0003"
    exact_match = "WSRC0004"
    linked_match = "WSRC0022"
    opted_out = "WSEC0206"
    not_verified = "WSEC0208"


LRS_OPERATIONS: tuple[str, ...] = (
    "learnerByULN",
    "learnerByDemographics",
    "registerSingleLearner",
    "updateSingleLearner",
    "submitBatchRegistration",
    "getBatchRegistrationOutput",
    "submitVerifyBatch",
    "getVerifyBatchOutput",
    "retrieveULNs",
    "verifyLearner",
    "LearnerByUln",
    "GetLearnerLearningEvents",
    "UpdateLearnerSubsetFields",
    "ViewAudit",
    "GetOrganisation",
)
"""Operation names known from the public LRS client code; unknown names are kept, not refused."""


class LrsEvent(BaseModel):
    """One LRS web-service, portal or batch call, as delivered (input contract)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    occurred_at: AwareDatetime = Field(ge=EARLIEST_EVENT, lt=LATEST_EVENT)
    ukprn: Ukprn
    user_name: str = Field(min_length=1, max_length=256)
    channel: LrsChannel
    operation: str = Field(min_length=1, max_length=64)
    uln: Uln | None = Field(default=None, json_schema_extra={"personal": True})
    dob: date | None = Field(default=None, json_schema_extra={"personal": True})
    postcode: UkPostcode | None = Field(default=None, json_schema_extra={"personal": True})
    response_code: str = Field(min_length=1, max_length=16)
    result_count: int = Field(ge=0)
    batch_size: int | None = Field(default=None, ge=1)
    client_ip: IpAddress
    user_agent: str = Field(default="", max_length=2048)


class NpdEvent(BaseModel):
    """One NPD query or extract, as delivered (input contract)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    occurred_at: AwareDatetime = Field(ge=EARLIEST_EVENT, lt=LATEST_EVENT)
    org_id: str = Field(min_length=1, max_length=32)
    user_name: str = Field(min_length=1, max_length=256)
    agreement_ref: str | None = Field(default=None, max_length=32)
    channel: NpdChannel
    dataset: str = Field(min_length=1, max_length=64)
    items: str = Field(min_length=1, description="';'-separated NPD item names")
    min_identifiability: int = Field(ge=1, le=5)
    max_sensitivity: str = Field(pattern=r"^[A-E]$")
    year_from: int = Field(ge=1990, le=2100)
    year_to: int = Field(ge=1990, le=2100)
    rows_returned: int = Field(ge=0)


class LakeProvenance(BaseModel):
    """Where a lake row came from: the delivery, file and line, so any figure can be traced."""

    event_date: date = Field(description="Calendar date of occurred_at in Europe/London")
    delivery_day: date
    source_file: str
    source_line: int = Field(ge=1)


class LrsLakeEvent(LakeProvenance):
    """An LRS event as stored in the lake: no ULN, date of birth or postcode in clear."""

    event_id: str
    occurred_at: datetime = Field(description="UTC")
    ukprn: str
    user_name: str
    channel: str
    operation: str
    learner_pid: str | None = Field(
        default=None, description="HMAC-SHA256 pseudonym of the ULN (hex, 128 bits)"
    )
    uln_block_pid: str | None = Field(
        default=None,
        description="Pseudonym of the ULN's first 7 digits: reveals sweeps of number ranges",
    )
    uln_valid: bool | None = Field(
        default=None, description="ULN check digit is valid (None when no ULN was sent)"
    )
    learner_age: int | None = Field(default=None, description="Whole years at query time")
    postcode_area: str | None = Field(default=None, description="Leading letters, e.g. LS")
    response_code: str
    result_count: int
    batch_size: int | None = None
    client_ip: str
    user_agent: str


class NpdLakeEvent(LakeProvenance):
    """An NPD event as stored in the lake (NPD events carry no learner-level data)."""

    event_id: str
    occurred_at: datetime = Field(description="UTC")
    org_id: str
    user_name: str
    agreement_ref: str | None = None
    channel: str
    dataset: str
    items: str
    min_identifiability: int
    max_sensitivity: str
    year_from: int
    year_to: int
    rows_returned: int


def personal_fields(model: type[BaseModel]) -> list[str]:
    """Names of the fields of ``model`` that hold personal data and never reach disk."""
    return [
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("personal")
    ]
