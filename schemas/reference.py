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
    """One row of ``reference/organisations.csv``.

    Only ``org_id``, ``name``, ``org_type`` and ``status`` are required (the data contract
    in the README); every other field may be empty, and empty has a meaning:

    - ``ukprn``: no LRS access (an NPD-only organisation); its LRS calls cannot be matched.
    - ``region`` / ``postcode_area``: home region unknown; "outside the org's region"
      features are NULL for it (no evidence), never "every learner is outside".
    - ``registered_on``: registration date unknown; ``org_age_days`` is NULL (rules reading
      it, e.g. DOR-01 or LEG-03, do not fire) and the silent gap is counted from the first
      lake day.
    - ``status_changed_on``: the status holds since before any data (a suspended org's calls
      all count as calls while inactive).
    - ``previous_name`` / ``name_changed_on``: never renamed (as far as the register knows).
    - ``expected_learners``: size unknown; the size band is "unknown" (NULL) and the org's
      peers are its org type (then all orgs when the type has too few active members).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    org_id: str = Field(min_length=1, max_length=32)
    ukprn: str | None = Field(default=None, pattern=r"^\d{8}$")
    name: str = Field(min_length=1, max_length=256)
    org_type: OrgType
    region: Region | None = None
    postcode_area: str | None = Field(default=None, pattern=r"^[A-Z]{1,2}$")
    registered_on: date | None = None
    status: OrgStatus
    status_changed_on: date | None = None
    previous_name: str | None = None
    name_changed_on: date | None = None
    expected_learners: int | None = Field(default=None, ge=0)


class Agreement(BaseModel):
    """One row of ``reference/agreements.csv``: what an NPD agreement allows.

    Required: ``agreement_ref``, ``org_id``, ``valid_from`` and ``valid_to``. A limit left
    empty is a limit the register does not record, and its check is not applied (a query
    cannot be found outside a limit nobody stated): empty ``datasets`` -> any dataset;
    empty ``min_identifiability`` / ``max_sensitivity`` -> no item limit; empty
    ``year_from`` / ``year_to`` -> no bound on that side; empty ``max_rows`` -> no row limit.
    Queries must still cite the agreement (ENT-02) and fall inside its dates (ENT-03).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    agreement_ref: str = Field(min_length=1, max_length=32)
    org_id: str = Field(min_length=1, max_length=32)
    datasets: str | None = Field(default=None, description="';'-separated dataset names")
    min_identifiability: int | None = Field(
        default=None, ge=1, le=5, description="Most identifying level allowed"
    )
    max_sensitivity: str | None = Field(
        default=None, pattern=r"^[A-E]$", description="Most sensitive level allowed"
    )
    year_from: int | None = Field(default=None, ge=1990, le=2100)
    year_to: int | None = Field(default=None, ge=1990, le=2100)
    max_rows: int | None = Field(default=None, ge=0)
    valid_from: date
    valid_to: date
    purpose: str = ""

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Agreement:
        if (
            self.year_from is not None
            and self.year_to is not None
            and self.year_to < self.year_from
        ):
            raise ValueError(f"year_to {self.year_to} is before year_from {self.year_from}")
        if self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


class ReferenceProblem(BaseModel):
    """A reference row that was quarantined: where it is, which field failed and why."""

    model_config = ConfigDict(frozen=True)

    table: str = Field(description="organisations or agreements")
    source_file: str = Field(description="Path relative to the landing folder")
    line: int = Field(ge=1, description="Line of the file (the header is line 1)")
    field: str
    reason: str
    key: str | None = Field(default=None, description="org_id or agreement_ref of the row")
    org_id: str | None = Field(default=None, description="The organisation the row is about")
    run_id: str = ""

    def describe(self) -> str:
        """One line an operator can act on, e.g. ``reference/organisations.csv line 14
        (org ORG00012): expected_learners is not a whole number``."""
        who = f" (org {self.org_id})" if self.org_id else ""
        if self.table == "agreements" and self.key:
            who = f" (agreement {self.key}" + (f", org {self.org_id})" if self.org_id else ")")
        return f"{self.source_file} line {self.line}{who}: {self.reason}"
