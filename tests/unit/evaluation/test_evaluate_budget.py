"""The budget view's counting rules on tiny literal rankings: the onset edge, decoy-days,
ties, orgs missing from a day's ranking, the account recall and the summary over worlds."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from evaluation.evaluate import (
    active_days,
    budget_figures,
    budget_view,
    from_first_activity,
    judge,
    read_json,
    read_truth,
    summarise,
    write_json,
)
from pipeline.store.lake import lake_dir
from pipeline.store.warehouse import connect
from schemas.evaluation import EvaluationConfig
from schemas.settings import load_settings
from tests.conftest import SAMPLE, TEST_KEY, SampleRun
from tests.unit.evaluation.test_evaluate import scores

D1, D2, D3, D4 = (date(2026, 9, d) for d in (1, 2, 3, 4))
CFG = EvaluationConfig(budget_ks=(1, 2), onset_k=1, onset_days=1)


LABELS = pl.DataFrame(
    {
        "org_id": ["bad1", "bad2"],
        "scenario": ["enumeration", "npd_overreach"],
        "start_date": [D2, D3],
        "end_date": [D4, D4],
    }
)
DECOYS = pl.DataFrame({"org_id": ["decoy"], "kind": ["he_clearing"]})


def test_found_two_days_after_onset_is_missed_and_days_before_onset_do_not_count() -> None:
    ranking = scores(
        [
            ("bad1", D1, 9.0), ("decoy", D1, 1.0), ("bad2", D1, 0.0), ("u", D1, 0.0),
            ("bad1", D2, 0.1), ("decoy", D2, 1.0), ("bad2", D2, 0.0), ("u", D2, 0.5),
            ("bad1", D3, 0.2), ("decoy", D3, 1.0), ("bad2", D3, 2.0), ("u", D3, 0.5),
            ("bad1", D4, 3.0), ("decoy", D4, 1.0), ("bad2", D4, 2.0), ("u", D4, 0.5),
        ]
    )  # fmt: skip
    budget = budget_view(ranking, LABELS, DECOYS, CFG)
    by_org = {x.org_id: x for x in budget.labels}
    # bad1 tops D1, before its onset: not counted; it tops again only on D4, 2 days late
    assert by_org["bad1"].days_to_top == {1: 2, 2: 2}
    assert by_org["bad2"].days_to_top == {1: 0, 2: 0}  # top on its onset day
    assert budget.found_soon == 1 and budget.missed_soon == ["bad1"]
    # D2: the decoy and u above bad1; D3: both still above it
    assert (by_org["bad1"].legitimate_above, by_org["bad1"].unlabelled_above) == (2, 1)
    assert by_org["bad1"].legitimate_worst_day == D2  # the first of the worst days
    # recall@1: D2 0/1, D3 1/2 (bad2), D4 1/2 (bad1) -> mean 1/3
    assert abs(budget.recall[1] - 1 / 3) < 1e-9
    # decoy-days: D2 and D3 (the decoy above bad1), not D4 (nobody active below it)
    assert budget.decoy_days_above_misuse == 2


def test_a_tie_counts_against_the_misuse_org_and_a_missing_org_is_below_everyone() -> None:
    ranking = scores(
        [
            ("bad1", D2, 1.0), ("decoy", D2, 1.0), ("a", D2, 0.2),
            ("bad1", D3, 1.0), ("decoy", D3, 0.5), ("a", D3, 0.2),
            ("bad1", D4, 1.0), ("decoy", D4, 0.5), ("a", D4, 0.2), ("bad2", D4, 0.9),
        ]
    )  # fmt: skip
    budget = budget_view(ranking, LABELS, DECOYS, CFG)
    by_org = {x.org_id: x for x in budget.labels}
    # D2: bad1 ranks first by org id, but the decoy's equal score counts as above it
    assert by_org["bad1"].days_to_top[1] == 0
    assert by_org["bad1"].legitimate_above == 1 and by_org["bad1"].unlabelled_above == 0
    assert budget.decoy_days_above_misuse == 2  # D2 (tie with bad1), D3 (bad2 unscored)
    # bad2 has no score on D3: the two legitimate orgs ranked that day are above it
    assert by_org["bad2"].legitimate_worst_day == D3 and by_org["bad2"].legitimate_above == 2
    # recall@1 agrees with judge's R@1 (both count the unscored org as missed)
    plain = judge("m", ranking, LABELS, DECOYS, EvaluationConfig(ks=(1,), detect_k=1))
    assert abs(budget.recall[1] - plain.recall[1]) < 1e-9


def test_a_quiet_start_is_not_a_miss_but_silence_after_the_first_call_is() -> None:
    # bad2's label starts on D3 but it first acts on D4; bad1 never acts in its period
    active = pl.DataFrame({"org_id": ["bad2", "bad2", "bad1"], "day": [D4, D1, D1]})
    acting = from_first_activity(LABELS, active)
    starts = dict(zip(acting["org_id"], acting["start_date"], strict=True))
    assert starts == {"bad1": D2, "bad2": D4}  # bad1 keeps its start: it stays a miss
    ranking = scores(
        [
            ("bad1", D2, 1.0), ("decoy", D2, 0.5),
            ("bad1", D3, 1.0), ("decoy", D3, 0.5),
            ("bad1", D4, 1.0), ("decoy", D4, 0.5), ("bad2", D4, 0.9),
        ]
    )  # fmt: skip
    plain = budget_view(ranking, LABELS, DECOYS, CFG)
    moved = budget_view(ranking, acting, DECOYS, CFG)
    # with the label's own start, bad2's silent D3 puts the decoy above it
    assert plain.decoy_days_above_misuse == 1 and moved.decoy_days_above_misuse == 0
    by_org = {x.org_id: x for x in moved.labels}
    assert by_org["bad2"].start_date == D4 and by_org["bad2"].legitimate_above == 0


def test_account_recall_counts_labelled_accounts_in_the_account_top_k() -> None:
    labels = LABELS.with_columns(pl.Series("user_name", ["x.one", ""]))
    accounts = pl.DataFrame(
        {
            "org_id": ["bad1", "bad1", "o", "bad1", "bad1", "o"],
            "user_name": ["x.one", "x.two", "y", "x.one", "x.two", "y"],
            "day": [D2, D2, D2, D3, D3, D3],
            "score": [0.1, 0.9, 0.5, 0.9, 0.1, 0.5],
        }
    )
    ranking = scores([("bad1", D2, 1.0), ("bad1", D3, 1.0)])
    budget = budget_view(ranking, labels, DECOYS, CFG, accounts)
    # x.one is third on D2, first on D3; D4 has no account scores
    assert budget.account_recall == 0.5
    assert (budget.accounts_found, budget.accounts) == (1, 1)


def test_account_recall_counts_each_account_of_a_label_that_names_several() -> None:
    labels = LABELS.with_columns(pl.Series("user_name", ["x.one;x.two", ""]))
    accounts = pl.DataFrame(
        {
            "org_id": ["bad1", "bad1", "o", "bad1", "bad1", "o"],
            "user_name": ["x.one", "x.two", "y", "x.one", "x.two", "y"],
            "day": [D2, D2, D2, D3, D3, D3],
            "score": [0.1, 0.9, 0.5, 0.9, 0.1, 0.5],
        }
    )
    ranking = scores([("bad1", D2, 1.0), ("bad1", D3, 1.0)])
    cfg = CFG.model_copy(update={"onset_k": 1})
    budget = budget_view(ranking, labels, DECOYS, cfg, accounts)
    # the top account is x.two on D2 and x.one on D3: each day one of the two is first
    assert budget.account_recall == 0.5
    assert (budget.accounts_found, budget.accounts) == (2, 2)


def test_summary_gives_the_mean_and_the_worst_world(tmp_path: Path) -> None:
    good = scores([("bad1", D2, 1.0), ("bad2", D3, 1.0), ("bad1", D3, 0.9), ("u", D3, 0.1)])
    bad = scores([("u", D2, 1.0), ("bad1", D2, 0.5), ("bad2", D3, 1.0), ("bad1", D3, 0.9)])
    cfg = EvaluationConfig(ks=(10,), detect_k=1, budget_ks=(10, 20), onset_k=1)
    worlds = []
    for i, ranking in enumerate((good, bad)):
        result = judge("m", ranking, LABELS, DECOYS, cfg).model_copy(
            update={"budget": budget_view(ranking, LABELS, DECOYS, cfg)}
        )
        write_json(tmp_path / f"w{i}.json", [result], Path("labels.csv"), "accesswatch evaluate")
        worlds.append(read_json(tmp_path / f"w{i}.json"))
    assert budget_figures(worlds[1][0])["most unlabelled above a misuse org"] == 1.0
    summary = {r["figure"]: r for r in summarise(worlds).iter_rows(named=True)}
    unlabelled = summary["most unlabelled above a misuse org"]
    assert (unlabelled["mean"], unlabelled["worst"]) == (0.5, 1.0)  # worst: the highest
    assert summary["recall@10"]["worst"] == 1.0 and summary["recall@10"]["worlds"] == 2
    assert summary["account recall@10"]["worlds"] == 0  # not measured: no account labels


def test_active_days_are_read_from_both_lakes_of_a_real_home(sample_home: SampleRun) -> None:
    """On the demo home: each org's days with calls match a recount of its LRS and NPD
    Parquet in polars, and every moved sample label starts on a day its org acted."""
    settings = load_settings(home=sample_home.home, pseudonym_key=TEST_KEY)
    days = active_days(settings, date(2026, 8, 1), date(2026, 9, 30))

    def lake(source: str) -> pl.DataFrame:
        files = lake_dir(sample_home.home, source) / "**" / "*.parquet"
        return pl.read_parquet(files, hive_partitioning=True).rename({"event_date": "day"})

    with connect(settings, read_only=True) as con:
        register = con.sql("SELECT org_id, ukprn FROM organisations").pl()
    lrs = lake("lrs").join(register, on="ukprn", how="left")
    recount = pl.concat(
        [
            lrs.select(pl.coalesce("org_id", "UKPRN-" + pl.col("ukprn")).alias("org_id"), "day"),
            lake("npd").select("org_id", "day"),
        ]
    ).unique()
    assert days.height > 1000
    assert days.sort("org_id", "day").equals(recount.sort("org_id", "day"))
    labels, _ = read_truth(SAMPLE / "truth" / "labels.csv")
    for row in from_first_activity(labels, days).iter_rows(named=True):
        acted = days.filter(pl.col("org_id") == row["org_id"], pl.col("day") == row["start_date"])
        assert acted.height == 1, row
