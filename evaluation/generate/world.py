"""The synthetic world: organisation register, user accounts, addresses, agents, agreements.

Organisations are held column-wise in numpy arrays (index = position in the register) so a
day's events can be drawn for all of them at once. Learners are not stored: a learner is a
key (organisation, position in its pool) and everything about them (ULN, date of birth,
postcode) is a stable hash of that key, see :func:`learner_attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from evaluation.generate import behaviour as bh
from evaluation.generate.rng import U64, categorical, day_rng, hash_unit, salt
from pipeline.ingest.uln import make_valid_ulns
from schemas.generate import WorldConfig
from schemas.geography import POSTCODE_AREAS
from schemas.reference import Agreement, Organisation, OrgStatus, OrgType, Region

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

REGIONS: tuple[Region, ...] = tuple(Region)
ORG_TYPE_LIST: tuple[OrgType, ...] = tuple(OrgType)
AREAS: tuple[str, ...] = tuple(a for r in REGIONS for a in POSTCODE_AREAS[r])
AREA_REGION: I64 = np.array(
    [i for i, r in enumerate(REGIONS) for _ in POSTCODE_AREAS[r]], dtype=np.int64
)
REGION_START: I64 = np.array(
    np.cumsum([0] + [len(POSTCODE_AREAS[r]) for r in REGIONS])[:-1], dtype=np.int64
)
REGION_LEN: I64 = np.array([len(POSTCODE_AREAS[r]) for r in REGIONS], dtype=np.int64)
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
UNITS: tuple[str, ...] = tuple(a + b for a in UNIT_LETTERS for b in UNIT_LETTERS)
MAX_DISTRICT = 28
EPOCH = date(1970, 1, 1)
NEVER = 1 << 30
"""A day index beyond any window."""


@dataclass
class World:
    """Everything fixed for the life of a generated world (indexed by org / user position)."""

    config: WorldConfig
    org_id: list[str]
    org_type: I64  # index into ORG_TYPE_LIST
    profile: I64  # index into behaviour.PROFILES
    region: I64
    area: I64  # index into AREAS
    ukprn: list[str | None]
    name: list[str]
    previous_name: list[str | None]
    name_changed_on: list[date | None]
    registered_on: list[date]
    status: list[OrgStatus]
    status_changed_on: list[date | None]
    expected_learners: I64
    activity: F64  # per-org multiplier on its profile's rate
    local_offset: B  # org's feed writes London local time with an offset
    # normal activity windows, as day indices relative to the start
    silent_before: I64
    silent_from: I64
    override_from: I64  # from this day the org makes override_lam calls/day (misuse)
    override_lam: F64
    ramp_days: I64  # new organisations ramp up over this many days
    season: dict[str, F64]  # per-org multipliers replacing the profile's surges
    # accounts, addresses, agents
    user_org: I64
    user_name: list[str]
    user_ip: I64
    user_agent: I64
    org_user_start: I64  # the service account; humans follow
    org_n_users: I64
    org_site_ip: I64
    org_server_ip: I64
    org_client_agent: I64
    org_upgrade_day: I64
    org_upgraded_agent: I64
    ips: list[str]
    agents: list[str]
    agreements: list[Agreement] = field(default_factory=list)
    npd_rate: F64 = field(default_factory=lambda: np.zeros(0))
    labels: list[dict[str, Any]] = field(default_factory=list)
    decoys: list[dict[str, str]] = field(default_factory=list)
    accounts: list[dict[str, str]] = field(default_factory=list)  # misuse accounts, one a row
    used: B = field(default_factory=lambda: np.zeros(0, dtype=bool))
    profiles: tuple[bh.Profile, ...] = bh.PROFILES  # this world's (randomised) profiles
    parameters: dict[str, Any] = field(default_factory=dict)  # drawn, for truth/
    pending: dict[int, list[Any]] = field(default_factory=dict)  # follow-ups due per day

    @property
    def n(self) -> int:
        return len(self.org_id)

    @property
    def start(self) -> date:
        return self.config.start

    def day_of(self, d: date) -> int:
        return (d - self.config.start).days

    def date_of(self, day: int) -> date:
        return self.config.start + timedelta(days=day)

    def add_ips(self, values: list[str]) -> I64:
        first = len(self.ips)
        self.ips.extend(values)
        return np.arange(first, len(self.ips), dtype=np.int64)

    def add_agents(self, values: list[str]) -> I64:
        first = len(self.agents)
        self.agents.extend(values)
        return np.arange(first, len(self.agents), dtype=np.int64)

    def add_user(self, org: int, name: str, ip: int, agent: int) -> int:
        """A new account of ``org`` outside its contiguous block (scenario accounts)."""
        self.user_org = np.append(self.user_org, org)
        self.user_name.append(name)
        self.user_ip = np.append(self.user_ip, ip)
        self.user_agent = np.append(self.user_agent, agent)
        return len(self.user_name) - 1

    def humans(self, org: int) -> I64:
        """Human accounts of ``org`` (its block after the service account)."""
        s = int(self.org_user_start[org])
        return np.arange(s + 1, s + int(self.org_n_users[org]), dtype=np.int64)

    def organisations(self) -> pl.DataFrame:
        """The register as ``reference/organisations.csv`` rows (validated models)."""
        rows = [
            Organisation(
                org_id=self.org_id[i],
                ukprn=self.ukprn[i],
                name=self.name[i],
                org_type=ORG_TYPE_LIST[int(self.org_type[i])],
                region=REGIONS[int(self.region[i])],
                postcode_area=AREAS[int(self.area[i])],
                registered_on=self.registered_on[i],
                status=self.status[i],
                status_changed_on=self.status_changed_on[i],
                previous_name=self.previous_name[i],
                name_changed_on=self.name_changed_on[i],
                expected_learners=int(self.expected_learners[i]),
            ).model_dump(mode="json")
            for i in range(self.n)
        ]
        return pl.DataFrame(rows, infer_schema_length=None).select(list(Organisation.model_fields))

    def agreements_frame(self) -> pl.DataFrame:
        rows = [a.model_dump(mode="json") for a in self.agreements]
        return pl.DataFrame(rows, infer_schema_length=None).select(list(Agreement.model_fields))


def _type_counts(n: int) -> dict[OrgType, int]:
    counts = {t: max(s.min_count, round(n * s.share)) for t, s in bh.ORG_TYPES.items()}
    counts[OrgType.school] += n - sum(counts.values())
    if counts[OrgType.school] < bh.ORG_TYPES[OrgType.school].min_count:
        raise ValueError(f"orgs={n} is too small to hold every organisation type")
    return counts


def _ipv4(rng: np.random.Generator, k: int) -> list[str]:
    first = rng.choice(np.array([81, 82, 86, 90, 109, 146, 151, 176, 185, 193, 194, 195, 212,
                                 213, 217]), size=k)  # fmt: skip
    rest = rng.integers(1, 255, size=(k, 3))
    return [f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first.tolist(), rest.tolist(), strict=True)]


def _ipv6(rng: np.random.Generator, k: int) -> list[str]:
    g = rng.integers(0, 0xFFFF, size=(k, 3))
    return [f"2a02:{a:x}:{b:x}::{c:x}" for a, b, c in g.tolist()]


def make_ips(rng: np.random.Generator, k: int, v6_share: float = 0.0) -> list[str]:
    """``k`` synthetic public-looking addresses (a share IPv6)."""
    v4 = _ipv4(rng, k)
    v6 = _ipv6(rng, k)
    use6 = rng.random(k) < v6_share
    return [b if u else a for a, b, u in zip(v4, v6, use6.tolist(), strict=True)]


def _org_name(rng: np.random.Generator, t: OrgType, area: str) -> str:
    stem = str(rng.choice(bh.NAME_STEMS)) + str(rng.choice(bh.NAME_ENDS))
    suffix = str(rng.choice(bh.TYPE_SUFFIXES[t]))
    if t is OrgType.local_authority:
        return f"{stem} {suffix}"
    if t is OrgType.government:
        return f"Department for Education {suffix} ({area})"
    return f"{stem} {suffix}"


def _client_family(t: OrgType) -> str:
    return {
        OrgType.school: "school",
        OrgType.academy: "school",
        OrgType.fe_college: "fe",
        OrgType.training_provider: "training",
        OrgType.he_provider: "he",
        OrgType.awarding_org: "awarding",
    }.get(t, "other")


def build_world(config: WorldConfig, profiles: tuple[bh.Profile, ...] = bh.PROFILES) -> World:
    """The register, accounts, addresses and agents of a world (no scenarios yet), whose
    organisations behave as ``profiles`` say (indexed as :data:`behaviour.PROFILES`)."""
    rng = day_rng(config.seed, "register")
    n = config.orgs
    counts = _type_counts(n)
    types = np.concatenate([np.full(c, ORG_TYPE_LIST.index(t)) for t, c in counts.items()])
    types = rng.permutation(types).astype(np.int64)
    specs = [bh.ORG_TYPES[ORG_TYPE_LIST[int(t)]] for t in types]

    region_w = np.array([bh.REGION_WEIGHTS[r] for r in REGIONS])
    region = categorical(rng.random(n), region_w)
    area = REGION_START[region] + (rng.random(n) * REGION_LEN[region]).astype(np.int64)

    med = np.array([s.learners_median for s in specs])
    sig = np.array([s.learners_sigma for s in specs])
    learners = np.where(med > 0, np.round(med * np.exp(sig * rng.standard_normal(n))), 0)
    learners = np.maximum(learners, np.where(med > 0, 20, 0)).astype(np.int64)

    lrs = np.array([s.lrs for s in specs])
    ukprns = rng.choice(np.arange(10_000_000, 10_100_000), size=n, replace=False)
    ukprn: list[str | None] = [
        str(u) if has else None for u, has in zip(ukprns.tolist(), lrs.tolist(), strict=True)
    ]
    org_id = [f"ORG{i + 1:05d}" for i in range(n)]
    names = [
        _org_name(rng, ORG_TYPE_LIST[int(t)], AREAS[int(a)])
        for t, a in zip(types, area, strict=True)
    ]

    start = config.start
    first_reg = date(2008, 1, 1)
    span = max((start - first_reg).days - 400, 1)
    reg_days = rng.integers(0, span, size=n)
    recent = rng.random(n) < bh.RECENT_REGISTRATION_SHARE
    reg_days = np.where(recent, span + rng.integers(30, 365, size=n), reg_days)
    registered = [first_reg + timedelta(days=int(d)) for d in reg_days]

    status = [OrgStatus.active] * n
    status_changed: list[date | None] = [None] * n
    prev_name: list[str | None] = [None] * n
    renamed_on: list[date | None] = [None] * n
    u_status = rng.random(n)
    u_rename = rng.random(n)
    silent_from = np.full(n, NEVER, dtype=np.int64)
    for i in range(n):
        span_i = (start - registered[i]).days
        if u_status[i] < bh.INACTIVE_SHARE and lrs[i] and span_i > 60:
            status[i] = [OrgStatus.suspended, OrgStatus.revoked, OrgStatus.closed][i % 3]
            changed = start - timedelta(days=int(rng.integers(30, min(900, span_i))))
            status_changed[i] = changed
            silent_from[i] = (changed - start).days
        if u_rename[i] < bh.RENAMED_SHARE and span_i > 60:
            prev_name[i] = names[i]
            renamed_on[i] = registered[i] + timedelta(days=int(rng.integers(30, span_i)))
            names[i] = _org_name(rng, ORG_TYPE_LIST[int(types[i])], AREAS[int(area[i])])
    profile = np.array([bh.PROFILE_INDEX[s.profile] for s in specs], dtype=np.int64)

    # accounts: one service account then humans, in one contiguous block per org
    per_user = np.array([s.learners_per_user for s in specs])
    max_users = np.array([s.max_users for s in specs])
    humans = 1 + rng.poisson(learners / per_user)
    humans = np.minimum(humans, max_users)
    humans = np.where(types == ORG_TYPE_LIST.index(OrgType.government), humans + 2, humans)
    n_users = humans + 1
    user_start = np.concatenate([[0], np.cumsum(n_users)[:-1]]).astype(np.int64)
    n_total = int(n_users.sum())
    user_org = np.repeat(np.arange(n), n_users)
    within = np.arange(n_total) - user_start[user_org]
    surname = rng.choice(np.array(bh.SURNAMES), size=n_total)
    initial = rng.choice(np.array(list("abcdefghijklmnoprstwy")), size=n_total)
    svc = rng.choice(np.array(bh.SERVICE_ACCOUNTS), size=n)
    user_name = [
        str(svc[o]) if w == 0 else f"{i}.{s}{'' if w < 4 else w}"
        for o, w, i, s in zip(user_org.tolist(), within.tolist(), initial, surname, strict=True)
    ]

    ips = make_ips(rng, n, v6_share=0.08)
    server_new = rng.random(n) < 0.45
    server_ips = make_ips(rng, n)
    ips_all = ips + server_ips
    org_site_ip = np.arange(n, dtype=np.int64)
    org_server_ip = np.where(server_new, n + np.arange(n), org_site_ip).astype(np.int64)
    home = rng.random(n_total) < 0.2
    home_ips = make_ips(rng, int(home.sum()), v6_share=0.1)
    user_ip = org_site_ip[user_org].copy()
    user_ip[home] = len(ips_all) + np.arange(int(home.sum()))
    ips_all += home_ips

    agents: list[str] = list(bh.BROWSER_AGENTS)
    user_agent = rng.integers(0, len(bh.BROWSER_AGENTS), size=n_total).astype(np.int64)
    client_agent = np.zeros(n, dtype=np.int64)
    for fam, options in bh.CLIENT_AGENTS.items():
        base = len(agents)
        agents.extend(options)
        mask = np.array([_client_family(ORG_TYPE_LIST[int(t)]) == fam for t in types])
        client_agent[mask] = base + rng.integers(0, len(options), size=int(mask.sum()))

    world = World(
        config=config,
        org_id=org_id,
        org_type=types,
        profile=profile,
        region=region,
        area=area.astype(np.int64),
        ukprn=ukprn,
        name=names,
        previous_name=prev_name,
        name_changed_on=renamed_on,
        registered_on=registered,
        status=status,
        status_changed_on=status_changed,
        expected_learners=learners,
        activity=np.exp(bh.ACTIVITY_SIGMA * rng.standard_normal(n) - bh.ACTIVITY_SIGMA**2 / 2),
        local_offset=rng.random(n) < config.delivery.local_offset_share,
        silent_before=np.array([(r - start).days for r in registered], dtype=np.int64),
        silent_from=silent_from,
        override_from=np.full(n, NEVER, dtype=np.int64),
        override_lam=np.zeros(n),
        ramp_days=np.zeros(n, dtype=np.int64),
        season={
            k: np.array([getattr(profiles[int(q)], f"{k}_surge") for q in profile])
            for k in ("enrolment", "results", "clearing")
        },
        user_org=user_org.astype(np.int64),
        user_name=user_name,
        user_ip=user_ip.astype(np.int64),
        user_agent=user_agent,
        org_user_start=user_start,
        org_n_users=n_users.astype(np.int64),
        org_site_ip=org_site_ip,
        org_server_ip=org_server_ip,
        org_client_agent=client_agent,
        org_upgrade_day=np.full(n, NEVER, dtype=np.int64),
        org_upgraded_agent=client_agent.copy(),
        ips=ips_all,
        agents=agents,
        npd_rate=np.zeros(n),
        used=np.zeros(n, dtype=bool),
        profiles=profiles,
    )
    # organisations not using the LRS make no LRS calls
    world.silent_from[~lrs] = -NEVER
    return world


@dataclass(frozen=True)
class Learners:
    """Attributes of drawn learners (one entry per draw; -1 / sentinel when not applicable)."""

    uln: I64
    dob: I64  # days since 1970-01-01
    area: I64
    district: I64
    sector: I64
    unit: I64


def valid_ulns(stems: I64) -> I64:
    """Valid ULNs from nine-digit stems, moving a stem up until it admits a check digit."""
    stems = np.asarray(stems, dtype=np.int64).copy()
    out = make_valid_ulns(stems)
    bad = out < 0
    while bad.any():
        stems[bad] = np.where(stems[bad] >= 999_999_999, 100_000_000, stems[bad] + 1)
        out[bad] = make_valid_ulns(stems[bad])
        bad = out < 0
    return out


def learner_attributes(
    seed: int,
    keys: U64,
    ages: bh.AgeBands,
    geo: tuple[float, float, float],
    home_area: I64,
    ref: date,
) -> Learners:
    """Stable attributes of the learners named by ``keys``.

    The same key always gives the same ULN (valid check digit), birth date and postcode, so
    a learner drawn again on another day is recognisably the same person. Ages (whole years
    at ``ref``) follow ``ages``; the postcode area is the org's ``home_area``, another area
    of its region, or any area, with probabilities ``geo``.
    """
    stems = 100_000_000 + (hash_unit(keys, salt(seed, "uln")) * 899_999_999).astype(np.int64)
    uln = valid_ulns(stems)
    band_w = np.array([b[2] for b in ages])
    band = categorical(hash_unit(keys, salt(seed, "band")), band_w)
    lo = np.array([b[0] for b in ages])[band]
    hi = np.array([b[1] for b in ages])[band]
    age = lo + (hash_unit(keys, salt(seed, "age")) * (hi - lo)).astype(np.int64)
    ref_days = (ref - EPOCH).days
    doy = (hash_unit(keys, salt(seed, "doy")) * 365).astype(np.int64)
    dob = ref_days - np.round(age * 365.2425).astype(np.int64) - doy
    cat = categorical(hash_unit(keys, salt(seed, "geo")), np.array(geo))
    u_area = hash_unit(keys, salt(seed, "area"))
    home_region = AREA_REGION[home_area]
    in_region = REGION_START[home_region] + (u_area * REGION_LEN[home_region]).astype(np.int64)
    anywhere = (u_area * len(AREAS)).astype(np.int64)
    area = np.where(cat == 0, home_area, np.where(cat == 1, in_region, anywhere))
    district = 1 + (hash_unit(keys, salt(seed, "district")) * MAX_DISTRICT).astype(np.int64)
    sector = (hash_unit(keys, salt(seed, "sector")) * 10).astype(np.int64)
    unit = (hash_unit(keys, salt(seed, "unit")) * len(UNITS)).astype(np.int64)
    return Learners(uln, dob, area.astype(np.int64), district, sector, unit)


def areas_outside(region: int, u: F64) -> I64:
    """Postcode areas drawn uniformly from every region except ``region``."""
    others = np.flatnonzero(region != AREA_REGION)
    return others[(u * len(others)).astype(np.int64)]
