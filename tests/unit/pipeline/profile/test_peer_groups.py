"""Which peer group an organisation is compared with: the most specific one with enough
members, where a small org type is still a better yardstick than all organisations."""

from __future__ import annotations

import polars as pl

from pipeline.profile.peers import ORG_PEER_LEVELS, org_in_peer_pool, peer_relative
from schemas.detection import ProfileConfig
from schemas.features import FEATURES

SHARE = FEATURES["out_region_share_7d"]


def world(awarding: int) -> pl.DataFrame:
    """20 schools looking up local pupils and ``awarding`` awarding bodies whose candidates
    live everywhere (their ordinary work), all in one size band."""
    n = 20 + awarding
    return pl.DataFrame(
        {
            "org_id": [f"S{i:02}" for i in range(20)] + [f"A{i:02}" for i in range(awarding)],
            "org_type": ["school"] * 20 + ["awarding_org"] * awarding,
            "size_band": [1] * n,
            "calls_28d": [100] * n,
            "unregistered": [0] * n,
            "out_region_share_7d": [0.02] * 20 + [0.8 + 0.02 * i for i in range(awarding)],
        }
    )


def test_regression_a_small_org_type_is_compared_with_its_own_kind_not_all_orgs() -> None:
    # 5 awarding bodies: fewer than min_peers (8), more than min_type_peers (4). Before,
    # they were compared with all organisations (mostly schools: 0.02) and looked extreme.
    cfg = ProfileConfig(min_peers=8, min_type_peers=4)
    out = peer_relative(world(5), [SHARE], cfg, ORG_PEER_LEVELS, org_in_peer_pool())
    bodies = out.filter(pl.col("org_type") == "awarding_org")
    assert bodies["peer_level"].to_list() == [1] * 5  # their org type
    assert bodies["out_region_share_7d_pz"].abs().max() < 2  # ordinary among their kind
    assert out.filter(pl.col("org_type") == "school")["peer_level"].to_list() == [0] * 20


def test_an_org_type_below_min_type_peers_still_widens_to_all_orgs() -> None:
    cfg = ProfileConfig(min_peers=8, min_type_peers=4)
    out = peer_relative(world(3), [SHARE], cfg, ORG_PEER_LEVELS, org_in_peer_pool())
    bodies = out.filter(pl.col("org_type") == "awarding_org")
    assert bodies["peer_level"].to_list() == [2] * 3
    assert bodies["out_region_share_7d_pz"].min() > 2  # against everyone they stand out
