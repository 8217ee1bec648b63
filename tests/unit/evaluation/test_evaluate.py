"""The evaluation arithmetic on tiny literal rankings, and the two baselines."""

from __future__ import annotations

from datetime import date

import polars as pl

from evaluation.evaluate import judge, rank_days, raw_iforest, volume_alarm
from schemas.evaluation import DEFAULT_SCENARIO_BEHAVIOURS, EvaluationConfig
from schemas.generate import ALL_SCENARIOS

D1, D2, D3 = date(2026, 9, 1), date(2026, 9, 2), date(2026, 9, 3)
CFG = EvaluationConfig(ks=(1, 2), detect_k=1)


def scores(rows: list[tuple[str, date, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["org_id", "day", "score"], orient="row")


LABELS = pl.DataFrame(
    {
        "org_id": ["bad1", "bad2"],
        "scenario": ["enumeration", "npd_overreach"],
        "start_date": [D2, D2],
        "end_date": [D3, D3],
    }
)
DECOYS = pl.DataFrame({"org_id": ["surge"], "kind": ["enrolment_surge"]})


def test_ties_are_broken_by_org_id_and_ranks_restart_each_day() -> None:
    ranked = rank_days(scores([("b", D1, 1.0), ("a", D1, 1.0), ("c", D2, 0.5)]))
    assert ranked.select("org_id", "rank").rows() == [("a", 1), ("b", 2), ("c", 1)]


def test_precision_recall_delay_and_decoys_are_counted_per_day_after_onset() -> None:
    ranking = scores(
        [
            ("bad1", D1, 0.1), ("surge", D1, 0.9), ("bad2", D1, 0.2),
            ("bad1", D2, 0.3), ("surge", D2, 0.9), ("bad2", D2, 0.1),
            ("bad1", D3, 0.9), ("surge", D3, 0.2), ("bad2", D3, 0.8),
        ]
    )  # fmt: skip
    result = judge("m", ranking, LABELS, DECOYS, CFG)
    assert result.days == 2  # D2 and D3: from the first onset on
    # D2: top1 = surge (0 hits), top2 = surge, bad1 (1 hit); D3: top1 bad1, top2 both.
    assert result.precision == {1: 0.5, 2: 0.75}
    assert result.recall == {1: 0.25, 2: 0.75}
    assert result.max_decoys == {1: 1, 2: 1}
    assert result.decoy_days == {"enrolment_surge": 1}  # top 1 (detect_k) on D2 only
    delays = {x.org_id: (x.best_rank, x.days_to_detect) for x in result.labels}
    assert delays == {"bad1": (1, 1), "bad2": (2, None)}
    # with the other labelled org left out, bad2 tops D3 (only bad1 was above it); on D2
    # the decoy still keeps both out of the top 1
    alone = {x.org_id: x.days_to_detect_alone for x in result.labels}
    assert alone == {"bad1": 1, "bad2": 1}
    assert result.detected == 1 and result.median_days_to_detect == 1.0


def test_top_reason_is_matched_against_the_scenario_behaviour() -> None:
    ranking = scores([("bad1", D2, 1.0), ("bad2", D2, 0.9)])
    reasons = pl.DataFrame(
        {
            "org_id": ["bad1"],
            "day": [D2],
            "feature": ["invalid_uln_share_1d"],
            "text": ["53% of ULNs sent today were invalid"],
            "rules": ["ENU-01"],
        }
    )
    cfg = EvaluationConfig(ks=(2,), detect_k=2)
    result = judge("m", ranking, LABELS, DECOYS, cfg, reasons)
    by_org = {x.org_id: x for x in result.labels}
    assert by_org["bad1"].reason_matches is True
    assert "invalid" in by_org["bad1"].top_reason
    assert by_org["bad2"].reason_matches is None  # detected, but no stored reason


def test_volume_alarm_fires_on_a_jump_above_own_and_peer_medians() -> None:
    days = [date(2026, 9, d) for d in range(1, 11)]
    rows = []
    for i, d in enumerate(days):
        rows.append(("steady", "school", d, 100, 50, 2))
        rows.append(("peer", "school", d, 100, 50, 2))
        rows.append(("jumpy", "school", d, 1000 if i == 9 else 100, 50, 2))
    counts = pl.DataFrame(
        rows, schema=["org_id", "org_type", "day", "calls", "learners", "users"], orient="row"
    )
    alarm = volume_alarm(counts, EvaluationConfig()).filter(pl.col("day") == days[-1])
    top = alarm.sort("score", descending=True)
    assert top["org_id"][0] == "jumpy" and top["score"][0] > 1000
    assert top["score"][1] < 1000  # the steady ones did not fire
    forest = raw_iforest(counts.filter(pl.col("day") == days[-1]), EvaluationConfig())
    assert forest.sort("score", descending=True)["org_id"][0] == "jumpy"


def test_every_scenario_the_generator_labels_has_behaviours_to_name() -> None:
    # a scenario without an entry is judged "does not name it" whatever its reason says
    missing = [
        s for s in (*ALL_SCENARIOS, "unregistered_caller") if not DEFAULT_SCENARIO_BEHAVIOURS.get(s)
    ]
    assert missing == []
