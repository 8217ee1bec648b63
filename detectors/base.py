"""The one interface of every detector, rule-based or model-based.

A detector reads a frame of features (one row per organisation or account) and returns one
score per row, **higher = more suspicious**. ``fit`` learns from a frame (a rule detector
only checks that its features exist), ``score`` never changes the fitted object, and
``explain`` says which features drove a row's score. Constructors take keyword arguments
and only store them; parameters are validated in ``fit``; learned state ends in ``_``.
Using a detector before ``fit`` raises :class:`NotFittedError`.

At the edges: ``fit`` on fewer than ``min_rows`` rows raises :class:`ParameterError`;
``score`` of an empty frame is an empty array and ``explain`` of one an empty list.
Detectors built from the configuration are registered in :mod:`detectors.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import polars as pl

Scores = npt.NDArray[np.float64]


class NotFittedError(RuntimeError):
    """A detector was used before ``fit``."""


class ParameterError(ValueError):
    """A detector parameter is out of its allowed range."""


def check_param(owner: object, name: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise the scikit-learn style error when ``ok`` is false."""
    if not ok:
        raise ParameterError(
            f"The {name!r} parameter of {type(owner).__name__} must be {allowed}. "
            f"Got {value!r} instead."
        )


@dataclass(frozen=True)
class Contribution:
    """How much one feature (or one rule) adds to a row's score."""

    feature: str
    contribution: float
    value: float | None = None
    rule_id: str | None = None


class Detector(ABC):
    """fit / score / explain over a polars frame of features."""

    name: str = "detector"
    min_rows: int = 1
    """The fewest rows ``fit`` accepts."""

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(features) first."
            )

    @abstractmethod
    def fit(self, features: pl.DataFrame) -> Self:
        """Learn from ``features`` (one row per entity); returns self."""

    @abstractmethod
    def score(self, features: pl.DataFrame) -> Scores:
        """One score per row of ``features``, higher = more suspicious. Never mutates."""

    @abstractmethod
    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        """Per row, the ``top`` contributions to its score, largest first."""


def feature_matrix(
    frame: pl.DataFrame, names: list[str], directions: dict[str, int] | None = None
) -> npt.NDArray[np.float64]:
    """Columns ``names`` of ``frame`` as floats; NULL/NaN become 0 (no evidence).

    With ``directions`` each column is turned one-sided: ``max(direction * x, 0)``, so only
    the suspicious side of a peer-relative feature counts (a surge of registrations is not
    evidence of misuse; a collapse of them can be).
    """
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise KeyError(f"features missing from the frame: {', '.join(missing)}")
    exprs = []
    for n in names:
        e = pl.col(n).cast(pl.Float64).fill_nan(None).fill_null(0.0)
        if directions is not None:
            d = directions.get(n, 1)
            e = e * d if d else e.abs()
            e = e.clip(lower_bound=0.0)
        exprs.append(e.alias(n))
    return (
        frame.select(exprs)
        .to_numpy()
        .astype(np.float64, copy=False)
        .reshape(frame.height, len(names))
    )
