"""Real feeds on literal deliveries: organisations absent from the register and register rows
with empty optional fields.

- LRS calls whose UKPRN and NPD queries whose org_id the register does not hold are kept in
  the lake, profiled as ``UKPRN-<ukprn>`` / their own org_id (org_type ``unknown``), fire the
  hard-fact rule REG-01, rank at the top like ENT-01, and ``suspects`` and ``explain`` name
  them (regression: they were dropped by the profile's join to the register, so an NPD
  over-reach by an org missing from the register was never ranked and ``explain`` said
  "unknown organisation").
- A register row with only the required fields loads (regression: 12 of 1,500 NPD-only orgs
  were quarantined for an empty ``expected_learners``), its size band is unknown and its
  peers are its org type; an unknown region gives NULL region features, not "everyone lives
  elsewhere".
- A bad reference row is never silent: refused with file, line and field unless bad rows
  are allowed, and then listed by ``reference_problems``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date

import duckdb
import polars as pl
import pytest

from pipeline.ingest.deliveries import ingest
from pipeline.ingest.reference import BadReferenceRows, load_reference, reference_problems
from pipeline.outputs.report import collect, render
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.rank.listing import suspects
from pipeline.rank.story import explain
from pipeline.store.lake import lake_glob
from pipeline.triage.verdicts import record
from schemas.reference import ReferenceProblem
from schemas.settings import Settings, load_settings
from tests.conftest import LRS_COLUMNS, NPD_COLUMNS, TEST_KEY, lrs_row, npd_row, write_csv
from tests.unit.pipeline.ingest.test_reference import agreement, org, write_reference

DAY1 = date(2026, 8, 10)
DAY2 = date(2026, 8, 11)
ULNS = ("1026893096", "1174112637")
N_COLLEGES = 24  # enough active orgs for the models to be fitted (min_fit_rows = 20)
UNKNOWN_UKPRN = "10009999"
UNKNOWN_NPD = "ORG09999"


def _register() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    orgs = [
        org(f"ORG{i:05d}", ukprn=f"1000{i:04d}", expected_learners=1000 + 10 * i)
        for i in range(1, N_COLLEGES + 1)
    ]
    orgs += [
        # revoked and still calling: ENT-01, the yardstick for REG-01
        org("ORG00100", ukprn="10000100", org_type="training_provider", status="revoked",
            status_changed_on="2026-08-01", expected_learners=200),
        # an NPD-only research body with nothing but the required fields
        {"org_id": "ORG00200", "name": "Northbrook Research Unit", "org_type": "research",
         "status": "active"},
        # an LRS provider whose region and size the register does not know
        org("ORG00300", ukprn="10000300", region="", postcode_area="", registered_on="",
            expected_learners=""),
    ]  # fmt: skip
    agreements = [
        {"agreement_ref": "DS00752", "org_id": "ORG00200", "valid_from": "2024-01-01",
         "valid_to": "2027-01-01"},
    ]  # fmt: skip
    return orgs, agreements


def real_feed_world(s: Settings) -> None:
    """Two days of deliveries: colleges at work, a revoked provider, a provider of unknown
    region, an unregistered LRS caller, a research body with an agreement of dates only and
    an unregistered NPD requester."""
    orgs, agreements = _register()
    write_reference(s, orgs, agreements)
    for day in (DAY1, DAY2):
        rows = []
        for i in range(1, N_COLLEGES + 1):
            for k in range(3):
                rows.append(
                    lrs_row(f"c{day:%d}-{i}-{k}", ukprn=f"1000{i:04d}", user_name=f"u{i}",
                            occurred_at=f"{day}T1{k}:00:00Z", uln=ULNS[k % 2])
                )  # fmt: skip
        rows += [
            lrs_row(f"r{day:%d}-{k}", ukprn="10000100", user_name="old.admin",
                    occurred_at=f"{day}T10:0{k}:00Z")
            for k in range(4)
        ]  # fmt: skip
        rows += [
            # every optional event field empty on one call (user agent included)
            lrs_row(f"x{day:%d}-{k}", ukprn="10000300", user_name="x.user",
                    occurred_at=f"{day}T11:0{k}:00Z", postcode="SW1A 1AA")
            if k else
            lrs_row(f"x{day:%d}-{k}", ukprn="10000300", user_name="x.user",
                    occurred_at=f"{day}T11:0{k}:00Z", uln="", dob="", postcode="",
                    batch_size="", user_agent="")
            for k in range(3)
        ]  # fmt: skip
        rows += [
            lrs_row(f"u{day:%d}-{k}", ukprn=UNKNOWN_UKPRN, user_name="ghost",
                    occurred_at=f"{day}T12:0{k}:00Z", operation="learnerByDemographics",
                    dob="1980-01-01")
            for k in range(5)
        ]  # fmt: skip
        write_csv(s.landing / "lrs" / day.isoformat() / "part-1.csv", rows, LRS_COLUMNS)
        write_csv(
            s.landing / "npd" / day.isoformat() / "part-1.csv",
            [
                npd_row(f"n{day:%d}-1", org_id="ORG00200", occurred_at=f"{day}T10:00:00Z"),
                npd_row(f"n{day:%d}-2", org_id=UNKNOWN_NPD, occurred_at=f"{day}T11:00:00Z",
                        agreement_ref="", min_identifiability=1),
            ],
            NPD_COLUMNS,
        )  # fmt: skip
    load_reference(s)
    ingest(s, "lrs")
    ingest(s, "npd")


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The world profiled and scored on both days, once for the module (tests only read)."""
    root = tmp_path_factory.mktemp("real-feed")
    settings = load_settings(home=root / "home", landing=root / "landing", pseudonym_key=TEST_KEY)
    real_feed_world(settings)
    for day in (DAY1, DAY2):
        profile = build_profiles(settings, day)
        assert profile.unregistered_organisations == 2
        # the models are fitted on a day holding orgs of type "unknown" (and do not crash)
        assert detect(settings, day).scored_by_models > 0
    return settings


def _features(s: Settings, day: date, table: str = "features") -> dict[str, dict[str, object]]:
    with duckdb.connect(str(s.warehouse), read_only=True) as con:
        frame = con.sql(f"SELECT * FROM {table} WHERE day = $d", params={"d": day}).pl()
    return {r["org_id"]: r for r in frame.iter_rows(named=True)}


def test_events_of_unregistered_orgs_are_kept_in_the_lake(settings: Settings) -> None:
    real_feed_world(settings)
    lrs = pl.read_parquet(lake_glob(settings.home, "lrs"))
    npd = pl.read_parquet(lake_glob(settings.home, "npd"))
    assert lrs.filter(pl.col("ukprn") == UNKNOWN_UKPRN).height == 10
    assert npd.filter(pl.col("org_id") == UNKNOWN_NPD).height == 2


def test_unregistered_orgs_are_profiled_counted_and_compared_with_all_orgs(
    scored: Settings,
) -> None:
    f = _features(scored, DAY2)
    lrs, npd = f[f"UKPRN-{UNKNOWN_UKPRN}"], f[UNKNOWN_NPD]
    for row in (lrs, npd):
        assert row["org_type"] == "unknown" and row["unregistered"] == 1
        assert row["size_band"] is None and row["peer_group"] == "all organisations"
        assert row["out_region_share_7d"] is None  # no region: no evidence either way
    assert (lrs["calls_7d"], lrs["unregistered_events_7d"]) == (10, 10)
    assert (npd["npd_queries_7d"], npd["unregistered_events_7d"]) == (2, 2)
    assert f["ORG00001"]["unregistered"] == 0 and f["ORG00001"]["unregistered_events_7d"] == 0
    accounts = _features(scored, DAY2, "account_features")
    assert accounts[f"UKPRN-{UNKNOWN_UKPRN}"]["org_type"] == "unknown"
    with duckdb.connect(str(scored.warehouse), read_only=True) as con:
        seen = con.sql("SELECT * FROM unregistered_orgs ORDER BY org_id").pl()
    assert seen["org_id"].to_list() == [UNKNOWN_NPD, f"UKPRN-{UNKNOWN_UKPRN}"]
    assert seen["first_seen"].to_list() == [DAY1, DAY1]
    assert seen["last_seen"].to_list() == [DAY2, DAY2]


def test_unregistered_orgs_fire_reg01_and_rank_at_the_top_like_ent01(scored: Settings) -> None:
    ranked = suspects(scored, DAY2, top=10)
    by = {s.org_id: s for s in ranked}
    lrs, npd, revoked = by[f"UKPRN-{UNKNOWN_UKPRN}"], by[UNKNOWN_NPD], by["ORG00100"]
    assert "ENT-01" in revoked.rules and revoked.score >= 90
    assert "REG-01" in lrs.rules and "REG-01" in npd.rules
    assert min(lrs.score, npd.score) >= 90
    assert {s.org_id for s in ranked[:3]} == {lrs.org_id, npd.org_id, revoked.org_id}
    assert lrs.org_name == f"UKPRN {UNKNOWN_UKPRN} (not in the register)"
    assert npd.org_name == f"NPD org_id {UNKNOWN_NPD} (not in the register)"
    assert lrs.org_type == npd.org_type == "unknown"
    assert [a.user_name for a in lrs.accounts] == ["ghost"]
    assert any("not in the register" in r.text for r in lrs.reasons)


def test_explain_tells_what_is_known_about_an_unregistered_org(scored: Settings) -> None:
    e = explain(scored, f"UKPRN-{UNKNOWN_UKPRN}", DAY2)
    assert e.org_name == f"UKPRN {UNKNOWN_UKPRN} (not in the register)"
    assert e.org_type == "unknown" and e.rank is not None and e.rank <= 3
    hit = next(h for h in e.rule_hits if h.rule_id == "REG-01")
    assert hit.hard_fact and hit.value == 10
    assert hit.evidence.examples and hit.evidence.examples[0].user_name == "ghost"
    assert [a.user_name for a in e.accounts] == ["ghost"]
    n = explain(scored, UNKNOWN_NPD, DAY2)
    assert n.org_type == "unknown" and {"REG-01", "ENT-02"} <= {h.rule_id for h in n.rule_hits}
    reg = next(h for h in n.rule_hits if h.rule_id == "REG-01")
    assert [x.event_id for x in reg.evidence.examples] == ["n11-2", "n10-2"]  # its queries
    with pytest.raises(KeyError, match="unknown organisation"):
        explain(scored, "ORG55555", DAY2)


def test_optional_register_fields_may_be_empty(scored: Settings) -> None:
    f = _features(scored, DAY2)
    research, unsized = f["ORG00200"], f["ORG00300"]
    assert research["unregistered"] == 0 and research["npd_queries_7d"] == 2
    assert research["npd_breaches_7d"] == 0  # an agreement of dates only limits nothing else
    assert research["size_band"] is None and research["org_age_days"] is None
    # no size band: peers are the org type (a fe_college of unknown size: the colleges)
    assert unsized["size_band"] is None and unsized["peer_group"] == "fe_college"
    # an empty user agent is kept (and, per script_agent_pattern, counts as a script)
    assert unsized["out_region_share_7d"] is None and unsized["calls_7d"] == 6
    assert unsized["script_share_7d"] == pytest.approx(2 / 6)
    assert f["ORG00001"]["out_region_share_7d"] == 0.0  # a known region still counts
    assert not [s for s in suspects(scored, DAY2, top=50) if s.org_id == "ORG00200"
                and "ENT-02" in s.rules]  # fmt: skip


def test_a_bad_reference_row_refuses_the_load_unless_bad_rows_are_allowed(
    settings: Settings,
) -> None:
    orgs, agreements = _register()
    orgs.append(org("ORG00400", expected_learners="many"))
    agreements.append(agreement("R0043", org_id="ORG00200", valid_to=""))
    write_reference(settings, orgs, agreements)
    with pytest.raises(BadReferenceRows) as info:
        load_reference(settings, allow_bad_rows=False)
    problems = info.value.problems
    assert [(p.source_file, p.line, p.field, p.org_id) for p in problems] == [
        ("reference/organisations.csv", 29, "expected_learners", "ORG00400"),
        ("reference/agreements.csv", 3, "valid_to", "ORG00200"),
    ]
    assert "reference/organisations.csv line 29 (org ORG00400): expected_learners" in str(
        info.value
    )
    assert not settings.warehouse.exists() or not reference_problems(settings)
    load_reference(settings, allow_bad_rows=True)
    listed = reference_problems(settings)
    assert [(p.table, p.key) for p in listed] == [
        ("organisations", "ORG00400"),
        ("agreements", "R0043"),
    ]
    assert listed[0].describe().startswith("reference/organisations.csv line 29 (org ORG00400)")


def test_the_report_shows_unregistered_orgs_and_quarantined_register_rows(
    scored: Settings,
) -> None:
    data = collect(scored, DAY2, top=5)
    assert [u.org_id for u in data.unregistered] == [f"UKPRN-{UNKNOWN_UKPRN}", UNKNOWN_NPD]
    lrs = data.unregistered[0]
    assert (lrs.lrs_calls_7d, lrs.npd_queries_7d, lrs.accounts_7d) == (10, 0, 1)
    assert lrs.first_seen == DAY1 and lrs.rank is not None and lrs.rank <= 3
    card = next(c for c in data.cards if c.suspect.org_id == lrs.org_id)
    assert card.status == "not in the register"
    assert data.reference_problems == []
    html = render(data)
    assert "Organisations not in the register" in html
    assert f"UKPRN {UNKNOWN_UKPRN} (not in the register)" in html
    problem = ReferenceProblem(
        table="organisations", source_file="reference/organisations.csv", line=7,
        field="name", reason="name is missing", key="ORG00007", org_id="ORG00007",
    )  # fmt: skip
    html = render(replace(data, reference_problems=[problem]))
    assert "reference/organisations.csv line 7 (org ORG00007): name is missing" in html


def test_an_unregistered_org_can_be_triaged_and_a_misuse_verdict_pins_it(
    scored: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    s = load_settings(
        home=tmp_path_factory.mktemp("triaged") / "home", landing=scored.landing,
        pseudonym_key=TEST_KEY,
    )  # fmt: skip
    shutil.copytree(scored.home, s.home, dirs_exist_ok=True)
    org_id = f"UKPRN-{UNKNOWN_UKPRN}"
    d = record(s, org_id, "misuse", "reseller using a lapsed UKPRN", "ana", day=DAY2)
    assert d.org_id == org_id and d.score_at_decision is not None
    pinned = suspects(s, DAY2, top=1)
    row = next(x for x in pinned if x.org_id == org_id)
    assert row.triage_status == "misuse" and row.org_type == "unknown"
    with pytest.raises(KeyError, match="unknown organisation"):
        record(s, "UKPRN-10000000", "misuse", "never seen", "ana", day=DAY2)
