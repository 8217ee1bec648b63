"""LRS calls: a day of normal use for every organisation, and the contract frame.

Events are first built as a compact "raw" frame of integer codes (organisation, user,
operation, learner attributes, indices into the world's address and agent tables); the
scenarios build raw frames the same way. :func:`finalise_lrs` turns a day's raw frames into
rows of the input contract (:class:`schemas.LrsEvent`), with event ids and ISO timestamps.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl

from evaluation.generate import behaviour as bh
from evaluation.generate import calendar as cal
from evaluation.generate.rng import categorical, day_rng, pack_keys
from evaluation.generate.world import AREAS, EPOCH, I64, UNITS, Learners, World, learner_attributes
from schemas.events import LrsEvent

MISSING = -(1 << 40)
"""Sentinel for an absent integer value in raw frames (ULN, date of birth, postcode area)."""
RAW_COLUMNS: tuple[str, ...] = (
    "_ts", "org", "user", "channel", "op", "uln", "dob", "area", "district", "sector", "unit",
    "resp", "result_count", "batch_size", "ip", "agent",
)  # fmt: skip
LRS_COLUMNS: list[str] = list(LrsEvent.model_fields)
US = 1_000_000
FINALISE_ROWS = 400_000
"""Rows turned into contract strings at once (bounds the temporaries)."""


def op_weights(profiles: tuple[bh.Profile, ...]) -> list[npt.NDArray[np.float64]]:
    """Per profile, the weight of each operation (index = behaviour.OPS)."""
    return [np.array([p.op_mix.get(o, 0.0) for o in bh.OPS]) for p in profiles]


_OP_WEIGHTS = op_weights(bh.PROFILES)


def raw_frame(cols: dict[str, npt.ArrayLike]) -> pl.DataFrame:
    """A raw LRS frame from equal-length integer arrays (every RAW_COLUMNS key required)."""
    return pl.DataFrame({c: np.asarray(cols[c], dtype=np.int64) for c in RAW_COLUMNS})


def learner_fields(op: I64, resp: I64, learners: Learners) -> dict[str, I64]:
    """ULN, birth date and postcode parts as the call sends or returns them (else MISSING)."""
    matched = (resp == bh.RC["exact_match"]) | (resp == bh.RC["linked_match"])
    has = bh.HAS_LEARNER[op]
    uln_on = has & (bh.HAS_ULN_SENT[op] | (bh.HAS_ULN_RETURNED[op] & matched))
    demog_on = has & (bh.HAS_DEMOG_SENT[op] | (bh.HAS_DEMOG_RETURNED[op] & matched))
    return {
        "uln": np.where(uln_on, learners.uln, MISSING),
        "dob": np.where(demog_on, learners.dob, MISSING),
        "area": np.where(demog_on, learners.area, MISSING),
        "district": learners.district,
        "sector": learners.sector,
        "unit": learners.unit,
    }


def responses(op: I64, u: npt.NDArray[np.float64]) -> I64:
    """Response codes (indices into behaviour.RESPONSES) drawn from each operation's mix."""
    return (bh.RESPONSE_CUM[op] <= u[:, None]).sum(axis=1).astype(np.int64)


def counts_and_batches(op: I64, resp: I64, rng: np.random.Generator) -> tuple[I64, I64]:
    """``result_count`` and ``batch_size`` (0 = none) consistent with operation and response."""
    m = len(op)
    lo, hi = bh.BATCH_SIZE_RANGE
    batch = np.clip(
        np.round(bh.BATCH_SIZE_MEDIAN * np.exp(bh.BATCH_SIZE_SIGMA * rng.standard_normal(m))),
        lo,
        hi,
    ).astype(np.int64)
    batch = np.where(bh.IS_BATCH[op], batch, 0)
    u = rng.random(m)
    matched = (resp == bh.RC["exact_match"]) | (resp == bh.RC["linked_match"])
    possible = resp == bh.RC["possible_match"]
    o = bh.OP
    count = np.select(
        [
            (op == o["submitBatchRegistration"]) | (op == o["submitVerifyBatch"]),
            bh.IS_BATCH[op],
            op == o["retrieveULNs"],
            op == o["ViewAudit"],
            op == o["GetOrganisation"],
            (op == o["GetLearnerLearningEvents"]) & matched,
            possible,
            matched,
        ],
        [
            0,
            np.maximum(batch - (u * batch * 0.05).astype(np.int64), 0),
            1 + (u * 200).astype(np.int64),
            (u * 50).astype(np.int64),
            1,
            1 + (u * 25).astype(np.int64),
            2 + (u * 9).astype(np.int64),
            1,
        ],
        default=0,
    )
    return count.astype(np.int64), batch


def local_seconds(
    hours: tuple[float, ...], rng: np.random.Generator, m: int
) -> npt.NDArray[np.int64]:
    """Seconds after local midnight, hour drawn from ``hours`` weights."""
    hour = categorical(rng.random(m), np.array(hours))
    return hour * 3600 + (rng.random(m) * 3600).astype(np.int64)


def to_utc_us(d: date, seconds: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Microsecond UTC timestamps of local (Europe/London) ``seconds`` on ``d``."""
    off = cal.london_offset_hours(d)
    return cal.utc_midnight_us(d) + (seconds - off * 3600) * US


def day_factors(world: World, day: int) -> npt.NDArray[np.float64]:
    """Per-org volume multiplier for ``day``: weekday, holidays and seasonal surges."""
    d = world.date_of(day)
    weekend = d.weekday() >= 5
    bank = d in cal.bank_holidays(d.year)
    holiday = cal.is_school_holiday(d)
    base = np.ones(len(world.profiles))
    for i, p in enumerate(world.profiles):
        f = 1.0
        if weekend:
            f *= p.weekend_factor
        elif bank:
            f *= p.bank_holiday_factor
        if holiday:
            f *= p.holiday_factor
        base[i] = f
    per_org = base[world.profile]
    s = world.season
    per_org = per_org * (1 + (s["enrolment"] - 1) * cal.enrolment_bump(d))
    per_org = per_org * (1 + (s["results"] - 1) * cal.results_bump(d))
    per_org = per_org * (1 + (s["clearing"] - 1) * cal.clearing_bump(d))
    return per_org


def expected_calls(world: World, day: int) -> npt.NDArray[np.float64]:
    """Expected normal LRS calls per org on ``day`` (zero outside its active window)."""
    epl = np.array([p.events_per_learner for p in world.profiles])[world.profile]
    lam = world.expected_learners * epl * world.activity * world.config.volume_scale
    lam = lam * day_factors(world, day)
    active = (world.silent_before <= day) & (day < world.silent_from)
    ramp = np.where(
        world.ramp_days > 0,
        np.clip((day - world.silent_before + 1) / np.maximum(world.ramp_days, 1), 0, 1),
        1.0,
    )
    lam = np.where(active, lam * ramp, 0.0)
    d = world.date_of(day)
    week = 0.3 if d.weekday() >= 5 else 1.0
    return np.where(day >= world.override_from, world.override_lam * week, lam)


def normal_lrs_day(world: World, day: int, rng: np.random.Generator) -> pl.DataFrame:
    """Every organisation's ordinary LRS calls on ``day`` (raw frame)."""
    d = world.date_of(day)
    lam = expected_calls(world, day)
    noise = rng.gamma(bh.DAY_NOISE_SHAPE, 1 / bh.DAY_NOISE_SHAPE, size=world.n)
    n = rng.poisson(lam * noise)
    order = np.argsort(world.profile, kind="stable")
    ev_org = np.repeat(order, n[order])
    bounds = np.searchsorted(world.profile[ev_org], np.arange(len(world.profiles) + 1))
    weights = _OP_WEIGHTS if world.profiles is bh.PROFILES else op_weights(world.profiles)
    follows = any(p.follow_share > 0 for p in world.profiles)
    frames = []
    searches: list[Searches] = []
    for k, p in enumerate(world.profiles):
        a, b = int(bounds[k]), int(bounds[k + 1])
        if b > a:
            block, lidx = _profile_block(world, day, d, p, weights[k], ev_org[a:b], rng)
            frames.append(block)
            if follows and p.follow_share > 0:
                searches.append(_searches_of(block, lidx, k))
    if follows:
        frames += _follow_ups(world, day, searches, weights)
    if not frames:
        return raw_frame({c: np.zeros(0, dtype=np.int64) for c in RAW_COLUMNS})
    return pl.concat(frames)


Searches = tuple[int, I64, I64, npt.NDArray[np.bool_]]
"""A profile's demographic searches of a day: (profile index, orgs, pool positions, found)."""
FOLLOW_UP_OPS = (
    ("updateSingleLearner", 0.5), ("learnerByULN", 0.3), ("GetLearnerLearningEvents", 0.2)
)  # fmt: skip
"""What an org does next with a person its search found (one not found is registered)."""


def _searches_of(block: pl.DataFrame, lidx: I64, k: int) -> Searches:
    op = block["op"].to_numpy()
    resp = block["resp"].to_numpy()
    sel = op == bh.OP["learnerByDemographics"]
    found = (resp == bh.RC["exact_match"]) | (resp == bh.RC["linked_match"])
    return k, block["org"].to_numpy()[sel], lidx[sel], found[sel]


def _follow_ups(
    world: World, day: int, searches: list[Searches], weights: list[npt.NDArray[np.float64]]
) -> list[pl.DataFrame]:
    """Per-learner follow-through of profiles with a ``follow_share``: a share of the people
    an org searched are registered (not found) or updated, looked up or read (found) by the
    same org 0 to ``follow_lag_max`` days later. Searches wait in ``world.pending`` (days
    are generated in order) and their follow-ups name the same pool learners."""
    rng = day_rng(world.config.seed, "lrs-follow", day)
    for k, orgs, lidx, found in searches:
        p = world.profiles[k]
        take = rng.random(len(orgs)) < p.follow_share
        lag = rng.integers(0, p.follow_lag_max + 1, size=len(orgs))
        for g in np.unique(lag[take]).tolist():
            sel = take & (lag == g)
            world.pending.setdefault(day + g, []).append((k, orgs[sel], lidx[sel], found[sel]))
    due = world.pending.pop(day, [])
    d = world.date_of(day)
    frames = []
    names = [bh.OP[o] for o, _ in FOLLOW_UP_OPS]
    next_w = np.array([w for _, w in FOLLOW_UP_OPS])
    for k in sorted({x[0] for x in due}):
        orgs = np.concatenate([x[1] for x in due if x[0] == k])
        lidx = np.concatenate([x[2] for x in due if x[0] == k])
        found = np.concatenate([x[3] for x in due if x[0] == k])
        nxt = np.array(names)[categorical(rng.random(len(orgs)), next_w)]
        op = np.where(found, nxt, bh.OP["registerSingleLearner"]).astype(np.int64)
        p = world.profiles[k]
        frames.append(_profile_block(world, day, d, p, weights[k], orgs, rng, op=op, lidx=lidx)[0])
    return frames


def _profile_block(
    world: World,
    day: int,
    d: date,
    p: bh.Profile,
    weights: npt.NDArray[np.float64],
    orgs: I64,
    rng: np.random.Generator,
    op: I64 | None = None,
    lidx: I64 | None = None,
) -> tuple[pl.DataFrame, I64]:
    """Calls of ``orgs`` (one per entry) as profile ``p`` makes them, and the pool position
    of each call's learner; ``op`` and ``lidx`` are drawn unless given."""
    m = len(orgs)
    if op is None:
        op = categorical(rng.random(m), weights)
    is_batch = bh.IS_BATCH[op]
    portal = ~is_batch & (rng.random(m) < p.portal_share)
    channel = np.where(
        is_batch, bh.CH["batch"], np.where(portal, bh.CH["portal"], bh.CH["webservice"])
    )
    svc = world.org_user_start[orgs]
    n_h = world.org_n_users[orgs] - 1
    human = svc + 1 + (rng.random(m) ** 1.5 * n_h).astype(np.int64)
    use_svc = is_batch | (~portal & (rng.random(m) < p.service_share))
    user = np.where(use_svc, svc, human)
    client = np.where(
        day >= world.org_upgrade_day[orgs],
        world.org_upgraded_agent[orgs],
        world.org_client_agent[orgs],
    )
    ip = np.where(portal, world.user_ip[user], world.org_server_ip[orgs])
    agent = np.where(portal, world.user_agent[user], client)
    secs = local_seconds(p.hours, rng, m)
    overnight = is_batch & (rng.random(m) < p.overnight_batch_share)
    if overnight.any():
        secs[overnight] = local_seconds(bh.HOURS_OVERNIGHT, rng, int(overnight.sum()))
    if lidx is None:
        pool = np.maximum(30, world.expected_learners[orgs] * p.pool_factor)
        lidx = (pool * rng.random(m) ** p.pool_skew).astype(np.int64)
    learners = learner_attributes(
        world.config.seed, pack_keys(orgs, lidx), p.ages, p.geo, world.area[orgs], world.start
    )
    resp = responses(op, rng.random(m))
    count, batch = counts_and_batches(op, resp, rng)
    frame = raw_frame(
        {
            "_ts": to_utc_us(d, secs),
            "org": orgs,
            "user": user,
            "channel": channel,
            "op": op,
            **learner_fields(op, resp, learners),
            "resp": resp,
            "result_count": count,
            "batch_size": batch,
            "ip": ip,
            "agent": agent,
        }
    )
    return frame, lidx


def _table(values: list[str] | tuple[str, ...]) -> pl.Expr:
    return pl.lit(pl.Series(list(values), dtype=pl.String))


def finalise_lrs(
    world: World,
    raw: pl.DataFrame,
    day: int,
    html_agents: I64,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, int]:
    """Contract rows (plus ``_ts`` for ordering) for one day's raw calls, sorted by time.

    A share ``html_agent_rate`` of rows get an attacker-style HTML/script user agent (valid
    rows). Returns the frame and how many such rows it holds.
    """
    d = world.date_of(day)
    raw = raw.sort("_ts", maintain_order=True)
    m = raw.height
    html = rng.random(m) < world.config.html_agent_rate
    if html.any():
        agent = raw["agent"].to_numpy().copy()
        agent[html] = html_agents[(rng.random(int(html.sum())) * len(html_agents)).astype(np.int64)]
        raw = raw.with_columns(agent=pl.Series(agent))
    off = cal.london_offset_hours(d)
    local = pl.lit(pl.Series(world.local_offset)).gather(pl.col("org"))
    shifted = pl.col("_ts") + local.cast(pl.Int64) * (off * 3600 * US)
    stamp = shifted.cast(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S")
    ukprn = pl.Series([u or "" for u in world.ukprn], dtype=pl.String)
    uln, dob, area, batch = pl.col("uln"), pl.col("dob"), pl.col("area"), pl.col("batch_size")
    postcode = pl.concat_str(
        _table(AREAS).gather(area.clip(0, len(AREAS) - 1)),
        pl.col("district").cast(pl.String),
        pl.lit(" "),
        pl.col("sector").cast(pl.String),
        _table(UNITS).gather(pl.col("unit")),
    )
    exprs = dict(
        occurred_at=pl.concat_str(
            stamp, pl.when(local).then(pl.lit(f"+{off:02d}:00")).otherwise(pl.lit("Z"))
        ),
        ukprn=pl.lit(ukprn).gather(pl.col("org")),
        user_name=_table(world.user_name).gather(pl.col("user")),
        channel=_table(bh.CHANNELS).gather(pl.col("channel")),
        operation=_table(bh.OPS).gather(pl.col("op")),
        uln=pl.when(uln >= 0).then(uln.cast(pl.String)),
        dob=pl.when(dob != MISSING).then(dob.clip(-(10**6), 10**6).cast(pl.Int32).cast(pl.Date)),
        postcode=pl.when(area >= 0).then(postcode),
        response_code=_table(bh.RESPONSES).gather(pl.col("resp")),
        result_count=pl.col("result_count"),
        batch_size=pl.when(batch > 0).then(batch),
        client_ip=_table(world.ips).gather(pl.col("ip")),
        user_agent=_table(world.agents).gather(pl.col("agent")),
        _ts=pl.col("_ts"),
    )
    # in slices: the string columns of a national day are large, their temporaries more so
    parts = [
        raw.slice(lo, FINALISE_ROWS).select(
            event_id=pl.concat_str(
                pl.lit(f"L{d:%Y%m%d}-"),
                (pl.int_range(pl.len(), dtype=pl.Int64) + lo).cast(pl.String).str.zfill(7),
            ),
            **exprs,
        )
        for lo in range(0, max(m, 1), FINALISE_ROWS)
    ]
    return pl.concat(parts, rechunk=False), int(html.sum())


def dob_days(d: date) -> int:
    return (d - EPOCH).days
