"""``generate_world``: a synthetic world written as a landing folder plus ground truth."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.generate import behaviour as bh
from pipeline.generate import npd, scenarios
from pipeline.generate.delivery import Deliverer
from pipeline.generate.lrs import LRS_COLUMNS, finalise_lrs, normal_lrs_day
from pipeline.generate.rng import day_rng
from pipeline.generate.world import World, build_world
from schemas.generate import WorldConfig, WorldSummary

ProgressCallback = Callable[[int, int], None]
"""Called after each day with (days done, days in total)."""

LABEL_COLUMNS = ["org_id", "scenario", "start_date", "end_date", "user_name"]
DECOY_COLUMNS = ["org_id", "kind"]


def build(config: WorldConfig) -> tuple[World, list[scenarios.Instance]]:
    """The world with NPD agreements, scenarios and decoys assigned (nothing written)."""
    world = build_world(config)
    npd.setup_npd(world, day_rng(config.seed, "npd-setup"))
    instances = scenarios.assign_roles(world)
    return world, instances


def _lrs_day(
    world: World,
    instances: list[scenarios.Instance],
    day: int,
    html_agents: npt.NDArray[np.int64],
    scenario_events: Counter[str],
) -> tuple[list[pl.DataFrame], int]:
    """The day's LRS calls (normal use and scenarios) as contract rows."""
    rng = day_rng(world.config.seed, "lrs", day)
    raw = normal_lrs_day(world, day, rng)
    scenario_events.update(scenarios.override_counts(instances, raw, day))
    frames, counts = scenarios.scenario_lrs_day(world, instances, day)
    scenario_events.update(counts)
    if frames:
        raw = pl.concat([raw, *frames])
    frame, html = finalise_lrs(world, raw, day, html_agents, rng)
    return [frame], html


def generate_world(
    out: Path, config: WorldConfig, progress: ProgressCallback | None = None
) -> WorldSummary:
    """Write a synthetic world under ``out``: ``landing/`` in the input contract and ``truth/``.

    Deterministic: the same ``config`` (seed included) gives byte-identical files. Any
    previous ``out/landing`` and ``out/truth`` are replaced. Days are generated one at a
    time (memory is bounded by one national day, about 2 M LRS calls), each from its own
    random stream keyed on (seed, day).
    """
    world, instances = build(config)
    landing = out / "landing"
    truth = out / "truth"
    for folder in (landing, truth):
        if folder.exists():
            shutil.rmtree(folder)
    (landing / "reference").mkdir(parents=True)
    truth.mkdir(parents=True)
    world.organisations().write_csv(landing / "reference" / "organisations.csv")
    world.agreements_frame().write_csv(landing / "reference" / "agreements.csv")
    pl.DataFrame(world.labels, schema=LABEL_COLUMNS, orient="row").write_csv(truth / "labels.csv")
    pl.DataFrame(world.decoys, schema=DECOY_COLUMNS, orient="row").write_csv(truth / "decoys.csv")

    html_agents = world.add_agents(list(bh.HTML_AGENTS))
    last = config.days - 1
    dp = config.delivery
    scenario_events: Counter[str] = Counter()
    lrs_events = npd_events = html_rows = 0
    with ThreadPoolExecutor(max_workers=2) as pool:

        def deliverer(source: str, columns: list[str], files: tuple[int, int]) -> Deliverer:
            return Deliverer(
                landing=landing,
                source=source,
                columns=columns,
                params=dp,
                malformed_rate=config.malformed_rate,
                late_rate=config.late_rate,
                duplicate_rate=config.duplicate_rate,
                last_day=last,
                pool=pool,
                files_range=files,
            )

        lrs_out = deliverer("lrs", LRS_COLUMNS, (dp.files_min, dp.files_max))
        npd_out = deliverer("npd", npd.NPD_COLUMNS, (1, 2))
        for day in range(config.days):
            d = world.date_of(day)
            frame, html = _lrs_day(world, instances, day, html_agents, scenario_events)
            html_rows += html
            lrs_events += frame[0].height
            # handed over in a list so the deliverer holds the only reference (memory)
            lrs_out.deliver(day, d, frame.pop(), day_rng(config.seed, "lrs-delivery", day))

            rows = npd.NpdRows()
            npd_rng = day_rng(config.seed, "npd", day)
            npd.normal_npd_day(world, day, npd_rng, rows)
            scenario_events.update(scenarios.scenario_npd_day(world, instances, day, rows))
            nframe = rows.frame(d)
            npd_events += nframe.height
            npd_out.deliver(day, d, nframe, day_rng(config.seed, "npd-delivery", day))
            if progress is not None:
                progress(day + 1, config.days)
        lrs_out.finish()
        npd_out.finish()

    malformed = lrs_out.stats.malformed + npd_out.stats.malformed
    return WorldSummary(
        out=out,
        orgs=world.n,
        agreements=len(world.agreements),
        days=config.days,
        lrs_events=lrs_events,
        npd_events=npd_events,
        rows_written={"lrs": lrs_out.stats.rows, "npd": npd_out.stats.rows},
        malformed_rows=sum(malformed.values()),
        malformed_by_kind=dict(sorted(malformed.items())),
        duplicate_rows=lrs_out.stats.duplicates + npd_out.stats.duplicates,
        late_events=lrs_out.stats.late + npd_out.stats.late,
        html_agent_rows=html_rows,
        files=lrs_out.stats.files + npd_out.stats.files + 4,
        labels=len(world.labels),
        decoys=len(world.decoys),
        scenario_events=dict(sorted(scenario_events.items())),
    )
