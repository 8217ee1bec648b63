"""Every registered detector (the ensemble's models and the evaluation baselines) keeps the
contract of detectors/base.py: fit returns self, unfitted use raises NotFittedError, one
finite score per row and higher on a planted outlier, scoring never changes the detector,
the same seed gives the same scores, explain gives one list per row, and the edges (too few
rows to fit, an empty frame to score) behave as the base documents."""

from __future__ import annotations

import pickle
from datetime import date

import numpy as np
import polars as pl
import pytest

from detectors.base import Detector, NotFittedError, ParameterError
from detectors.registry import BASELINES, MODEL_DETECTORS, REGISTRY
from schemas.detection import ModelConfig
from schemas.evaluation import EvaluationConfig

COUNTS = ["calls", "learners", "users"]
OUTLIER = 0  # the row planted far above the others on every count


def planted(n: int = 60, seed: int = 5) -> pl.DataFrame:
    """One day of ``n`` orgs of one type with ordinary counts, and one org (row 0) with 40x
    the calls, learners and users of a typical org."""
    rng = np.random.default_rng(seed)
    calls = rng.integers(80, 120, n)
    learners = rng.integers(40, 60, n)
    users = rng.integers(2, 5, n)
    calls[OUTLIER], learners[OUTLIER], users[OUTLIER] = 4_000, 2_000, 150
    return pl.DataFrame(
        {
            "org_id": [f"O{i:03d}" for i in range(n)],
            "org_type": ["school"] * n,
            "day": [date(2026, 9, 1)] * n,
            "calls": calls,
            "learners": learners,
            "users": users,
        }
    )


def make(name: str) -> Detector:
    """The registered detector ``name`` with its default configuration, reading the counts."""
    if name in MODEL_DETECTORS:
        return MODEL_DETECTORS[name].build(ModelConfig(), features=COUNTS, directions=None)
    return BASELINES[name].build(EvaluationConfig())


NAMES = sorted(REGISTRY)


def test_the_registry_holds_the_models_and_the_baselines() -> None:
    assert {"iforest", "ecod", "volume_alarm", "raw_iforest"} <= set(REGISTRY)
    for name in NAMES:
        assert make(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_unfitted_use_raises(name: str) -> None:
    frame = planted()
    det = make(name)
    with pytest.raises(NotFittedError, match=r"is not fitted yet: call fit\(features\) first"):
        det.score(frame)
    with pytest.raises(NotFittedError):
        det.explain(frame)
    assert det.fit(frame) is det


@pytest.mark.parametrize("name", NAMES)
def test_one_finite_score_per_row_highest_on_the_planted_outlier(name: str) -> None:
    frame = planted()
    scores = make(name).fit(frame).score(frame)
    assert scores.shape == (frame.height,) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert int(np.argmax(scores)) == OUTLIER
    assert scores[OUTLIER] > np.max(np.delete(scores, OUTLIER))


@pytest.mark.parametrize("name", NAMES)
def test_scoring_never_changes_the_detector(name: str) -> None:
    frame = planted()
    det = make(name).fit(frame)
    before = pickle.dumps(det)
    first = det.score(frame)
    det.score(frame.head(10))
    det.explain(frame)
    assert det.score(frame).tolist() == first.tolist()
    assert pickle.dumps(det) == before


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_same_scores(name: str) -> None:
    frame = planted()
    a = make(name).fit(frame).score(frame)
    b = make(name).fit(frame).score(frame)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_explain_gives_one_list_per_row_largest_first(name: str) -> None:
    frame = planted()
    explained = make(name).fit(frame).explain(frame, top=2)
    assert len(explained) == frame.height
    assert all(len(row) <= 2 for row in explained)
    for row in explained:
        got = [c.contribution for c in row]
        assert got == sorted(got, reverse=True)
    assert explained[OUTLIER], "the planted outlier has contributions"


@pytest.mark.parametrize("name", NAMES)
def test_too_few_rows_to_fit_and_an_empty_frame_to_score(name: str) -> None:
    frame = planted()
    det = make(name)
    if det.min_rows > 0:
        with pytest.raises(ParameterError, match=rf"at least {det.min_rows} rows"):
            make(name).fit(frame.head(det.min_rows - 1))
    det.fit(frame.head(max(det.min_rows, 2)))
    fitted = make(name).fit(frame)
    assert fitted.score(frame.head(0)).shape == (0,)
    assert fitted.explain(frame.head(0)) == []
