"""Rule detector: declarative rules from ``detectors/rules.toml`` validated by pydantic.

A rule fires on a row when its main condition, every ``also`` condition and its guards
hold (NULL never satisfies a condition). The detector's score of a row is its rule part in
[0, 1]: the points of the most severe rule that fired plus ``extra_rule_points`` per further
rule, capped at 1. Hard-fact rules (breaches of entitlement) are flagged so the ensemble can
lift them to the top whatever the models say.
"""

from __future__ import annotations

import operator as op
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl

from detectors.base import Contribution, Detector, Scores
from schemas.detection import (
    Condition,
    DetectionConfig,
    EnsembleConfig,
    Level,
    Operator,
    RuleConfig,
    RuleHit,
)

RULES_TOML = Path(__file__).with_name("rules.toml")

_OPS: dict[Operator, Callable[[Any, Any], Any]] = {
    Operator.gt: op.gt,
    Operator.ge: op.ge,
    Operator.lt: op.lt,
    Operator.le: op.le,
    Operator.eq: op.eq,
    Operator.ne: op.ne,
}


def load_config(path: Path | None = None) -> DetectionConfig:
    """The detection config: ``detectors/rules.toml`` (or ``path``) over the defaults."""
    with open(path or RULES_TOML, "rb") as f:
        data = tomllib.load(f)
    return DetectionConfig.model_validate(data)


def condition_expr(c: Condition) -> pl.Expr:
    col = pl.col(c.feature).cast(pl.Float64).fill_nan(None)
    return _OPS[c.operator](col, c.threshold).fill_null(False)


def all_of(conditions: Iterable[Condition]) -> pl.Expr:
    """True where every one of ``conditions`` holds (null never satisfies one)."""
    e = pl.lit(True)
    for c in conditions:
        e = e & condition_expr(c)
    return e


def rule_expr(rule: RuleConfig) -> pl.Expr:
    """True where every condition and guard of ``rule`` holds."""
    e = all_of(rule.conditions())
    if rule.min_volume is not None:
        e = e & (pl.col(rule.volume_feature).cast(pl.Float64) >= rule.min_volume).fill_null(False)
    if rule.min_peer_z is not None:
        e = e & (pl.col(f"{rule.feature}_pz").cast(pl.Float64) >= rule.min_peer_z).fill_null(False)
    return e


def rule_columns(rule: RuleConfig) -> list[str]:
    cols = [c.feature for c in rule.conditions()]
    if rule.min_volume is not None:
        cols.append(rule.volume_feature)
    if rule.min_peer_z is not None:
        cols.append(f"{rule.feature}_pz")
    return cols


Formatter = Callable[[str, float], str]
"""(feature name, value) -> text; the ranking passes one that knows each feature's kind."""


def plain_format(feature: str, value: float) -> str:
    return f"{value:.2f}" if 0 < abs(value) < 1 else f"{value:,.0f}"


def format_message(rule: RuleConfig, value: float, formatter: Formatter | None = None) -> str:
    shown = (formatter or plain_format)(rule.feature, value)
    template = rule.message or rule.description
    return template.replace("{value}", shown).replace("{threshold}", f"{rule.threshold:g}")


class RuleDetector(Detector):
    """Scores rows by the rules that fire on them.

    Parameters
    ----------
    rules:
        The rules (all must be of ``level``; others are ignored).
    level:
        ``org`` rows carry ``org_id``; ``account`` rows carry ``org_id`` and ``user_name``.
    ensemble:
        Severity points and the bonus per further rule.
    formatter:
        Renders a feature value in hit messages (default: plain numbers).
    """

    name = "rules"

    def __init__(
        self,
        *,
        rules: Sequence[RuleConfig] = (),
        level: Level = Level.org,
        ensemble: EnsembleConfig | None = None,
        formatter: Formatter | None = None,
    ) -> None:
        self.rules = rules
        self.level = level
        self.ensemble = ensemble
        self.formatter = formatter

    def fit(self, features: pl.DataFrame) -> Self:
        self.rules_ = tuple(r for r in self.rules if r.level == self.level)
        self.ensemble_ = self.ensemble or EnsembleConfig()
        missing = sorted(
            {c for r in self.rules_ for c in rule_columns(r) if c not in features.columns}
        )
        if missing:
            raise KeyError(
                f"{type(self).__name__}: rules read features that are not in the frame: "
                f"{', '.join(missing)}"
            )
        self.fitted_ = True
        return self

    def fired(self, features: pl.DataFrame) -> pl.DataFrame:
        """One boolean column per rule id (rows as in ``features``)."""
        self._check_fitted()
        if not self.rules_:
            return pl.DataFrame({"_": [False] * features.height}).select([])
        return features.select([rule_expr(r).alias(r.id) for r in self.rules_])

    def score(self, features: pl.DataFrame) -> Scores:
        self._check_fitted()
        fired = self.fired(features)
        out = np.zeros(features.height)
        if not self.rules_:
            return out
        pts = self.ensemble_.severity_points
        m = fired.to_numpy().astype(bool)
        sev = np.array([pts[r.severity] for r in self.rules_])
        best = (m * sev).max(axis=1)
        extra = np.maximum(m.sum(axis=1) - 1, 0) * self.ensemble_.extra_rule_points
        out = np.minimum(best + np.where(m.any(axis=1), extra, 0.0), 1.0)
        return out.astype(np.float64)

    def hard_facts(self, features: pl.DataFrame) -> np.ndarray:
        """True where a hard-fact rule fired."""
        fired = self.fired(features)
        hard = [r.id for r in self.rules_ if r.hard_fact]
        if not hard:
            return np.zeros(features.height, dtype=bool)
        return np.asarray(fired.select(hard).to_numpy().astype(bool).any(axis=1), dtype=bool)

    def hits(self, features: pl.DataFrame) -> list[RuleHit]:
        """Every rule that fired, with the value it read (evidence examples come later)."""
        fired = self.fired(features)
        out: list[RuleHit] = []
        for r in self.rules_:
            idx = np.flatnonzero(fired.get_column(r.id).to_numpy())
            if not len(idx):
                continue
            rows = features[idx.tolist()]
            values = rows.get_column(r.feature).cast(pl.Float64).to_list()
            orgs = rows.get_column("org_id").to_list()
            users = (
                rows.get_column("user_name").to_list()
                if "user_name" in rows.columns
                else [""] * len(orgs)
            )
            for org, user, v in zip(orgs, users, values, strict=True):
                value = float(v) if v is not None else 0.0
                out.append(
                    RuleHit(
                        rule_id=r.id,
                        severity=r.severity,
                        org_id=org,
                        user_name=user or "",
                        description=r.description,
                        feature=r.feature,
                        value=value,
                        threshold=r.threshold,
                        hard_fact=r.hard_fact,
                        message=format_message(r, value, self.formatter),
                    )
                )
        return out

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        fired = self.fired(features)
        pts = self.ensemble_.severity_points
        out: list[list[Contribution]] = []
        cols = {r.id: fired.get_column(r.id).to_list() for r in self.rules_}
        values = {
            r.id: features.get_column(r.feature).cast(pl.Float64).to_list() for r in self.rules_
        }
        for i in range(features.height):
            row = [
                Contribution(r.feature, pts[r.severity], values[r.id][i], r.id)
                for r in self.rules_
                if cols[r.id][i]
            ]
            row.sort(key=lambda c: -c.contribution)
            out.append(row[:top])
        return out
