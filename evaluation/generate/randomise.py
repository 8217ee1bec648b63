"""Domain randomisation: every behaviour parameter drawn per world from wide ranges.

With ``WorldConfig.randomise`` on, each org type profile (:data:`behaviour.PROFILES`), each
scenario instance and each decoy organisation gets its own parameters, drawn from the
ranges below with streams keyed on (seed, what is drawn, instance), so the same seed gives
the same world and a different seed a differently shaped one. The draws are written to
``truth/parameters.json`` (:func:`parameters_document`) so any result can be traced to the
world's shape. The ranges are documented in ``docs/generator.md`` ("Randomised worlds");
keep the two in step.

A range is ``(kind, low, high)``: ``"u"`` uniform, ``"log"`` log-uniform (for rates and
volumes, whose plausible values span a factor), ``"int"`` an integer in [low, high].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel

from evaluation.generate import behaviour as bh
from evaluation.generate.rng import day_rng
from schemas.generate import WorldConfig

Range = tuple[Literal["u", "log", "int"], float, float]
P = TypeVar("P", bound=BaseModel)

# --- Org type profiles ------------------------------------------------------------------

PROFILE_FACTORS: Mapping[str, Range] = {
    "events_per_learner": ("log", 0.5, 2.0),  # x the profile's calls per learner per day
    "op_weight": ("log", 0.5, 2.0),  # x each operation's weight (then renormalised)
    "portal_share": ("log", 0.5, 2.0),  # x, clipped to [0.02, 0.95]
    "service_share": ("log", 0.5, 2.0),  # x, clipped to [0.05, 0.95]
    "weekend_factor": ("log", 1 / 3, 3.0),  # x, clipped to [0, 1]
    "bank_holiday_factor": ("log", 1 / 3, 3.0),  # x, clipped to [0, 1]
    "holiday_factor": ("log", 0.6, 1.6),  # x, clipped to [0, 1.2]
    "surge": ("u", 0.5, 1.5),  # x (surge - 1): enrolment, results, clearing
    "geo_weight": ("log", 0.5, 2.0),  # x each of home area / region / anywhere, renormalised
    "age_weight": ("log", 0.5, 2.0),  # x each age band's weight
    "pool_factor": ("u", 0.7, 1.5),  # x learner pool size (revisits: smaller pool, more)
}
PROFILE_VALUES: Mapping[str, Range] = {
    "hour_shift": ("int", -1, 1),  # whole hours the day's curve moves
    "evening_blend": ("u", 0.0, 0.25),  # share of the hours curve taken from evening work
    "age_shift": ("int", -2, 2),  # years every age band moves
    "overnight_batch_share": ("u", 0.1, 0.7),
    "pool_skew": ("u", 1.2, 3.0),  # revisit concentration on the first pool learners
    "script_share": ("u", 0.0, 0.12),  # orgs whose web-service client is a script library
    "follow_share": ("u", 0.3, 0.85),  # searched people followed up by the same org ...
    "follow_lag_max": ("int", 0, 7),  # ... 0 to this many days later
}

# --- Scenarios and decoys ---------------------------------------------------------------

_RESELLER: Mapping[str, Range] = {
    "intensity": ("log", 20, 150),
    "verify_share": ("u", 0.0, 0.6),
    "weekend_factor": ("u", 0.2, 1.1),
    "evening_share": ("u", 0.05, 0.5),
    "age_min": ("int", 19, 30),
    "age_max": ("int", 55, 75),
    "match_rate": ("u", 0.35, 0.85),
    "residual_activity": ("u", 0.0, 0.5),
}
SCENARIO_RANGES: Mapping[str, Mapping[str, Range]] = {
    "age_verification_reseller": _RESELLER,
    "low_volume_reseller": {**_RESELLER, "intensity": ("u", 10, 20)},
    "stealth_reseller": {
        "intensity": ("u", 15, 30),
        "verify_share": ("u", 0.0, 0.6),
        "weekend_factor": ("u", 0.0, 0.2),
        "age_min": ("int", 19, 22),
        "age_max": ("int", 62, 70),
        "match_rate": ("u", 0.4, 0.8),
    },
    "enumeration": {
        "intensity": ("log", 80, 1500),
        "invalid_share": ("u", 0.3, 0.9),
        "max_step": ("int", 1, 10),
        "hit_rate": ("u", 0.05, 0.4),
        "bursts_per_day": ("int", 1, 6),
    },
    "shared_credentials": {
        "intensity": ("log", 40, 400),
        "n_ips": ("int", 5, 60),
        "n_agents": ("int", 3, 9),
        "night_share": ("u", 0.1, 0.5),
    },
    "revoked_access": {
        "intensity": ("log", 15, 200),
        "status_change_min_days": ("int", 10, 60),
        "status_change_max_days": ("int", 90, 400),
    },
    "dormant_reactivation": {
        "intensity": ("log", 20, 250),
        "silent_days_before_window": ("int", 90, 720),
    },
    "plr_browsing": {  # the record browser: adults 30-60 from all over the country
        "intensity": ("log", 8, 45),
        "age_min": ("int", 28, 35),
        "age_max": ("int", 55, 62),
        "lookup_share": ("u", 0.0, 0.6),
    },
    "npd_overreach": {
        "intensity": ("log", 0.5, 8),
        "row_multiplier": ("log", 2, 30),
    },
}
DECOY_RANGES: Mapping[str, Mapping[str, Range]] = {
    "enrolment_surge": {"strength": ("u", 3, 10)},
    "results_day_batch": {"strength": ("u", 2.5, 8)},
    "he_clearing": {"strength": ("u", 2.5, 8)},
    "mis_supplier": {"strength": ("int", 3, 10)},
    "research_heavy": {"strength": ("log", 4, 25)},
    "national_distance_learning": {
        "searches_per_day": ("log", 40, 260),
        "weekend_factor": ("u", 0.3, 0.9),
        "evening_share": ("u", 0.1, 0.4),
        "service_share": ("u", 0.6, 0.95),
        "age_min": ("int", 19, 21),
        "age_max": ("int", 55, 62),
        "follow_share": ("u", 0.55, 0.8),
        "follow_lag_max": ("int", 3, 5),
        "revisit_share": ("u", 0.3, 0.8),
        "revisit_lag_min": ("int", 3, 7),
        "revisit_lag_max": ("int", 14, 28),
        "read_share": ("u", 0.3, 0.8),
        "cohort": ("log", 1500, 12000),
    },
}


def draw(rng: np.random.Generator, r: Range) -> float:
    """One value from a range."""
    kind, lo, hi = r
    if kind == "int":
        return int(rng.integers(int(lo), int(hi) + 1))
    if kind == "log":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def drawn_params(params: P, ranges: Mapping[str, Range], rng: np.random.Generator) -> P:
    """``params`` with every field named in ``ranges`` drawn (validated against its bounds)."""
    update: dict[str, Any] = {}
    for name, r in ranges.items():
        value = draw(rng, r)
        update[name] = round(value) if isinstance(getattr(params, name), int) else value
    return type(params).model_validate({**params.model_dump(), **update})


def scenario_params(config: WorldConfig, name: str, index: int, params: P) -> P:
    """One scenario instance's parameters, drawn for this world."""
    rng = day_rng(config.seed, f"randomise:scenario:{name}", index)
    return drawn_params(params, SCENARIO_RANGES.get(name, {}), rng)


def decoy_params(config: WorldConfig, kind: str, index: int, params: P) -> P:
    """One decoy organisation's parameters, drawn for this world."""
    rng = day_rng(config.seed, f"randomise:decoy:{kind}", index)
    return drawn_params(params, DECOY_RANGES.get(kind, {}), rng)


def onset(config: WorldConfig, name: str, index: int) -> int:
    """A scenario onset anywhere in ``config.onset_range`` of the window (day 0 excluded)."""
    rng = day_rng(config.seed, f"randomise:onset:{name}", index)
    lo, hi = config.onset_range
    last = config.days - 1
    first = min(max(1, math.floor(lo * last)), last)
    return int(rng.integers(first, max(first, math.ceil(hi * last)) + 1))


def _hours(p: bh.Profile, rng: np.random.Generator) -> tuple[float, ...]:
    shift = int(draw(rng, PROFILE_VALUES["hour_shift"]))
    blend = draw(rng, PROFILE_VALUES["evening_blend"])
    base = np.roll(np.array(p.hours, dtype=np.float64), shift)
    evening = np.array(bh.HOURS_EVENING, dtype=np.float64)
    mixed = (1 - blend) * base / base.sum() + blend * evening / evening.sum()
    return tuple(round(float(x) * 100, 4) for x in mixed)


def _profile(p: bh.Profile, rng: np.random.Generator) -> bh.Profile:
    f = {k: draw(rng, r) for k, r in PROFILE_FACTORS.items() if k not in ("op_weight",)}
    ops = {op: w * draw(rng, PROFILE_FACTORS["op_weight"]) for op, w in p.op_mix.items()}
    total = sum(ops.values())
    shift = int(draw(rng, PROFILE_VALUES["age_shift"]))
    ages = tuple(
        (max(4, lo + shift), max(5, hi + shift), w * draw(rng, PROFILE_FACTORS["age_weight"]))
        for lo, hi, w in p.ages
    )
    geo_raw = [g * draw(rng, PROFILE_FACTORS["geo_weight"]) for g in p.geo]
    geo = tuple(g / sum(geo_raw) for g in geo_raw)

    def surge(s: float) -> float:
        return 1 + (s - 1) * draw(rng, PROFILE_FACTORS["surge"])

    return replace(
        p,
        events_per_learner=p.events_per_learner * f["events_per_learner"],
        op_mix={op: w / total for op, w in ops.items()},
        portal_share=min(max(p.portal_share * f["portal_share"], 0.02), 0.95),
        service_share=min(max(p.service_share * f["service_share"], 0.05), 0.95),
        ages=ages,
        geo=(geo[0], geo[1], geo[2]),
        hours=_hours(p, rng),
        overnight_batch_share=draw(rng, PROFILE_VALUES["overnight_batch_share"]),
        weekend_factor=min(p.weekend_factor * f["weekend_factor"], 1.0),
        bank_holiday_factor=min(p.bank_holiday_factor * f["bank_holiday_factor"], 1.0),
        holiday_factor=min(p.holiday_factor * f["holiday_factor"], 1.2),
        enrolment_surge=surge(p.enrolment_surge),
        results_surge=surge(p.results_surge),
        clearing_surge=surge(p.clearing_surge),
        pool_factor=p.pool_factor * f["pool_factor"],
        pool_skew=draw(rng, PROFILE_VALUES["pool_skew"]),
        script_share=draw(rng, PROFILE_VALUES["script_share"]),
        follow_share=draw(rng, PROFILE_VALUES["follow_share"]),
        follow_lag_max=int(draw(rng, PROFILE_VALUES["follow_lag_max"])),
    )


def profiles(config: WorldConfig) -> tuple[bh.Profile, ...]:
    """This world's behaviour profiles: the defaults, or all drawn when ``randomise``."""
    if not config.randomise:
        return bh.PROFILES
    return tuple(
        p if p.name == "none" else _profile(p, day_rng(config.seed, f"randomise:profile:{p.name}"))
        for p in bh.PROFILES
    )


def script_clients(world: Any) -> None:
    """Give a share (the profile's ``script_share``) of each profile's LRS organisations a
    bare script library as their web-service client: legitimate in-house integrations."""
    rng = day_rng(world.config.seed, "randomise:script-clients")
    share = np.array([p.script_share for p in world.profiles])[world.profile]
    u = rng.random(world.n)
    pick = rng.integers(0, len(bh.SCRIPT_AGENTS), size=world.n)
    chosen = np.flatnonzero((u < share) & np.array([x is not None for x in world.ukprn]))
    if len(chosen) == 0:
        return
    agents = world.add_agents(list(bh.SCRIPT_AGENTS))
    world.org_client_agent[chosen] = agents[pick[chosen]]
    world.org_upgraded_agent[chosen] = agents[pick[chosen]]


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def profile_document(ps: tuple[bh.Profile, ...]) -> dict[str, Any]:
    """Profiles as JSON-ready dicts, by name."""
    return {p.name: _jsonable(asdict(p)) for p in ps}


def parameters_document(
    config: WorldConfig, ps: tuple[bh.Profile, ...], roles: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """What ``truth/parameters.json`` holds: the config, the ranges, every draw."""
    return _jsonable(
        {
            "config": config.model_dump(mode="json"),
            "ranges": {
                "profile_factors": PROFILE_FACTORS,
                "profile_values": PROFILE_VALUES,
                "scenarios": SCENARIO_RANGES,
                "decoys": DECOY_RANGES,
            },
            "profiles": profile_document(ps),
            **roles,
        }
    )
