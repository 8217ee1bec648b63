"""VerdictNeighbours on literal frames: look-alikes of a legitimate example go down and of a
misuse example go up, unrelated rows do not move, an org never learns from its own
examples, the adjustment is capped, parameters are checked and scoring is deterministic."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from detectors.base import NotFittedError, ParameterError
from detectors.supervised import VerdictNeighbours

D = date(2026, 9, 1)
FEATS = ["a", "b", "c"]


def population() -> pl.DataFrame:
    """Twenty ordinary orgs near 0, a look-alike of each judged org, and the judged orgs."""
    rng = np.random.default_rng(3)
    base = rng.normal(0, 0.5, size=(20, 3))
    rows = [{"org_id": f"P{i:02d}", "a": x, "b": y, "c": z} for i, (x, y, z) in enumerate(base)]
    rows += [
        {"org_id": "LEGIT", "a": 5.0, "b": 0.0, "c": 5.0},
        {"org_id": "LEGIT_TWIN", "a": 5.2, "b": 0.1, "c": 4.9},
        {"org_id": "BAD", "a": 0.0, "b": 6.0, "c": 0.0},
        {"org_id": "BAD_TWIN", "a": 0.1, "b": 5.8, "c": 0.2},
    ]
    return pl.DataFrame(rows)


def examples(*orgs: tuple[str, str]) -> pl.DataFrame:
    pop = population()
    parts = [
        pop.filter(pl.col("org_id") == org).with_columns(
            pl.lit(D).alias("day"), pl.lit(verdict).alias("verdict")
        )
        for org, verdict in orgs
    ]
    return pl.concat(parts)


def model(**kw: float) -> VerdictNeighbours:
    return VerdictNeighbours(features=FEATS, **kw)  # type: ignore[arg-type]


def test_a_legitimate_example_lowers_its_look_alike_and_not_unrelated_orgs() -> None:
    pop = population()
    m = model().fit(pop, examples(("LEGIT", "legitimate")))
    points = dict(zip(pop["org_id"], m.score(pop), strict=True))
    assert points["LEGIT_TWIN"] < -30  # nearly the same vector: nearly all 40 points
    assert points["LEGIT"] == 0.0  # leave-one-org-out: its own example does not count
    assert all(points[f"P{i:02d}"] == 0.0 for i in range(20))  # too far to resemble
    assert points["BAD_TWIN"] == 0.0


def test_a_misuse_example_raises_its_look_alike_and_names_it() -> None:
    pop = population()
    m = model().fit(pop, examples(("BAD", "misuse"), ("LEGIT", "legitimate")))
    points = dict(zip(pop["org_id"], m.score(pop), strict=True))
    assert points["BAD_TWIN"] > 30 and points["LEGIT_TWIN"] < -30
    res = dict(zip(pop["org_id"], m.resemblances(pop), strict=True))
    twin = res["BAD_TWIN"]
    assert twin is not None and twin.org_id == "BAD" and twin.verdict == "misuse"
    assert twin.day == D and 0.3 <= twin.similarity <= 1 and twin.points == points["BAD_TWIN"]
    assert res["P00"] is None
    assert m.explain(pop.filter(pl.col("org_id") == "BAD_TWIN"))[0][0].feature == (
        "resembles BAD (misuse)"
    )


def test_the_adjustment_is_capped_and_scoring_is_deterministic_and_pure() -> None:
    pop = population()
    ex = examples(("BAD", "misuse"))
    m = model(points=10, min_similarity=0.0).fit(pop, ex)
    first = m.score(pop)
    assert np.all(np.abs(first) <= 10)
    assert np.array_equal(first, m.score(pop))  # scoring does not change the model
    assert np.array_equal(first, model(points=10, min_similarity=0.0).fit(pop, ex).score(pop))


def test_no_examples_scores_zero_and_unfitted_use_raises() -> None:
    pop = population()
    with pytest.raises(NotFittedError):
        model().score(pop)
    assert np.array_equal(model().fit(pop).score(pop), np.zeros(pop.height))


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("bandwidth", 0.0, "'bandwidth' parameter of VerdictNeighbours must be > 0. Got 0.0"),
        ("min_similarity", 1.0, "must be in [0, 1)"),
        ("points", 101.0, "must be in [0, 100]"),
    ],
)
def test_parameters_are_checked_in_fit(param: str, value: float, message: str) -> None:
    with pytest.raises(ParameterError) as e:
        model(**{param: value}).fit(population())
    assert message in str(e.value)


def test_example_verdicts_must_be_misuse_or_legitimate() -> None:
    ex = examples(("BAD", "misuse")).with_columns(pl.lit("needs_info").alias("verdict"))
    with pytest.raises(ValueError, match="misuse or legitimate"):
        model().fit(population(), ex)


def test_an_ordinary_looking_example_moves_nobody() -> None:
    """Regression (tuning world 1401): misuse verdicts on unregistered callers, whose
    behaviour is ordinary, lifted hundreds of ordinary orgs by 30 points."""
    pop = population()
    ex = examples(("P01", "misuse"))  # near the centre of the population
    assert np.array_equal(model().fit(pop, ex).score(pop), np.zeros(pop.height))
    # even counting every resemblance, nobody gains more than a few points (a twin: 30+)
    assert np.abs(model(min_similarity=0.0).fit(pop, ex).score(pop)).max() < 5
