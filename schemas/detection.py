"""Detection: profile parameters, rule configs, detector settings, and output records.

Every threshold and weight used by ``pipeline.profile``, ``detectors/`` and
``pipeline.rank`` lives here with declared bounds. Committed defaults are the field
defaults; ``detectors/rules.toml`` holds the rules and may override any section
(``[profile]``, ``[models]``, ``[ensemble]``, ``[ranking]``, ``[triage]``,
``[learning]``); see
:func:`detectors.rules.load_config`.

Output records follow the output contract of ``DESIGN.md`` (``suspects``): rank, org_id,
org_name, org_type, score 0-100, rules, reasons, accounts, first_flagged, triage_status.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.triage import TriageDecision

# --- Profiles -----------------------------------------------------------------------------


class ProfileConfig(BaseModel):
    """Parameters of the usage profiles (``pipeline.profile``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learner_sample_size: int = Field(
        default=256,
        ge=16,
        le=100_000,
        description=(
            "k of the bottom-k learner sample kept per org and day: windows count distinct "
            "learners exactly below k and estimate above it (relative error about 1/sqrt(k))"
        ),
    )
    followup_lag_days: int = Field(
        default=7,
        ge=1,
        le=14,
        description=(
            "A search counts as followed when the org (any account) calls about the same "
            "learner on the search day (registration, update, record read) or on the next "
            "this many days; a search's lag window is over this many days after it"
        ),
    )
    min_followup_searches: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="Fewer sampled searches in a cohort: lagged follow-through is NULL",
    )
    summary_retention_days: int = Field(
        default=40,
        ge=35,
        le=3_650,
        description="Days of per-learner / per-address daily summaries kept before a profiled day",
    )
    office_start_hour: int = Field(default=8, ge=0, le=23, description="Working day starts")
    office_end_hour: int = Field(default=18, ge=1, le=24, description="Working day ends")
    night_start_hour: int = Field(default=22, ge=0, le=23, description="Night starts")
    night_end_hour: int = Field(default=6, ge=0, le=23, description="Night ends")
    adult_age: int = Field(default=19, ge=10, le=100, description="Age counted as adult")
    older_adult_age: int = Field(default=25, ge=10, le=100, description="Age past education")
    sweep_block_min_learners: int = Field(
        default=5,
        ge=2,
        le=1_000,
        description="Distinct ULNs in one 7-digit block within a day that make a sweep",
    )
    identifying_level: int = Field(
        default=2, ge=1, le=5, description="NPD identifiability at or below this is identifying"
    )
    recent_name_change_days: int = Field(
        default=365, ge=1, le=3_650, description="A change of name this recent counts as recent"
    )
    size_band_edges: tuple[int, ...] = Field(
        default=(150, 600, 2_500, 10_000),
        description="expected_learners edges of the peer-group size bands (ascending)",
    )
    min_peers: int = Field(
        default=8,
        ge=3,
        le=1_000,
        description="A peer group smaller than this widens to the org type, then to all orgs",
    )
    script_agent_pattern: str = Field(
        default=(
            r"(?i)(python-|curl/|wget/|go-http-client|okhttp|zeep|libwww-perl|httpie|"
            r"powershell|node-fetch|axios/|scrapy|java/\d+\.\d+\.\d+$|^$)"
        ),
        description="User agents of scripting tools no MIS ships (regular expression)",
    )
    share_scale_floor: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Smallest peer spread used for shares in robust z-scores",
    )
    log_scale_floor: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="Smallest peer spread used for log-counts in robust z-scores",
    )
    value_scale_floor: float = Field(
        default=1.0, gt=0, le=1_000, description="Smallest peer spread for other values (ages)"
    )
    z_clip: float = Field(default=20.0, gt=1, le=1_000, description="Robust z-scores are clipped")

    @field_validator("size_band_edges")
    @classmethod
    def _ascending(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if list(v) != sorted(set(v)):
            raise ValueError(f"size_band_edges must be strictly ascending, got {v}")
        return v


# --- Rules --------------------------------------------------------------------------------


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}
"""Most severe first: the sort key of rule hits wherever they are listed."""

LIST_TOP = 20
"""Rows of the ranked list that ``suspects`` (and the CLI) show by default."""
REPORT_TOP = 25
"""Suspects the report, the nightly summary and its artifacts describe."""
TIMELINE_DAYS = 28
"""Days of activity an explanation, a report card and an evidence pack show."""


class Operator(StrEnum):
    gt = ">"
    ge = ">="
    lt = "<"
    le = "<="
    eq = "=="
    ne = "!="


class Level(StrEnum):
    org = "org"
    account = "account"


class EvidenceKind(StrEnum):
    """Which of the day's events are shown as examples of a rule hit."""

    any = "any"
    search = "search"  # demographic searches and verify calls
    uln_lookup = "uln_lookup"
    invalid_uln = "invalid_uln"
    plr = "plr"
    out_of_hours = "out_of_hours"
    script_agent = "script_agent"
    npd = "npd"
    caller = "caller"  # any LRS call or NPD query of the org (who it is, not what it broke)


class Condition(BaseModel):
    """``feature operator threshold`` on one row of features (null never satisfies it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str = Field(min_length=1, max_length=128)
    operator: Operator
    threshold: float


class RuleConfig(BaseModel):
    """A declarative rule: a main condition, optional extra conditions and guards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Z]{2,5}-\d{2,3}$", description="e.g. ENT-01")
    description: str = Field(min_length=5, max_length=300)
    severity: Severity
    level: Level = Level.org
    feature: str = Field(min_length=1, max_length=128)
    operator: Operator
    threshold: float
    also: tuple[Condition, ...] = Field(
        default=(), description="Further conditions (all must hold)"
    )
    min_volume: float | None = Field(
        default=None, ge=0, description="Guard: the volume feature must be at least this"
    )
    volume_feature: str = Field(default="calls_7d", description="Feature the volume guard reads")
    min_peer_z: float | None = Field(
        default=None,
        description="Guard: the feature's peer z-score (``<feature>_pz``) must be at least this",
    )
    hard_fact: bool = Field(
        default=False, description="A breach of entitlement: always surfaces in the top list"
    )
    evidence: EvidenceKind = EvidenceKind.any
    message: str = Field(
        default="",
        max_length=300,
        description="Analyst text; ``{value}`` and ``{threshold}`` are filled in",
    )

    def conditions(self) -> tuple[Condition, ...]:
        main = Condition(feature=self.feature, operator=self.operator, threshold=self.threshold)
        return (main, *self.also)


class ExplanationConfig(BaseModel):
    """A declared pattern of lawful use that accounts for some unusual features.

    Where every ``when`` condition holds for an org (on its org-level features), the model
    detectors see the features named by ``explains`` at the peer norm for that org and its
    accounts. Rules always read the raw values, so an explanation never hides a rule hit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^LEG-\d{2,3}$", description="e.g. LEG-01")
    description: str = Field(min_length=5, max_length=300)
    when: tuple[Condition, ...] = Field(min_length=1, description="All must hold")
    explains: tuple[str, ...] = Field(
        min_length=1,
        description="Feature-name patterns (shell style, e.g. ``night_share_*``) it accounts for",
    )
    message: str = Field(
        min_length=5,
        max_length=300,
        description="Analyst text; ``{feature}`` is replaced by the value of that feature",
    )


# --- Models and ensemble ------------------------------------------------------------------


class IsolationForestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_estimators: int = Field(default=200, ge=10, le=5_000)
    max_samples: int = Field(default=256, ge=16, le=1_000_000)
    max_features: float = Field(default=1.0, gt=0, le=1)
    contamination: float = Field(default=0.01, gt=0, le=0.5)


class EcodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contamination: float = Field(default=0.01, gt=0, le=0.5)


class ModelConfig(BaseModel):
    """Settings shared by the model detectors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=20_260_810, ge=0, le=2**32 - 1)
    iforest: IsolationForestConfig = IsolationForestConfig()
    ecod: EcodConfig = EcodConfig()
    min_fit_rows: int = Field(
        default=20, ge=2, le=100_000, description="Fewer active rows: models score 0 (rules only)"
    )
    active_feature: str = Field(
        default="calls_7d", description="Rows with this feature > 0 are fitted and scored"
    )
    org_features: tuple[str, ...] = Field(
        default=(),
        description="Peer-relative features the org models use (empty = the registry's keys)",
    )
    account_features: tuple[str, ...] = Field(
        default=(), description="Features the account models use (empty = the registry's keys)"
    )


class EnsembleConfig(BaseModel):
    """How model scores and rule severities become one 0-100 score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["rank", "zscore"] = "zscore"
    weights: dict[str, float] = Field(
        default_factory=lambda: {"iforest": 0.4, "ecod": 0.6},
        description="Weight of each model detector (normalised to sum 1)",
    )
    model_weight: float = Field(
        default=0.55, ge=0, le=1, description="Share of the 0-100 score from the models"
    )
    rule_weight: float = Field(
        default=0.45, ge=0, le=1, description="Share of the 0-100 score from the rules"
    )
    z_midpoint: float = Field(
        default=4.0, gt=0, le=100, description="Standardised model score that maps to 0.5"
    )
    z_slope: float = Field(default=1.0, gt=0, le=100, description="Steepness of that mapping")
    severity_points: dict[Severity, float] = Field(
        default_factory=lambda: {
            Severity.low: 0.25,
            Severity.medium: 0.5,
            Severity.high: 0.8,
            Severity.critical: 1.0,
        },
        description="Rule part (0-1) given by the most severe rule that fired",
    )
    extra_rule_points: float = Field(
        default=0.1, ge=0, le=1, description="Added to the rule part per further rule that fired"
    )
    account_weight: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="An org scores at least this times the score of its worst account",
    )
    hard_fact_floor: float = Field(
        default=90.0, ge=0, le=100, description="A hard-fact rule hit scores at least this"
    )

    @model_validator(mode="after")
    def _weights(self) -> EnsembleConfig:
        if not self.weights or any(w < 0 for w in self.weights.values()):
            raise ValueError("ensemble weights must be non-negative and not empty")
        if sum(self.weights.values()) <= 0:
            raise ValueError("ensemble weights must not all be zero")
        return self


class RankingConfig(BaseModel):
    """What the ranked list keeps and how reasons are chosen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store_top: int = Field(
        default=200, ge=1, le=100_000, description="Rows of the ranked list kept per day"
    )
    flag_top: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="An org in this many top rows counts as flagged (first_flagged)",
    )
    flag_lookback_days: int = Field(
        default=90, ge=1, le=3_650, description="Days searched back for first_flagged"
    )
    max_reasons: int = Field(default=3, ge=1, le=20)
    max_accounts: int = Field(default=3, ge=1, le=50)
    evidence_examples: int = Field(default=3, ge=0, le=50)
    min_reason_z: float = Field(
        default=2.0, ge=0, le=100, description="A feature needs this |peer z| to be a reason"
    )


class TriageConfig(BaseModel):
    """How analysts' verdicts change the ranked list (``pipeline.triage.verdicts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    return_score_margin: float = Field(
        default=20.0,
        gt=0,
        le=100,
        description=(
            "A 'legitimate' org comes back when its score rises more than this many points "
            "(0-100 scale) above its score at the verdict"
        ),
    )
    context_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description=(
            "How long recording a verdict waits for a busy warehouse to read the org's score "
            "and rules; after that it is recorded without them (read when the list is read)"
        ),
    )


class LearningConfig(BaseModel):
    """How analysts' verdicts teach the ranking (``pipeline.rank.learned``): each listed org
    moves by its resemblance to the org-days of other orgs judged ``misuse`` (up) or
    ``legitimate`` (down), a nearest-judged-neighbour model
    (:class:`detectors.supervised.VerdictNeighbours`). No verdicts: the list is unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True, description="Learn from verdicts (off: verdicts only hide or pin)"
    )
    points: float = Field(
        default=40.0,
        ge=0,
        le=100,
        description=(
            "Points (0-100 scale) added for a perfect resemblance to a misuse example, and "
            "taken for one to a legitimate example; the adjustment never exceeds this"
        ),
    )
    bandwidth: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description=(
            "Kernel width in robust units: similarity exp(-d^2 / (2 bandwidth^2 n)) over the "
            "n standardised inputs"
        ),
    )
    min_similarity: float = Field(
        default=0.3,
        ge=0,
        lt=1,
        description="A resemblance weaker than this moves nothing",
    )
    example_days: int = Field(
        default=28,
        ge=1,
        le=365,
        description=(
            "A judged org teaches with each scored day from its verdict's day to the list day, "
            "at most this many (the latest)"
        ),
    )
    features: tuple[str, ...] = Field(
        default=(),
        description="Org features compared (empty = the features the org models use)",
    )
    scale_floor: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="Smallest spread (IQR) a feature is standardised by",
    )
    score_scale_floor: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Smallest spread of the unsupervised parts (model and rule, 0-1) compared",
    )
    z_clip: float = Field(
        default=6.0, gt=0, le=100, description="Standardised inputs are clipped to +-this"
    )
    min_points: float = Field(
        default=0.5,
        ge=0,
        le=100,
        description="A smaller learned adjustment is not applied nor given as a reason",
    )


class DetectionConfig(BaseModel):
    """Everything ``detect`` needs: profile parameters, rules, models, ensemble, ranking,
    and how triage verdicts change the list that ``suspects`` reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: ProfileConfig = ProfileConfig()
    models: ModelConfig = ModelConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    ranking: RankingConfig = RankingConfig()
    triage: TriageConfig = TriageConfig()
    learning: LearningConfig = LearningConfig()
    rules: tuple[RuleConfig, ...] = ()
    explanations: tuple[ExplanationConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> DetectionConfig:
        ids = [r.id for r in self.rules] + [e.id for e in self.explanations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        return self


# --- Output records -----------------------------------------------------------------------


class ExampleEvent(BaseModel):
    """A pseudonymised example event behind a rule hit (never raw personal data)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    occurred_at: datetime
    user_name: str
    operation: str
    learner_pid: str | None = None


class Evidence(BaseModel):
    model_config = ConfigDict(frozen=True)

    counts: dict[str, float] = Field(default_factory=dict)
    examples: list[ExampleEvent] = Field(default_factory=list)


class RuleHit(BaseModel):
    """One rule that fired for one org (or account) on one day."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    severity: Severity
    org_id: str
    user_name: str = ""
    description: str
    feature: str
    value: float
    threshold: float
    hard_fact: bool = False
    message: str = ""
    evidence: Evidence = Evidence()


class Reason(BaseModel):
    """A feature that drives a score, in words an analyst can read."""

    model_config = ConfigDict(frozen=True)

    feature: str
    text: str
    value: float | None = None
    peer_value: float | None = None
    contribution: float = 0.0


class AccountShare(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_name: str
    share: float = Field(ge=0, le=1)
    score: float = Field(ge=0, le=100)


class Score(BaseModel):
    """Scores of one org (or account) on one day, per detector and combined."""

    model_config = ConfigDict(frozen=True)

    day: date
    level: Level
    org_id: str
    user_name: str = ""
    rules: float = Field(ge=0, le=1)
    detectors: dict[str, float] = Field(
        default_factory=dict, description="Each model detector's normalised score (0-1), by name"
    )
    models: float = Field(ge=0, le=1)
    score: float = Field(ge=0, le=100)
    hard_fact: bool = False


TriageStatus = Literal[
    "new", "recurring", "misuse", "legitimate", "returned", "needs_info", "data_issue"
]
"""Where a row stands with the analysts (see :mod:`pipeline.triage.verdicts`): ``new`` /
``recurring`` when no verdict is in force (``new``: first flagged after the last review), the
verdict in force (``misuse`` pinned; ``legitimate`` only when suppressed rows are asked for;
``needs_info``; ``data_issue``), or ``returned``: a ``legitimate`` org back on the list
because its verdict expired or its behaviour changed."""


class Suspect(BaseModel):
    """One row of the ranked list (``accesswatch suspects``), per the output contract."""

    model_config = ConfigDict(frozen=True)

    rank: int = Field(ge=1)
    org_id: str
    org_name: str
    org_type: str
    user_name: str | None = Field(default=None, description="Set when ranking by account")
    score: float = Field(ge=0, le=100)
    rules: list[str] = Field(default_factory=list)
    reasons: list[Reason] = Field(default_factory=list)
    accounts: list[AccountShare] = Field(default_factory=list)
    first_flagged: date
    triage_status: TriageStatus
    triage_detail: str | None = Field(
        default=None,
        description="Why the row has its triage status (the verdict in force, why it returned)",
    )
    pinned: bool = Field(
        default=False, description="Listed because of a misuse verdict, above the ranked rows"
    )
    model_version: str = Field(
        default="unsupervised",
        description=(
            "What scored the row: 'unsupervised' (no verdict teaches the ranking) or "
            "'verdicts-<hash>' of the verdicts and learning settings it learned from"
        ),
    )
    learned_points: float = Field(
        default=0.0,
        description="Points the verdicts moved the score by (included in score; 0: none)",
    )


# --- Warehouse rows (flat, JSON text for nested values) -----------------------------------


class ScoreRow(BaseModel):
    """One row of ``scores``: the combined score of an org (account) on a day and its rule
    and model parts; each detector's own part is in ``detector_scores``."""

    day: date
    level: str
    org_id: str
    user_name: str
    rules: float
    models: float
    score: float
    hard_fact: bool


class DetectorScoreRow(BaseModel):
    """One row of ``detector_scores``: one model detector's normalised score (0-1) of an org
    (account) on a day, 0 where the models did not score the row."""

    day: date
    level: str
    org_id: str
    user_name: str
    detector: str
    score: float


class RuleHitRow(BaseModel):
    day: date
    level: str
    org_id: str
    user_name: str
    rule_id: str
    severity: str
    hard_fact: bool
    feature: str
    value: float
    threshold: float
    message: str
    evidence: dict[str, object] = Field(description="Evidence as JSON text")


class ReasonRow(BaseModel):
    day: date
    level: str
    org_id: str
    user_name: str
    position: int
    feature: str
    text: str
    value: float | None
    peer_value: float | None
    contribution: float


class SuspectRow(BaseModel):
    day: date
    level: str
    rank: int
    org_id: str
    user_name: str
    org_name: str
    org_type: str
    score: float
    rules: dict[str, object] = Field(description="JSON list of rule ids")
    reasons: dict[str, object] = Field(description="JSON list of reasons")
    accounts: dict[str, object] = Field(description="JSON list of account shares")
    first_flagged: date
    triage_status: str


# --- Reports ------------------------------------------------------------------------------


class ProfileReport(BaseModel):
    day: date
    organisations: int = Field(ge=0)
    active_organisations: int = Field(ge=0)
    unregistered_organisations: int = Field(
        default=0, ge=0, description="Profiled orgs that are not in the register (REG-01)"
    )
    accounts: int = Field(ge=0)
    events_today: int = Field(ge=0)
    summarised_days: list[date] = Field(
        default_factory=list, description="Days whose daily summaries were (re)built"
    )
    seconds: float = Field(ge=0)


class DetectReport(BaseModel):
    day: date
    organisations: int = Field(ge=0)
    accounts: int = Field(ge=0)
    scored_by_models: int = Field(ge=0)
    rule_hits: int = Field(ge=0)
    hard_facts: int = Field(ge=0)
    suspects: int = Field(ge=0)
    seconds: float = Field(ge=0)


class FeatureComparison(BaseModel):
    """One key feature of an org against its peers (``accesswatch explain``)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    definition: str
    value: float | None
    peer_median: float | None
    peer_z: float | None
    text: str


class TimelinePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: date
    score: float = Field(ge=0, le=100)
    rank: int | None = None


class OrgExplanation(BaseModel):
    """Why an org scored as it did on a day: features vs peers, score timeline, evidence."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    org_name: str
    org_type: str
    day: date
    peer_group: str
    score: float = Field(ge=0, le=100)
    rank: int | None = None
    reasons: list[Reason] = Field(default_factory=list)
    features: list[FeatureComparison] = Field(default_factory=list)
    timeline: list[TimelinePoint] = Field(default_factory=list)
    rule_hits: list[RuleHit] = Field(default_factory=list)
    explanations: list[str] = Field(
        default_factory=list,
        description="Legitimate explanations in force that day (their features were taken "
        "as the peer norm by the models), in words",
    )
    accounts: list[AccountShare] = Field(default_factory=list)
    triage_status: TriageStatus | None = Field(
        default=None, description="As in the ranked list; None when unranked and no verdict"
    )
    triage_detail: str | None = None
    verdicts: list[TriageDecision] = Field(
        default_factory=list, description="Every verdict on the org, oldest first"
    )
