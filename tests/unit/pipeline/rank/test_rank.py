"""Ranking end to end: literal edge cases (empty day, new org, hard facts, re-runs) and the
committed sample world (labelled misuse ranks high, decoys do not flood the top, reasons
name the behaviour, accounts carry the signal, explain tells the story)."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from detectors.rules import load_config
from pipeline.ingest.deliveries import ingest
from pipeline.ingest.reference import load_reference
from pipeline.profile.build import build_profiles
from pipeline.rank.detect import NoEventsError, detect
from pipeline.rank.listing import NotProfiledError, suspects
from pipeline.rank.story import explain
from pipeline.store.warehouse import connect, ledger_frame
from schemas.detection import Condition
from schemas.ingest import DeliveryReport, DeliveryStatus
from schemas.settings import Settings, load_settings
from tests.conftest import SAMPLE, TEST_KEY
from tests.unit.pipeline.profile.test_profile import DAY1, DAY2, world

# --- literal worlds -----------------------------------------------------------------------


def test_hard_facts_surface_and_rerunning_a_day_replaces_it(settings: Settings) -> None:
    world(settings)
    build_profiles(settings, DAY2)
    report = detect(settings, DAY2)
    assert report.organisations == 4 and report.hard_facts >= 2
    ranked = suspects(settings, DAY2, top=10)
    top2 = {s.org_id: s for s in ranked[:2]}
    assert set(top2) == {"ORG00002", "ORG00004"}  # revoked and NPD outside agreement
    assert "ENT-01" in top2["ORG00002"].rules and top2["ORG00002"].score >= 90
    assert {"ENT-02", "ENT-06"} <= set(top2["ORG00004"].rules)
    assert all(s.triage_status == "new" and s.first_flagged == DAY2 for s in ranked)
    detect(settings, DAY2)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        (n,) = con.execute("SELECT count(*) FROM scores WHERE day = $d", {"d": DAY2}).fetchall()
        hits = con.sql("SELECT * FROM rule_hits WHERE rule_id = 'ENT-01'").pl()
    assert n is not None and n[0] == 4 + 3  # 4 orgs + 3 accounts, not doubled
    evidence = json.loads(hits["evidence"][0])
    assert evidence["counts"]["calls_while_inactive_7d"] == 1
    (example,) = evidence["examples"]
    assert example["event_id"] == "e5" and example["learner_pid"] is not None


def test_an_empty_day_a_new_org_and_few_peers_give_scores_without_nan(
    settings: Settings,
) -> None:
    world(settings)
    empty_day = date(2026, 10, 30)  # nothing in the lake within 34 days
    # A day with no data at all is not scored: no ranked list, no first_flagged.
    with pytest.raises(NoEventsError, match="no events on 2026-10-30: nothing to score"):
        detect(settings, empty_day)
    with pytest.raises(NotProfiledError):
        suspects(settings, empty_day, top=10)
    # A quiet day (a committed delivery of 0 rows) is data: every org scores on zeros.
    quiet = DeliveryReport(
        run_id="quiet", source="npd", delivery_day=empty_day, source_file="npd/quiet.csv",
        file_sha256="0", status=DeliveryStatus.committed, rows_read=0, rows_written=0,
        duplicates=0, quarantined=0, late_events=0,
        started_at=datetime(2026, 10, 31, tzinfo=UTC),
        finished_at=datetime(2026, 10, 31, tzinfo=UTC),
    )  # fmt: skip
    with connect(settings) as con:
        con.register("quiet", ledger_frame([quiet]))
        con.execute("INSERT INTO ingest_ledger SELECT * FROM quiet")
    build_profiles(settings, empty_day)
    report = detect(settings, empty_day)
    assert report.scored_by_models == 0  # too few active rows: rules only
    ranked = suspects(settings, empty_day, top=10)
    assert len(ranked) == 4
    assert all(0 <= s.score <= 100 for s in ranked)
    # day 1: ORG00001 has no history before it (a new org as far as the lake knows)
    build_profiles(settings, DAY1)
    detect(settings, DAY1)
    for s in suspects(settings, DAY1, top=10):
        for r in s.reasons:
            assert r.value is None or r.value == r.value  # not NaN
            assert "nan" not in r.text.lower()


def test_asking_before_profiling_or_detecting_is_a_clear_error(settings: Settings) -> None:
    world(settings)
    with pytest.raises(NotProfiledError, match="no features for 2026-08-11"):
        detect(settings, DAY2)
    with pytest.raises(NotProfiledError, match="run detect first"):
        suspects(settings, DAY2)
    with pytest.raises(ValueError, match="by must be"):
        suspects(settings, DAY2, by="team")


# --- the committed sample -----------------------------------------------------------------

needs_sample = pytest.mark.skipif(
    not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet"
)
DAYS = (date(2026, 9, 2), date(2026, 9, 3))
"""After every onset (the last is 2026-08-31)."""
BEHAVIOUR = {
    "age_verification_reseller": r"search|verif",
    "enumeration": r"invalid|sweep",
    "shared_credentials": r"address",
    "revoked_access": r"revoked|suspended|closed",
    "dormant_reactivation": r"silent",
    "plr_browsing": r"record",
    "npd_overreach": r"NPD",
}


def _read(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("sample")
    s = load_settings(home=root / "home", landing=SAMPLE / "landing", pseudonym_key=TEST_KEY)
    load_reference(s)
    ingest(s, "lrs")
    ingest(s, "npd")
    for d in DAYS:
        build_profiles(s, d)
        detect(s, d)
    return s


@needs_sample
def test_labelled_misuse_ranks_high_and_decoys_do_not_flood_the_top(sample: Settings) -> None:
    labels = _read(SAMPLE / "truth" / "labels.csv")
    decoys = {r["org_id"] for r in _read(SAMPLE / "truth" / "decoys.csv")}
    for d in DAYS:
        ranked = suspects(sample, d, top=20)
        rank = {s.org_id: s.rank for s in ranked}
        k = len(labels)
        assert all(r["org_id"] in rank for r in labels), (d, rank)
        in_top_k = sum(rank.get(r["org_id"], 99) <= k for r in labels)
        assert in_top_k >= k - 1, (d, {r["scenario"]: rank.get(r["org_id"]) for r in labels})
        assert sum(s.org_id in decoys for s in ranked[:k]) <= 1


@needs_sample
def test_top_reasons_name_the_behaviour_of_each_scenario(sample: Settings) -> None:
    ranked = {s.org_id: s for s in suspects(sample, DAYS[-1], top=20)}
    for r in _read(SAMPLE / "truth" / "labels.csv"):
        s = ranked[r["org_id"]]
        assert s.reasons, r
        assert re.search(BEHAVIOUR[r["scenario"]], s.reasons[0].text, re.I), (r, s.reasons[0])
        assert s.score == s.score and 0 <= s.score <= 100


@needs_sample
def test_accounts_carry_the_signal(sample: Settings) -> None:
    labels = [r for r in _read(SAMPLE / "truth" / "labels.csv") if r["user_name"]]
    by_account = suspects(sample, DAYS[-1], top=10, by="account")
    top = {(s.org_id, s.user_name) for s in by_account}
    assert all((r["org_id"], r["user_name"]) in top for r in labels), top
    orgs = {s.org_id: s for s in suspects(sample, DAYS[-1], top=20)}
    for r in labels:
        assert orgs[r["org_id"]].accounts[0].user_name == r["user_name"]


@needs_sample
def test_status_is_recurring_on_the_second_day(sample: Settings) -> None:
    first, second = DAYS
    top = suspects(sample, second, top=5)
    assert all(s.triage_status == "recurring" and s.first_flagged == first for s in top)


@needs_sample
def test_explain_shows_features_timeline_and_pseudonymised_evidence(sample: Settings) -> None:
    labels = {r["scenario"]: r["org_id"] for r in _read(SAMPLE / "truth" / "labels.csv")}
    e = explain(sample, labels["age_verification_reseller"], DAYS[-1])
    assert e.rank is not None and e.rank <= 7 and e.score > 50
    assert [p.day for p in e.timeline] == list(DAYS)
    assert e.features and e.features[0].peer_z is not None
    examples = [x for h in e.rule_hits for x in h.evidence.examples]
    assert examples and all(x.learner_pid is None or len(x.learner_pid) == 32 for x in examples)
    blob = e.model_dump_json()
    assert not re.search(r"(?<![0-9a-f])\d{10}(?![0-9a-f])", blob)  # no ULN in clear
    with duckdb.connect(str(sample.warehouse), read_only=True) as con:
        scores = con.sql("SELECT score FROM scores").pl()
    assert scores["score"].is_finite().all()
    assert pl.Series(scores["score"]).is_between(0, 100).all()


@needs_sample
def test_a_legitimate_explanation_lowers_a_look_alike_and_explain_names_it(
    sample: Settings,
) -> None:
    """The sample's two days are too short for follow-through to build up (0.17 for its
    online provider), so LEG-01 is relaxed to hold there; everything else is as committed."""
    decoys = {r["kind"]: r["org_id"] for r in _read(SAMPLE / "truth" / "decoys.csv")}
    labels = {r["scenario"]: r["org_id"] for r in _read(SAMPLE / "truth" / "labels.csv")}
    online, reseller, day = decoys["online_provider"], labels["age_verification_reseller"], DAYS[-1]
    committed = load_config()
    leg01 = next(e for e in committed.explanations if e.id == "LEG-01")
    lenient = (Condition(feature="followthrough_7d", operator=">=", threshold=0.15),)
    relaxed = committed.model_copy(
        update={"explanations": (leg01.model_copy(update={"when": lenient}),)}
    )
    before = explain(sample, online, day)
    assert before.explanations == [] and before.rank is not None
    assert any(re.search(ADULTS_OR_AWAY, r.text) for r in before.reasons), before.reasons
    try:
        detect(sample, day, config=relaxed)
        after = explain(sample, online, day, config=relaxed)
        assert [x[:6] for x in after.explanations] == ["LEG-01"], after.explanations
        assert re.search(r"register or revisit \d+% of the learners", after.explanations[0])
        assert after.score < before.score
        assert not any(re.search(ADULTS_OR_AWAY, r.text) for r in after.reasons), after.reasons
        fraud = explain(sample, reseller, day, config=relaxed)
        assert fraud.explanations == [] and fraud.rank is not None and fraud.rank <= 7
    finally:
        detect(sample, day)


ADULTS_OR_AWAY = r"25 or over|outside the org's region|median learner age|postcode areas"


@needs_sample
def test_local_adult_provision_is_explained_and_the_record_browser_is_not(
    sample: Settings,
) -> None:
    """LEG-04 (as committed) holds for the sample's evening college: its adults and its
    evening hours weigh on its score only when the explanation is taken away. The PLR
    browser reads records of adults from elsewhere, so no explanation holds for it."""
    decoys = {r["kind"]: r["org_id"] for r in _read(SAMPLE / "truth" / "decoys.csv")}
    labels = {r["scenario"]: r["org_id"] for r in _read(SAMPLE / "truth" / "labels.csv")}
    evening, browser, day = decoys["evening_provision"], labels["plr_browsing"], DAYS[-1]
    committed = load_config()
    held = explain(sample, evening, day)
    assert [x[:6] for x in held.explanations] == ["LEG-04"], held.explanations
    assert explain(sample, browser, day).explanations == []
    without = committed.model_copy(
        update={"explanations": tuple(e for e in committed.explanations if e.id != "LEG-04")}
    )
    try:
        detect(sample, day, config=without)
        bare = explain(sample, evening, day, config=without)
        assert bare.explanations == []
        assert bare.score > held.score, (bare.score, held.score)
    finally:
        detect(sample, day)
