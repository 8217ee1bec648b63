"""Combine model scores and rule severity into one 0-100 score.

Model scores are first put on one scale, either by rank (percentile among the scored rows)
or by robust standardisation (median / MAD, then a logistic around ``z_midpoint``), then
averaged with the ensemble weights. The 0-100 score is
``100 * (model_weight * models + rule_weight * rules) / (model_weight + rule_weight)``;
a hard-fact rule hit lifts it to at least ``hard_fact_floor``. Rows the models did not score
(inactive, or too few rows to fit) have a model part of 0, and no model contributions.

:meth:`EnsembleDetector.result` gives everything ranking needs as one
:class:`EnsembleResult`, with each model detector's part keyed by its name, so ranking never
names a detector; :meth:`EnsembleDetector.model_contributions` is the one merge of the
models' per-feature contributions (weighted by the ensemble weights, summed per feature),
which ``explain`` uses too. :func:`fold_accounts` lifts an org to its worst account. The
detectors of an ensemble are built from the configuration by
:func:`detectors.registry.build_ensemble`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
import polars as pl

from detectors.base import Contribution, Detector, Scores
from detectors.rules import RuleDetector
from schemas.detection import EnsembleConfig, RuleHit

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


def merge(rows: Sequence[Sequence[Contribution]]) -> list[list[Contribution]]:
    """Per row, contributions summed per feature (per rule for rule contributions), largest
    first; a feature keeps the value its last contribution saw."""
    merged = []
    for row in rows:
        acc: dict[str, float] = defaultdict(float)
        last: dict[str, Contribution] = {}
        for c in row:
            key = c.rule_id or c.feature
            acc[key] += c.contribution
            last[key] = c
        merged.append(
            [
                Contribution(last[k].feature, v, last[k].value, last[k].rule_id)
                for k, v in sorted(acc.items(), key=lambda kv: -kv[1])
            ]
        )
    return merged


@dataclass(frozen=True)
class EnsembleResult:
    """An ensemble's scores of a frame of rows, one entry per row in each array."""

    score: Scores
    """The 0-100 score."""
    parts: Mapping[str, Scores]
    """Each model detector's normalised score (0-1) by detector name; 0 where not scored."""
    models: Scores
    """The model part (0-1): the weighted average of ``parts``; 0 where not scored."""
    rules: Scores
    """The rule part (0-1)."""
    hard: npt.NDArray[np.bool_]
    """Whether a hard-fact rule fired."""
    scored: npt.NDArray[np.bool_]
    """Whether the models scored the row (active, and the models were fitted)."""
    hits: list[RuleHit]
    """The rule hits of the frame."""


def fold_accounts(orgs: pl.DataFrame, accounts: pl.DataFrame, cfg: EnsembleConfig) -> pl.DataFrame:
    """An org scores at least ``account_weight`` x its worst account (a stolen account
    inside a normal org surfaces the org too); account hard facts count for the org.

    Both frames have ``org_id``, ``score``, ``rules`` and ``hard_fact``; other columns of
    ``orgs`` are kept as they are."""
    if accounts.is_empty():
        return orgs
    worst = accounts.group_by("org_id").agg(
        pl.col("score").max().alias("_a_score"),
        pl.col("rules").max().alias("_a_rules"),
        pl.col("hard_fact").any().alias("_a_hard"),
    )
    w = cfg.account_weight
    return (
        orgs.join(worst, on="org_id", how="left")
        .with_columns(
            pl.max_horizontal("score", (pl.col("_a_score").fill_null(0.0) * w).round(2)),
            pl.max_horizontal("rules", pl.col("_a_rules").fill_null(0.0)),
            pl.col("hard_fact") | pl.col("_a_hard").fill_null(False),
        )
        .drop("_a_score", "_a_rules", "_a_hard")
    )


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
        models: Sequence[Detector],
        config: EnsembleConfig | None = None,
        active: str | None = None,
        min_fit_rows: int = 2,
        view: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> None:
        self.rules = rules
        self.models = list(models)
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

    def _scored(self, features: pl.DataFrame) -> np.ndarray:
        """The rows the models score: active ones, once the models are fitted."""
        if not self.models_fitted_:
            return np.zeros(features.height, dtype=bool)
        return self._active(features)

    def result(self, features: pl.DataFrame) -> EnsembleResult:
        """Per row: each model's normalised score, the model part, rule part, hard facts and
        the final 0-100 score, with the rule hits. Rows the models do not score get model
        parts of 0."""
        self._check_fitted()
        n = features.height
        mask = self._scored(features)
        parts: dict[str, Scores] = {m.name: np.zeros(n) for m in self.models}
        models = np.zeros(n)
        if mask.any():
            active = self.model_view(features).filter(pl.Series(mask))
            raw = {m.name: m.score(active) for m in self.models}
            for k, v in raw.items():
                parts[k][mask] = normalise(v, self.config_)
            models[mask] = model_part(raw, self.config_)
        rules = self.rules.score(features)
        hard = self.rules.hard_facts(features)
        return EnsembleResult(
            score=final_score(models, rules, hard, self.config_),
            parts=parts,
            models=models,
            rules=rules,
            hard=np.asarray(hard, dtype=bool),
            scored=mask,
            hits=self.rules.hits(features),
        )

    def model_contributions(self, features: pl.DataFrame, top: int = 8) -> list[list[Contribution]]:
        """Per row of ``features``: each model's ``top`` contributions weighted by the
        ensemble weights, summed per feature, largest first; none for the rows the models
        do not score.

        The models explain the frame as one batch (ECOD's tail scores depend on the rows it
        is given with), so explain the same rows together to get the same contributions."""
        self._check_fitted()
        rows: list[list[Contribution]] = [[] for _ in range(features.height)]
        mask = self._scored(features)
        if not mask.any():
            return rows
        weights = self.config_.weights
        seen = self.model_view(features)
        for m in self.models:
            w = weights.get(m.name, 0.0)
            for i, row in enumerate(m.explain(seen, top=top)):
                if mask[i]:
                    rows[i] += [
                        Contribution(c.feature, c.contribution * w, c.value, c.rule_id) for c in row
                    ]
        return merge(rows)

    def score(self, features: pl.DataFrame) -> Scores:
        return self.result(features).score

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        """Per row: the rule contributions and the models' (see
        :meth:`model_contributions`), merged the same way, the ``top`` largest."""
        self._check_fitted()
        rules = self.rules.explain(features, top)
        models = self.model_contributions(features, top)
        return [row[:top] for row in merge([r + m for r, m in zip(rules, models, strict=True)])]
