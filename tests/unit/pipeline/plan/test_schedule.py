"""The run schedule (ingest and score at once) gives every day the inputs of a serial run.

Driven through random orders of completion: whatever finishes first, every day's last
scoring comes after every commit carrying its events or earlier ones, the last scorings
are in date order, and deliveries commit in (day, source) order.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.plan.schedule import Delivery, Schedule

START = date(2026, 3, 2)


@st.composite
def runs(draw: st.DrawFn) -> tuple[Schedule, dict[Delivery, set[date]], list[int]]:
    days = draw(st.integers(1, 8))
    late_days = draw(st.integers(0, 3))
    score_from = START - timedelta(days=draw(st.integers(0, 5)))
    end = START + timedelta(days=days - 1)
    events: dict[Delivery, set[date]] = {}
    for source in ("lrs", "npd"):
        for i in range(days):
            day = START + timedelta(days=i)
            if draw(st.booleans()) or source == "lrs":
                lateness = draw(st.lists(st.integers(1, 6), max_size=3))
                events[(source, day)] = {day} | {day - timedelta(days=k) for k in lateness}
    plan = Schedule(START, end, score_from, late_days, unfinished=set(events))
    choices = draw(st.lists(st.integers(0, 1000), min_size=200, max_size=200))
    return plan, events, choices


@settings(max_examples=300, deadline=None)
@given(runs())
def test_every_days_last_scoring_sees_every_event_before_it(
    run: tuple[Schedule, dict[Delivery, set[date]], list[int]],
) -> None:
    plan, events, choices = run
    to_stage = sorted(events, key=lambda k: (k[1], k[0]))
    staging: list[Delivery] = []
    clock = 0
    committed_at: dict[Delivery, int] = {}
    scored_at: dict[date, int] = {}
    commit_order: list[Delivery] = []
    scored_days: list[date] = []
    pick = iter(choices * 100)
    while not plan.finished:
        clock += 1
        while to_stage and len(staging) < 2:  # two deliveries stage at once
            staging.append(to_stage.pop(0))
        if (delivery := plan.next_commit()) is not None:
            commit_order.append(delivery)
        if (day := plan.next_score()) is not None:
            scored_at[day] = clock
            scored_days.append(day)
        # something running finishes, whichever the draw says
        running = [("stage", k) for k in staging]
        if plan.committing is not None:
            running.append(("commit", plan.committing))
        if plan.scoring is not None:
            running.append(("score", plan.scoring))
        assert running, plan
        lane, what = running[next(pick) % len(running)]
        clock += 1
        if lane == "stage":
            staging.remove(what)
            plan.staged.add(what)
        elif lane == "commit":
            plan.delivery_done(what, events[what])
            committed_at[what] = clock
        else:
            plan.day_scored()

    assert commit_order == sorted(events, key=lambda k: (k[1], k[0]))
    assert set(committed_at) == set(events)
    for day in [plan.start + timedelta(i) for i in range((plan.end - plan.start).days + 1)]:
        assert day in scored_at, day
        for delivery, dates in events.items():
            if any(plan.score_from <= d <= day for d in dates):
                assert committed_at[delivery] < scored_at[day], (day, delivery)
    last = sorted(scored_at, key=lambda d: scored_at[d])
    assert last == sorted(last), "the last scorings are not in date order"
    assert min(scored_days) >= plan.score_from
    assert plan.scorings == len(scored_days)
