"""Model reasons an analyst can act on, on literal feature rows: a value inside the peers'
normal range or equal to what it is compared with is never a reason, a volume says what
the calls were, behaviour comes before volume, and accounts name the group they were
compared with."""

from __future__ import annotations

from typing import Any

import polars as pl

from detectors.base import Contribution
from detectors.rules import load_config
from pipeline.profile.peers import account_peer_group_name
from pipeline.rank.reasons import borrow_account_reasons, word_reasons
from schemas.detection import Level

CFG = load_config()
FLOOR = CFG.ranking.min_reason_z


def org_row(**values: Any) -> dict[str, Any]:
    return {"org_id": "O1", "org_type": "academy", "peer_group": "academy", **values}


def test_regression_an_own_history_reason_that_reads_the_same_as_its_usual_is_dropped() -> None:
    # the "0% of calls were at night; its own usual: 0%": a tiny change, peers alike
    row = org_row(night_share_7d=0.001, night_share_7d_hd=0.0008, night_share_7d_pz=3.0,
                  night_share_7d_pm=0.0)  # fmt: skip
    c = [Contribution("night_share_7d_hd", 0.5)]
    assert word_reasons(row, [], c, Level.org, CFG) == []


def test_a_value_within_the_peers_normal_range_is_never_a_reason() -> None:
    # "7% of calls were at night; its own usual: 1%": a real change, but its peers are there
    row = org_row(night_share_7d=0.07, night_share_7d_hd=0.06, night_share_7d_pz=FLOOR - 0.1,
                  night_share_7d_pm=0.03)  # fmt: skip
    assert word_reasons(row, [], [Contribution("night_share_7d_hd", 0.5)], Level.org, CFG) == []
    # the same change, far from its peers: a reason, worded against its own usual
    far = {**row, "night_share_7d_pz": FLOOR + 1}
    (reason,) = word_reasons(far, [], [Contribution("night_share_7d_hd", 0.5)], Level.org, CFG)
    assert reason.text == "7% of calls were at night; its own usual: 1%"


def test_a_peer_reason_equal_to_the_peers_value_or_on_the_harmless_side_is_dropped() -> None:
    equal = org_row(out_region_share_7d=0.001, out_region_share_7d_pz=5.0,
                    out_region_share_7d_pm=0.0)  # fmt: skip
    assert (
        word_reasons(equal, [], [Contribution("out_region_share_7d_pz", 1)], Level.org, CFG) == []
    )
    # registering more than its peers (direction -1) is not a reason to look
    keen = org_row(register_share_7d=0.9, register_share_7d_pz=6.0, register_share_7d_pm=0.3)
    assert word_reasons(keen, [], [Contribution("register_share_7d_pz", 1)], Level.org, CFG) == []
    low = {**keen, "register_share_7d": 0.01, "register_share_7d_pz": -6.0}
    (reason,) = word_reasons(low, [], [Contribution("register_share_7d_pz", 1)], Level.org, CFG)
    assert reason.text == "1% of calls register or update learners; academy: 30%"


def test_a_volume_says_what_the_calls_were_and_comes_after_a_behaviour() -> None:
    row = org_row(
        calls_1d=240.0, calls_1d_pz=8.0, calls_1d_pm=20.0,
        search_share_1d=0.95, plr_share_1d=0.0, register_share_1d=0.05,
        older_adult_share_1d=0.9, older_adult_share_1d_pz=9.0, older_adult_share_1d_pm=0.1,
        out_region_share_1d=0.8, out_region_share_1d_pz=9.0, out_region_share_1d_pm=0.05,
        out_region_share_7d=0.8, out_region_share_7d_pz=9.0, out_region_share_7d_pm=0.05,
    )  # fmt: skip
    contributions = [Contribution("calls_1d_pz", 2.0), Contribution("out_region_share_7d_pz", 1.0)]
    region, volume = word_reasons(row, [], contributions, Level.org, CFG)
    assert region.feature == "out_region_share_7d"  # behaviour first, though it weighed less
    assert volume.text == (
        "240 LRS calls: 95% searches or verifies, 90% of the people 25 or over, 80% living "
        "outside its region; academy: 20"
    )
    # a share inside its peers' normal range is not named
    usual = {**row, "older_adult_share_1d_pz": FLOOR / 2}
    (_, volume) = word_reasons(usual, [], contributions, Level.org, CFG)
    assert "25 or over" not in volume.text and "80% living outside" in volume.text


def test_a_volume_over_seven_days_says_how_many_were_followed_up_unless_explained() -> None:
    row = org_row(
        learners_7d=1200.0, learners_7d_pz=5.0, learners_7d_pm=80.0, search_share_7d=0.6,
        followthrough_7d=0.0, followthrough_7d_pz=-6.0, followthrough_7d_pm=0.4,
        out_region_share_7d=0.9, out_region_share_7d_pz=9.0, out_region_share_7d_pm=0.05,
    )  # fmt: skip
    c = [Contribution("learners_7d_pz", 1)]
    (reason,) = word_reasons(row, [], c, Level.org, CFG)
    assert reason.text == (
        "1,200 distinct learners: 60% searches or verifies, 90% living outside its region, "
        "0% of those searched registered or followed up; academy: 80"
    )
    # LEG-01 holds (it registers half the people it finds): where they live is its
    # provision's business, so the reason does not name it
    provider = {**row, "followthrough_7d": 0.5, "followthrough_7d_pz": 0.5}
    (reason,) = word_reasons(provider, [], c, Level.org, CFG)
    assert reason.text == "1,200 distinct learners: 60% searches or verifies; academy: 80"


def test_an_account_names_the_peer_group_it_was_compared_with() -> None:
    frame = pl.DataFrame({"org_type": ["academy", "awarding_org"], "peer_level": [0, 1]})
    names = frame.select(account_peer_group_name())["org_type"].to_list()
    assert names == ["academy accounts", "all accounts"]
    row = {"org_type": "awarding_org", "peer_group": "all accounts", "night_share_7d": 0.25,
           "night_share_7d_pz": 6.0, "night_share_7d_pm": 0.0}  # fmt: skip
    (reason,) = word_reasons(row, [], [Contribution("night_share_7d_pz", 1)], Level.account, CFG)
    assert reason.text == "25% of its calls were at night; all accounts: 0%"


def test_an_org_with_no_reason_of_its_own_takes_its_leading_accounts_reason() -> None:
    day = "2026-09-01"

    def suspect(level: str, org: str, user: str, score: float, reasons: str = "[]") -> dict:
        return {"day": day, "level": level, "org_id": org, "user_name": user, "score": score,
                "reasons": reasons}  # fmt: skip

    def reason(org: str, user: str, text: str) -> dict:
        return {"day": day, "level": "account", "org_id": org, "user_name": user,
                "position": 1, "feature": "night_share_7d", "text": text, "value": 0.25,
                "peer_value": 0.0, "contribution": 0.5}  # fmt: skip

    suspects = [
        suspect("org", "O1", "", 30.0),
        suspect("org", "O2", "", 20.0, '[{"text": "its own"}]'),
        suspect("account", "O1", "low", 5.0),
        suspect("account", "O1", "high", 34.0),
        suspect("account", "O2", "x", 40.0),
    ]
    reasons = [
        reason("O1", "low", "a weak one"),
        reason("O1", "high", "25% of its calls were at night; academy accounts: 0%"),
        reason("O2", "x", "not borrowed: O2 has its own"),
    ]
    borrow_account_reasons(suspects, reasons)
    org = [r for r in reasons if r["level"] == "org"]
    assert [(r["org_id"], r["position"], r["text"]) for r in org] == [
        ("O1", 1, "account high: 25% of its calls were at night; academy accounts: 0%")
    ]
    assert "account high" in suspects[0]["reasons"]
    assert suspects[1]["reasons"] == '[{"text": "its own"}]'
