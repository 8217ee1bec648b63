"""Parameters and results of ``accesswatch evaluate``."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SCENARIO_BEHAVIOURS: dict[str, tuple[str, ...]] = {
    "age_verification_reseller": (
        "search_share", "demog_share", "verify_share", "register_share", "followthrough",
        "older_adult", "adult_share", "age_median", "out_region", "area_count", "script",
        "weekend", "out_of_hours", "night", "name_change", "RES-",
    ),
    "enumeration": (
        "invalid_uln", "sweep", "no_match", "repeat_learner", "block", "ENU-", "ACC-03",
    ),
    "shared_credentials": (
        "user_ips", "ips_hour", "user_uas", "ips_7d", "learners_per_user", "max_user_learners",
        "new_ip", "new_ua", "SHR-", "ACC-01", "ACC-02",
    ),
    "stealth_reseller": (
        "search_share", "demog_share", "verify_share", "followthrough", "followed_so_far",
        "never_seen_again", "older_adult", "adult_share", "out_region", "area_count", "RES-",
        "ACC-06",
    ),
    "revoked_access": ("inactive", "status", "ENT-01"),
    "dormant_reactivation": ("silent", "dormant", "active_days", "DOR-"),
    "plr_browsing": ("plr", "PLR-", "ACC-04"),
    "npd_overreach": ("npd", "ENT-0"),
    "unregistered_caller": ("unregistered", "REG-"),
}  # fmt: skip
"""Feature-name or rule-id fragments that name each scenario's defining behaviour."""
# a reseller at 10-20 a day: the reseller's behaviour, and its searched people not followed up
DEFAULT_SCENARIO_BEHAVIOURS["low_volume_reseller"] = (
    *DEFAULT_SCENARIO_BEHAVIOURS["age_verification_reseller"],
    "followed_so_far",
    "never_seen_again",
)


class EvaluationConfig(BaseModel):
    """How rankings are judged, and how the two baselines are built."""

    model_config = ConfigDict(frozen=True)

    ks: tuple[int, ...] = Field(default=(10, 20, 50), description="List lengths judged")
    detect_k: int = Field(default=20, ge=1, le=1_000, description="K for 'detected' and delay")
    volume_multiple: float = Field(
        default=3.0, gt=1, le=100, description="Volume alarm: count above this x baseline"
    )
    volume_history_days: int = Field(default=28, ge=1, le=365)
    iforest_seed: int = Field(default=0, ge=0)
    iforest_estimators: int = Field(default=200, ge=10, le=5_000)
    behaviours: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_SCENARIO_BEHAVIOURS)
    )
    budget_ks: tuple[int, ...] = Field(
        default=(10, 20), description="Review budgets judged: the top K a day an analyst reads"
    )
    onset_k: int = Field(
        default=10, ge=1, le=1_000, description="Budget for 'in the top K soon after onset'"
    )
    onset_days: int = Field(
        default=1, ge=0, le=60, description="'Soon after onset': at most this many days after"
    )


class LabelResult(BaseModel):
    """How one labelled organisation fared under one method."""

    org_id: str
    scenario: str
    start_date: date
    best_rank: int | None = Field(description="Best rank on any day after onset")
    first_detected: date | None = Field(description="First day in the top detect_k")
    days_to_detect: int | None
    days_to_detect_alone: int | None = Field(
        default=None,
        description="Days from onset to the top detect_k when the other labelled orgs are "
        "left out of the ranking (only legitimate orgs can keep it out)",
    )
    top_reason: str = ""
    reason_matches: bool | None = None


class BudgetLabel(BaseModel):
    """One labelled misuse organisation under a fixed review budget (the budget view)."""

    org_id: str
    scenario: str
    start_date: date
    days_to_top: dict[int, int | None] = Field(
        description="Per budget K: days from onset to its first day in the top K (None: never)"
    )
    unlabelled_above: int = Field(
        description="Most unlabelled orgs (neither misuse nor decoy) ranked above it on a day"
    )
    unlabelled_worst_day: date | None = None
    legitimate_above: int = Field(
        description="Most legitimate orgs (decoy or unlabelled) ranked above it on a day"
    )
    legitimate_worst_day: date | None = None


class BudgetResult(BaseModel):
    """Figures at a fixed review budget over the days after the first onset."""

    recall: dict[int, float] = Field(
        description="Per K: mean over days of the share of active misuse orgs in the top K"
    )
    onset_k: int
    onset_days: int
    found_soon: int = Field(description="Misuse orgs in the top onset_k within onset_days")
    missed_soon: list[str] = Field(default_factory=list, description="The misuse orgs not")
    decoy_days_above_misuse: int = Field(
        description="Days on which a labelled decoy outranks at least one active misuse org"
    )
    labels: list[BudgetLabel]
    account_recall: float | None = Field(
        default=None,
        description="Mean over days of the share of active labelled misuse accounts in the "
        "account ranking's top onset_k (None: no account labels or no account scores)",
    )
    accounts_found: int | None = Field(
        default=None, description="Labelled misuse accounts ever in the account top onset_k"
    )
    accounts: int | None = Field(default=None, description="Labelled misuse accounts")


class MethodResult(BaseModel):
    """Figures of one ranking method over the days after the first onset."""

    method: str
    days: int
    precision: dict[int, float] = Field(description="Mean precision@K over days after onset")
    precision_of_possible: dict[int, float] = Field(
        description="Mean of hits / min(K, labelled orgs active that day)"
    )
    recall: dict[int, float] = Field(description="Mean recall@K over days after onset")
    max_decoys: dict[int, int] = Field(description="Most decoys in the top K on any day")
    mean_decoys: dict[int, float]
    decoy_days: dict[str, int] = Field(
        default_factory=dict,
        description="Per decoy kind: days on which a decoy of that kind was in the top detect_k",
    )
    labels: list[LabelResult]
    budget: BudgetResult | None = None

    @property
    def detected(self) -> int:
        return sum(1 for label in self.labels if label.first_detected is not None)

    @property
    def median_days_to_detect(self) -> float | None:
        delays = sorted(x.days_to_detect for x in self.labels if x.days_to_detect is not None)
        if not delays:
            return None
        mid = len(delays) // 2
        return float(delays[mid]) if len(delays) % 2 else (delays[mid - 1] + delays[mid]) / 2
