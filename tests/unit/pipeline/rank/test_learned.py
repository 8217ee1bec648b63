"""Learning from verdicts on a literal warehouse: with no verdict the list is exactly the
unsupervised one; a legitimate verdict lowers a look-alike and not unrelated orgs, a misuse
verdict raises one; an org never learns from its own verdict; a hard fact is never
lowered; the model version follows the verdict set and is in the JSON; runs repeat."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from detectors.rules import load_config
from pipeline.profile.store import replace_features
from pipeline.rank.learned import UNSUPERVISED
from pipeline.rank.listing import suspects
from pipeline.store.warehouse import connect, replace_day
from pipeline.triage.verdicts import write_decision
from schemas.detection import DetectionConfig, LearningConfig, Suspect
from schemas.settings import Settings
from schemas.triage import TriageDecision

D1, D2, D3 = (date(2026, 9, d) for d in (1, 2, 3))
# (search share, older adults, out of region, follow-through) peer z-scores of each shape
DISTANCE = (0.0, 4.0, 5.0, 2.0)  # a national distance-learning provider (legitimate)
RESELLER = (5.0, 4.0, 3.0, -4.0)  # an age-verification reseller (misuse)
FEATS = ("search_share_7d_pz", "older_adult_share_7d_pz", "out_region_share_7d_pz",
         "followthrough_7d_pz")  # fmt: skip
SHAPES: dict[str, tuple[tuple[float, ...], float, bool]] = {
    # org: (shape, score, hard fact)
    "DL1": (DISTANCE, 72.0, False),
    "DL2": (DISTANCE, 70.0, False),
    "RES1": (RESELLER, 66.0, False),
    "RES2": (RESELLER, 55.0, False),
    "HARD": (DISTANCE, 90.0, True),
}


def _day_rows(day: date) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    rng = np.random.default_rng(day.toordinal())
    feats: list[dict[str, object]] = []
    scores: list[tuple[str, float, bool]] = []
    for i in range(30):  # ordinary orgs, near their peers
        org = f"P{i:02d}"
        values = rng.normal(0, 0.4, size=len(FEATS))
        feats.append({"org_id": org, **dict(zip(FEATS, values, strict=True))})
        scores.append((org, 20.0 + i, False))
    for org, (shape, score, hard) in SHAPES.items():
        jitter = rng.normal(0, 0.1, size=len(FEATS))
        feats.append({"org_id": org, **dict(zip(FEATS, np.add(shape, jitter), strict=True))})
        scores.append((org, score, hard))
    frame = pl.DataFrame(feats).with_columns(
        pl.lit(day).alias("day"), pl.lit(50.0).alias("calls_7d")
    )
    rows = [
        {"day": day, "level": "org", "org_id": o, "user_name": "", "rules": 1.0 if h else 0.5,
         "models": s / 100, "score": s, "hard_fact": h}
        for o, s, h in scores
    ]  # fmt: skip
    return frame.select("day", "org_id", "calls_7d", *FEATS), rows


@pytest.fixture
def home(settings: Settings) -> Settings:
    """35 orgs on three detected days: 30 ordinary, two distance-learning providers alike,
    two resellers alike, and an org with a hard fact shaped like the providers."""
    with connect(settings) as con:
        orgs = pl.DataFrame(
            {"org_id": [f"P{i:02d}" for i in range(30)] + list(SHAPES)}
        ).with_columns(
            pl.col("org_id").alias("name"), pl.lit("training_provider").alias("org_type")
        )
        con.register("_orgs", orgs)
        con.execute("INSERT INTO organisations BY NAME SELECT * FROM _orgs")
        for day in (D1, D2, D3):
            features, scores = _day_rows(day)
            replace_features(con, {"features": features}, day)
            ranked = sorted(scores, key=lambda r: (-float(r["score"]), r["org_id"]))  # type: ignore[arg-type]
            listed = [
                {"day": day, "level": "org", "rank": n, "org_id": r["org_id"], "user_name": "",
                 "org_name": r["org_id"], "org_type": "training_provider", "score": r["score"],
                 "rules": json.dumps(["ENT-01"] if r["hard_fact"] else []),
                 "reasons": "[]", "accounts": "[]", "first_flagged": D1,
                 "triage_status": "new"}
                for n, r in enumerate(ranked, start=1)
            ]  # fmt: skip
            hits = [
                {"day": day, "level": "org", "org_id": "HARD", "user_name": "",
                 "rule_id": "ENT-01", "severity": "critical", "hard_fact": True,
                 "feature": "calls_while_inactive_7d", "value": 3.0, "threshold": 1.0,
                 "message": "", "evidence": "{}"}
            ]  # fmt: skip
            replace_day(
                con,
                day,
                {"scores": pl.DataFrame(scores), "suspects": pl.DataFrame(listed),
                 "rule_hits": pl.DataFrame(hits)},
            )  # fmt: skip
    return settings


def verdict(settings: Settings, org: str, what: str, n: int = 0) -> TriageDecision:
    d = TriageDecision(
        decision_id=f"20260901T10000{n}000000Z-{org.lower():0<12}",
        org_id=org,
        verdict=what,
        note="checked",
        analyst="ana",
        decided_at=datetime(2026, 9, 1, 10, 0, n, tzinfo=UTC),
        day=D1,
        score_at_decision=SHAPES[org][1],
    )
    write_decision(settings.home, d)
    return d


def listing(
    settings: Settings, cfg: DetectionConfig | None = None, *, include_suppressed: bool = False
) -> list[Suspect]:
    return suspects(
        settings, D3, top=100, config=cfg or load_config(), include_suppressed=include_suppressed
    )


def by_org(rows: list[Suspect]) -> dict[str, Suspect]:
    return {r.org_id: r for r in rows}


def off() -> DetectionConfig:
    return load_config().model_copy(update={"learning": LearningConfig(enabled=False)})


def dumped(rows: list[Suspect]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in rows], indent=2)


def test_without_verdicts_the_list_is_bit_for_bit_the_unsupervised_one(home: Settings) -> None:
    learned, plain = listing(home), listing(home, off())
    assert dumped(learned) == dumped(plain)
    assert [r.score for r in learned] == sorted((r.score for r in learned), reverse=True)
    assert {r.model_version for r in learned} == {UNSUPERVISED}
    assert {r.learned_points for r in learned} == {0.0}


def test_a_legitimate_verdict_lowers_a_look_alike_but_not_unrelated_orgs(home: Settings) -> None:
    before = by_org(listing(home))
    verdict(home, "DL1", "legitimate")
    after = by_org(listing(home))
    assert "DL1" not in after  # hidden by its own verdict, as before
    dl2 = after["DL2"]
    assert dl2.learned_points < -20 and dl2.score == round(70.0 + dl2.learned_points, 2)
    assert dl2.reasons[-1].text.startswith(
        "resembles DL1, judged legitimate on 2026-09-01 by ana (-"
    )
    assert dl2.reasons[-1].text.endswith(" points learned from verdicts)")
    for org in ("RES1", "RES2", *(f"P{i:02d}" for i in range(30))):
        assert after[org].score == before[org].score and after[org].learned_points == 0
    assert after["DL2"].rank > before["DL2"].rank  # re-ranked by the adjusted score
    assert [r.score for r in after.values()] == sorted(
        (r.score for r in after.values()), reverse=True
    )


def test_a_misuse_verdict_raises_a_look_alike_and_never_its_own_org(home: Settings) -> None:
    verdict(home, "RES1", "misuse")
    after = by_org(listing(home))
    res2 = after["RES2"]
    assert res2.learned_points > 20 and res2.reasons[-1].text.startswith(
        "resembles RES1, confirmed misuse on 2026-09-01 by ana (+"
    )
    res1 = after["RES1"]
    assert res1.pinned and res1.learned_points == 0 and res1.score == 66.0  # own verdict: pin only
    assert after["DL2"].learned_points == 0


def test_leave_one_org_out_only_other_orgs_verdicts_move_an_org(home: Settings) -> None:
    verdict(home, "DL1", "legitimate")
    shown = by_org(listing(home, include_suppressed=True))
    assert shown["DL1"].triage_status == "legitimate" and shown["DL1"].learned_points == 0
    verdict(home, "DL2", "legitimate", n=1)
    shown = by_org(listing(home, include_suppressed=True))
    # now each provider is taught by the other's verdict
    assert shown["DL1"].learned_points < -20 and "resembles DL2" in shown["DL1"].reasons[-1].text
    assert shown["DL2"].learned_points < -20 and "resembles DL1" in shown["DL2"].reasons[-1].text


def test_a_hard_fact_is_never_lowered(home: Settings) -> None:
    verdict(home, "DL1", "legitimate")
    hard = by_org(listing(home))["HARD"]
    assert hard.score == 90.0 and hard.learned_points == 0 and hard.rank == 1


def test_the_model_version_follows_the_verdicts_and_runs_repeat(home: Settings) -> None:
    verdict(home, "DL1", "legitimate")
    first, again = listing(home), listing(home)
    assert dumped(first) == dumped(again)  # deterministic
    v1 = {r.model_version for r in first}
    assert len(v1) == 1 and next(iter(v1)).startswith("verdicts-") and len(next(iter(v1))) == 21
    verdict(home, "RES1", "misuse", n=1)
    v2 = {r.model_version for r in listing(home)}
    assert len(v2) == 1 and v2 != v1
    assert {r.model_version for r in listing(home, off())} == {UNSUPERVISED}
    payload = json.loads(dumped(listing(home)))
    assert {"model_version", "learned_points"} <= set(payload[0])


def test_a_hard_fact_day_is_no_example() -> None:
    """A misuse verdict on an org whose hard fact made the verdict teaches nothing about
    behaviour: its days with a hard fact are left out of the examples."""
    from pipeline.rank.learned import examples_frame

    org_days = pl.DataFrame(
        {"org_id": ["HARD", "HARD", "RES1"], "day": [D1, D2, D2], "calls_7d": [5.0, 5.0, 5.0],
         "unsupervised_hard_fact": [True, False, False]}
    )  # fmt: skip
    decisions = {
        o: TriageDecision(decision_id=f"20260901T100000000000Z-{o.lower():0<8}", org_id=o,
                          verdict="misuse", note="x", analyst="ana",
                          decided_at=datetime(2026, 9, 1, tzinfo=UTC), day=D1)
        for o in ("HARD", "RES1")
    }  # fmt: skip
    ex = examples_frame(org_days, decisions, D3, load_config())
    assert ex.select("org_id", "day").rows() == [("HARD", D2), ("RES1", D2)]
    assert set(ex["verdict"]) == {"misuse"}


def test_a_legitimate_org_teaches_only_with_its_days_before_its_behaviour_changed() -> None:
    """An org judged legitimate that came back (a new rule fired on D3) is no example of
    legitimate behaviour from that day on: what it does since is not what was judged."""
    from pipeline.rank.learned import examples_frame

    org_days = pl.DataFrame(
        {"org_id": ["DL1"] * 3, "day": [D1, D2, D3], "calls_7d": [5.0] * 3,
         "unsupervised_hard_fact": [False] * 3}
    )  # fmt: skip
    d = TriageDecision(decision_id="20260901T100000000000Z-dl100000", org_id="DL1",
                       verdict="legitimate", note="x", analyst="ana",
                       decided_at=datetime(2026, 9, 1, tzinfo=UTC), day=D1)  # fmt: skip
    every = examples_frame(org_days, {"DL1": d}, D3, load_config())
    assert every["day"].to_list() == [D1, D2, D3]
    cut = examples_frame(org_days, {"DL1": d}, D3, load_config(), {"DL1": D3})
    assert cut["day"].to_list() == [D1, D2]
