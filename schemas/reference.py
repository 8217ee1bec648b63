"""Reference data: the organisation register and NPD data-sharing agreements."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class OrgType(StrEnum):
    school = "school"
    academy = "academy"
    fe_college = "fe_college"
    training_provider = "training_provider"
    he_provider = "he_provider"
    local_authority = "local_authority"
    awarding_org = "awarding_org"
    prison_education = "prison_education"
    research = "research"
    government = "government"
    commercial = "commercial"


class OrgStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    revoked = "revoked"
    closed = "closed"


class Region(StrEnum):
    """The nine English regions (ITL1)."""

    north_east = "North East"
    north_west = "North West"
    yorkshire = "Yorkshire and The Humber"
    east_midlands = "East Midlands"
    west_midlands = "West Midlands"
    east = "East of England"
    london = "London"
    south_east = "South East"
    south_west = "South West"


class Organisation(BaseModel):
    """One row of ``reference/organisations.csv``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    org_id: str = Field(min_length=1, max_length=32)
    ukprn: str | None = Field(default=None, pattern=r"^\d{8}$")
    name: str = Field(min_length=1, max_length=256)
    org_type: OrgType
    region: Region
    postcode_area: str = Field(pattern=r"^[A-Z]{1,2}$")
    registered_on: date
    status: OrgStatus
    status_changed_on: date | None = None
    previous_name: str | None = None
    name_changed_on: date | None = None
    expected_learners: int = Field(ge=0)


class Agreement(BaseModel):
    """One row of ``reference/agreements.csv``: what an NPD agreement allows."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    agreement_ref: str = Field(min_length=1, max_length=32)
    org_id: str = Field(min_length=1, max_length=32)
    datasets: str = Field(min_length=1, description="';'-separated dataset names")
    min_identifiability: int = Field(ge=1, le=5, description="Most identifying level allowed")
    max_sensitivity: str = Field(pattern=r"^[A-E]$", description="Most sensitive level allowed")
    year_from: int = Field(ge=1990, le=2100)
    year_to: int = Field(ge=1990, le=2100)
    max_rows: int = Field(ge=0)
    valid_from: date
    valid_to: date
    purpose: str = ""

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Agreement:
        if self.year_to < self.year_from:
            raise ValueError(f"year_to {self.year_to} is before year_from {self.year_from}")
        if self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self
