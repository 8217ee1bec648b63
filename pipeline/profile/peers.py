"""Peer-relative and history maths: how a feature compares with the org's (or account's)
peers and with its own past.

Each key feature gets a robust z-score against its peer group (``<f>_pz``: median / MAD,
the scale floored per kind of feature; :func:`peer_relative`), the peers' median in the
feature's own units (``<f>_pm``), and a change against its own 28-day baseline (``<f>_hd``;
:func:`history_changes`). A NULL value gives a NULL z-score; models read it as 0.

The peer group of an organisation is defined here once (:data:`ORG_PEER_LEVELS`,
:func:`org_in_peer_pool`, :func:`peer_members`): org type x size band; groups under
``min_peers`` active orgs widen to the org type, then to all orgs. An org with no
``expected_learners`` has the size band "unknown" (NULL), which never matches a group, so
it is compared with its org type directly. Organisations not in the register never form
or shape a peer group: they are compared with all organisations, as are their accounts.
An account's peers are the accounts of its org type, then all accounts
(:func:`account_peer_group_name` names the one it was compared with).
"""

from __future__ import annotations

import polars as pl

from schemas.detection import ProfileConfig
from schemas.features import WINDOW_DAYS, Feature, Kind

MAD_TO_SIGMA = 1.4826
"""MAD of a normal distribution times this is its standard deviation."""

ORG_PEER_LEVELS: list[list[str]] = [["org_type", "size_band"], ["org_type"], []]
"""An organisation's peer groups from narrowest to widest (``peer_level`` indexes it): its
org type and size band, its org type, all organisations."""
ACCOUNT_PEER_LEVELS: list[list[str]] = [["org_type"], []]
"""An account's peer groups from narrowest to widest: the accounts of its org type, all."""


def org_in_peer_pool() -> pl.Expr:
    """True for an organisation that forms and shapes peer groups: an LRS call in the 28-day
    window, and in the register (NULL where ``calls_28d`` is NULL: read it as false)."""
    return (pl.col("calls_28d") > 0) & (pl.col("unregistered") == 0)


def account_in_peer_pool() -> pl.Expr:
    """True for an account that forms and shapes peer groups: a call in the 7-day window,
    of an organisation in the register."""
    return (pl.col("calls_7d") > 0) & ~pl.col("unregistered").fill_null(False)


def peer_members(features: pl.DataFrame, org_id: str) -> pl.DataFrame:
    """The rows of ``features`` (one day's org features, as stored) that form the peer
    group ``org_id`` was compared with: the peer pool's members that share its grouping
    columns at its ``peer_level``, in the order of ``features``. The org is among them only
    when it is in the pool itself. Raises ``KeyError`` when ``org_id`` has no row."""
    own = features.filter(pl.col("org_id") == org_id)
    if own.is_empty():
        raise KeyError(f"organisation {org_id!r} has no features")
    row = own.row(0, named=True)
    group = features.filter(org_in_peer_pool().fill_null(False))
    for key in ORG_PEER_LEVELS[int(row["peer_level"] or 0)]:
        group = group.filter(pl.col(key) == row[key])
    return group


def _band_label(band: int, edges: tuple[int, ...]) -> str:
    lo = 0 if band == 0 else edges[band - 1]
    return f"{lo}+" if band >= len(edges) else f"{lo}-{edges[band] - 1}"


def peer_group_name(edges: tuple[int, ...]) -> pl.Expr:
    """The name of an org's peer group from ``org_type``, ``size_band`` and ``peer_level``
    (e.g. ``fe_college / 0-149 learners``, ``fe_college``, ``all organisations``);
    ``edges`` are the size band edges (``ProfileConfig.size_band_edges``)."""
    return pl.struct("org_type", "size_band", "peer_level").map_elements(
        lambda s: (
            f"{s['org_type']} / {_band_label(int(s['size_band']), edges)} learners"
            if s["peer_level"] == 0
            else (s["org_type"] if s["peer_level"] == 1 else "all organisations")
        ),
        return_dtype=pl.String,
    )


def account_peer_group_name() -> pl.Expr:
    """The name of an account's peer group from ``org_type`` and ``peer_level``
    (``training_provider accounts`` or ``all accounts``)."""
    return (
        pl.when(pl.col("peer_level") == 0)
        .then(pl.col("org_type") + pl.lit(" accounts"))
        .otherwise(pl.lit("all accounts"))
    )


def _transform(f: Feature) -> pl.Expr:
    col = pl.col(f.name).cast(pl.Float64)
    return col.log1p() if f.kind is Kind.tally else col


def _floor(f: Feature, cfg: ProfileConfig) -> float:
    if f.kind is Kind.tally:
        return cfg.log_scale_floor
    if f.kind is Kind.share:
        return cfg.share_scale_floor
    return cfg.value_scale_floor


def peer_relative(
    frame: pl.DataFrame,
    features: list[Feature],
    cfg: ProfileConfig,
    levels: list[list[str]],
    active: pl.Expr,
) -> pl.DataFrame:
    """Add ``<f>_pz`` (robust z) and ``<f>_pm`` (peer median) for each feature.

    ``levels`` lists the grouping columns from narrowest to widest (``[]`` = everyone).
    An org's level is the narrowest whose group holds at least ``min_peers`` active rows
    (those for which ``active`` is true; only they form the peer distributions). The
    chosen level index is returned in ``peer_level``. A NULL value gives a NULL z-score.
    """
    work = frame.with_columns(
        active.fill_null(False).alias("_active"),
        *[_transform(f).alias(f"_t_{f.name}") for f in features],
    )
    pool = work.filter(pl.col("_active"))
    tcols = [f"_t_{f.name}" for f in features]
    level_expr: pl.Expr | None = None
    for i, keys in enumerate(levels):
        sfx = f"_L{i}"
        if keys:
            meds = pool.group_by(keys).agg(
                pl.len().alias(f"_n{sfx}"), *[pl.col(t).median().alias(t + "_med") for t in tcols]
            )
            mads = (
                pool.join(meds, on=keys, how="left")
                .group_by(keys)
                .agg(
                    *[
                        (pl.col(t) - pl.col(t + "_med")).abs().median().alias(t + "_mad")
                        for t in tcols
                    ]
                )
            )
            stats = meds.join(mads, on=keys, how="left")
            stats = stats.rename(
                {c: c + sfx for c in stats.columns if c not in keys and c != f"_n{sfx}"}
            )
            work = work.join(stats, on=keys, how="left")
        else:
            med_row = pool.select(*[pl.col(t).median().alias(t + "_med") for t in tcols])
            mad_row = (
                pool.select(
                    *[
                        (pl.col(t) - med_row[t + "_med"][0]).abs().median().alias(t + "_mad")
                        for t in tcols
                    ]
                )
                if pool.height
                else med_row.rename({t + "_med": t + "_mad" for t in tcols})
            )
            work = work.with_columns(
                pl.lit(pool.height).alias(f"_n{sfx}"),
                *[
                    pl.lit(med_row[t + "_med"][0], dtype=pl.Float64).alias(t + "_med" + sfx)
                    for t in tcols
                ],
                *[
                    pl.lit(mad_row[t + "_mad"][0], dtype=pl.Float64).alias(t + "_mad" + sfx)
                    for t in tcols
                ],
            )
        ok = pl.col(f"_n{sfx}").fill_null(0) >= cfg.min_peers
        last = i == len(levels) - 1
        choice = pl.lit(i) if last else pl.when(ok).then(pl.lit(i))
        level_expr = (
            choice
            if level_expr is None
            else pl.when(level_expr.is_not_null()).then(level_expr).otherwise(choice)
        )
    assert level_expr is not None
    work = work.with_columns(level_expr.cast(pl.Int64).alias("peer_level"))
    outs = []
    for f in features:
        t = f"_t_{f.name}"

        def pick(stat: str, t: str = t) -> pl.Expr:
            e: pl.Expr = pl.col(f"{t}_{stat}_L{len(levels) - 1}")
            for i in range(len(levels) - 2, -1, -1):
                e = pl.when(pl.col("peer_level") == i).then(pl.col(f"{t}_{stat}_L{i}")).otherwise(e)
            return e

        med, mad = pick("med"), pick("mad")
        scale = pl.max_horizontal(mad.fill_null(0.0) * MAD_TO_SIGMA, pl.lit(_floor(f, cfg)))
        z = ((pl.col(t) - med) / scale).clip(-cfg.z_clip, cfg.z_clip)
        pm = med.exp() - 1 if f.kind is Kind.tally else med
        outs += [z.alias(f"{f.name}_pz"), pm.alias(f"{f.name}_pm")]
    work = work.with_columns(outs)
    keep = [c for c in work.columns if not c.startswith("_")]
    return work.select(keep)


def history_changes(
    frame: pl.DataFrame, features: list[Feature], baseline_days: int
) -> pl.DataFrame:
    """Add ``<f>_hd``: change of a 1d/7d feature against the 28-day baseline (b28)."""
    exprs = []
    for f in features:
        base = pl.col(f"{f.base}_b28").cast(pl.Float64)
        now = pl.col(f.name).cast(pl.Float64)
        if baseline_days <= 0:
            e = pl.lit(None, dtype=pl.Float64)
        elif f.kind is Kind.tally:
            span = WINDOW_DAYS[f.window]
            e = ((1 + now / span) / (1 + base / baseline_days)).log()
        else:
            e = now - base
        exprs.append(e.alias(f"{f.name}_hd"))
    return frame.with_columns(exprs)
