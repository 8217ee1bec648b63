"""NPD use: agreements, research projects in the SRS, internal use, the Home Office match.

NPD volumes are small (hundreds of queries a day nationally), so queries are built per
organisation with small Python loops and collected as rows of the input contract
(:class:`schemas.NpdEvent`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from evaluation.generate import behaviour as bh
from evaluation.generate import calendar as cal
from evaluation.generate.lrs import US, local_seconds, to_utc_us
from evaluation.generate.world import ORG_TYPE_LIST, World
from schemas.events import NpdEvent
from schemas.reference import Agreement, OrgType

NPD_COLUMNS: list[str] = list(NpdEvent.model_fields)
SENSITIVITY = "ABCDE"
PURPOSES: tuple[str, ...] = (
    "Longitudinal study of attainment gaps by disadvantage",
    "Evaluation of a tutoring programme",
    "Teacher workforce and pupil outcomes",
    "Exclusions and later outcomes",
    "Attendance after the pandemic",
    "Post-16 pathways and apprenticeships",
)


@dataclass
class NpdRows:
    """NPD query rows under construction (columns of the contract plus ``_ts``)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def frame(self, d: date) -> pl.DataFrame:
        """Rows sorted by time, with event ids for day ``d``."""
        schema = {
            **{c: pl.String for c in NPD_COLUMNS},
            "min_identifiability": pl.Int64,
            "year_from": pl.Int64,
            "year_to": pl.Int64,
            "rows_returned": pl.Int64,
            "_ts": pl.Int64,
        }
        if not self.rows:
            return pl.DataFrame(schema=schema)
        df = pl.DataFrame(
            [
                {**{c: r.get(c) for c in schema if c != "event_id"}, "event_id": ""}
                for r in self.rows
            ],
            schema=schema,
        ).sort("_ts", maintain_order=True)
        ids = [f"N{d:%Y%m%d}-{i:06d}" for i in range(df.height)]
        return df.with_columns(event_id=pl.Series(ids, dtype=pl.String)).select(
            [*NPD_COLUMNS, "_ts"]
        )


def _ref(rng: np.random.Generator, taken: set[str], start: date) -> str:
    while True:
        style = rng.random()
        if style < 0.55:
            ref = f"DS{int(rng.integers(100, 3000)):05d}"
        elif style < 0.8:
            ref = f"R{int(rng.integers(1, 900)):04d}"
        else:
            d = start - timedelta(days=int(rng.integers(1500, 3500)))
            ref = f"DR{d:%y%m%d}.{int(rng.integers(1, 12)):02d}"
        if ref not in taken:
            taken.add(ref)
            return ref


def setup_npd(world: World, rng: np.random.Generator) -> None:
    """Agreements for research and government bodies, and their query rates.

    The first government body becomes the Home Office (monthly match agreement); the
    others run internal analysis under internal agreements. Research bodies hold one
    current agreement and sometimes an expired one.
    """
    start = world.start
    year = start.year
    taken: set[str] = set()
    gov = [i for i in range(world.n) if ORG_TYPE_LIST[int(world.org_type[i])] is OrgType.government]
    research = [
        i for i in range(world.n) if ORG_TYPE_LIST[int(world.org_type[i])] is OrgType.research
    ]
    for k, i in enumerate(gov):
        if k == 0:
            world.name[i] = "Home Office Immigration Enforcement"
            world.agreements.append(
                Agreement(
                    agreement_ref="DR150701.01",
                    org_id=world.org_id[i],
                    datasets="census",
                    min_identifiability=1,
                    max_sensitivity="D",
                    year_from=2002,
                    year_to=year,
                    max_rows=500,
                    valid_from=date(2015, 7, 1),
                    valid_to=start + timedelta(days=3 * 365),
                    purpose="home_office_match: monthly match of named individuals",
                )
            )
            taken.add("DR150701.01")
            world.used[i] = True
            continue
        world.name[i] = f"Department for Education Analysis Division {k}"
        world.agreements.append(
            Agreement(
                agreement_ref=_ref(rng, taken, start),
                org_id=world.org_id[i],
                datasets=";".join(bh.NPD_DATASETS),
                min_identifiability=2,
                max_sensitivity="A",
                year_from=2006,
                year_to=year,
                max_rows=10_000_000,
                valid_from=start - timedelta(days=int(rng.integers(200, 2000))),
                valid_to=start + timedelta(days=int(rng.integers(400, 1500))),
                purpose="internal: departmental statistics and policy analysis",
            )
        )
        world.npd_rate[i] = bh.NPD_INTERNAL_QUERIES_PER_DAY * float(rng.lognormal(0, 0.4))
    for i in research:
        n_ds = int(rng.integers(1, 4))
        datasets = sorted(rng.choice(np.array(bh.NPD_DATASETS), size=n_ds, replace=False).tolist())
        yf = int(rng.integers(2006, year - 4))
        world.agreements.append(
            Agreement(
                agreement_ref=_ref(rng, taken, start),
                org_id=world.org_id[i],
                datasets=";".join(datasets),
                min_identifiability=int(rng.choice([3, 3, 4, 4, 4])),
                max_sensitivity=str(rng.choice(["B", "C", "C", "D"])),
                year_from=yf,
                year_to=min(yf + int(rng.integers(2, 10)), year - 1),
                max_rows=int(np.round(rng.lognormal(np.log(300_000), 0.8), -3)) + 1000,
                valid_from=start - timedelta(days=int(rng.integers(60, 1200))),
                valid_to=start + timedelta(days=int(rng.integers(120, 1100))),
                purpose=str(rng.choice(PURPOSES)),
            )
        )
        if rng.random() < 0.3:
            old_to = start - timedelta(days=int(rng.integers(30, 700)))
            world.agreements.append(
                Agreement(
                    agreement_ref=_ref(rng, taken, start),
                    org_id=world.org_id[i],
                    datasets=str(rng.choice(bh.NPD_DATASETS)),
                    min_identifiability=4,
                    max_sensitivity="C",
                    year_from=2008,
                    year_to=2014,
                    max_rows=200_000,
                    valid_from=old_to - timedelta(days=int(rng.integers(365, 1100))),
                    valid_to=old_to,
                    purpose="Completed project (archived)",
                )
            )
        world.npd_rate[i] = bh.NPD_RESEARCH_QUERIES_PER_DAY * float(rng.lognormal(0, 0.6))


def home_office(world: World) -> int:
    """Register position of the Home Office (the first government body)."""
    return next(
        i for i in range(world.n) if ORG_TYPE_LIST[int(world.org_type[i])] is OrgType.government
    )


def current_agreements(world: World, org: int, d: date) -> list[Agreement]:
    oid = world.org_id[org]
    return [a for a in world.agreements if a.org_id == oid and a.valid_from <= d <= a.valid_to]


@dataclass(frozen=True)
class Limits:
    """An agreement's limits, all present: the generator's agreements state every limit
    (the register may leave some empty, see :class:`schemas.reference.Agreement`)."""

    datasets: str
    min_identifiability: int
    max_sensitivity: str
    year_from: int
    year_to: int
    max_rows: int


def limits(a: Agreement) -> Limits:
    """The limits of a generated agreement (raises if one is missing: a generator bug)."""
    values = (
        a.datasets, a.min_identifiability, a.max_sensitivity, a.year_from, a.year_to, a.max_rows,
    )  # fmt: skip
    if any(v is None for v in values):
        raise ValueError(f"generated agreement {a.agreement_ref} lacks a limit")
    return Limits(*values)  # type: ignore[arg-type]


def compliant_items(agreement: Agreement, dataset: str) -> list[bh.NpdItem]:
    """Items of ``dataset`` the agreement allows (identifiability and sensitivity)."""
    lim = limits(agreement)
    return [
        it
        for it in bh.NPD_ITEMS[dataset]
        if it[1] >= lim.min_identifiability and it[2] >= lim.max_sensitivity
    ]


def add_query(
    out: NpdRows,
    world: World,
    org: int,
    d: date,
    rng: np.random.Generator,
    *,
    agreement_ref: str | None,
    channel: str,
    dataset: str,
    items: list[bh.NpdItem],
    years: tuple[int, int],
    rows_returned: int,
    user: int | None = None,
) -> None:
    """One NPD query row at an office-hours time on ``d``."""
    humans = world.humans(org)
    u = int(user if user is not None else humans[int(rng.integers(0, len(humans)))])
    ts = int(to_utc_us(d, local_seconds(bh.HOURS_OFFICE, rng, 1))[0])
    off = cal.london_offset_hours(d)
    if world.local_offset[org]:
        stamp = _iso(ts + off * 3600 * US) + f"+{off:02d}:00"
    else:
        stamp = _iso(ts) + "Z"
    out.add(
        occurred_at=stamp,
        org_id=world.org_id[org],
        user_name=world.user_name[u],
        agreement_ref=agreement_ref,
        channel=channel,
        dataset=dataset,
        items=";".join(it[0] for it in items),
        min_identifiability=min(it[1] for it in items),
        max_sensitivity=min(it[2] for it in items),
        year_from=years[0],
        year_to=years[1],
        rows_returned=int(rows_returned),
        _ts=ts,
    )


def _iso(ts_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_us / US, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def within_agreement_query(
    out: NpdRows, world: World, org: int, a: Agreement, d: date, rng: np.random.Generator
) -> None:
    """A query that stays inside agreement ``a``."""
    lim = limits(a)
    datasets = lim.datasets.split(";")
    dataset = str(datasets[int(rng.integers(0, len(datasets)))])
    allowed = compliant_items(a, dataset) or [bh.NPD_ITEMS[dataset][0]]
    k = min(len(allowed), int(rng.integers(2, 6)))
    pick = rng.choice(len(allowed), size=k, replace=False)
    items = [allowed[int(j)] for j in sorted(pick)]
    y0 = int(rng.integers(lim.year_from, lim.year_to + 1))
    y1 = int(rng.integers(y0, lim.year_to + 1))
    rows = int(lim.max_rows * rng.beta(2, 5))
    channel = "internal" if a.purpose.startswith("internal") else "srs"
    add_query(
        out, world, org, d, rng,
        agreement_ref=a.agreement_ref, channel=channel, dataset=dataset, items=items,
        years=(y0, y1), rows_returned=rows,
    )  # fmt: skip


def home_office_day(d: date) -> bool:
    """The monthly match day: first weekday on or after the configured day of month."""
    first = date(d.year, d.month, bh.HOME_OFFICE_MATCH_DAY)
    while first.weekday() >= 5:
        first += timedelta(days=1)
    return d == first


def normal_npd_day(world: World, day: int, rng: np.random.Generator, out: NpdRows) -> None:
    """Research, internal and Home Office queries for ``day`` (all inside agreements)."""
    d = world.date_of(day)
    weekend = d.weekday() >= 5 or d in cal.bank_holidays(d.year)
    factor = bh.NPD_WEEKEND_FACTOR if weekend else 1.0
    counts = rng.poisson(world.npd_rate * factor)
    for org in np.flatnonzero(counts).tolist():
        agreements = current_agreements(world, org, d)
        if not agreements:
            continue
        for _ in range(int(counts[org])):
            a = agreements[int(rng.integers(0, len(agreements)))]
            within_agreement_query(out, world, org, a, d, rng)
    if home_office_day(d):
        ho = home_office(world)
        a = next(a for a in world.agreements if a.org_id == world.org_id[ho])
        for _ in range(int(rng.integers(1, 4))):
            add_query(
                out, world, ho, d, rng,
                agreement_ref=a.agreement_ref, channel="home_office_match", dataset="census",
                items=list(bh.HOME_OFFICE_ITEMS), years=(d.year - 6, d.year - 1),
                rows_returned=int(rng.poisson(bh.HOME_OFFICE_MATCHED_PER_MONTH / 2)),
            )  # fmt: skip
