"""Detectors: one contract for every detector (rules, models, ensemble), plus rule and
ensemble specifics. Proves: unfitted use raises, one score per row, same seed gives the
same scores, scoring never mutates, and each detector clears a quality floor on seeded data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from fnmatch import fnmatchcase

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from detectors.base import Detector, NotFittedError, ParameterError
from detectors.ensemble import EnsembleDetector, final_score, normalise
from detectors.explanations import describe, holding, model_view, neutralise
from detectors.models import EcodDetector, IsolationForestDetector
from detectors.rules import RULES_TOML, RuleDetector, load_config
from schemas.detection import (
    Condition,
    DetectionConfig,
    EnsembleConfig,
    ExplanationConfig,
    Level,
    RuleConfig,
)

N_NORMAL, N_OUTLIERS, N_FEATURES = 400, 12, 6
FEATURES = [f"f{i}_pz" for i in range(N_FEATURES)]


def seeded_frame(seed: int = 11) -> tuple[pl.DataFrame, np.ndarray]:
    """Normal rows ~ N(0, 1); outliers shifted by +6 on two features. Labels 1 = outlier."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_NORMAL + N_OUTLIERS, N_FEATURES))
    x[N_NORMAL:, :2] += 6.0
    y = np.r_[np.zeros(N_NORMAL), np.ones(N_OUTLIERS)]
    frame = pl.DataFrame({name: x[:, i] for i, name in enumerate(FEATURES)}).with_columns(
        pl.Series("org_id", [f"O{i:04d}" for i in range(len(y))]),
        pl.lit(1.0).alias("calls_7d"),
    )
    return frame, y


RULE = RuleConfig(
    id="TST-01",
    description="feature f0 far above peers",
    severity="high",
    feature="f0_pz",
    operator=">=",
    threshold=3.0,
)


def _rules() -> RuleDetector:
    return RuleDetector(rules=[RULE])


def _iforest() -> IsolationForestDetector:
    return IsolationForestDetector(features=FEATURES, n_estimators=100, seed=3)


def _ecod() -> EcodDetector:
    return EcodDetector(features=FEATURES)


def _ensemble() -> EnsembleDetector:
    return EnsembleDetector(rules=_rules(), models=[_iforest(), _ecod()], active="calls_7d")


DETECTORS: dict[str, Callable[[], Detector]] = {
    "rules": _rules,
    "iforest": _iforest,
    "ecod": _ecod,
    "ensemble": _ensemble,
}


@pytest.mark.parametrize("make", DETECTORS.values(), ids=DETECTORS.keys())
def test_unfitted_use_raises_a_clear_error(make: Callable[[], Detector]) -> None:
    frame, _ = seeded_frame()
    det = make()
    with pytest.raises(NotFittedError, match=r"is not fitted yet: call fit\(features\) first"):
        det.score(frame)
    with pytest.raises(NotFittedError):
        det.explain(frame)


@pytest.mark.parametrize("make", DETECTORS.values(), ids=DETECTORS.keys())
def test_one_finite_score_per_row_and_scoring_never_mutates(make: Callable[[], Detector]) -> None:
    frame, _ = seeded_frame()
    det = make().fit(frame)
    before = copy.deepcopy(det.__dict__)
    s1 = det.score(frame)
    s2 = det.score(frame.head(50))
    assert s1.shape == (frame.height,) and s2.shape == (50,)
    assert np.isfinite(s1).all()
    assert det.score(frame).tolist() == s1.tolist()
    after = det.__dict__
    assert before.keys() == after.keys()
    for k in ("feature_names_", "fitted_"):
        if k in before:
            assert before[k] == after[k]
    explained = det.explain(frame.tail(3), top=2)
    assert len(explained) == 3 and all(len(row) <= 2 for row in explained)


@pytest.mark.parametrize("make", DETECTORS.values(), ids=DETECTORS.keys())
def test_same_seed_gives_same_scores(make: Callable[[], Detector]) -> None:
    frame, _ = seeded_frame()
    a = make().fit(frame).score(frame)
    b = make().fit(frame).score(frame)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("make", DETECTORS.values(), ids=DETECTORS.keys())
def test_quality_floor_on_seeded_outliers(make: Callable[[], Detector]) -> None:
    frame, y = seeded_frame()
    scores = make().fit(frame).score(frame)
    assert roc_auc_score(y, scores) >= 0.9


def test_ecod_attribution_names_the_shifted_features() -> None:
    frame, _ = seeded_frame()
    det = _ecod().fit(frame)
    top = det.explain(frame.tail(N_OUTLIERS), top=2)
    named = [{c.feature for c in row} for row in top]
    assert sum(row == {"f0_pz", "f1_pz"} for row in named) >= N_OUTLIERS - 2


def test_ecod_scoring_leaves_the_pyod_model_untouched() -> None:
    """Regression: PyOD's ECOD.decision_function refits on the scored rows (STYLE.md)."""
    frame, _ = seeded_frame()
    det = _ecod().fit(frame)
    o_before = det.model_.O.copy()
    det.score(frame.head(10))
    assert np.array_equal(det.model_.O, o_before)


def test_bad_parameters_fail_in_fit_with_the_sklearn_message() -> None:
    frame, _ = seeded_frame()
    det = IsolationForestDetector(features=FEATURES, contamination=0.7)
    with pytest.raises(
        ParameterError,
        match=r"The 'contamination' parameter of IsolationForestDetector must be in "
        r"\(0, 0\.5\]\. Got 0\.7 instead\.",
    ):
        det.fit(frame)
    with pytest.raises(KeyError, match="features missing from the frame: nope"):
        IsolationForestDetector(features=["nope"]).fit(frame)


def test_committed_rules_toml_validates() -> None:
    cfg = load_config()
    assert RULES_TOML.is_file() and len(cfg.rules) >= 10
    assert any(r.hard_fact for r in cfg.rules)
    with pytest.raises(ValidationError, match="duplicate rule ids: TST-01"):
        DetectionConfig(rules=(RULE, RULE))
    with pytest.raises(ValidationError):
        RuleConfig(id="bad id", description="x" * 10, severity="high", feature="f",
                   operator=">=", threshold=1)  # fmt: skip


def test_rules_ignore_nulls_and_respect_guards() -> None:
    rule = RULE.model_copy(update={"min_volume": 10.0, "volume_feature": "calls_7d"})
    frame = pl.DataFrame(
        {
            "org_id": ["a", "b", "c", "d"],
            "f0_pz": [5.0, None, 5.0, float("nan")],
            "calls_7d": [20.0, 20.0, 2.0, 20.0],
        }
    )
    det = RuleDetector(rules=[rule]).fit(frame)
    assert det.score(frame).tolist() == [0.8, 0.0, 0.0, 0.0]
    (hit,) = det.hits(frame)
    assert (hit.org_id, hit.rule_id, hit.value) == ("a", "TST-01", 5.0)
    with pytest.raises(KeyError, match="rules read features that are not in the frame"):
        RuleDetector(rules=[rule]).fit(frame.drop("calls_7d"))


def test_hard_facts_lift_the_score_and_nothing_is_nan() -> None:
    cfg = EnsembleConfig()
    models = np.array([0.0, 0.2, np.nan])
    rules = np.array([1.0, 0.0, 0.0])
    hard = np.array([True, False, False])
    s = final_score(models, rules, hard, cfg)
    assert s[0] >= cfg.hard_fact_floor and np.isfinite(s).all()
    assert np.isfinite(normalise(np.array([1.0, 1.0, 1.0]), cfg)).all()


def test_ensemble_without_enough_active_rows_scores_by_rules_only() -> None:
    frame, _ = seeded_frame()
    frame = frame.with_columns(pl.lit(0.0).alias("calls_7d"))
    det = _ensemble().fit(frame)
    result = det.result(frame)
    assert not det.models_fitted_
    assert (result.models == 0).all()
    assert np.isfinite(result.score).all()


# --- Legitimate explanations ---------------------------------------------------------------

EXPLAINED = ExplanationConfig(
    id="LEG-99",
    description="registers the learners it looks up",
    when=(Condition(feature="ft", operator=">=", threshold=0.5),),
    explains=("f0_*", "f1_*"),
    message="went on to register {ft} of them",
)


def test_an_explanation_lowers_only_the_features_it_names_and_never_a_rule_hit() -> None:
    frame, y = seeded_frame()
    # half of the outliers (shifted on f0 and f1) register the learners they look up
    explained_rows = np.flatnonzero(y)[::2]
    ft = np.zeros(frame.height)
    ft[explained_rows] = 0.9
    frame = frame.with_columns(pl.Series("ft", ft))
    plain = _ensemble().fit(frame).result(frame)
    by_org = holding(frame, [EXPLAINED])
    assert set(by_org) == set(frame["org_id"].gather(explained_rows).to_list())
    ens = _ensemble()
    ens.view = model_view(by_org, [EXPLAINED], {}, FEATURES)
    parts = ens.fit(frame).result(frame)
    others = np.setdiff1d(np.flatnonzero(y), explained_rows)
    normal_p95 = np.quantile(parts.models[y == 0], 0.95)
    assert (parts.models[explained_rows] <= normal_p95).all()
    assert (plain.models[explained_rows] > normal_p95).all()
    assert (parts.models[others] > normal_p95).all()
    # rules read the raw features: the explained outliers still fire TST-01 (f0_pz >= 3)
    np.testing.assert_array_equal(parts.rules, plain.rules)
    assert (parts.rules[explained_rows] > 0).any()
    # the models' contributions show the explained features as they saw them: at the norm
    seen = [c for i in explained_rows for c in ens.explain(frame)[i] if not c.rule_id]
    assert seen and all(c.value == 0.0 for c in seen if c.feature in {"f0_pz", "f1_pz"})


def test_neutralise_keeps_nulls_the_innocent_side_and_other_orgs() -> None:
    frame = pl.DataFrame(
        {
            "org_id": ["a", "a", "b"],
            "user_name": ["u1", "u2", "u3"],
            "up_pz": [4.0, None, 4.0],
            "down_pz": [-3.0, 2.0, -3.0],
            "other_pz": [5.0, 5.0, 5.0],
        }
    )
    exp = EXPLAINED.model_copy(update={"explains": ("up_*", "down_*")})
    out = neutralise(frame, {"a": ["LEG-99"]}, [exp], {"up_pz": 1, "down_pz": -1}, frame.columns)
    assert out["up_pz"].to_list() == [0.0, None, 4.0]
    assert out["down_pz"].to_list() == [0.0, 2.0, -3.0]
    assert out["other_pz"].to_list() == [5.0, 5.0, 5.0]
    assert describe(exp, {"ft": 0.9}) == "LEG-99: went on to register 0.90 of them"
    with pytest.raises(KeyError, match="LEG-99 reads features that are not in the frame"):
        holding(frame, [EXPLAINED])


def test_committed_explanations_name_real_features() -> None:
    from schemas.features import FEATURES as REGISTRY
    from schemas.features import model_features

    cfg = load_config()
    assert cfg.explanations
    model = model_features("org")
    for e in cfg.explanations:
        assert all(c.feature in REGISTRY for c in e.when), e.id
        for pattern in e.explains:
            assert any(fnmatchcase(f, pattern) for f in model), (e.id, pattern)
    with pytest.raises(ValidationError, match="duplicate rule ids: LEG-99"):
        DetectionConfig(explanations=(EXPLAINED, EXPLAINED))


def test_rows_the_models_did_not_score_get_no_model_contributions() -> None:
    """Model reasons only for scored rows: an inactive row (calls_7d 0) has a model part of
    0 and no model contributions, even when its features are far from the norm."""
    frame, y = seeded_frame()
    inactive = np.flatnonzero(y)[:3]
    calls = np.ones(frame.height)
    calls[inactive] = 0.0
    frame = frame.with_columns(pl.Series("calls_7d", calls))
    det = _ensemble().fit(frame)
    result = det.result(frame)
    assert (result.models[inactive] == 0).all() and not result.scored[inactive].any()
    contributions = det.model_contributions(frame)
    assert all(contributions[i] == [] for i in inactive)
    scored_outliers = np.setdiff1d(np.flatnonzero(y), inactive)
    assert all(contributions[i] for i in scored_outliers)
    # explain merges rules and models the same way: an inactive row keeps its rule reasons
    explained = det.explain(frame, top=8)
    assert all(all(c.rule_id for c in explained[i]) for i in inactive)
    assert any(explained[i] for i in inactive)


def test_explain_weights_and_sums_the_model_contributions_per_feature() -> None:
    """One merge: explain's model contributions are model_contributions' (weighted sum)."""
    frame, _ = seeded_frame()
    det = _ensemble().fit(frame)
    tail = frame.tail(N_OUTLIERS)
    merged = det.model_contributions(tail, top=5)
    explained = det.explain(tail, top=5)
    weights = det.config_.weights
    for i, row in enumerate(merged):
        by_model: dict[str, float] = {}
        for m in det.models:
            for c in m.explain(det.model_view(tail), top=5)[i]:
                by_model[c.feature] = (
                    by_model.get(c.feature, 0.0) + c.contribution * weights[m.name]
                )
        assert {c.feature: c.contribution for c in row} == pytest.approx(by_model)
        models_in_explain = [c for c in explained[i] if not c.rule_id]
        assert models_in_explain == [c for c in row if c in models_in_explain]


def _committed(rule_id: str) -> RuleConfig:
    return next(r for r in load_config().rules if r.id == rule_id)


def test_searching_added_to_an_existing_account_fires_acc_06_only_against_its_history() -> None:
    """ACC-06 reads the account against its own 28-day history: the same day of national
    adult searches fires for an account whose history was local work, not for one that
    always worked nationwide (a distance provider's), nor for a new account (NULL)."""
    frame = pl.DataFrame(
        {
            "org_id": ["A", "B", "C"],
            "user_name": ["stealth", "national", "new"],
            "calls_1d": [40.0, 40.0, 40.0],
            "out_region_share_1d": [0.45, 0.9, 0.9],
            "out_region_share_1d_hd": [0.35, 0.0, None],
            "out_region_share_1d_pz": [4.0, 6.0, 6.0],
            "search_share_1d_hd": [0.3, 0.02, None],
            "adult_share_1d": [0.9, 0.9, 0.9],
            "followed_so_far_7d": [0.2, 0.5, 0.0],
        }
    )
    rule = _committed("ACC-06")
    fired = RuleDetector(rules=[rule], level=Level.account).fit(frame).fired(frame)
    assert fired["ACC-06"].to_list() == [True, False, False]


def test_res_04_reads_closed_cohorts_and_leg_05_holds_for_lagged_follow_through() -> None:
    """A reseller's searched people are never followed up once their lag is over (RES-04);
    a distance-learning provider follows most up days later and sees them again (LEG-05
    holds, RES-04 does not fire). NULL cohorts (lag still open) fire nothing."""
    frame = pl.DataFrame(
        {
            "org_id": ["reseller", "distance", "open"],
            "calls_7d": [300.0, 900.0, 300.0],
            "lag_followthrough_7d": [0.02, 0.7, None],
            "never_seen_again_share_7d": [0.95, 0.15, None],
            "older_adult_share_7d": [0.8, 0.7, 0.8],
            "search_share_7d": [0.95, 0.8, 0.95],
            "lag_followthrough_28d": [0.03, 0.72, None],
            "never_seen_again_share_28d": [0.9, 0.12, None],
        }
    )
    fired = RuleDetector(rules=[_committed("RES-04")]).fit(frame).fired(frame)
    assert fired["RES-04"].to_list() == [True, False, False]
    leg = next(e for e in load_config().explanations if e.id == "LEG-05")
    assert holding(frame, [leg]) == {"distance": ["LEG-05"]}
    # only peer z-scores are explained: the account's change against its own history stays
    assert not any(fnmatchcase("out_region_share_1d_hd", p) for p in leg.explains)
    assert any(fnmatchcase("out_region_share_7d_pz", p) for p in leg.explains)
