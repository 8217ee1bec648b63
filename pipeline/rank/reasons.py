"""Reasons: the analyst's words for why a row ranks where it does.

:func:`word_reasons` turns a row's rule hits (most severe first) and its model
contributions into at most ``ranking.max_reasons`` :class:`~schemas.detection.Reason`, one
per feature family, each with the value and the peers' typical value. :func:`formatter`
and :func:`peer_text` word one feature value (also used by :mod:`pipeline.rank.story`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from detectors.base import Contribution
from detectors.rules import plain_format
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


def peer_text(f: Feature, row: dict[str, Any], level: Level) -> tuple[str, float | None]:
    """The reason text of a base feature with its peers' typical value, and that value."""
    value = finite(row.get(f.name))
    pm = finite(row.get(f"{f.name}_pm"))
    text = f.phrase.replace("{v}", format_value(f, value))
    if pm is not None:
        group = row.get("peer_group") if level is Level.org else f"{row.get('org_type')} accounts"
        text += f"; {group or 'peers'}: {format_value(f, pm)}"
    return text, pm


def _model_reason(c: Contribution, row: dict[str, Any], level: Level) -> Reason | None:
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    derived = registry.get(c.feature)
    if derived is None:
        return None
    base = registry.get(derived.base)
    if base is None or finite(row.get(base.name)) is None:
        return None
    if derived.kind is Kind.delta:
        delta = finite(row.get(derived.name))
        if delta is None:
            return None
        value = finite(row.get(base.name))
        text = base.phrase.replace("{v}", format_value(base, value))
        if base.kind is Kind.tally:
            text += f"; {math.exp(delta):.1f}x its usual daily rate"
        else:
            before = None if value is None else value - delta
            text += f"; its own usual: {format_value(base, before)}"
        return Reason(feature=base.name, text=text, value=value, contribution=c.contribution)
    text, pm = peer_text(base, row, level)
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
                group = (
                    row.get("peer_group")
                    if level is Level.org
                    else f"{row.get('org_type')} accounts"
                )
                text += f"; {group or 'peers'}: {format_value(base, pm)}"
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
    for c in contributions:
        derived = registry.get(c.feature)
        if derived is None or f"/{family(c.feature)}" in seen:
            continue
        if derived.kind is Kind.z and abs(finite(row.get(c.feature)) or 0.0) < (
            cfg.ranking.min_reason_z
        ):
            continue
        r = _model_reason(c, row, level)
        if r is not None:
            out.append(r)
            seen.add(f"/{family(c.feature)}")
    return out[: cfg.ranking.max_reasons]
