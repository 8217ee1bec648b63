"""Domain randomisation (``--randomise``): deterministic per seed, different across seeds,
every draw inside its documented range and written to ``truth/parameters.json``; without
it, nothing changes (the committed sample test in ``test_generate.py`` guards the bytes).

Tiny worlds only (120 organisations, 3 days, a twentieth of normal volume: about 1 s each).
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from evaluation.generate import behaviour as bh
from evaluation.generate import build, generate_world, randomise
from evaluation.generate.lrs import normal_lrs_day
from evaluation.generate.rng import day_rng
from schemas.generate import EXTRA_DECOYS, EXTRA_SCENARIOS, WorldConfig

TINY = WorldConfig(
    orgs=120, days=3, start=date(2026, 9, 7), seed=5, volume_scale=0.05, randomise=True
)


def digest(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("randomised")
    out = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out[name] = root / name
        generate_world(out[name], TINY.model_copy(update={"seed": seed}))
    return out


@pytest.fixture(scope="module")
def doc(worlds: dict[str, Path]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((worlds["a"] / "truth" / "parameters.json").read_text())
    return parsed


def test_same_seed_same_bytes_other_seed_other_world(worlds: dict[str, Path]) -> None:
    a, b, c = (digest(worlds[x]) for x in "abc")
    assert a == b
    assert "truth/parameters.json" in a
    assert a["truth/parameters.json"] != c["truth/parameters.json"]
    differing = [k for k in a if c.get(k) != a[k]]
    assert len(differing) >= len(a) // 2, "another seed changes most files"


def test_not_randomised_keeps_the_default_profiles_and_writes_no_draws(tmp_path: Path) -> None:
    plain = TINY.model_copy(update={"randomise": False})
    assert randomise.profiles(plain) is bh.PROFILES
    generate_world(tmp_path, plain)
    assert sorted(p.name for p in (tmp_path / "truth").iterdir()) == ["decoys.csv", "labels.csv"]


def _in_range(value: float, r: randomise.Range) -> bool:
    return r[1] - 1e-6 <= value <= r[2] + 1e-6


def test_scenario_and_decoy_draws_are_in_their_ranges_and_in_truth(
    doc: dict[str, Any], worlds: dict[str, Path]
) -> None:
    labels = (worlds["a"] / "truth" / "labels.csv").read_text()
    played = {s["scenario"] for s in doc["scenarios"]}
    assert set(EXTRA_SCENARIOS) <= played, "randomise plays the extra shapes"
    assert set(EXTRA_DECOYS) <= {d["kind"] for d in doc["decoys"]}
    for s in doc["scenarios"]:
        assert f"{s['org_id']},{s['scenario']},{s['onset']}" in labels
        for field, r in randomise.SCENARIO_RANGES[s["scenario"]].items():
            assert _in_range(s["params"][field], r), (s["scenario"], field)
    for d in doc["decoys"]:
        for field, r in randomise.DECOY_RANGES.get(d["kind"], {}).items():
            assert _in_range(d["params"][field], r), (d["kind"], field)
    intensities = [s["params"]["intensity"] for s in doc["scenarios"]]
    assert len(set(intensities)) == len(intensities), "each instance draws its own"


def test_profile_draws_stay_inside_their_factors(doc: dict[str, Any]) -> None:
    lo, hi = randomise.PROFILE_FACTORS["events_per_learner"][1:]
    moved = 0
    for p in bh.PROFILES:
        drawn = doc["profiles"][p.name]
        if p.name == "none":
            assert drawn["events_per_learner"] == p.events_per_learner
            continue
        ratio = drawn["events_per_learner"] / p.events_per_learner
        assert lo - 1e-6 <= ratio <= hi + 1e-6, p.name
        moved += abs(ratio - 1) > 0.01
        assert abs(sum(drawn["op_mix"].values()) - 1) < 1e-4
        assert set(drawn["op_mix"]) == set(p.op_mix), "no operation appears from nowhere"
        assert abs(sum(drawn["geo"]) - 1) < 1e-4
        assert _in_range(drawn["script_share"], randomise.PROFILE_VALUES["script_share"])
        assert _in_range(drawn["pool_skew"], randomise.PROFILE_VALUES["pool_skew"])
        assert 0 <= drawn["weekend_factor"] <= 1
        assert len(drawn["hours"]) == 24
    assert moved >= len(bh.PROFILES) - 3, "most profiles move"


def test_onsets_fall_anywhere_in_the_configured_share_of_the_window() -> None:
    config = TINY.model_copy(update={"days": 60, "onset_range": (0.02, 0.85)})
    onsets = {randomise.onset(config, "stealth_reseller", j) for j in range(200)}
    assert min(onsets) >= 1 and max(onsets) <= math.ceil(0.85 * 59)
    assert min(onsets) <= 3 and max(onsets) >= 45, "early and late onsets both occur"
    with pytest.raises(ValueError):
        WorldConfig(onset_range=(0.8, 0.2))


def test_a_1500_org_world_holds_the_new_shapes_at_their_minimum_counts() -> None:
    world, _ = build(WorldConfig(orgs=1500, days=10, seed=3, extra_shapes=True))
    kinds = [lab["scenario"] for lab in world.labels]
    assert kinds.count("stealth_reseller") >= 2
    assert kinds.count("low_volume_reseller") >= 1
    assert [d["kind"] for d in world.decoys].count("national_distance_learning") == 3


def test_randomised_orgs_follow_their_searches_through_on_the_same_learners() -> None:
    """Ordinary orgs of a randomised world register, update, look up or read a drawn share
    of the people they searched, 0 to follow_lag_max days later (lrs.py ``_follow_ups``)."""
    config = TINY.model_copy(update={"orgs": 200, "days": 12, "volume_scale": 0.5})
    world, _ = build(config)
    k = bh.PROFILE_INDEX["training"]
    p = world.profiles[k]
    assert p.follow_share > 0 and p.follow_share != bh.PROFILES[k].follow_share
    frames = [normal_lrs_day(world, d, day_rng(config.seed, "lrs", d)) for d in range(config.days)]
    rows = pl.concat([f.with_columns(day=pl.lit(d)) for d, f in enumerate(frames)]).filter(
        pl.col("org").is_in(np.flatnonzero(world.profile == k).tolist()), pl.col("uln") >= 0
    )
    search = rows.filter(pl.col("op") == bh.OP["learnerByDemographics"], pl.col("day") < 4)
    first = search.group_by("org", "uln").agg(pl.col("day").min().alias("s"))
    later = rows.filter(pl.col("op") != bh.OP["learnerByDemographics"]).select(
        "org", "uln", pl.col("day").alias("f")
    )
    lag = pl.col("f") - pl.col("s")
    followed = (
        first.join(later, on=["org", "uln"])
        .filter((lag >= 0) & (lag <= p.follow_lag_max))["uln"]
        .n_unique()
    )
    assert first.height >= 50
    assert followed / first.height >= 0.8 * p.follow_share


def test_randomised_resellers_do_not_all_rename_or_script_and_plr_hosts_are_small() -> None:
    stories = []
    for seed in range(1, 9):
        world, instances = build(TINY.model_copy(update={"seed": seed}))
        for inst in instances:
            if inst.scenario in ("age_verification_reseller", "low_volume_reseller"):
                story = inst.extra["story"]
                stories.append((story["renamed"], story["scripted"]))
                assert (world.previous_name[inst.org] is not None) == story["renamed"]
                agent = world.agents[int(inst.agents[0])]
                assert (agent in bh.SCRIPT_AGENTS) == story["scripted"]
            if inst.scenario == "plr_browsing":
                assert world.expected_learners[inst.org] <= 400
    assert {r for r, _ in stories} == {True, False}
    assert {s for _, s in stories} == {True, False}
