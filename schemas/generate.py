"""Parameters of the synthetic-world generator and what it reports back.

The generator (``evaluation.generate``) writes a landing folder in the data contract (the
README's) plus ground truth (``truth/labels.csv``, ``truth/decoys.csv``). Every knob it
has lives here with declared bounds; per-org-type behaviour rates live as typed constants
in ``evaluation/generate/behaviour.py``.

A scenario's ``onset`` is either a day offset from ``WorldConfig.start`` (0 = first day) or
a calendar date; ``None`` lets the generator draw it inside the window (never on day 0 when
the window is longer than one day), so the delay from onset to detection can be measured.

``randomise`` draws every behaviour parameter of every org type profile, scenario and decoy
from the documented ranges of ``evaluation/generate/randomise.py`` (``docs/generator.md``)
and plays ``EXTRA_SCENARIOS`` and ``EXTRA_DECOYS``; the draws land in
``truth/parameters.json``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DayOffset = Annotated[int, Field(ge=0, le=36_500)]
Onset = DayOffset | date | None

SCENARIOS: tuple[str, ...] = (
    "age_verification_reseller",
    "enumeration",
    "shared_credentials",
    "revoked_access",
    "dormant_reactivation",
    "plr_browsing",
    "npd_overreach",
)
"""Misuse scenario names as written to ``truth/labels.csv`` (played in every world)."""

EXTRA_SCENARIOS: tuple[str, ...] = ("stealth_reseller", "low_volume_reseller")
"""Misuse shapes played only when ``WorldConfig.extra_shapes`` or ``randomise`` is on (off by
default so that worlds generated before they existed, the committed sample included, keep
their bytes)."""
ALL_SCENARIOS: tuple[str, ...] = SCENARIOS + EXTRA_SCENARIOS

UNREGISTERED_CALLER = "unregistered_caller"
"""The label of an organisation left out of the register (``RealFeedQuirks``)."""

DECOYS: tuple[str, ...] = (
    "enrolment_surge",
    "results_day_batch",
    "he_clearing",
    "online_provider",
    "new_provider",
    "evening_provision",
    "mis_supplier",
    "client_upgrade",
    "research_heavy",
    "home_office_match",
)
"""Legitimate look-alike kinds as written to ``truth/decoys.csv`` (in every world)."""

EXTRA_DECOYS: tuple[str, ...] = ("national_distance_learning",)
"""Look-alikes played only with ``extra_shapes`` or ``randomise`` (see ``EXTRA_SCENARIOS``)."""
ALL_DECOYS: tuple[str, ...] = DECOYS + EXTRA_DECOYS

NpdOverreachKind = Literal["identifying", "sensitive", "rows", "dataset", "expired", "no_agreement"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioParams(_Params):
    """What every misuse scenario shares: how many instances, when it starts, how long."""

    per_10k_orgs: float = Field(
        default=3.0, ge=0, le=200, description="Instances per 10,000 organisations"
    )
    min_count: int = Field(
        default=1, ge=0, le=50, description="At least this many instances in any world"
    )
    onset: Onset = Field(default=None, description="Day offset or date; None = drawn in window")
    duration_days: int | None = Field(
        default=None, ge=1, le=36_500, description="Days the misuse lasts; None = to the end"
    )


class AgeVerificationReseller(ScenarioParams):
    """The Trustopia shape: demographic searches / verify calls of adults, nationwide, steady."""

    intensity: float = Field(default=45.0, ge=1, le=5_000, description="Searches per day")
    verify_share: float = Field(default=0.3, ge=0, le=1, description="verifyLearner share")
    weekend_factor: float = Field(default=0.85, ge=0, le=2, description="Weekend day volume")
    evening_share: float = Field(default=0.3, ge=0, le=1, description="Calls 18:00-24:00")
    age_min: int = Field(default=25, ge=16, le=80)
    age_max: int = Field(default=70, ge=16, le=80)
    match_rate: float = Field(default=0.6, ge=0, le=1, description="Exact-match share")
    residual_activity: float = Field(
        default=0.2, ge=0, le=1, description="Former provider's normal use before onset (share)"
    )


class Enumeration(ScenarioParams):
    """learnerByULN sweeps of number ranges: invalid check digits, no match, no repeats."""

    intensity: float = Field(default=300.0, ge=1, le=100_000, description="Lookups per day")
    invalid_share: float = Field(
        default=0.7, ge=0, le=1, description="Share sent with the raw (mostly invalid) number"
    )
    max_step: int = Field(default=3, ge=1, le=1_000, description="Largest gap between numbers")
    hit_rate: float = Field(default=0.2, ge=0, le=1, description="Exact matches among valid")
    bursts_per_day: int = Field(default=2, ge=1, le=24)


class SharedCredentials(ScenarioParams):
    """One account of a normal org used from many addresses and agents, at odd hours."""

    intensity: float = Field(default=150.0, ge=1, le=10_000, description="Extra calls per day")
    n_ips: int = Field(default=25, ge=2, le=1_000, description="Addresses the account is used from")
    n_agents: int = Field(default=6, ge=2, le=50, description="User agents in use")
    night_share: float = Field(default=0.35, ge=0, le=1, description="Calls 22:00-06:00")


class RevokedAccess(ScenarioParams):
    """A suspended, revoked or closed organisation that is still querying."""

    intensity: float = Field(default=60.0, ge=1, le=10_000, description="Calls per day")
    status_change_min_days: int = Field(
        default=20, ge=1, le=3_650, description="Status changed at least this long before onset"
    )
    status_change_max_days: int = Field(
        default=240, ge=1, le=3_650, description="... and at most this long before onset"
    )

    @model_validator(mode="after")
    def _ordered(self) -> RevokedAccess:
        if self.status_change_max_days < self.status_change_min_days:
            raise ValueError("status_change_max_days is below status_change_min_days")
        return self


class DormantReactivation(ScenarioParams):
    """An organisation silent for months that suddenly becomes active."""

    intensity: float = Field(default=80.0, ge=1, le=10_000, description="Calls per day")
    silent_days_before_window: int = Field(
        default=180, ge=30, le=3_650, description="Days of silence before the window began"
    )


class PlrBrowsing(ScenarioParams):
    """PLR reads of learners with no link to the org: far away, wrong ages, never registered."""

    intensity: float = Field(default=25.0, ge=1, le=5_000, description="PLR reads per day")
    age_min: int = Field(default=28, ge=4, le=80)
    age_max: int = Field(default=75, ge=4, le=80)
    lookup_share: float = Field(
        default=0.3, ge=0, le=1, description="Extra LearnerByUln calls per PLR read"
    )


class NpdOverreach(ScenarioParams):
    """NPD queries beyond the agreement: items, sensitivity, rows, datasets, dates, none."""

    intensity: float = Field(default=3.0, ge=0.1, le=1_000, description="Overreach queries/day")
    row_multiplier: float = Field(default=8.0, ge=1.5, le=1_000, description="x max_rows")
    kinds: tuple[NpdOverreachKind, ...] = Field(
        default=("identifying", "sensitive", "rows", "dataset", "expired", "no_agreement"),
        min_length=1,
        description="Kinds cycled over instances (an instance mixes its kind with one more)",
    )


class StealthReseller(ScenarioParams):
    """A real, established training provider whose few existing staff accounts add
    demographic searches / verify calls of adults nationwide, in office hours, on top of the
    provider's normal work; the people searched are never registered by it."""

    per_10k_orgs: float = Field(default=3.0, ge=0, le=200)
    min_count: int = Field(default=2, ge=0, le=50)
    intensity: float = Field(default=22.0, ge=1, le=5_000, description="Extra calls per day")
    accounts_min: int = Field(default=2, ge=1, le=20, description="Existing accounts used")
    accounts_max: int = Field(default=4, ge=1, le=20)
    verify_share: float = Field(default=0.3, ge=0, le=1, description="verifyLearner share")
    weekend_factor: float = Field(default=0.05, ge=0, le=2, description="Weekend day volume")
    age_min: int = Field(default=19, ge=16, le=80)
    age_max: int = Field(default=70, ge=16, le=80)
    match_rate: float = Field(default=0.6, ge=0, le=1, description="Exact-match share")

    @model_validator(mode="after")
    def _accounts_ordered(self) -> StealthReseller:
        if self.accounts_max < self.accounts_min:
            raise ValueError("accounts_max is below accounts_min")
        return self


class LowVolumeReseller(AgeVerificationReseller):
    """The age-verification reseller at a low rate (10-20 searches a day)."""

    per_10k_orgs: float = Field(default=3.0, ge=0, le=200)
    min_count: int = Field(default=1, ge=0, le=50)
    intensity: float = Field(default=15.0, ge=1, le=5_000, description="Searches per day")


class Scenarios(_Params):
    """One parameter set per misuse scenario."""

    age_verification_reseller: AgeVerificationReseller = AgeVerificationReseller()
    enumeration: Enumeration = Enumeration()
    shared_credentials: SharedCredentials = SharedCredentials()
    revoked_access: RevokedAccess = RevokedAccess()
    dormant_reactivation: DormantReactivation = DormantReactivation()
    plr_browsing: PlrBrowsing = PlrBrowsing()
    npd_overreach: NpdOverreach = NpdOverreach()
    stealth_reseller: StealthReseller = StealthReseller()
    low_volume_reseller: LowVolumeReseller = LowVolumeReseller()


class DecoyParams(_Params):
    """How many organisations of one legitimate look-alike kind, and how strong."""

    per_10k_orgs: float = Field(default=4.0, ge=0, le=500)
    min_count: int = Field(default=1, ge=0, le=50)
    strength: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Kind-specific: surge multiplier, schools per supplier, query rate factor",
    )


class DistanceLearning(DecoyParams):
    """A national distance-learning provider: searches adults in every region, into the
    evening and at weekends, mostly through its web-service account, then registers or
    updates most of the people it finds a few days later (never the same day), looks them
    up again weeks later and reads their records, beside an existing national cohort."""

    per_10k_orgs: float = Field(default=4.0, ge=0, le=500)
    min_count: int = Field(default=3, ge=0, le=50)
    searches_per_day: float = Field(
        default=120.0, ge=1, le=10_000, description="New people searched per weekday"
    )
    weekend_factor: float = Field(default=0.6, ge=0, le=2, description="Weekend day volume")
    evening_share: float = Field(default=0.25, ge=0, le=1, description="Searches 18:00-23:00")
    service_share: float = Field(
        default=0.8, ge=0, le=1, description="Searches through the web-service account"
    )
    age_min: int = Field(default=19, ge=16, le=80)
    age_max: int = Field(default=60, ge=16, le=80)
    follow_share: float = Field(
        default=0.65, ge=0, le=1, description="Searched people later registered or updated"
    )
    follow_lag_min: int = Field(default=1, ge=0, le=60, description="Days to that, at least")
    follow_lag_max: int = Field(default=5, ge=0, le=60, description="... and at most")
    revisit_share: float = Field(
        default=0.6, ge=0, le=1, description="Searched people looked up again later"
    )
    revisit_lag_min: int = Field(default=3, ge=1, le=120)
    revisit_lag_max: int = Field(default=28, ge=1, le=120)
    read_share: float = Field(
        default=0.5, ge=0, le=1, description="Of those looked up again, records also read"
    )
    cohort: int = Field(
        default=3000, ge=100, le=200_000, description="Existing national cohort (learners)"
    )

    @model_validator(mode="after")
    def _lags_ordered(self) -> DistanceLearning:
        if self.follow_lag_max < self.follow_lag_min:
            raise ValueError("follow_lag_max is below follow_lag_min")
        if self.revisit_lag_max < self.revisit_lag_min:
            raise ValueError("revisit_lag_max is below revisit_lag_min")
        return self


class Decoys(_Params):
    """Legitimate look-alikes (``truth/decoys.csv``); ``strength`` meaning is per kind."""

    enrolment_surge: DecoyParams = DecoyParams(strength=7.0)
    results_day_batch: DecoyParams = DecoyParams(strength=5.0)
    he_clearing: DecoyParams = DecoyParams(strength=5.0)
    online_provider: DecoyParams = DecoyParams(strength=1.0)
    new_provider: DecoyParams = DecoyParams(strength=1.0)
    evening_provision: DecoyParams = DecoyParams(strength=1.0)
    mis_supplier: DecoyParams = DecoyParams(per_10k_orgs=2.0, strength=6.0)  # schools each
    client_upgrade: DecoyParams = DecoyParams(strength=1.0)
    research_heavy: DecoyParams = DecoyParams(strength=10.0)
    home_office_match: DecoyParams = DecoyParams(per_10k_orgs=0.0, min_count=1, strength=1.0)
    national_distance_learning: DistanceLearning = DistanceLearning()


class DeliveryParams(_Params):
    """How a day's events are cut into files (formats, column order, extra columns)."""

    files_min: int = Field(default=3, ge=1, le=100, description="LRS files per day, at least")
    files_max: int = Field(default=6, ge=1, le=100, description="LRS files per day, at most")
    jsonl_share: float = Field(default=0.4, ge=0, le=1, description="Files written as JSONL")
    uncompressed_share: float = Field(default=0.08, ge=0, le=1, description="Files not gzipped")
    extra_column_share: float = Field(default=0.25, ge=0, le=1, description="Files with an extra")
    local_offset_share: float = Field(
        default=0.2, ge=0, le=1, description="Orgs whose timestamps carry the London offset"
    )
    gzip_level: int = Field(default=1, ge=1, le=9)
    max_delay_days: int = Field(default=2, ge=1, le=14, description="Late events arrive by then")
    cross_delivery_duplicates: float = Field(
        default=0.4, ge=0, le=1, description="Share of duplicates repeated in the next delivery"
    )

    @model_validator(mode="after")
    def _files_ordered(self) -> DeliveryParams:
        if self.files_max < self.files_min:
            raise ValueError(f"files_max {self.files_max} is below files_min {self.files_min}")
        return self


class RealFeedQuirks(_Params):
    """What real feeds send that the default generator does not. Off by default (the
    committed sample in ``data/sample`` was generated without it and must stay byte-equal);
    ``enabled`` turns every quirk below on at once (each can then be tuned or turned off):

    - a source with no rows on a day is delivered as a header-only CSV file, never as a
      missing folder, and NPD has no queries at weekends (quiet days);
    - NPD-only organisations (no UKPRN- research, government, commercial) have an empty
      ``expected_learners``; a share of the other uninvolved orgs have an empty region,
      postcode area and registration date;
    - some organisations make calls but are left out of ``organisations.csv`` (LRS callers
      and NPD requesters the register does not hold); ``truth/labels.csv`` lists them as
      ``unregistered_caller`` under the id the pipeline gives them (``UKPRN-<ukprn>`` for an
      LRS caller, the NPD org_id otherwise);
    - the reference files have a shuffled column order and an extra unknown column.
    Event files already have shuffled column orders and extra columns (``DeliveryParams``).
    """

    enabled: bool = Field(default=False, description="Turn real-feed quirks on")
    header_only_quiet_days: bool = Field(
        default=True, description="A day with no rows is a header-only file, not no file"
    )
    npd_quiet_weekends: bool = Field(default=True, description="No NPD queries at weekends")
    npd_only_without_size: bool = Field(
        default=True, description="Orgs without a UKPRN have an empty expected_learners"
    )
    empty_optional_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of other uninvolved orgs with empty region, postcode area and "
        "registration date",
    )
    unregistered_lrs: int = Field(
        default=2, ge=0, le=100, description="LRS callers left out of the register"
    )
    unregistered_npd: int = Field(
        default=1, ge=0, le=100, description="NPD requesters left out of the register"
    )
    shuffled_reference_columns: bool = Field(
        default=True, description="Reference files with shuffled columns and an extra one"
    )


class WorldConfig(_Params):
    """Everything that defines one generated world; the same config gives the same bytes."""

    orgs: int = Field(default=400, ge=100, le=50_000, description="Organisations in the register")
    days: int = Field(default=42, ge=1, le=3_660, description="Days of events from start")
    start: date = Field(default=date(2026, 8, 10), description="First day of events")
    seed: int = Field(default=7, ge=0, le=2**63 - 1)
    malformed_rate: float = Field(default=0.0, ge=0, le=0.2, description="Malformed row share")
    html_agent_rate: float = Field(
        default=0.0005, ge=0, le=0.1, description="Rows whose user agent carries HTML/script"
    )
    late_rate: float = Field(default=0.01, ge=0, le=0.5, description="Events delivered late")
    duplicate_rate: float = Field(default=0.005, ge=0, le=0.2, description="Rows repeated")
    volume_scale: float = Field(
        default=1.0, gt=0, le=10, description="Multiplier on normal LRS volumes (not scenarios)"
    )
    scenario_scale: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="Multiplier on LRS scenario intensities (keep misuse-to-peer ratios "
        "when volume_scale shrinks a small sample)",
    )
    scenarios: Scenarios = Scenarios()
    decoys: Decoys = Decoys()
    delivery: DeliveryParams = DeliveryParams()
    real_feed: RealFeedQuirks = RealFeedQuirks()
    extra_shapes: bool = Field(
        default=False,
        description="Also play EXTRA_SCENARIOS and EXTRA_DECOYS (on whenever randomise is)",
    )
    randomise: bool = Field(
        default=False,
        description="Draw every behaviour parameter of every org type profile, scenario "
        "and decoy from wide ranges (evaluation/generate/randomise.py), deterministically "
        "from the seed; the draws are written to truth/parameters.json",
    )
    onset_range: tuple[float, float] = Field(
        default=(0.02, 0.85),
        description="With randomise: scenario onsets drawn uniformly in this share of the "
        "window (never day 0 when the window is longer than one day)",
    )

    @model_validator(mode="after")
    def _onset_range_ordered(self) -> WorldConfig:
        lo, hi = self.onset_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"onset_range {self.onset_range} is not 0 <= low <= high <= 1")
        return self

    @property
    def plays_extra(self) -> bool:
        """Whether the extra scenarios and decoys are played."""
        return self.extra_shapes or self.randomise

    def onset_day(self, onset: Onset, fallback: int) -> int:
        """``onset`` as a day offset clamped into the window; ``fallback`` when None."""
        day = fallback if onset is None else onset
        if isinstance(day, date):
            day = (day - self.start).days
        return min(max(int(day), 0), self.days - 1)


class WorldSummary(BaseModel):
    """What :func:`evaluation.generate.generate_world` wrote."""

    out: Path
    orgs: int = Field(ge=0)
    agreements: int = Field(ge=0)
    days: int = Field(ge=0)
    lrs_events: int = Field(ge=0, description="Distinct LRS events generated")
    npd_events: int = Field(ge=0, description="Distinct NPD events generated")
    rows_written: dict[str, int] = Field(default_factory=dict, description="Rows per source")
    malformed_rows: int = Field(ge=0)
    malformed_by_kind: dict[str, int] = Field(default_factory=dict)
    duplicate_rows: int = Field(ge=0, description="Extra copies of already-written events")
    late_events: int = Field(ge=0, description="Events delivered after their own day")
    html_agent_rows: int = Field(ge=0)
    files: int = Field(ge=0)
    labels: int = Field(ge=0)
    decoys: int = Field(ge=0)
    scenario_events: dict[str, int] = Field(default_factory=dict, description="Per scenario")
    unregistered: list[str] = Field(
        default_factory=list,
        description="Org ids (as the pipeline names them) left out of the register",
    )
    header_only_files: int = Field(ge=0, default=0, description="Header-only delivery files")
