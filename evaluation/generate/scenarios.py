"""Misuse scenarios and legitimate look-alikes (decoys): who plays them and what they do.

:func:`assign_roles` picks host organisations (each org plays at most one role), rewrites
their register entries where the story needs it (a reseller's recent change of name, a
revoked status, a recent registration) and records ground truth. :func:`scenario_lrs_day`
and :func:`scenario_npd_day` then add each active scenario's own calls for a day. Most
decoys need no extra calls, they are organisations with a different behaviour profile or
season; a national distance-learning provider also plays its own day (new people searched,
then followed up per learner), counted as ``decoy:national_distance_learning``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from evaluation.generate import behaviour as bh
from evaluation.generate import npd, randomise
from evaluation.generate.lrs import (
    MISSING,
    counts_and_batches,
    learner_fields,
    local_seconds,
    raw_frame,
    responses,
    to_utc_us,
)
from evaluation.generate.rng import U64, categorical, day_rng, pack_keys
from evaluation.generate.world import (
    I64,
    NEVER,
    ORG_TYPE_LIST,
    World,
    areas_outside,
    learner_attributes,
    make_ips,
    valid_ulns,
)
from schemas.generate import (
    ALL_SCENARIOS,
    DECOYS,
    EXTRA_DECOYS,
    EXTRA_SCENARIOS,
    SCENARIOS,
    AgeVerificationReseller,
    DecoyParams,
    DistanceLearning,
    DormantReactivation,
    Enumeration,
    LowVolumeReseller,
    NpdOverreach,
    PlrBrowsing,
    RevokedAccess,
    ScenarioParams,
    SharedCredentials,
    StealthReseller,
)
from schemas.reference import OrgStatus, OrgType

T = OrgType

HOSTS: dict[str, tuple[OrgType, ...]] = {
    "age_verification_reseller": (T.training_provider,),
    "enumeration": (T.training_provider, T.school, T.academy, T.commercial),
    "shared_credentials": (T.fe_college, T.training_provider, T.local_authority),
    "revoked_access": (T.training_provider, T.school, T.academy),
    "dormant_reactivation": (T.training_provider, T.school, T.commercial),
    "plr_browsing": (T.school, T.academy, T.training_provider, T.fe_college),
    "npd_overreach": (T.research,),
    "stealth_reseller": (T.training_provider,),
    "low_volume_reseller": (T.training_provider,),
    "national_distance_learning": (T.training_provider, T.fe_college),
    "enrolment_surge": (T.fe_college,),
    "results_day_batch": (T.awarding_org,),
    "he_clearing": (T.he_provider,),
    "online_provider": (T.training_provider,),
    "new_provider": (T.training_provider,),
    "evening_provision": (T.fe_college, T.prison_education),
    "mis_supplier": (T.school, T.academy),
    "client_upgrade": (T.fe_college, T.training_provider, T.awarding_org, T.he_provider),
    "research_heavy": (T.research,),
}
"""Organisation types that can host each scenario or decoy."""

NATIONAL_KEYSPACE = (1 << 31) - 4096
"""Learner keys above every org index: people with no link to any organisation's pool."""
PLR_SMALL_PROVIDER = 400
"""With randomise, PLR browsing is hosted by providers expecting at most this many learners."""
DISTANCE_KEYSPACE = NATIONAL_KEYSPACE - 4096
"""Learner keys of the people a distance-learning provider finds (one block per provider)."""
DISTANCE_PAST = 400
"""Distance-learning searches are keyed from this many days before the window, so the
follow-ups of searches made before the window's first day arrive in it."""
SHARED_EXTRA_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
)
MIS_SUPPLIER_AGENT = "CloudMIS LRS Gateway/3.4 (multi-tenant)"


@dataclass
class Instance:
    """One scenario played by one organisation over [onset, end] (day indices)."""

    scenario: str
    index: int
    org: int
    onset: int
    end: int
    params: ScenarioParams | DecoyParams
    user: int = -1
    label_user: bool = False  # the misuse lives in one account of an otherwise normal org
    ips: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    agents: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra: dict[str, Any] = field(default_factory=dict)

    def active(self, day: int) -> bool:
        return self.onset <= day <= self.end


def _count(n_orgs: int, per_10k: float, min_count: int) -> int:
    return max(min_count, round(n_orgs * per_10k / 10_000))


def _hosts(world: World, kinds: tuple[OrgType, ...], min_age_days: int = 365) -> I64:
    """Unused, active, long-registered organisations of the given types."""
    idx = np.array([ORG_TYPE_LIST.index(k) for k in kinds])
    ok = np.isin(world.org_type, idx) & ~world.used
    ok &= np.array([s is OrgStatus.active for s in world.status])
    ok &= world.silent_before <= -min_age_days
    lrs = np.array([u is not None for u in world.ukprn])
    ok &= (world.silent_from >= NEVER) | ~lrs
    return np.flatnonzero(ok)


def _pick(
    world: World, rng: np.random.Generator, role: str, k: int, extra: I64 | None = None
) -> list[int]:
    cands = _hosts(world, HOSTS[role])
    if extra is not None:
        cands = np.intersect1d(cands, extra)
    if len(cands) == 0 or k == 0:
        return []
    chosen = rng.choice(cands, size=min(k, len(cands)), replace=False)
    world.used[chosen] = True
    return [int(c) for c in chosen]


def _bump_version(agent: str) -> str:
    m = re.search(r"(\d+)((?:\.\d+)+)", agent)
    if not m:
        return agent + bh.CLIENT_UPGRADE_SUFFIX
    major = int(m.group(1)) + 1
    rest = re.sub(r"\d+", "0", m.group(2))
    return agent[: m.start()] + f"{major}{rest}" + agent[m.end() :]


def assign_roles(world: World) -> list[Instance]:
    """Pick hosts for every scenario and decoy, adjust the register, record ground truth.

    The classic scenarios and decoys are assigned first, from one stream, exactly as before
    the extra shapes existed; the extra ones (``WorldConfig.plays_extra``) follow from the
    same stream, so a world without them keeps its bytes.
    """
    cfg = world.config
    rng = day_rng(cfg.seed, "roles")
    days = cfg.days
    lo = max(1, round(0.15 * days)) if days > 1 else 0
    hi = max(lo, round(0.6 * days))
    instances: list[Instance] = []

    ho = npd.home_office(world)
    world.decoys.append({"org_id": world.org_id[ho], "kind": "home_office_match"})

    extra = cfg.plays_extra
    for name in SCENARIOS:
        instances += _play_scenario(world, rng, name, lo, hi)
    for kind in DECOYS:
        _play_decoy(world, rng, kind, instances, lo, hi)
    for name in EXTRA_SCENARIOS if extra else ():
        instances += _play_scenario(world, rng, name, lo, hi)
    for kind in EXTRA_DECOYS if extra else ():
        _play_decoy(world, rng, kind, instances, lo, hi)
    return instances


def _play_scenario(
    world: World, rng: np.random.Generator, name: str, lo: int, hi: int
) -> list[Instance]:
    cfg = world.config
    params: ScenarioParams = getattr(cfg.scenarios, name)
    k = _count(cfg.orgs, params.per_10k_orgs, params.min_count)
    extra = None
    if name == "shared_credentials":
        extra = np.flatnonzero(world.org_n_users >= 3)
    if name == "npd_overreach":
        extra = np.flatnonzero(world.npd_rate > 0)
    if name == "stealth_reseller":  # a real provider with staff accounts to hide in
        extra = np.flatnonzero(world.org_n_users >= 3)
    if name == "plr_browsing" and cfg.randomise:  # the record browser: a small provider
        extra = np.flatnonzero(world.expected_learners <= PLR_SMALL_PROVIDER)
    out: list[Instance] = []
    for j, org in enumerate(_pick(world, rng, name, k, extra)):
        fallback = int(rng.integers(lo, hi + 1))
        p = params
        if cfg.randomise:
            p = randomise.scenario_params(cfg, name, j, params)
            fallback = randomise.onset(cfg, name, j)
        onset = cfg.onset_day(p.onset, fallback)
        end = cfg.days - 1
        if p.duration_days is not None:
            end = min(end, onset + p.duration_days - 1)
        inst = Instance(name, j, org, onset, end, p)
        _setup(world, inst, rng)
        out.append(inst)
        users = [world.user_name[u] for u in inst.extra.get("users", [inst.user])]
        world.labels.append(
            {
                "org_id": world.org_id[org],
                "scenario": name,
                "start_date": world.date_of(onset).isoformat(),
                "end_date": world.date_of(end).isoformat(),
                "user_name": ";".join(users) if inst.label_user else "",
            }
        )
        if inst.label_user:
            world.accounts += [
                {"org_id": world.org_id[org], "scenario": name, "user_name": u} for u in users
            ]
        world.parameters.setdefault("scenarios", []).append(
            {
                "scenario": name,
                "index": j,
                "org_id": world.org_id[org],
                "onset": world.date_of(onset).isoformat(),
                "end": world.date_of(end).isoformat(),
                "accounts": users if inst.label_user else [],
                "story": inst.extra.get("story", {}),
                "params": p.model_dump(mode="json"),
            }
        )
    return out


def _play_decoy(
    world: World,
    rng: np.random.Generator,
    kind: str,
    instances: list[Instance],
    lo: int,
    hi: int,
) -> None:
    cfg = world.config
    if kind == "home_office_match":
        return
    dp: DecoyParams = getattr(cfg.decoys, kind)
    k = _count(cfg.orgs, dp.per_10k_orgs, dp.min_count)
    if kind == "mis_supplier":
        if cfg.randomise:
            dp = randomise.decoy_params(cfg, kind, 0, dp)
        _mis_suppliers(world, rng, k, dp)
        return
    extra = np.flatnonzero(world.npd_rate > 0) if kind == "research_heavy" else None
    for j, org in enumerate(_pick(world, rng, kind, k, extra)):
        p = randomise.decoy_params(cfg, kind, j, dp) if cfg.randomise else dp
        _decoy(world, kind, org, p, rng, lo, hi)
        world.decoys.append({"org_id": world.org_id[org], "kind": kind})
        if isinstance(p, DistanceLearning):
            instances.append(Instance(kind, j, org, 0, cfg.days - 1, p))
        world.parameters.setdefault("decoys", []).append(
            {"kind": kind, "index": j, "org_id": world.org_id[org],
             "params": p.model_dump(mode="json")}
        )  # fmt: skip


def _decoy(
    world: World, kind: str, org: int, dp: DecoyParams, rng: np.random.Generator, lo: int, hi: int
) -> None:
    if kind in bh.PROFILE_INDEX:
        world.profile[org] = bh.PROFILE_INDEX[kind]
    if kind == "enrolment_surge":
        world.season["enrolment"][org] = dp.strength
    elif kind == "results_day_batch":
        world.season["results"][org] = dp.strength
        world.expected_learners[org] = max(int(world.expected_learners[org]), 30_000)
    elif kind == "he_clearing":
        world.season["clearing"][org] = dp.strength
    elif kind == "online_provider":
        world.expected_learners[org] = max(
            int(world.expected_learners[org]), int(rng.integers(1500, 4000))
        )
        world.season["enrolment"][org] = world.profiles[bh.PROFILE_INDEX[kind]].enrolment_surge
    elif kind == "evening_provision":
        world.expected_learners[org] = max(int(world.expected_learners[org]), 600)
        world.season["enrolment"][org] = world.profiles[bh.PROFILE_INDEX[kind]].enrolment_surge
    elif isinstance(dp, DistanceLearning):
        world.expected_learners[org] = max(int(world.expected_learners[org]), dp.cohort)
        world.season["enrolment"][org] = world.profiles[bh.PROFILE_INDEX[kind]].enrolment_surge
    elif kind == "new_provider":
        reg = int(rng.integers(lo, hi + 1))
        world.registered_on[org] = world.date_of(reg)
        world.silent_before[org] = reg
        world.ramp_days[org] = 10
        world.previous_name[org] = None
        world.name_changed_on[org] = None
    elif kind == "client_upgrade":
        world.org_upgrade_day[org] = int(rng.integers(lo, hi + 1))
        new = _bump_version(world.agents[int(world.org_client_agent[org])])
        world.org_upgraded_agent[org] = world.add_agents([new])[0]
        world.org_server_ip[org] = world.org_server_ip[org]  # same host, new client build
    elif kind == "research_heavy":
        world.npd_rate[org] *= dp.strength


def _mis_suppliers(world: World, rng: np.random.Generator, k: int, dp: DecoyParams) -> None:
    """``k`` cloud MIS suppliers each calling the LRS for ``strength`` schools from shared IPs."""
    per = max(2, round(dp.strength))
    for _ in range(k):
        schools = _pick(world, rng, "mis_supplier", per)
        if not schools:
            return
        ips = world.add_ips(make_ips(rng, int(rng.integers(2, 4))))
        agent = world.add_agents([MIS_SUPPLIER_AGENT])[0]
        for org in schools:
            world.org_server_ip[org] = ips[int(rng.integers(0, len(ips)))]
            world.org_client_agent[org] = agent
            world.org_upgraded_agent[org] = agent
            world.decoys.append({"org_id": world.org_id[org], "kind": "mis_supplier"})


def _human(world: World, org: int, rng: np.random.Generator) -> int:
    humans = world.humans(org)
    return int(humans[int(rng.integers(0, len(humans)))])


RESELLER_RENAMED_SHARE = 0.6
"""With randomise: resellers that renamed themselves before onset (the rest keep the name)."""
RESELLER_SCRIPTED_SHARE = 0.5
"""With randomise: resellers calling through a script library (the rest keep their client)."""


def _vary_reseller(world: World, inst: Instance) -> None:
    """Randomised worlds: not every reseller renames itself or switches to a script client."""
    org = inst.org
    story = day_rng(world.config.seed, f"randomise:story:{inst.scenario}", inst.index)
    renamed = bool(story.random() < RESELLER_RENAMED_SHARE)
    scripted = bool(story.random() < RESELLER_SCRIPTED_SHARE)
    if not renamed:
        world.name[org] = world.previous_name[org] or world.name[org]
        world.previous_name[org] = None
        world.name_changed_on[org] = None
    if not scripted:
        inst.agents = np.array([world.org_client_agent[org]], dtype=np.int64)
    inst.extra["story"] = {"renamed": renamed, "scripted": scripted}


def _setup(world: World, inst: Instance, rng: np.random.Generator) -> None:
    """Rewrite the host's register entry and give the instance its accounts and tools."""
    org, onset = inst.org, inst.onset
    onset_date = world.date_of(onset)
    p = inst.params
    if isinstance(p, AgeVerificationReseller):
        world.previous_name[org] = world.name[org]
        offset = 2 if isinstance(p, LowVolumeReseller) else 0
        world.name[org] = bh.RESELLER_NAMES[(inst.index + offset) % len(bh.RESELLER_NAMES)]
        world.name_changed_on[org] = onset_date - timedelta(days=int(rng.integers(14, 120)))
        world.expected_learners[org] = int(rng.integers(40, 160))
        world.activity[org] *= p.residual_activity
        world.silent_from[org] = onset
        inst.user = int(world.org_user_start[org])  # the service account
        inst.ips = world.add_ips(make_ips(rng, 2))
        script = bh.SCRIPT_AGENTS[int(rng.integers(0, 3))]
        inst.agents = world.add_agents([script])
        if world.config.randomise:
            _vary_reseller(world, inst)
    elif isinstance(p, Enumeration):
        inst.user = _human(world, org, rng)
        inst.ips = np.array([world.user_ip[inst.user]])
        inst.agents = world.add_agents([bh.SCRIPT_AGENTS[int(rng.integers(0, 5))]])
        inst.extra["base"] = int(rng.integers(1_000_000_000, 9_000_000_000))
    elif isinstance(p, SharedCredentials):
        inst.user = _human(world, org, rng)
        inst.ips = np.concatenate(
            [[world.user_ip[inst.user]], world.add_ips(make_ips(rng, p.n_ips - 1, v6_share=0.2))]
        ).astype(np.int64)
        pool = list(bh.BROWSER_AGENTS) + list(SHARED_EXTRA_AGENTS)
        chosen = rng.choice(len(pool), size=min(p.n_agents, len(pool)), replace=False)
        inst.agents = world.add_agents([pool[int(c)] for c in chosen])
    elif isinstance(p, RevokedAccess):
        status = [OrgStatus.suspended, OrgStatus.revoked, OrgStatus.closed][inst.index % 3]
        back = int(rng.integers(p.status_change_min_days, p.status_change_max_days + 1))
        changed = max(onset_date - timedelta(days=back), world.registered_on[org] + timedelta(1))
        world.status[org] = status
        world.status_changed_on[org] = changed
        world.silent_from[org] = world.day_of(changed)
        world.override_from[org] = onset
        world.override_lam[org] = p.intensity * world.config.scenario_scale
    elif isinstance(p, DormantReactivation):
        world.silent_from[org] = -NEVER
        world.override_from[org] = onset
        world.override_lam[org] = p.intensity * world.config.scenario_scale
        earliest = world.start - timedelta(days=p.silent_days_before_window + 365)
        world.registered_on[org] = min(world.registered_on[org], earliest)
        world.silent_before[org] = world.day_of(world.registered_on[org])
    elif isinstance(p, PlrBrowsing):
        inst.user = _human(world, org, rng)
    elif isinstance(p, StealthReseller):
        humans = world.humans(org)
        k = min(int(rng.integers(p.accounts_min, p.accounts_max + 1)), len(humans))
        users = np.sort(rng.choice(humans, size=k, replace=False)).astype(np.int64)
        inst.extra["users"] = [int(u) for u in users]
        inst.user = int(users[0])
    elif isinstance(p, NpdOverreach):
        kinds = p.kinds
        primary = kinds[inst.index % len(kinds)]
        secondary = kinds[(inst.index + 1) % len(kinds)]
        inst.extra["kinds"] = (primary, secondary)
        current = npd.current_agreements(world, org, world.start)
        a = current[0]
        inst.extra["agreement"] = a.agreement_ref
        if "expired" in (primary, secondary):
            end = max(onset_date - timedelta(days=1), a.valid_from)
            i = world.agreements.index(a)
            world.agreements[i] = a.model_copy(update={"valid_to": end})
        inst.user = _human(world, org, rng)
    inst.label_user = isinstance(p, Enumeration | SharedCredentials | PlrBrowsing | StealthReseller)


def account(inst: Instance) -> int:
    """The account the instance acts through."""
    return inst.user


# --- Daily LRS calls --------------------------------------------------------------------


def _national_learners(
    world: World,
    inst: Instance,
    rng: np.random.Generator,
    m: int,
    ages: bh.AgeBands,
    geo: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> Any:
    keys = pack_keys(
        np.full(m, NATIONAL_KEYSPACE + ALL_SCENARIOS.index(inst.scenario) * 64 + inst.index),
        rng.integers(0, 1 << 32, size=m, dtype=np.uint64),
    )
    home = np.full(m, world.area[inst.org])
    return learner_attributes(world.config.seed, keys, ages, geo, home, world.start)


def _frame(
    world: World,
    inst: Instance,
    d: Any,
    secs: I64,
    op: I64,
    channel: int,
    learners: Any,
    resp: I64,
    user: I64,
    ip: I64,
    agent: I64,
    rng: np.random.Generator,
) -> pl.DataFrame:
    m = len(op)
    count, batch = counts_and_batches(op, resp, rng)
    return raw_frame(
        {
            "_ts": to_utc_us(d, secs),
            "org": np.full(m, inst.org),
            "user": user,
            "channel": np.full(m, channel),
            "op": op,
            **learner_fields(op, resp, learners),
            "resp": resp,
            "result_count": count,
            "batch_size": batch,
            "ip": ip,
            "agent": agent,
        }
    )


def _searches(
    world: World, p: AgeVerificationReseller | StealthReseller, day: int, rng: np.random.Generator
) -> tuple[Any, int, Any, I64]:
    """A reseller's day: the date, how many calls, which are verifies, and the operations."""
    d = world.date_of(day)
    scale = world.config.scenario_scale
    m = int(rng.poisson(p.intensity * scale * (p.weekend_factor if d.weekday() >= 5 else 1.0)))
    verify = rng.random(m) < p.verify_share
    op = np.where(verify, bh.OP["verifyLearner"], bh.OP["learnerByDemographics"])
    return d, m, verify, op.astype(np.int64)


def _client(world: World, org: int, day: int) -> int:
    """The org's web-service client agent on ``day`` (after an upgrade, the new build)."""
    upgraded = day >= world.org_upgrade_day[org]
    return int(world.org_upgraded_agent[org] if upgraded else world.org_client_agent[org])


def _reseller(world: World, inst: Instance, day: int, rng: np.random.Generator) -> pl.DataFrame:
    p = inst.params
    assert isinstance(p, AgeVerificationReseller)
    d, m, verify, op = _searches(world, p, day, rng)
    evening = rng.random(m) < p.evening_share
    secs = np.where(
        evening,
        18 * 3600 + (rng.random(m) * 6 * 3600).astype(np.int64),
        7 * 3600 + (rng.random(m) * 11 * 3600).astype(np.int64),
    )
    learners = _national_learners(world, inst, rng, m, ((p.age_min, p.age_max + 1, 1.0),))
    u = rng.random(m)
    miss = np.where(
        verify,
        bh.RC["no_match"],
        np.where(rng.random(m) < 0.8, bh.RC["no_match"], bh.RC["possible_match"]),
    )
    resp = np.where(u < p.match_rate, bh.RC["exact_match"], miss)
    ip = inst.ips[(rng.random(m) * len(inst.ips)).astype(np.int64)]
    return _frame(
        world, inst, d, secs, op, bh.CH["webservice"], learners, resp,
        np.full(m, account(inst)), ip, np.full(m, inst.agents[0]), rng,
    )  # fmt: skip


def _enumeration(world: World, inst: Instance, day: int, rng: np.random.Generator) -> pl.DataFrame:
    p = inst.params
    assert isinstance(p, Enumeration)
    d = world.date_of(day)
    rate = p.intensity * world.config.scenario_scale
    m = int(rng.poisson(rate))
    mean_step = (1 + p.max_step) / 2
    pos = inst.extra["base"] + int((day - inst.onset) * rate * mean_step)
    numbers = pos + np.cumsum(rng.integers(1, p.max_step + 1, size=m))
    numbers = np.minimum(numbers, 9_999_999_998)
    fixed = rng.random(m) >= p.invalid_share
    numbers = np.where(fixed, valid_ulns(numbers // 10), numbers)
    starts = rng.integers(0, 86_400 - 5_400, size=p.bursts_per_day)
    burst = rng.integers(0, p.bursts_per_day, size=m)
    secs = np.sort(starts[burst] + rng.integers(0, 5_400, size=m))
    from pipeline.ingest.uln import valid_uln_expr

    valid = (
        pl.DataFrame({"u": numbers.astype(str)}).select(valid_uln_expr("u")).to_series().to_numpy()
    ).astype(bool)
    hit = valid & (rng.random(m) < p.hit_rate)
    resp = np.where(hit, bh.RC["exact_match"], bh.RC["no_match"])
    op = np.full(m, bh.OP["learnerByULN"])
    keys = numbers.astype(np.uint64)
    learners = learner_attributes(
        world.config.seed, keys, ((16, 40, 1.0),), (0.0, 0.0, 1.0),
        np.full(m, world.area[inst.org]), world.start,
    )  # fmt: skip
    learners = type(learners)(
        numbers, learners.dob, learners.area, learners.district, learners.sector, learners.unit
    )
    return _frame(
        world, inst, d, secs, op, bh.CH["webservice"], learners, resp,
        np.full(m, inst.user), np.full(m, inst.ips[0]), np.full(m, inst.agents[0]), rng,
    )  # fmt: skip


_SHARED_OPS = np.array([bh.OP["learnerByDemographics"], bh.OP["learnerByULN"],
                        bh.OP["GetLearnerLearningEvents"]])  # fmt: skip


def _shared(world: World, inst: Instance, day: int, rng: np.random.Generator) -> pl.DataFrame:
    p = inst.params
    assert isinstance(p, SharedCredentials)
    d = world.date_of(day)
    m = int(rng.poisson(p.intensity * world.config.scenario_scale))
    op = _SHARED_OPS[categorical(rng.random(m), [0.35, 0.3, 0.35])]
    night = rng.random(m) < p.night_share
    secs = np.where(
        night,
        (22 * 3600 + (rng.random(m) * 8 * 3600).astype(np.int64)) % 86_400,
        6 * 3600 + (rng.random(m) * 16 * 3600).astype(np.int64),
    )
    learners = _national_learners(
        world, inst, rng, m, ((16, 25, 0.6), (25, 60, 0.4)), (0.1, 0.2, 0.7)
    )
    resp = responses(op, rng.random(m))
    ip = inst.ips[(rng.random(m) * len(inst.ips)).astype(np.int64)]
    agent = inst.agents[(rng.random(m) * len(inst.agents)).astype(np.int64)]
    return _frame(
        world, inst, d, secs, op, bh.CH["portal"], learners, resp,
        np.full(m, inst.user), ip, agent, rng,
    )  # fmt: skip


def _plr(world: World, inst: Instance, day: int, rng: np.random.Generator) -> pl.DataFrame:
    p = inst.params
    assert isinstance(p, PlrBrowsing)
    d = world.date_of(day)
    scale = world.config.scenario_scale
    m = int(rng.poisson(p.intensity * scale * (0.1 if d.weekday() >= 5 else 1.0)))
    extra = int(rng.binomial(m, p.lookup_share))
    op = np.concatenate(
        [np.full(m, bh.OP["GetLearnerLearningEvents"]), np.full(extra, bh.OP["LearnerByUln"])]
    )
    total = m + extra
    secs = local_seconds(bh.HOURS_OFFICE, rng, total)
    learners = _national_learners(world, inst, rng, total, ((p.age_min, p.age_max + 1, 1.0),))
    area = areas_outside(int(world.region[inst.org]), rng.random(total))
    learners = type(learners)(
        learners.uln, learners.dob, area, learners.district, learners.sector, learners.unit
    )
    resp = responses(op, rng.random(total))
    user = np.full(total, inst.user)
    return _frame(
        world, inst, d, secs, op, bh.CH["portal"], learners, resp, user,
        world.user_ip[user], world.user_agent[user], rng,
    )  # fmt: skip


_OFFICE_ONLY = tuple(w if 8 <= h < 18 else 0.0 for h, w in enumerate(bh.HOURS_OFFICE))
"""Office hours only: 08:00-18:00 local."""


def _stealth(world: World, inst: Instance, day: int, rng: np.random.Generator) -> pl.DataFrame:
    """Extra searches / verifies of adults nationwide by a few existing staff accounts, in
    office hours, through the portal or the provider's own client like their normal work."""
    p = inst.params
    assert isinstance(p, StealthReseller)
    d, m, verify, op = _searches(world, p, day, rng)
    secs = local_seconds(_OFFICE_ONLY, rng, m)
    learners = _national_learners(world, inst, rng, m, ((p.age_min, p.age_max + 1, 1.0),))
    miss = np.where(
        verify,
        bh.RC["no_match"],
        np.where(rng.random(m) < 0.7, bh.RC["no_match"], bh.RC["possible_match"]),
    )
    resp = np.where(rng.random(m) < p.match_rate, bh.RC["exact_match"], miss)
    users = np.array(inst.extra["users"], dtype=np.int64)
    user = users[(rng.random(m) * len(users)).astype(np.int64)]
    portal = rng.random(m) < world.profiles[int(world.profile[inst.org])].portal_share
    org = inst.org
    client = _client(world, org, day)
    ip = np.where(portal, world.user_ip[user], world.org_server_ip[org])
    agent = np.where(portal, world.user_agent[user], client)
    frame = _frame(
        world, inst, d, secs, op, bh.CH["webservice"], learners, resp, user, ip, agent, rng
    )
    return frame.with_columns(
        channel=pl.Series(np.where(portal, bh.CH["portal"], bh.CH["webservice"]).astype(np.int64))
    )


def _distance_searches(world: World, inst: Instance, day: int) -> dict[str, Any]:
    """The new people a distance-learning provider searches on ``day`` and what it does
    with each later (follow-up lags in days, -1 = never), re-derived from the day's own
    stream so that follow-ups on later days hit the same people without carried state."""
    p = inst.params
    assert isinstance(p, DistanceLearning)
    rng = day_rng(
        world.config.seed, f"decoy:national_distance_learning:{inst.index}", day + DISTANCE_PAST
    )
    d = world.date_of(day)
    rate = p.searches_per_day * world.config.volume_scale
    m = min(int(rng.poisson(rate * (p.weekend_factor if d.weekday() >= 5 else 1.0))), 16_383)
    keys: U64 = pack_keys(
        np.full(m, DISTANCE_KEYSPACE + inst.index), (day + DISTANCE_PAST) * 16_384 + np.arange(m)
    )
    op = np.full(m, bh.OP["learnerByDemographics"])
    resp = responses(op, rng.random(m))
    follow = rng.random(m) < p.follow_share
    follow_lag = np.where(follow, rng.integers(p.follow_lag_min, p.follow_lag_max + 1, size=m), -1)
    revisit = rng.random(m) < p.revisit_share
    revisit_lag = np.where(
        revisit, rng.integers(p.revisit_lag_min, p.revisit_lag_max + 1, size=m), -1
    )
    read = revisit & (rng.random(m) < p.read_share)
    return {"keys": keys, "resp": resp, "follow_lag": follow_lag,
            "revisit_lag": revisit_lag, "read": read}  # fmt: skip


def _distance(world: World, inst: Instance, day: int, rng: np.random.Generator) -> pl.DataFrame:
    """A distance-learning provider's day: today's searches of new people, and the
    registrations / updates, repeat look-ups and record reads due today of people it
    searched on earlier days (the same learner keys, so the same ULNs and postcodes)."""
    p = inst.params
    assert isinstance(p, DistanceLearning)
    today = _distance_searches(world, inst, day)
    keys = [today["keys"]]
    ops = [np.full(len(today["keys"]), bh.OP["learnerByDemographics"])]
    longest = max(p.follow_lag_max, p.revisit_lag_max)
    for back in range(1, longest + 1):
        past = _distance_searches(world, inst, day - back)
        found = past["resp"] == bh.RC["exact_match"]
        due = past["follow_lag"] == back
        keys.append(past["keys"][due])
        ops.append(
            np.where(found[due], bh.OP["updateSingleLearner"], bh.OP["registerSingleLearner"])
        )
        again = past["revisit_lag"] == back
        reads = again & past["read"]
        keys += [past["keys"][again], past["keys"][reads]]
        ops += [
            np.full(int(again.sum()), bh.OP["learnerByULN"]),
            np.full(int(reads.sum()), bh.OP["GetLearnerLearningEvents"]),
        ]
    k_all = np.concatenate(keys)
    op = np.concatenate(ops).astype(np.int64)
    m = len(op)
    n_new = len(today["keys"])
    resp = np.concatenate([today["resp"], responses(op[n_new:], rng.random(m - n_new))])
    resp = resp.astype(np.int64)
    evening = rng.random(m) < p.evening_share
    secs = np.where(
        evening,
        18 * 3600 + (rng.random(m) * 5 * 3600).astype(np.int64),
        local_seconds(bh.HOURS_EXTENDED, rng, m),
    )
    org = inst.org
    svc = rng.random(m) < p.service_share
    humans = world.humans(org)
    human = humans[(rng.random(m) * len(humans)).astype(np.int64)]
    user = np.where(svc, int(world.org_user_start[org]), human)
    client = _client(world, org, day)
    ip = np.where(svc, world.org_server_ip[org], world.user_ip[user])
    agent = np.where(svc, client, world.user_agent[user])
    learners = learner_attributes(
        world.config.seed, k_all, ((p.age_min, p.age_max + 1, 1.0),), (0.0, 0.0, 1.0),
        np.full(m, world.area[org]), world.start,
    )  # fmt: skip
    frame = _frame(
        world, inst, world.date_of(day), secs, op, bh.CH["webservice"], learners, resp,
        user, ip, agent, rng,
    )  # fmt: skip
    return frame.with_columns(
        channel=pl.Series(np.where(svc, bh.CH["webservice"], bh.CH["portal"]).astype(np.int64))
    )


_LRS_PLAYERS = {
    "age_verification_reseller": _reseller,
    "low_volume_reseller": _reseller,
    "enumeration": _enumeration,
    "shared_credentials": _shared,
    "plr_browsing": _plr,
    "stealth_reseller": _stealth,
    "national_distance_learning": _distance,
}


def scenario_lrs_day(
    world: World, instances: list[Instance], day: int
) -> tuple[list[pl.DataFrame], dict[str, int]]:
    """Each active scenario's own LRS calls on ``day`` (raw frames) and counts per scenario.

    Revoked and dormant organisations need no calls of their own here: their register
    windows (``override_from``) make the normal generator run them at the scenario's rate.
    """
    frames: list[pl.DataFrame] = []
    counts: dict[str, int] = {}
    for inst in instances:
        player = _LRS_PLAYERS.get(inst.scenario)
        if player is None or not inst.active(day):
            continue
        rng = day_rng(world.config.seed, f"scenario:{inst.scenario}:{inst.index}", day)
        f = player(world, inst, day, rng)
        frames.append(f)
        key = inst.scenario if inst.scenario in ALL_SCENARIOS else f"decoy:{inst.scenario}"
        counts[key] = counts.get(key, 0) + f.height
    return frames, counts


# --- Daily NPD queries ------------------------------------------------------------------

_IDENTIFYING: tuple[bh.NpdItem, ...] = tuple(it for it in bh.NPD_ITEMS["census"] if it[1] <= 2)
_SENSITIVE: tuple[bh.NpdItem, ...] = tuple(
    it for ds in ("cin", "cla", "exclusions") for it in bh.NPD_ITEMS[ds] if it[2] == "A"
)


def scenario_npd_day(
    world: World, instances: list[Instance], day: int, out: npd.NpdRows
) -> dict[str, int]:
    """NPD over-reach queries of active instances on ``day``; returns counts per scenario."""
    d = world.date_of(day)
    counts: dict[str, int] = {}
    for inst in instances:
        if inst.scenario != "npd_overreach" or not inst.active(day):
            continue
        p = inst.params
        assert isinstance(p, NpdOverreach)
        rng = day_rng(world.config.seed, f"scenario:npd_overreach:{inst.index}", day)
        ref = inst.extra["agreement"]
        a = next(x for x in world.agreements if x.agreement_ref == ref)
        lim = npd.limits(a)
        weekend = d.weekday() >= 5
        m = int(rng.poisson(p.intensity * (0.2 if weekend else 1.0)))
        for _ in range(m):
            kind = inst.extra["kinds"][0 if rng.random() < 0.75 else 1]
            datasets = lim.datasets.split(";")
            dataset = str(datasets[int(rng.integers(0, len(datasets)))])
            base = npd.compliant_items(a, dataset) or [bh.NPD_ITEMS[dataset][0]]
            items = list(base[: int(rng.integers(1, len(base) + 1))])
            rows = int(lim.max_rows * rng.beta(2, 5))
            agreement_ref: str | None = a.agreement_ref
            if kind == "identifying":
                picks = rng.choice(len(_IDENTIFYING), size=int(rng.integers(1, 4)), replace=False)
                items += [_IDENTIFYING[int(j)] for j in picks]
            elif kind == "sensitive":
                picks = rng.choice(len(_SENSITIVE), size=int(rng.integers(1, 3)), replace=False)
                items += [_SENSITIVE[int(j)] for j in picks]
            elif kind == "rows":
                rows = int(lim.max_rows * p.row_multiplier * rng.uniform(0.8, 1.5))
            elif kind == "dataset":
                outside = [x for x in bh.NPD_DATASETS if x not in datasets]
                dataset = str(outside[int(rng.integers(0, len(outside)))])
                items = [it for it in bh.NPD_ITEMS[dataset] if it[1] >= 3][:4]
            elif kind == "no_agreement":
                agreement_ref = None
            y0 = int(rng.integers(lim.year_from, lim.year_to + 1))
            npd.add_query(
                out, world, inst.org, d, rng,
                agreement_ref=agreement_ref, channel="srs", dataset=dataset, items=items,
                years=(y0, lim.year_to), rows_returned=rows, user=account(inst),
            )  # fmt: skip
        counts[inst.scenario] = counts.get(inst.scenario, 0) + m
    return counts


def override_counts(instances: list[Instance], raw: pl.DataFrame, day: int) -> dict[str, int]:
    """Calls made by revoked / dormant hosts after onset (they run through the normal path)."""
    out: dict[str, int] = {}
    for inst in instances:
        if inst.scenario in ("revoked_access", "dormant_reactivation") and inst.active(day):
            n = int((raw["org"] == inst.org).sum())
            out[inst.scenario] = out.get(inst.scenario, 0) + n
    return out


__all__ = ["DECOYS", "MISSING", "SCENARIOS", "Instance", "assign_roles"]
