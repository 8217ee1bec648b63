"""Reasons: the analyst's words for why a row ranks where it does.

:func:`word_reasons` turns a row's rule hits (most severe first) and its model
contributions into at most ``ranking.max_reasons`` :class:`~schemas.detection.Reason`, one
per feature family, each with the value and the peers' typical value. :func:`formatter`
and :func:`peer_text` word one feature value (also used by :mod:`pipeline.rank.story`).

A model reason is shown only when an analyst can act on it (:func:`remarkable`): its value
is outside the peer group's normal range (``|robust z| >= ranking.min_reason_z`` on the
suspicious side of the feature) and reads differently from the value it is compared with
(its peers' median, or its own usual for a change against its own history). A reason
about a volume (calls, learners) says what the volume was: the operations, who was looked
up and whether they were followed up (:func:`behaviour`); model reasons about a behaviour
come before those about a volume.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection
from fnmatch import fnmatchcase
from typing import Any

import polars as pl

from detectors.base import Contribution
from detectors.rules import all_of, plain_format
from schemas.detection import (
    SEVERITY_ORDER,
    DetectionConfig,
    Level,
    Reason,
    RuleHit,
)
from schemas.features import (
    ACCOUNT_FEATURE_MAP,
    FEATURES,
    Feature,
    Kind,
    format_value,
)


def formatter(level: Level) -> Callable[[str, float], str]:
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP

    def fmt(feature: str, value: float) -> str:
        f = registry.get(feature)
        if f is None:
            return plain_format(feature, value)
        if f.kind is Kind.z:
            return f"{value:.1f} robust z"
        return format_value(f, value)

    return fmt


def finite(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def peer_group(row: dict[str, Any], level: Level) -> str:
    """The name of the peer group a row was compared with: ``peer_group`` as profiled (an
    account's is its org type's accounts or all accounts); a warehouse profiled before
    accounts stored theirs gives ``<org type> accounts``."""
    group = row.get("peer_group")
    if group:
        return str(group)
    return "peers" if level is Level.org else f"{row.get('org_type')} accounts"


def peer_text(f: Feature, row: dict[str, Any], level: Level) -> tuple[str, float | None]:
    """The reason text of a base feature with its peers' typical value, and that value."""
    value = finite(row.get(f.name))
    pm = finite(row.get(f"{f.name}_pm"))
    text = f.phrase.replace("{v}", format_value(f, value))
    if pm is not None:
        text += f"; {peer_group(row, level)}: {format_value(f, pm)}"
    return text, pm


def remarkable(base: Feature, row: dict[str, Any], floor: float) -> bool:
    """True when ``base``'s value is outside its peer group's normal range: its robust
    z-score (``<base>_pz``; median and MAD, see :mod:`pipeline.profile.peers`) is at least
    ``floor`` from the median, on the side the feature counts as suspicious, and the value
    does not read the same as the peers' median. False when the row has no peer z-score:
    a value nobody can compare is not a reason to look."""
    z = finite(row.get(f"{base.name}_pz"))
    if z is None or abs(z) < floor or z * base.direction < 0:
        return False
    pm = finite(row.get(f"{base.name}_pm"))
    return pm is None or format_value(base, finite(row.get(base.name))) != format_value(base, pm)


VOLUMES = frozenset({"calls", "learners", "max_user_learners", "users_active", "active_days"})
"""Feature families that count how much an org or account did, not what it did: their
reasons are worded with :func:`behaviour`."""

_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("search_share", "searches or verifies"),
    ("plr_share", "learning-record reads"),
    ("register_share", "registrations or updates"),
    ("uln_lookup_share", "ULN lookups"),
    ("batch_share", "batch work"),
)


def explained(row: dict[str, Any], cfg: DetectionConfig) -> set[str]:
    """The ``explains`` patterns of the legitimate explanations that hold for an org row
    (``[[explanations]]`` of the rules file; an explanation whose features the row lacks
    does not hold). The models saw those features at the peer norm, so no reason names
    them."""
    out: set[str] = set()
    for e in cfg.explanations:
        if all(c.feature in row for c in e.when):
            frame = pl.DataFrame([{c.feature: finite(row[c.feature]) for c in e.when}])
            if frame.filter(all_of(e.when)).height:
                out.update(e.explains)
    return out


def behaviour(
    row: dict[str, Any],
    window: str,
    level: Level,
    floor: float,
    hidden: Collection[str] = frozenset(),
) -> str:
    """What the calls of ``window`` (``1d`` or ``7d``) were, from the row's own features:
    the main operation, then those of the share of people 25 or over, the share living
    outside the org's region and (7 days, orgs) the share of searched learners followed up
    that are outside the peers' normal range (:func:`remarkable`) and match no pattern of
    ``hidden`` (see :func:`explained`). Empty when the row has none of them."""
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    parts = []
    ops = [
        (v, label)
        for base, label in _OPERATIONS
        if (v := finite(row.get(f"{base}_{window}"))) is not None and v > 0
    ]
    if ops:
        top, what = max(ops)
        parts.append(f"{top:.0%} {what}")
    people = [
        (f"older_adult_share_{window}", "of the people 25 or over"),
        (f"out_region_share_{window}", "living outside its region"),
    ]
    if level is Level.org and window == "7d":
        people.append(("followthrough_7d", "of those searched registered or followed up"))
    for name, label in people:
        f = registry.get(name)
        if f is None or any(fnmatchcase(name, p) for p in hidden):
            continue
        value = finite(row.get(name))
        if value is not None and remarkable(f, row, floor):
            parts.append(f"{value:.0%} {label}")
    return ", ".join(parts)


def _volume_text(
    base: Feature, row: dict[str, Any], level: Level, cfg: DetectionConfig, text: str
) -> str:
    """``text`` (a volume's reason) with what the volume was: ``<count>: <behaviour>; ...``."""
    window = "1d" if base.window == "1d" else "7d"
    hidden = explained(row, cfg) if level is Level.org else set()
    what = behaviour(row, window, level, cfg.ranking.min_reason_z, hidden)
    if not what:
        return text
    head, sep, tail = text.partition("; ")
    return f"{head}: {what}{sep}{tail}"


def _model_reason(
    c: Contribution, row: dict[str, Any], level: Level, cfg: DetectionConfig
) -> Reason | None:
    """The reason a model contribution gives, or None when an analyst could not act on it
    (see :func:`remarkable`; a change against its own history must also read differently
    from its own usual)."""
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    derived = registry.get(c.feature)
    if derived is None:
        return None
    base = registry.get(derived.base)
    if base is None or finite(row.get(base.name)) is None:
        return None
    if not remarkable(base, row, cfg.ranking.min_reason_z):
        return None
    volume = (base.base or base.name) in VOLUMES
    if derived.kind is Kind.delta:
        delta = finite(row.get(derived.name))
        if delta is None:
            return None
        value = finite(row.get(base.name))
        text = base.phrase.replace("{v}", format_value(base, value))
        if base.kind is Kind.tally:
            if f"{math.exp(delta):.1f}" == "1.0":
                return None
            text += f"; {math.exp(delta):.1f}x its usual daily rate"
        else:
            before = None if value is None else value - delta
            if format_value(base, before) == format_value(base, value):
                return None
            text += f"; its own usual: {format_value(base, before)}"
        if volume:
            text = _volume_text(base, row, level, cfg, text)
        return Reason(feature=base.name, text=text, value=value, contribution=c.contribution)
    text, pm = peer_text(base, row, level)
    if volume:
        text = _volume_text(base, row, level, cfg, text)
    return Reason(
        feature=base.name,
        text=text,
        value=finite(row.get(base.name)),
        peer_value=pm,
        contribution=round(c.contribution, 4),
    )


def word_reasons(
    row: dict[str, Any],
    hits: list[RuleHit],
    contributions: list[Contribution],
    level: Level,
    cfg: DetectionConfig,
) -> list[Reason]:
    """Rules first (most severe first), then the model features that drive the score; one
    reason per feature family (``search_share_1d`` and ``_7d`` say the same thing)."""
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    out: list[Reason] = []
    seen: set[str] = set()

    def family(name: str) -> str:
        f = registry.get(name)
        if f is None:
            return name
        if f.kind in (Kind.z, Kind.peer, Kind.delta):
            f = registry.get(f.base, f)
        return f.base or f.name

    for h in sorted(hits, key=lambda h: (SEVERITY_ORDER[h.severity.value], h.rule_id)):
        f = registry.get(h.feature)
        base = registry.get(f.base) if f is not None and f.kind is Kind.z else f
        who = f"account {h.user_name}: " if h.user_name and level is Level.org else ""
        key = f"{h.user_name}/{family(h.feature)}"
        if key in seen and not h.hard_fact:
            continue
        seen.add(key)
        text = f"{h.rule_id}: {who}{h.message}"
        pm = None
        if base is not None and not who:
            pm = finite(row.get(f"{base.name}_pm"))
            if pm is not None:
                text += f"; {peer_group(row, level)}: {format_value(base, pm)}"
            seen.add(f"/{family(base.name)}")
        out.append(
            Reason(
                feature=h.feature,
                text=text,
                value=finite(h.value),
                peer_value=pm,
                contribution=1.0,
            )
        )
    models: list[Reason] = []
    for c in contributions:
        derived = registry.get(c.feature)
        if derived is None or f"/{family(c.feature)}" in seen:
            continue
        r = _model_reason(c, row, level, cfg)
        if r is not None:
            models.append(r)
            seen.add(f"/{family(c.feature)}")
    # what it did before how much it did (stable: the models' order within each)
    models.sort(key=lambda r: family(r.feature) in VOLUMES)
    return [*out, *models][: cfg.ranking.max_reasons]


def borrow_account_reasons(suspects: list[dict[str, Any]], reasons: list[dict[str, Any]]) -> None:
    """Give each listed org with no reason of its own its leading account's first reason.

    An org scores at least a share of its worst account's score (``fold_accounts``), so an
    org whose own features are all within its peers' normal range can still rank high
    because of one account: that account's reason (``account <name>: <text>``) is then the
    org's. ``suspects`` and ``reasons`` are the rows ``detect`` writes (``reasons`` in the
    suspects rows as JSON); both are updated in place. The leading account is the listed
    account of the org with the highest score that has a reason."""
    by_account: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reasons:
        if r["level"] == Level.account.value and r["position"] == 1:
            by_account[(r["org_id"], r["user_name"])] = r
    accounts: dict[str, list[tuple[float, str]]] = {}
    for row in suspects:
        if row["level"] == Level.account.value and (row["org_id"], row["user_name"]) in by_account:
            accounts.setdefault(row["org_id"], []).append((row["score"], row["user_name"]))
    for row in suspects:
        if row["level"] != Level.org.value or row["reasons"] != "[]":
            continue
        leading = sorted(accounts.get(row["org_id"], []), key=lambda x: (-x[0], x[1]))
        if not leading:
            continue
        user = leading[0][1]
        source = by_account[(row["org_id"], user)]
        reason = Reason(
            feature=source["feature"],
            text=f"account {user}: {source['text']}",
            value=source["value"],
            peer_value=source["peer_value"],
            contribution=source["contribution"],
        )
        reasons.append(
            {"day": row["day"], "level": Level.org.value, "org_id": row["org_id"],
             "user_name": row["user_name"], "position": 1, **reason.model_dump()}
        )  # fmt: skip
        row["reasons"] = json.dumps([reason.model_dump(mode="json")])
