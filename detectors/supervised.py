"""Learning from analysts' verdicts: a deterministic nearest-judged-neighbour model.

:class:`VerdictNeighbours` is fitted on one list day's org rows (the population, for a
robust scale) and on *examples*: org-days of organisations an analyst judged ``misuse`` or
``legitimate``. It scores a row by how closely it resembles the nearest example of each
kind, in points of the 0-100 ranking score: ``+points x`` the best similarity to a misuse
example ``- points x`` the best similarity to a legitimate example, each counted only at
``min_similarity`` or above, so the adjustment lies in ``[-points, +points]``. Higher =
more suspicious, as for every detector.

- Inputs: the named feature columns (NULL/NaN as 0, as the models read them), each
  standardised by the population's median and interquartile range (at least
  ``scale_floor``, so a spread of nearly nothing does not turn noise into distance), and
  clipped to ``+-z_clip``.
- Similarity of row ``x`` to example ``e``: ``k(x, e) - k(x, 0)``, at least 0, with the
  kernel ``k(x, e) = exp(-|x - e|^2 / (2 bandwidth^2 n))`` over the ``n`` inputs and ``0``
  the population's centre: how much more ``x`` resembles the example than it resembles
  the typical org. Near 1 for a row and an example alike and far from the typical org; 0
  for an ordinary row, and for every row when the example itself is ordinary (a verdict on
  an org whose behaviour is unremarkable teaches nothing about behaviour).
- Leave-one-org-out: a row is never compared with examples of its own organisation
  (``org_id``), so an org is moved only by other orgs' verdicts.
- Pure: no I/O; the same inputs give the same scores; ``score`` never changes the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Self

import numpy as np
import numpy.typing as npt
import polars as pl

from detectors.base import Contribution, Detector, Scores, check_param, feature_matrix

MISUSE = "misuse"
LEGITIMATE = "legitimate"
EXAMPLE_COLUMNS = ("org_id", "day", "verdict")
"""Columns an examples frame has beside the features: the judged org, the day of the
org-day, and its verdict (``misuse`` or ``legitimate``)."""


@dataclass(frozen=True)
class Resemblance:
    """The judged org-day nearest to a row on the side that moved it."""

    org_id: str
    day: date
    verdict: str
    similarity: float
    points: float
    """The row's whole adjustment (both sides), not only this example's part."""


class VerdictNeighbours(Detector):
    """Points learned from verdicts: resemblance to misuse examples up, to legitimate down.

    Parameters
    ----------
    features:
        Columns compared, in order.
    scale_floors:
        Smallest spread per feature (default ``scale_floor`` for any not named).
    points:
        Points for a perfect resemblance; the adjustment is within ``[-points, +points]``.
    bandwidth:
        Kernel width in robust units (> 0).
    min_similarity:
        A best similarity below this adds nothing on its side, in [0, 1).
    scale_floor:
        Smallest interquartile range a feature is divided by (> 0).
    z_clip:
        Standardised values are clipped to ``+-z_clip`` (> 0).
    """

    name = "verdict_neighbours"
    min_rows = 1

    def __init__(
        self,
        *,
        features: Sequence[str],
        scale_floors: dict[str, float] | None = None,
        points: float = 40.0,
        bandwidth: float = 1.0,
        min_similarity: float = 0.3,
        scale_floor: float = 1.0,
        z_clip: float = 6.0,
    ) -> None:
        self.features = list(features)
        self.scale_floors = dict(scale_floors or {})
        self.points = points
        self.bandwidth = bandwidth
        self.min_similarity = min_similarity
        self.scale_floor = scale_floor
        self.z_clip = z_clip

    def fit(self, features: pl.DataFrame, examples: pl.DataFrame | None = None) -> Self:
        """Learn the scale from ``features`` (the list day's rows) and keep ``examples``
        (feature columns plus :data:`EXAMPLE_COLUMNS`; none: every score is 0)."""
        check_param(self, "points", self.points, 0 <= self.points <= 100, "in [0, 100]")
        check_param(self, "bandwidth", self.bandwidth, self.bandwidth > 0, "> 0")
        check_param(
            self,
            "min_similarity",
            self.min_similarity,
            0 <= self.min_similarity < 1,
            "in [0, 1)",
        )
        check_param(self, "scale_floor", self.scale_floor, self.scale_floor > 0, "> 0")
        check_param(self, "z_clip", self.z_clip, self.z_clip > 0, "> 0")
        check_param(self, "features", self.features, bool(self.features), "a non-empty list")
        if features.height < self.min_rows:
            check_param(self, "features", features.height, False, "a frame of at least 1 row")
        x = feature_matrix(features, self.features)
        q1, median, q3 = np.quantile(x, [0.25, 0.5, 0.75], axis=0)
        floors = np.array([self.scale_floors.get(f, self.scale_floor) for f in self.features])
        self.center_ = median
        self.scale_ = np.maximum(q3 - q1, floors)
        if examples is None or examples.is_empty():
            self.examples_ = np.zeros((0, len(self.features)))
            self.example_orgs_: list[str] = []
            self.example_days_: list[date] = []
            self.example_verdicts_ = np.array([], dtype=object)
        else:
            missing = [c for c in EXAMPLE_COLUMNS if c not in examples.columns]
            if missing:
                raise KeyError(f"examples lack the columns: {', '.join(missing)}")
            bad = sorted(set(examples["verdict"].to_list()) - {MISUSE, LEGITIMATE})
            if bad:
                raise ValueError(f"example verdicts must be misuse or legitimate, got {bad}")
            # a fixed order, so that ties between equally near examples resolve the same way
            examples = examples.sort("org_id", "day", "verdict")
            self.examples_ = self._standardise(feature_matrix(examples, self.features))
            self.example_orgs_ = examples["org_id"].to_list()
            self.example_days_ = examples["day"].to_list()
            self.example_verdicts_ = np.array(examples["verdict"].to_list(), dtype=object)
        self.fitted_ = True
        return self

    def _standardise(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z: npt.NDArray[np.float64] = np.clip((x - self.center_) / self.scale_, -self.z_clip,
                                             self.z_clip)  # fmt: skip
        return z

    def similarities(self, features: pl.DataFrame) -> npt.NDArray[np.float64]:
        """Rows x examples: the kernel similarity of each row to each example, 0 for an
        example of the row's own org (``features`` needs ``org_id``)."""
        self._check_fitted()
        if features.is_empty() or not len(self.examples_):
            return np.zeros((features.height, len(self.examples_)))
        z = self._standardise(feature_matrix(features, self.features))
        e = self.examples_
        # |z - e|^2 without a rows x examples x features array (1,500 x 1,400 x 50 floats)
        d2 = np.maximum((z**2).sum(axis=1)[:, None] + (e**2).sum(axis=1)[None, :] - 2 * z @ e.T,
                        0.0)  # fmt: skip
        width = 2 * self.bandwidth**2 * len(self.features)
        # less what the row shares with the typical org (the population's centre, 0 after
        # standardising): an ordinary org resembles an ordinary-looking example no more
        # than it resembles everyone, so such an example moves nobody
        typical = np.exp(-(z**2).sum(axis=1) / width)
        sim = np.maximum(np.exp(-d2 / width) - typical[:, None], 0.0)
        own = (
            np.array(features["org_id"].to_list(), dtype=object)[:, None]
            == np.array(self.example_orgs_, dtype=object)[None, :]
        )
        out: npt.NDArray[np.float64] = np.where(own, 0.0, sim)
        return out

    def _sides(
        self, features: pl.DataFrame
    ) -> tuple[Scores, npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """The adjustment of each row, the index of its nearest misuse and legitimate
        example (-1: none), and the similarity matrix."""
        sim = self.similarities(features)
        n = features.height
        score = np.zeros(n)
        nearest = {}
        for verdict, sign in ((MISUSE, 1.0), (LEGITIMATE, -1.0)):
            mask = self.example_verdicts_ == verdict
            if not mask.any():
                nearest[verdict] = np.full(n, -1, dtype=np.intp)
                continue
            side = np.where(mask[None, :], sim, -1.0)
            best_i = side.argmax(axis=1)  # the first of equally near examples
            best = side[np.arange(n), best_i]
            counted = best >= self.min_similarity
            score += sign * self.points * np.where(counted, best, 0.0)
            nearest[verdict] = np.where(counted, best_i, -1).astype(np.intp)
        return (np.clip(score, -self.points, self.points), nearest[MISUSE], nearest[LEGITIMATE],
                sim)  # fmt: skip

    def score(self, features: pl.DataFrame) -> Scores:
        """Points per row in ``[-points, +points]`` (``features`` needs ``org_id``)."""
        self._check_fitted()
        return self._sides(features)[0]

    def resemblances(self, features: pl.DataFrame) -> list[Resemblance | None]:
        """Per row, the nearest example on the side that moved it (misuse when the
        adjustment is up, legitimate when down); None when nothing moved it."""
        self._check_fitted()
        score, up, down, sim = self._sides(features)
        out: list[Resemblance | None] = []
        for r in range(features.height):
            i = up[r] if score[r] > 0 else down[r] if score[r] < 0 else -1
            if i < 0:
                out.append(None)
                continue
            out.append(
                Resemblance(
                    org_id=self.example_orgs_[i],
                    day=self.example_days_[i],
                    verdict=str(self.example_verdicts_[i]),
                    similarity=float(sim[r, i]),
                    points=float(score[r]),
                )
            )
        return out

    def explain(self, features: pl.DataFrame, top: int = 5) -> list[list[Contribution]]:
        """Per row, the nearest judged org-day that moved it, as one contribution named
        ``resembles <org_id> (<verdict>)`` (empty when nothing moved it)."""
        return [
            []
            if r is None
            else [Contribution(feature=f"resembles {r.org_id} ({r.verdict})",
                               contribution=r.points, value=r.similarity)][:top]
            for r in self.resemblances(features)
        ]  # fmt: skip
