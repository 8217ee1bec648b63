"""``generate_world``: a synthetic world written as a landing folder plus ground truth."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from evaluation.generate import behaviour as bh
from evaluation.generate import npd, randomise, scenarios
from evaluation.generate.delivery import Deliverer
from evaluation.generate.lrs import LRS_COLUMNS, finalise_lrs, normal_lrs_day
from evaluation.generate.rng import day_rng
from evaluation.generate.world import NEVER, World, build_world
from schemas.generate import UNREGISTERED_CALLER, RealFeedQuirks, WorldConfig, WorldSummary
from schemas.reference import OrgStatus

ProgressCallback = Callable[[int, int], None]
"""Called after each day with (days done, days in total)."""

LABEL_COLUMNS = ["org_id", "scenario", "start_date", "end_date", "user_name"]
DECOY_COLUMNS = ["org_id", "kind"]
ACCOUNT_COLUMNS = ["org_id", "scenario", "user_name"]


def build(config: WorldConfig) -> tuple[World, list[scenarios.Instance]]:
    """The world with NPD agreements, scenarios and decoys assigned (nothing written)."""
    world = build_world(config, randomise.profiles(config))
    if config.randomise:
        randomise.script_clients(world)
    npd.setup_npd(world, day_rng(config.seed, "npd-setup"))
    instances = scenarios.assign_roles(world)
    return world, instances


def _write_truth(world: World, truth: Path) -> None:
    """``labels.csv`` and ``decoys.csv``; with the extra shapes also ``accounts.csv`` (every
    misuse account, one a row); with ``randomise`` also ``parameters.json`` (every draw)."""
    config = world.config
    pl.DataFrame(world.labels, schema=LABEL_COLUMNS, orient="row").write_csv(truth / "labels.csv")
    pl.DataFrame(world.decoys, schema=DECOY_COLUMNS, orient="row").write_csv(truth / "decoys.csv")
    if config.plays_extra:
        accounts = pl.DataFrame(world.accounts, schema=ACCOUNT_COLUMNS, orient="row")
        accounts.write_csv(truth / "accounts.csv")
    if config.randomise:
        roles = {k: world.parameters.get(k, []) for k in ("scenarios", "decoys")}
        doc = randomise.parameters_document(config, world.profiles, roles)
        (truth / "parameters.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _unregistered(world: World, rng: np.random.Generator, q: RealFeedQuirks) -> list[int]:
    """Orgs left out of the register: active LRS users and NPD requesters that play no
    other role (not a scenario, not a decoy), so only their absence is unusual."""
    free = ~world.used
    lrs = np.array([u is not None for u in world.ukprn]) & free
    lrs &= np.array([s is OrgStatus.active for s in world.status])
    lrs &= (world.silent_from >= NEVER) & (world.silent_before <= 0)
    npd_ok = np.array([u is None for u in world.ukprn]) & free & (world.npd_rate > 0)
    chosen: list[int] = []
    for mask, k in ((lrs, q.unregistered_lrs), (npd_ok, q.unregistered_npd)):
        cands = np.flatnonzero(mask)
        if k and len(cands):
            chosen += sorted(
                int(c) for c in rng.choice(cands, size=min(k, len(cands)), replace=False)
            )
    world.used[chosen] = True
    return chosen


def pipeline_org_id(world: World, org: int) -> str:
    """The id the pipeline gives an org that is not in the register: ``UKPRN-<ukprn>`` for
    an LRS caller, its NPD org_id otherwise (see
    ``pipeline/profile/sql/profile_org_register.sql``)."""
    u = world.ukprn[org]
    return f"UKPRN-{u}" if u else world.org_id[org]


def _register_frames(
    world: World, q: RealFeedQuirks, left_out: list[int], rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``organisations.csv`` and ``agreements.csv`` as written (real-feed quirks applied)."""
    orgs = world.organisations()
    agreements = world.agreements_frame()
    if not q.enabled:
        return orgs, agreements
    idx = pl.Series("_i", np.arange(world.n, dtype=np.int64))
    involved = pl.Series(world.used.tolist())
    empty = pl.Series((rng.random(world.n) < q.empty_optional_share).tolist()) & ~involved
    orgs = orgs.with_columns(idx)
    if q.npd_only_without_size:
        orgs = orgs.with_columns(
            pl.when(pl.col("ukprn").is_null())
            .then(None)
            .otherwise(pl.col("expected_learners"))
            .alias("expected_learners")
        )
    orgs = orgs.with_columns(
        pl.when(empty).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("region", "postcode_area", "registered_on")
    )
    orgs = orgs.filter(~pl.col("_i").is_in(left_out)).drop("_i")
    if q.shuffled_reference_columns:
        frames = []
        for frame in (orgs, agreements):
            order = [frame.columns[int(i)] for i in rng.permutation(frame.width)]
            frames.append(
                frame.with_columns(pl.lit("REG-2.1").alias("register_version")).select(
                    [*order[:2], "register_version", *order[2:]]
                )
            )
        orgs, agreements = frames
    return orgs, agreements


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

    ``config.real_feed`` (off by default) adds what real feeds send: header-only files on
    quiet days, empty optional register fields, organisations missing from the register
    (labelled ``unregistered_caller``) and reference files with shuffled and extra columns.

    Deterministic: the same ``config`` (seed included) gives byte-identical files. Any
    previous ``out/landing`` and ``out/truth`` are replaced. Days are generated one at a
    time (memory is bounded by one national day, about 2 M LRS calls), each from its own
    random stream keyed on (seed, day).
    """
    world, instances = build(config)
    quirks = config.real_feed
    quirk_rng = day_rng(config.seed, "real-feed")
    left_out = _unregistered(world, quirk_rng, quirks) if quirks.enabled else []
    for org in left_out:
        world.labels.append(
            {
                "org_id": pipeline_org_id(world, org),
                "scenario": UNREGISTERED_CALLER,
                "start_date": world.date_of(0).isoformat(),
                "end_date": world.date_of(config.days - 1).isoformat(),
                "user_name": "",
            }
        )
    landing = out / "landing"
    truth = out / "truth"
    for folder in (landing, truth):
        if folder.exists():
            shutil.rmtree(folder)
    (landing / "reference").mkdir(parents=True)
    truth.mkdir(parents=True)
    orgs, agreements = _register_frames(world, quirks, left_out, quirk_rng)
    orgs.write_csv(landing / "reference" / "organisations.csv")
    agreements.write_csv(landing / "reference" / "agreements.csv")
    _write_truth(world, truth)

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
                header_only=quirks.enabled and quirks.header_only_quiet_days,
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
            if quirks.enabled and quirks.npd_quiet_weekends and d.weekday() >= 5:
                nframe = nframe.head(0)  # a quiet day: delivered as a header-only file
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
        files=lrs_out.stats.files + npd_out.stats.files + 4 + config.plays_extra + config.randomise,
        labels=len(world.labels),
        decoys=len(world.decoys),
        scenario_events=dict(sorted(scenario_events.items())),
        unregistered=[pipeline_org_id(world, o) for o in left_out],
        header_only_files=lrs_out.stats.header_only + npd_out.stats.header_only,
    )


def real_feed_config(
    orgs: int = 100, days: int = 10, seed: int = 11, start: str = "2026-08-29"
) -> WorldConfig:
    """A small world with every real-feed quirk on, generated in seconds: the landing
    folder that real-feed handling is tested on (header-only NPD files at weekends - the
    default start is a Saturday -, NPD-only orgs without a size, orgs with empty optional
    fields, two LRS callers and one NPD requester missing from the register, 0.2 % malformed
    rows).

    CLI equivalent (once ``generate`` takes ``--real-feed-quirks``): ``accesswatch generate
    --out DIR --orgs 100 --days 10 --start 2026-08-29 --seed 11 --volume-scale 0.05
    --scenario-scale 0.3 --malformed-rate 0.002 --real-feed-quirks``."""
    return WorldConfig(
        orgs=orgs,
        days=days,
        seed=seed,
        start=date.fromisoformat(start),
        volume_scale=0.05,
        scenario_scale=0.3,
        malformed_rate=0.002,
        real_feed=RealFeedQuirks(enabled=True),
    )
