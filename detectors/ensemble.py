"""Combine model scores and rule severity into one 0-100 score.

Model scores are first put on one scale, either by rank (percentile among the scored rows)
or by robust standardisation (median / MAD, then a logistic around ``z_midpoint``), then
averaged with the ensemble weights. The 0-100 score is
``100 * (model_weight * models + rule_weight * rules) / (model_weight + rule_weight)``;
a hard-fact rule hit lifts it to at least ``hard_fact_floor``. Rows the models did not score
(inactive, or too few rows to fit) have a model part of 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import numpy as np
import polars as pl

from detectors.base import Contribution, Detector, Scores
from detectors.models import _ModelDetector
from detectors.rules import RuleDetector
from schemas.detection import EnsembleConfig

MAD_TO_SIGMA = 1.4826
_TINY = 1e-9


def normalise(scores: Scores, cfg: EnsembleConfig) -> Scores:
    """Raw detector scores -> [0, 1] on the ensemble's scale (by rank or robust z)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) if np.isfinite(s).any() else 0)
    if cfg.method == "rank":
        order = s.argsort(kind="stable").argsort(kind="stable")
        return (order + 1) / s.size
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med))) * MAD_TO_SIGMA
    z = (s - med) / max(mad, _TINY)
    return 1.0 / (1.0 + np.exp(-(z - cfg.z_midpoint) / cfg.z_slope))


def model_part(raw: dict[str, Scores], cfg: EnsembleConfig) -> Scores:
    """Weighted average of the normalised model scores (0-1); zeros when there are none."""
    weights = {k: w for k, w in cfg.weights.items() if k in raw}
    total = sum(weights.values())
    n = len(next(iter(raw.values()))) if raw else 0
    out = np.zeros(n)
    if total > 0:
        for k, w in weights.items():
            out += w / total * normalise(raw[k], cfg)
    return out


def final_score(models: Scores, rules: Scores, hard: np.ndarray, cfg: EnsembleConfig) -> Scores:
    """The 0-100 score from the model part, the rule part and the hard-fact flags."""
    wsum = max(cfg.model_weight + cfg.rule_weight, _TINY)
    score = 100.0 * (cfg.model_weight * np.asarray(models) + cfg.rule_weight * np.asarray(rules))
    score = score / wsum
    score = np.where(hard, np.maximum(score, cfg.hard_fact_floor), score)
    return np.clip(np.nan_to_num(score), 0.0, 100.0)


class EnsembleDetector(Detector):
    """Rules plus model detectors as one detector (same fit / score / explain contract).

    ``score`` returns the 0-100 score. Models are fitted on the rows where ``active`` (a
    column name) is > 0 when given; other rows get a model part of 0. ``view``, when given,
    transforms what the models see (fit, score and explain; e.g. legitimate explanations,
    :mod:`detectors.explanations`); rules always read the features as given.
    """

    name = "ensemble"

    def __init__(
        self,
        *,
        rules: RuleDetector,
        models: list[_ModelDetector],
        config: EnsembleConfig | None = None,
        active: str | None = None,
        min_fit_rows: int = 2,
        view: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> None:
        self.rules = rules
        self.models = models
        self.config = config
        self.active = active
        self.min_fit_rows = min_fit_rows
        self.view = view

    def model_view(self, features: pl.DataFrame) -> pl.DataFrame:
        """The rows as the model detectors see them."""
        return self.view(features) if self.view is not None else features

    def _active(self, features: pl.DataFrame) -> np.ndarray:
        if self.active is None:
            return np.ones(features.height, dtype=bool)
        col = features.get_column(self.active).cast(pl.Float64).fill_null(0.0).fill_nan(0.0)
        return np.asarray(col.to_numpy() > 0)

    def fit(self, features: pl.DataFrame) -> Self:
        self.config_ = self.config or EnsembleConfig()
        self.rules.fit(features)
        mask = self._active(features)
        self.models_fitted_ = int(mask.sum()) >= self.min_fit_rows
        if self.models_fitted_:
            train = self.model_view(features).filter(pl.Series(mask))
            for m in self.models:
                m.fit(train)
        self.fitted_ = True
        return self

    def parts(self, features: pl.DataFrame) -> dict[str, Scores]:
        """Per row: each model's normalised score, the model part, rule part, hard facts
        (1.0 / 0.0) and the final 0-100 score. Inactive rows get model scores of 0."""
        self._check_fitted()
        n = features.height
        mask = self._active(features)
        out: dict[str, Scores] = {m.name: np.zeros(n) for m in self.models}
        models = np.zeros(n)
        if self.models_fitted_ and mask.any():
            active = self.model_view(features).filter(pl.Series(mask))
            raw = {m.name: m.score(active) for m in self.models}
            for k, v in raw.items():
                out[k][mask] = normalise(v, self.config_)
            models[mask] = model_part(raw, self.config_)
        rules = self.rules.score(features)
        hard = self.rules.hard_facts(features)
        out.update(
            models=models,
            rules=rules,
            hard=hard.astype(np.float64),
            score=final_score(models, rules, hard, self.config_),
        )
        return out

    def score(self, features: pl.DataFrame) -> Scores:
        return self.parts(features)["score"]

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        self._check_fitted()
        rows = self.rules.explain(features, top)
        if self.models_fitted_:
            seen = self.model_view(features)
            for m in self.models:
                for i, extra in enumerate(m.explain(seen, top)):
                    rows[i] = rows[i] + extra
        merged = []
        for row in rows:
            best: dict[str, Contribution] = {}
            for c in row:
                key = c.rule_id or c.feature
                if key not in best or best[key].contribution < c.contribution:
                    best[key] = c
            merged.append(sorted(best.values(), key=lambda c: -c.contribution)[:top])
        return merged
