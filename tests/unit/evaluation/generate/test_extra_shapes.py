"""The shapes the real-feeds world showed we did not model (issue 14): a stealth reseller in
a real provider's existing accounts, a reseller at 10-20 a day, and national
distance-learning providers whose searches are followed through, per learner, days later.

Built in memory from the generator's own day functions (no files): each test draws a few
days of one organisation's calls, which takes well under a second.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from evaluation.generate import behaviour as bh
from evaluation.generate import build, generate_world
from evaluation.generate.lrs import MISSING, normal_lrs_day
from evaluation.generate.rng import day_rng
from evaluation.generate.scenarios import Instance, scenario_lrs_day
from evaluation.generate.world import AREA_REGION, EPOCH, World
from schemas.generate import WorldConfig

LONDON = ZoneInfo("Europe/London")
START = date(2026, 9, 7)  # a Monday in term
CONFIG = WorldConfig(orgs=200, days=14, start=START, seed=21, extra_shapes=True)


@pytest.fixture(scope="module")
def built() -> tuple[World, list[Instance]]:
    return build(CONFIG)


def one(instances: list[Instance], name: str) -> Instance:
    return next(i for i in instances if i.scenario == name)


def calls(
    world: World, instances: list[Instance], inst: Instance, days: range
) -> dict[int, pl.DataFrame]:
    """The instance's own raw calls per day (its org's frame among the day's scenarios)."""
    out = {}
    for day in days:
        frames, _ = scenario_lrs_day(world, instances, day)
        day_frame = pl.concat(frames) if frames else pl.DataFrame()
        out[day] = day_frame.filter(pl.col("org") == inst.org) if frames else day_frame
    return out


def test_stealth_reseller_searches_never_registered_adults_nationwide_from_existing_accounts(
    built: tuple[World, list[Instance]],
) -> None:
    world, instances = built
    inst = one(instances, "stealth_reseller")
    users = inst.extra["users"]
    assert 2 <= len(users) <= 4
    assert set(users) <= set(world.humans(inst.org).tolist()), "existing staff accounts"
    label = next(lab for lab in world.labels if lab["org_id"] == world.org_id[inst.org])
    assert label["user_name"].split(";") == [world.user_name[u] for u in users]
    assert world.silent_before[inst.org] <= -365, "an established provider"

    after = range(inst.onset, min(inst.onset + 5, CONFIG.days))
    own = calls(world, instances, inst, after)
    rows = pl.concat(list(own.values()))
    weekdays = [d for d in after if world.date_of(d).weekday() < 5]
    assert rows.height >= 10 * len(weekdays)
    assert set(rows["user"].to_list()) <= set(users)
    assert set(rows["op"].to_list()) <= {bh.OP["learnerByDemographics"], bh.OP["verifyLearner"]}
    hours = {datetime.fromtimestamp(ts / 1e6, UTC).astimezone(LONDON).hour for ts in rows["_ts"]}
    assert min(hours) >= 8 and max(hours) < 18, "office hours"
    dob = rows["dob"].filter(rows["dob"] != MISSING).to_numpy()
    ages = ((START - EPOCH).days - dob) / 365.25
    assert ages.min() >= 18.9 and ages.max() <= 71.1 and np.median(ages) > 30
    regions = set(AREA_REGION[rows["area"].filter(rows["area"] >= 0).to_numpy()].tolist())
    assert len(regions) >= 7, "nationwide"

    # the people searched are never in the org's own work (searched, registered, updated)
    normal = pl.concat(
        [normal_lrs_day(world, d, day_rng(CONFIG.seed, "lrs", d)) for d in range(CONFIG.days)]
    ).filter(pl.col("org") == inst.org)
    searched = set(rows["uln"].filter(rows["uln"] >= 0).to_list())
    assert searched and not searched & set(normal["uln"].to_list())


def test_low_volume_reseller_runs_10_to_20_a_day(built: tuple[World, list[Instance]]) -> None:
    world, instances = built
    inst = one(instances, "low_volume_reseller")
    own = calls(world, instances, inst, range(inst.onset, CONFIG.days))
    per_weekday = [f.height for d, f in own.items() if world.date_of(d).weekday() < 5]
    assert 7 <= float(np.mean(per_weekday)) <= 25


def test_distance_learning_follows_through_on_the_same_learners_days_later(
    built: tuple[World, list[Instance]],
) -> None:
    world, instances = built
    inst = one(instances, "national_distance_learning")
    assert world.org_id[inst.org] in {d["org_id"] for d in world.decoys}
    assert world.org_id[inst.org] not in {lab["org_id"] for lab in world.labels}
    own = calls(world, instances, inst, range(CONFIG.days))
    seen: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    op_name = {i: n for n, i in bh.OP.items()}
    for day, frame in own.items():
        for op, uln in frame.select("op", "uln").filter(pl.col("uln") >= 0).iter_rows():
            seen[uln][op_name[op]].append(day)
    # people found by a search in the first week, so that every lag fits in the window
    found = {
        u: min(ops["learnerByDemographics"])
        for u, ops in seen.items()
        if ops.get("learnerByDemographics") and min(ops["learnerByDemographics"]) <= 6
    }
    assert len(found) >= 100
    lags = []
    for u, first in found.items():
        later = [d - first for op in ("updateSingleLearner", "registerSingleLearner")
                 for d in seen[u].get(op, [])]  # fmt: skip
        lags += later
    share = len({u for u in found if any(
        d > found[u] for op in ("updateSingleLearner", "registerSingleLearner")
        for d in seen[u].get(op, []))}) / len(found)  # fmt: skip
    assert 0.5 <= share <= 0.8, share
    assert lags and min(lags) >= 1 and max(lags) <= 5, "1-5 days later, never the same day"
    again = [d - found[u] for u in found for d in seen[u].get("learnerByULN", [])]
    assert again and min(again) >= 3, "looked up again days later"
    rows = pl.concat(list(own.values()))
    weekend = [f.height for d, f in own.items() if world.date_of(d).weekday() >= 5]
    assert min(weekend) > 0, "works at weekends"
    assert (rows["user"] == int(world.org_user_start[inst.org])).mean() >= 0.6  # type: ignore[operator]
    regions = set(AREA_REGION[rows["area"].filter(rows["area"] >= 0).to_numpy()].tolist())
    assert len(regions) == 9


def test_accounts_truth_lists_every_misuse_account(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"days": 2, "volume_scale": 0.02})
    generate_world(tmp_path, config)
    labels = pl.read_csv(tmp_path / "truth" / "labels.csv", infer_schema=False)
    accounts = pl.read_csv(tmp_path / "truth" / "accounts.csv", infer_schema=False)
    expected = sorted(
        (r["org_id"], r["scenario"], u)
        for r in labels.iter_rows(named=True)
        if r["user_name"]
        for u in r["user_name"].split(";")
    )
    assert sorted(accounts.iter_rows()) == expected
    assert "stealth_reseller" in set(accounts["scenario"])
