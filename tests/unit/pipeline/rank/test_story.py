"""explain_many: several orgs read at once tell each org's story exactly as explain() of
that org alone does (nothing leaks between orgs: features, hits, timelines, verdicts)."""

from __future__ import annotations

import pytest

from pipeline.profile.build import build_profiles
from pipeline.rank.detect import detect
from pipeline.rank.listing import NotProfiledError
from pipeline.rank.story import explain, explain_many
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import record
from schemas.settings import Settings
from tests.unit.pipeline.profile.test_profile import DAY1, DAY2, world


@pytest.fixture
def scored(settings: Settings) -> Settings:
    """The four-org literal world, detected on DAY1 and DAY2, with verdicts of three kinds
    (a legitimate one on DAY1 makes ORG00004 'returned' or 'legitimate' on DAY2)."""
    world(settings)
    for d in (DAY1, DAY2):
        build_profiles(settings, d)
        detect(settings, d)
    record(settings, "ORG00004", "legitimate", "agreement being renewed", "amy", day=DAY1)
    record(settings, "ORG00002", "misuse", "revoked and still calling", "bob", day=DAY2)
    record(settings, "ORG00003", "needs_info", "asked the provider", "amy", day=DAY2)
    return settings


def test_explain_many_is_explain_of_each_org_alone(scored: Settings) -> None:
    with connect(scored, read_only=True) as con:
        orgs = [r[0] for r in con.execute("SELECT org_id FROM organisations ORDER BY 1").fetchall()]
    assert len(orgs) >= 4
    for day in (DAY1, DAY2):
        alone = [explain(scored, o, day) for o in orgs]
        together = explain_many(scored, list(reversed(orgs)), day)
        assert together == list(reversed(alone))
        assert any(e.rule_hits for e in alone) and any(e.verdicts for e in alone)
        if day == DAY2:
            statuses = {e.triage_status for e in alone}
            assert {"misuse", "needs_info"} <= statuses and statuses & {"legitimate", "returned"}
            assert any(len(e.timeline) == 2 for e in alone)
    # repeated ids come back in the order asked; nothing asked, nothing read
    again = explain_many(scored, [orgs[1], orgs[0], orgs[1]], DAY2)
    assert [e.org_id for e in again] == [orgs[1], orgs[0], orgs[1]] and again[0] == again[2]
    assert explain_many(scored, [], DAY2) == []


def test_explain_many_refuses_an_unknown_org_and_an_undetected_day(scored: Settings) -> None:
    with pytest.raises(KeyError, match="unknown organisation 'ORG09999'"):
        explain_many(scored, ["ORG00002", "ORG09999"], DAY2)
    with pytest.raises(NotProfiledError):
        explain_many(scored, ["ORG00002"], DAY2.replace(year=2030))
