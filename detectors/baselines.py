"""Baselines: what a department might run without accesswatch, as detectors.

Both read raw daily counts, one row per organisation and day (columns ``org_id``,
``org_type``, ``day``, ``calls``, ``learners``, ``users``; see
:func:`evaluation.evaluate.daily_counts`), and follow the contract of
:class:`detectors.base.Detector`. ``accesswatch evaluate`` judges them beside the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import polars as pl

from detectors.base import Contribution, Detector, Scores, check_param
from detectors.models import _tail_scores, _top

COUNTS = ("calls", "learners", "users")
"""The raw daily counts the baselines read."""

ALARM_POINTS = 1000.0
"""Added to the score of a row whose alarm fired, so every alarm ranks above every quiet row."""


class VolumeAlarmDetector(Detector):
    """An alarm on an organisation's daily calls above a multiple of its usual volume.

    score = ``calls / max(own trailing median, peer median that day, 1)``, plus
    :data:`ALARM_POINTS` where that ratio is above ``multiple``. The own median is over the
    org's previous ``history_days`` rows of the scored frame (so score a frame holding the
    history too); the peer median is over the rows of the same ``org_type`` and ``day``.
    Nothing is learned: ``fit`` only validates the parameters.

    Parameters
    ----------
    multiple: how many times its baseline a day's calls must be to fire (> 1).
    history_days: length of the trailing window of the own median (>= 1).
    """

    name = "volume_alarm"

    def __init__(self, *, multiple: float = 3.0, history_days: int = 28) -> None:
        self.multiple = multiple
        self.history_days = history_days

    def fit(self, features: pl.DataFrame) -> Self:
        check_param(self, "multiple", self.multiple, self.multiple > 1, "> 1")
        check_param(self, "history_days", self.history_days, self.history_days >= 1, ">= 1")
        check_param(
            self, "features (rows)", features.height, features.height >= self.min_rows,
            f"at least {self.min_rows} rows",
        )  # fmt: skip
        self.fitted_ = True
        return self

    def _ratio(self, features: pl.DataFrame) -> pl.DataFrame:
        """``features``' rows in their order with columns ``ratio`` and ``fired``."""
        frame = (
            features.with_row_index("_row")
            .sort("org_id", "day")
            .with_columns(
                pl.col("calls")
                .shift(1)
                .rolling_median(self.history_days, min_samples=1)
                .over("org_id")
                .fill_null(0)
                .alias("own_median"),
                pl.col("calls").median().over("org_type", "day").alias("peer_median"),
            )
        )
        baseline = pl.max_horizontal("own_median", "peer_median", pl.lit(1.0))
        ratio = pl.col("calls") / baseline
        return frame.select(
            "_row", "calls", ratio.alias("ratio"), (ratio > self.multiple).alias("fired")
        ).sort("_row")

    def score(self, features: pl.DataFrame) -> Scores:
        self._check_fitted()
        if features.height == 0:
            return np.zeros(0)
        r = self._ratio(features)
        score = pl.when(pl.col("fired")).then(ALARM_POINTS).otherwise(0.0) + pl.col("ratio")
        return r.select(score.alias("s"))["s"].to_numpy().astype(np.float64)

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        """The one feature of the alarm: calls, contributing their ratio to the baseline."""
        self._check_fitted()
        if features.height == 0:
            return []
        r = self._ratio(features)
        return [
            [Contribution("calls", float(ratio), float(calls))][:top]
            for calls, ratio in r.select("calls", "ratio").iter_rows()
        ]


class RawIsolationForestDetector(Detector):
    """A plain scikit-learn ``IsolationForest`` on ``log1p`` of raw daily counts.

    score = ``-score_samples`` (higher = more anomalous). Fit it on one day's organisations
    and score them (``evaluate`` fits one forest per day).

    Parameters
    ----------
    features: the count columns to read (default :data:`COUNTS`).
    n_estimators: trees of the forest (>= 1).
    seed: ``random_state`` of the forest.
    """

    name = "raw_iforest"
    min_rows = 2

    def __init__(
        self, *, features: Sequence[str] = COUNTS, n_estimators: int = 200, seed: int = 0
    ) -> None:
        self.features = features
        self.n_estimators = n_estimators
        self.seed = seed

    def _matrix(self, features: pl.DataFrame) -> np.ndarray:
        return np.log1p(features.select(list(self.features)).to_numpy().astype(float))

    def fit(self, features: pl.DataFrame) -> Self:
        check_param(self, "n_estimators", self.n_estimators, self.n_estimators >= 1, ">= 1")
        check_param(
            self, "features (rows)", features.height, features.height >= self.min_rows,
            f"at least {self.min_rows} rows",
        )  # fmt: skip
        from sklearn.ensemble import IsolationForest  # lazily, as in detectors/models.py

        x = self._matrix(features)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(x)
        self.train_sorted_ = np.sort(x, axis=0)
        self.fitted_ = True
        return self

    def score(self, features: pl.DataFrame) -> Scores:
        self._check_fitted()
        if features.height == 0:
            return np.zeros(0)
        return np.asarray(-self.model_.score_samples(self._matrix(features)), dtype=np.float64)

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        """Per row, the counts that are rare among the rows the forest was fitted on (tail
        scores, as :class:`detectors.models.IsolationForestDetector` explains)."""
        self._check_fitted()
        x = self._matrix(features)
        return _top(list(self.features), x, _tail_scores(self.train_sorted_, x), top)
