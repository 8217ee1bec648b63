"""Model detectors: scikit-learn's IsolationForest and PyOD's ECOD, behind one interface.

Both read the same peer-relative features (robust z-scores and history changes), made
one-sided when ``directions`` is given (see :func:`detectors.base.feature_matrix`).
Both are deterministic: IsolationForest through ``seed``; ECOD has no randomness.

``explain`` gives per-feature contributions. ECOD's are its own: the per-dimension tail
scores ``-log(ECDF tail)`` it sums into the outlier score. IsolationForest has no native
attribution, so it uses the same tail scores against its training data, which shows which
features make the row rare among the rows the forest was fitted on.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Self

import numpy as np
import numpy.typing as npt
import polars as pl

from detectors.base import Contribution, Detector, Scores, check_param, feature_matrix

Matrix = npt.NDArray[np.float64]


def _tail_scores(train_sorted: Matrix, x: Matrix) -> Matrix:
    """Per cell, ``-log`` of the right-tail empirical probability against the training column.

    Inputs are one-sided (larger = more suspicious) or two-sided z-scores; for both, the
    right tail is where the suspicious rows are once made one-sided.
    """
    n = train_sorted.shape[0]
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        # share of training values >= x (with the row itself counted: never zero)
        ge = n - np.searchsorted(train_sorted[:, j], x[:, j], side="left")
        out[:, j] = -np.log((ge + 1) / (n + 1))
    return out


def _top(names: list[str], values: Matrix, contrib: Matrix, top: int) -> list[list[Contribution]]:
    out = []
    for i in range(contrib.shape[0]):
        order = np.argsort(-contrib[i])[:top]
        out.append(
            [
                Contribution(names[j], float(contrib[i, j]), float(values[i, j]))
                for j in order
                if contrib[i, j] > 0
            ]
        )
    return out


class _ModelDetector(Detector):
    min_rows = 2
    features: Sequence[str]
    directions: Mapping[str, int] | None
    feature_names_: list[str]

    def _matrix(self, frame: pl.DataFrame) -> Matrix:
        return feature_matrix(
            frame, list(self.feature_names_), dict(self.directions) if self.directions else None
        )

    def _check_features(self, frame: pl.DataFrame) -> list[str]:
        names = list(self.features) if self.features else []
        check_param(self, "features", self.features, len(names) > 0, "a non-empty list")
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: features missing from the frame: {', '.join(missing)}"
            )
        check_param(
            self,
            "features (rows)",
            frame.height,
            frame.height >= self.min_rows,
            f"at least {self.min_rows} rows",
        )
        return names


class IsolationForestDetector(_ModelDetector):
    """scikit-learn ``IsolationForest``; score = ``-score_samples`` (higher = more anomalous).

    Parameters
    ----------
    features: columns to read.
    directions: per column +1 / -1 (suspicious side) to make inputs one-sided; None = as is.
    n_estimators, max_samples, max_features, contamination: as in scikit-learn.
    seed: ``random_state`` of the forest.
    """

    name = "iforest"

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        directions: Mapping[str, int] | None = None,
        n_estimators: int = 200,
        max_samples: int = 256,
        max_features: float = 1.0,
        contamination: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.features = features
        self.directions = directions
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.contamination = contamination
        self.seed = seed

    def fit(self, features: pl.DataFrame) -> Self:
        check_param(self, "n_estimators", self.n_estimators, self.n_estimators >= 1, ">= 1")
        check_param(self, "max_samples", self.max_samples, self.max_samples >= 2, ">= 2")
        check_param(
            self, "max_features", self.max_features, 0 < self.max_features <= 1, "in (0, 1]"
        )
        check_param(
            self, "contamination", self.contamination, 0 < self.contamination <= 0.5, "in (0, 0.5]"
        )
        self.feature_names_ = self._check_features(features)
        from sklearn.ensemble import IsolationForest  # lazily: the analyst commands never fit

        x = self._matrix(features)
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, x.shape[0]),
            max_features=self.max_features,
            contamination=self.contamination,
            random_state=self.seed,
            n_jobs=1,
        ).fit(x)
        self.train_sorted_ = np.sort(x, axis=0)
        self.fitted_ = True
        return self

    def score(self, features: pl.DataFrame) -> Scores:
        self._check_fitted()
        if features.height == 0:
            return np.zeros(0)
        return np.asarray(-self.model_.score_samples(self._matrix(features)), dtype=np.float64)

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        self._check_fitted()
        x = self._matrix(features)
        return _top(self.feature_names_, x, _tail_scores(self.train_sorted_, x), top)


class EcodDetector(_ModelDetector):
    """PyOD ``ECOD`` (empirical-CDF outlier detection) with per-feature attribution.

    PyOD's ``decision_function`` refits its ECDFs on the training data plus the scored rows
    and stores them on the model; this wrapper scores on a copy so the fitted detector never
    changes (scores of a row still depend on the batch it is scored with, as in PyOD).

    Parameters
    ----------
    features, directions: as for :class:`IsolationForestDetector`.
    contamination: as in PyOD (only used for PyOD's own labels).
    """

    name = "ecod"

    def __init__(
        self,
        *,
        features: Sequence[str] = (),
        directions: Mapping[str, int] | None = None,
        contamination: float = 0.01,
    ) -> None:
        self.features = features
        self.directions = directions
        self.contamination = contamination

    def fit(self, features: pl.DataFrame) -> Self:
        check_param(
            self, "contamination", self.contamination, 0 < self.contamination <= 0.5, "in (0, 0.5]"
        )
        self.feature_names_ = self._check_features(features)
        from pyod.models.ecod import ECOD  # lazily, as IsolationForest above

        x = self._matrix(features)
        self.model_ = ECOD(contamination=self.contamination).fit(x)
        self.fitted_ = True
        return self

    def _per_feature(self, features: pl.DataFrame) -> tuple[Matrix, Matrix]:
        x = self._matrix(features)
        model = copy.deepcopy(self.model_)  # ECOD mutates itself while scoring
        model.decision_function(x)
        return x, np.asarray(model.O[-x.shape[0] :], dtype=np.float64)

    def score(self, features: pl.DataFrame) -> Scores:
        self._check_fitted()
        if features.height == 0:
            return np.zeros(0)
        _, per = self._per_feature(features)
        return per.sum(axis=1)

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        self._check_fitted()
        if features.height == 0:
            return []
        x, per = self._per_feature(features)
        # the baseline of a typical cell is -log(0.5); only the excess explains the score
        return _top(self.feature_names_, x, np.maximum(per - np.log(2.0), 0.0), top)
