"""Profiles on literal deliveries: every org gets a row, windows count what they should,
London time defines hours, entitlement facts are found, re-runs replace the day, late
events rebuild the summaries they touch, and the registry, the docs and the columns agree.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from detectors.rules import RuleDetector, load_config
from pipeline.ingest.deliveries import ingest
from pipeline.ingest.reference import load_reference
from pipeline.ingest.uln import make_valid_ulns
from pipeline.profile.build import build_profiles
from pipeline.profile.docs import FEATURES_DOC, feature_docs
from pipeline.profile.peers import peer_members, peer_relative
from schemas.detection import ProfileConfig
from schemas.features import ACCOUNT_FEATURES, ORG_FEATURES, Feature, Kind
from schemas.settings import Settings
from tests.conftest import LRS_COLUMNS, NPD_COLUMNS, lrs_row, npd_row, write_csv
from tests.unit.pipeline.ingest.test_reference import agreement, org, write_reference

DAY1 = date(2026, 8, 10)  # a Monday in British Summer Time
DAY2 = date(2026, 8, 11)
ADULT = "1990-05-01"  # 36 at the time
TEEN = "2008-05-01"  # 18


def world(s: Settings) -> None:
    """Four orgs: a college with varied use, a revoked provider still calling, a silent
    school, and a research body with NPD queries inside and outside its agreement."""
    write_reference(
        s,
        [
            org("ORG00001", ukprn="10000001"),
            org("ORG00002", ukprn="10000002", org_type="training_provider", region="London",
                postcode_area="E", status="revoked", status_changed_on="2026-08-01",
                expected_learners=200),
            org("ORG00003", ukprn="10000003", org_type="school", expected_learners=300),
            org("ORG00004", ukprn="", org_type="research", expected_learners=0),
        ],
        [agreement("DS00752", org_id="ORG00004")],
    )  # fmt: skip
    c = "10000001"
    write_csv(
        s.landing / "lrs" / DAY1.isoformat() / "part-1.csv",
        [
            lrs_row("e1", ukprn=c, occurred_at="2026-08-10T10:00:00Z", user_name="amy",
                    operation="learnerByDemographics", uln="1026893096", dob=ADULT),
            # 21:30 UTC is 22:30 in London: night and out of hours
            lrs_row("e2", ukprn=c, occurred_at="2026-08-10T21:30:00Z", user_name="amy",
                    operation="registerSingleLearner", uln="1026893096", dob=ADULT,
                    client_ip="10.0.0.2"),
            lrs_row("e3", ukprn=c, occurred_at="2026-08-10T11:00:00Z", user_name="bob",
                    uln="1026893097", dob=TEEN, postcode="SW1A 1AA", response_code="WSRC0001",
                    result_count=0),
            lrs_row("e4", ukprn=c, occurred_at="2026-08-10T12:00:00Z", user_name="bob",
                    uln="1174112637", dob=TEEN, user_agent="python-requests/2.31.0"),
            lrs_row("e5", ukprn="10000002", occurred_at="2026-08-10T10:00:00Z",
                    operation="learnerByDemographics", dob=ADULT),
        ],
        LRS_COLUMNS,
    )  # fmt: skip
    write_csv(
        s.landing / "lrs" / DAY2.isoformat() / "part-1.csv",
        [lrs_row("e6", ukprn=c, occurred_at="2026-08-11T09:00:00Z", user_name="amy",
                 uln="1026893096", dob=TEEN)],
        LRS_COLUMNS,
    )  # fmt: skip
    write_csv(
        s.landing / "npd" / DAY1.isoformat() / "part-1.csv",
        [
            npd_row("n1", org_id="ORG00004", occurred_at="2026-08-10T10:00:00Z"),
            npd_row("n2", org_id="ORG00004", occurred_at="2026-08-10T11:00:00Z",
                    agreement_ref=""),
            npd_row("n3", org_id="ORG00004", occurred_at="2026-08-10T12:00:00Z",
                    min_identifiability=1),
        ],
        NPD_COLUMNS,
    )  # fmt: skip
    load_reference(s)
    ingest(s, "lrs")
    ingest(s, "npd")


def features(s: Settings, day: date, table: str = "features") -> pl.DataFrame:
    with duckdb.connect(str(s.warehouse), read_only=True) as con:
        return con.sql(f"SELECT * FROM {table} WHERE day = $d", params={"d": day}).pl()


@pytest.fixture
def profiled(settings: Settings) -> Settings:
    world(settings)
    build_profiles(settings, DAY2)
    return settings


def test_every_org_gets_a_row_and_windows_count_what_they_should(profiled: Settings) -> None:
    f = {r["org_id"]: r for r in features(profiled, DAY2).iter_rows(named=True)}
    assert sorted(f) == ["ORG00001", "ORG00002", "ORG00003", "ORG00004"]
    college = f["ORG00001"]
    assert (college["calls_1d"], college["calls_7d"], college["calls_28d"]) == (1, 5, 5)
    assert college["search_share_7d"] == pytest.approx(1 / 5)
    assert college["register_share_7d"] == pytest.approx(1 / 5)
    assert college["invalid_uln_share_7d"] == pytest.approx(1 / 5)
    assert college["no_match_share_7d"] == pytest.approx(1 / 5)
    assert college["night_share_7d"] == pytest.approx(1 / 5)  # London time, not UTC
    assert college["out_of_hours_share_7d"] == pytest.approx(1 / 5)
    assert college["script_share_7d"] == pytest.approx(1 / 5)
    assert college["out_region_share_7d"] == pytest.approx(1 / 5)
    assert college["older_adult_share_7d"] == pytest.approx(2 / 5)
    assert college["learners_7d"] == 3 and college["learners_1d"] == 1
    assert college["repeat_learner_share_7d"] == pytest.approx(1 / 3)
    assert college["followthrough_7d"] == 1.0  # the searched learner was registered
    assert college["users_active_7d"] == 2 and college["max_user_ips_7d"] == 2
    assert college["area_count_7d"] == 2
    silent = f["ORG00003"]
    assert silent["calls_7d"] == 0 and silent["search_share_7d"] is None
    assert f["ORG00002"]["calls_while_inactive_7d"] == 1
    research = f["ORG00004"]
    assert research["npd_queries_7d"] == 3 and research["npd_queries_1d"] == 0
    assert research["npd_no_agreement_7d"] == 1
    assert research["npd_beyond_identifiability_7d"] == 1
    assert research["npd_breaches_7d"] == 2
    # no NaN anywhere: unknown is NULL
    numeric = features(profiled, DAY2).select(pl.selectors.float())
    assert not any(numeric.select(pl.all().is_nan().any()).row(0))


def test_account_features_per_user(profiled: Settings) -> None:
    a = {
        r["user_name"]: r
        for r in features(profiled, DAY2, "account_features").iter_rows(named=True)
    }
    assert set(a) == {"amy", "bob", "amy.admin"}
    assert a["amy"]["calls_7d"] == 3 and a["amy"]["ips_7d"] == 2
    assert a["bob"]["script_share_7d"] == pytest.approx(0.5)
    assert a["bob"]["org_call_share_7d"] == pytest.approx(2 / 5)


def test_rerunning_a_day_replaces_its_rows_and_late_events_rebuild_summaries(
    profiled: Settings,
) -> None:
    again = build_profiles(profiled, DAY2)
    assert again.summarised_days == []  # nothing changed: summaries reused
    assert features(profiled, DAY2).height == 4
    # a late delivery for day 1 arrives in day 2's folder
    write_csv(
        profiled.landing / "lrs" / DAY2.isoformat() / "part-2.csv",
        [lrs_row("late", ukprn="10000001", occurred_at="2026-08-10T13:00:00Z")],
        LRS_COLUMNS,
    )
    ingest(profiled, "lrs")
    report = build_profiles(profiled, DAY2)
    assert report.summarised_days == [DAY1]
    f = features(profiled, DAY2).filter(pl.col("org_id") == "ORG00001")
    assert f.height == 1 and f["calls_7d"][0] == 6


def test_a_day_with_no_events_profiles_every_org(settings: Settings) -> None:
    world(settings)
    report = build_profiles(settings, date(2026, 9, 30))
    assert report.organisations == 4 and report.events_today == 0
    f = features(settings, date(2026, 9, 30))
    assert f.height == 4 and (f["calls_7d"] == 0).all()
    assert f["search_share_7d"].is_null().all()


def test_distinct_learners_above_the_sample_size_are_estimated(settings: Settings) -> None:
    n = 400
    stems = np.arange(123_456_000, 123_456_000 + 2 * n, dtype=np.int64)
    ulns = [str(u) for u in make_valid_ulns(stems) if u > 0][:n]
    write_reference(settings, [org("ORG00001", ukprn="10000001")], [agreement("DS00752")])
    write_csv(
        settings.landing / "lrs" / DAY1.isoformat() / "part-1.csv",
        [lrs_row(f"e{i}", ukprn="10000001", occurred_at="2026-08-10T10:00:00Z", uln=u)
         for i, u in enumerate(ulns)],
        LRS_COLUMNS,
    )  # fmt: skip
    load_reference(settings)
    ingest(settings, "lrs")
    cfg = load_config()
    small = cfg.model_copy(update={"profile": ProfileConfig(learner_sample_size=64)})
    build_profiles(settings, DAY1, config=small)
    f = features(settings, DAY1)
    assert f["learners_1d"][0] == n  # one day: exact
    assert 0.6 * n <= f["learners_7d"][0] <= 1.6 * n  # window: bottom-k estimate
    # nearby valid ULNs share their 7-digit block: the org looks like a sweep
    assert f["sweep_share_1d"][0] == 1.0


def test_peer_groups_widen_when_small() -> None:
    cfg = ProfileConfig(min_peers=3)
    feat = Feature("x", "x", "x", "7d", Kind.share, key=True)
    frame = pl.DataFrame(
        {
            "org_type": ["a"] * 4 + ["b"] * 2 + ["c"],
            "size_band": [0, 0, 0, 1, 0, 0, 0],
            "x": [0.1, 0.2, 0.3, 0.9, 0.5, 0.5, None],
            "active": [True] * 6 + [False],
        }
    )
    out = peer_relative(frame, [feat], cfg, [["org_type", "size_band"], ["org_type"], []],
                        pl.col("active"))  # fmt: skip
    assert out["peer_level"].to_list() == [0, 0, 0, 1, 2, 2, 2]
    assert out["x_pm"][0] == pytest.approx(0.2)
    assert out["x_pm"][3] == pytest.approx(0.25)  # type a as a whole
    assert out["x_pz"][6] is None  # NULL value: NULL z
    assert out["x_pz"].drop_nulls().is_finite().all()


def test_docs_and_registry_and_columns_agree(profiled: Settings) -> None:
    assert FEATURES_DOC.read_text() == feature_docs(), (
        "docs/features.md is stale: run python -m pipeline.profile --write-docs"
    )
    org_cols = set(features(profiled, DAY2).columns)
    acc_cols = set(features(profiled, DAY2, "account_features").columns)
    names = [f.name for f in ORG_FEATURES]
    assert len(names) == len(set(names))
    assert set(names) <= org_cols
    assert org_cols - set(names) == {"org_id", "day", "org_type", "size_band", "peer_group",
                                     "peer_level"}  # fmt: skip
    assert {f.name for f in ACCOUNT_FEATURES} <= acc_cols
    for f in (*ORG_FEATURES, *ACCOUNT_FEATURES):
        assert f.definition and f.why, f.name


def test_rules_only_read_registered_features() -> None:
    from detectors.rules import rule_columns
    from schemas.features import ACCOUNT_FEATURE_MAP, FEATURES

    for r in load_config().rules:
        registry = FEATURES if r.level == "org" else ACCOUNT_FEATURE_MAP
        assert set(rule_columns(r)) <= set(registry), r.id


def test_profile_home_path_is_respected(tmp_path: Path, settings: Settings) -> None:
    world(settings)
    build_profiles(settings, DAY1)
    assert settings.warehouse.is_file() and not (tmp_path / "var").exists()


def test_peer_members_are_the_pool_at_the_orgs_level() -> None:
    # the peer group evidence packs show is the one the profile compared with: only active
    # registered orgs, of the org's type and size band, its type, or all (peer_level)
    frame = pl.DataFrame(
        {
            "org_id": ["A1", "A2", "A3", "B1", "U1", "Q1"],
            "org_type": ["a", "a", "a", "b", "unknown", "a"],
            "size_band": [0, 0, 1, 0, None, 0],
            "peer_level": [0, 1, 1, 2, 2, 0],
            "calls_28d": [5.0, 3.0, 1.0, 2.0, 9.0, 0.0],
            "unregistered": [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        }
    )
    members = {o: peer_members(frame, o)["org_id"].to_list() for o in frame["org_id"]}
    assert members["A1"] == ["A1", "A2"]  # type and band; Q1 is silent
    assert members["A2"] == ["A1", "A2", "A3"]  # the type
    assert members["B1"] == members["U1"] == ["A1", "A2", "A3", "B1"]  # all, never U1
    with pytest.raises(KeyError, match="'Z9' has no features"):
        peer_members(frame, "Z9")


def test_record_reads_of_adults_elsewhere_with_no_link_fire_plr_02(settings: Settings) -> None:
    """The day browsing starts: one college reads the records of twelve adults who live
    elsewhere and have no link to it; another reads its own registered learners' records
    (also adults elsewhere, as a distance provider's are). Only the first fires PLR-02."""
    write_reference(
        settings,
        [org("ORG00001", ukprn="10000001"), org("ORG00002", ukprn="10000002")],
        [agreement("DS00752", org_id="ORG00002")],
    )
    ulns = [int(u) for u in make_valid_ulns(np.arange(200_000_001, 200_000_040)) if u > 0]
    rows = []
    for i, uln in enumerate(ulns[:12]):  # far adults, never registered or searched
        rows.append(lrs_row(f"b{i}", ukprn="10000001", occurred_at="2026-08-10T10:00:00Z",
                            operation="GetLearnerLearningEvents", uln=str(uln), dob=ADULT,
                            postcode="SW1A 1AA"))  # fmt: skip
    for i, uln in enumerate(ulns[12:24]):  # registered by the org, then read
        for op, hour in (("registerSingleLearner", 9), ("GetLearnerLearningEvents", 11)):
            rows.append(lrs_row(f"d{i}{hour}", ukprn="10000002", operation=op,
                                occurred_at=f"2026-08-10T{hour:02d}:00:00Z", uln=str(uln),
                                dob=ADULT, postcode="SW1A 1AA"))  # fmt: skip
    write_csv(settings.landing / "lrs" / DAY1.isoformat() / "part-1.csv", rows, LRS_COLUMNS)
    load_reference(settings)
    ingest(settings, "lrs")
    build_profiles(settings, DAY1)
    f = features(settings, DAY1).sort("org_id")
    assert f["plr_far_1d"].to_list() == [12, 12]
    assert f["plr_far_share_1d"].to_list() == [1.0, 1.0]
    assert f["plr_unlinked_share_7d"].to_list() == [1.0, 0.0]
    (rule,) = [r for r in load_config().rules if r.id == "PLR-02"]
    fired = RuleDetector(rules=[rule]).fit(f).fired(f)["PLR-02"].to_list()
    assert fired == [True, False]


def test_lagged_followthrough_counts_later_follow_ups_per_learner(settings: Settings) -> None:
    """Per-learner follow-through with a lag, on literal events. amy searches six people on
    D0; bob registers three of them on D0+2, one is searched again on D0+7 (the lag's last
    day: followed), one on D0+8 (after the lag: not followed, but seen again) and one never
    comes back. On D0+5 amy searches two more (lag still open), one registered on D0+6.
    Profiled on D0+8, D0's searches are the closed 7-day cohort; the rest are open."""
    from datetime import timedelta

    from schemas.detection import DetectionConfig

    write_reference(settings, [org("ORG00001", ukprn="10000001")], [])
    d0 = date(2026, 8, 3)
    ulns = [str(u) for u in make_valid_ulns(np.arange(300_000_001, 300_000_020)) if u > 0]
    people, later = ulns[:6], ulns[6:8]

    def call(eid: str, day: date, user: str, op: str, uln: str) -> dict[str, object]:
        return lrs_row(eid, ukprn="10000001", occurred_at=f"{day.isoformat()}T10:00:00Z",
                       user_name=user, operation=op, uln=uln, dob=ADULT)  # fmt: skip

    by_day: dict[date, list[dict[str, object]]] = {}
    for i, u in enumerate(people):
        by_day.setdefault(d0, []).append(call(f"s{i}", d0, "amy", "learnerByDemographics", u))
    for i, u in enumerate(people[:3]):
        d = d0 + timedelta(days=2)
        by_day.setdefault(d, []).append(call(f"r{i}", d, "bob", "registerSingleLearner", u))
    for n, u in ((7, people[3]), (8, people[4])):
        d = d0 + timedelta(days=n)
        by_day.setdefault(d, []).append(call(f"x{n}", d, "bob", "learnerByDemographics", u))
    for i, u in enumerate(later):
        d = d0 + timedelta(days=5)
        by_day.setdefault(d, []).append(call(f"o{i}", d, "amy", "learnerByDemographics", u))
    d = d0 + timedelta(days=6)
    by_day.setdefault(d, []).append(call("o9", d, "bob", "registerSingleLearner", later[0]))
    for d, rows in by_day.items():
        write_csv(settings.landing / "lrs" / d.isoformat() / "part-1.csv", rows, LRS_COLUMNS)
    load_reference(settings)
    ingest(settings, "lrs")
    day = d0 + timedelta(days=8)
    cfg = DetectionConfig(profile=ProfileConfig(min_followup_searches=1))
    build_profiles(settings, day, cfg)
    f = features(settings, day).row(0, named=True)
    assert f["lag_followthrough_7d"] == pytest.approx(4 / 6)  # 3 registered + re-search D0+7
    assert f["never_seen_again_share_7d"] == pytest.approx(1 / 6)
    assert f["lag_followthrough_28d"] == pytest.approx(4 / 6)
    # open searches: D0+5 (one registered), and the re-searches of D0+7 and D0+8
    assert f["followed_so_far_7d"] == pytest.approx(1 / 4)
    acc = {r["user_name"]: r for r in features(settings, day, "account_features").to_dicts()}
    assert acc["amy"]["lag_followthrough_7d"] == pytest.approx(4 / 6)  # bob followed up
    assert acc["amy"]["followed_so_far_7d"] == pytest.approx(1 / 2)
    assert acc["bob"]["followed_so_far_7d"] == pytest.approx(0.0)
    # a day before, D0's lag is still open: no closed cohort yet
    build_profiles(settings, day - timedelta(days=2), cfg)
    g = features(settings, day - timedelta(days=2)).row(0, named=True)
    assert g["lag_followthrough_7d"] is None
