"""The registered detector kinds, and the ensemble built from the configuration.

A kind is a name, a detector class and how its constructor settings come from the
configuration. :data:`MODEL_DETECTORS` are the model detectors an ensemble can use: the
ensemble uses those named in ``[ensemble] weights`` of ``detectors/rules.toml`` (default
``iforest`` and ``ecod``), each with its section of ``[models]``. :data:`BASELINES` are the
detectors ``accesswatch evaluate`` judges beside the ranking, set by
:class:`schemas.evaluation.EvaluationConfig`. :data:`REGISTRY` holds both (the contract test
runs over it).

A new model detector is a :class:`~detectors.base.Detector` taking ``features`` and
``directions``, a settings section in :class:`schemas.detection.ModelConfig`, and an entry
here; ranking, the stored scores and the reports read it by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from detectors.base import Detector
from detectors.baselines import RawIsolationForestDetector, VolumeAlarmDetector
from detectors.ensemble import EnsembleDetector
from detectors.explanations import model_view
from detectors.models import EcodDetector, IsolationForestDetector
from detectors.rules import RuleDetector, plain_format
from schemas.detection import DetectionConfig, Level, ModelConfig
from schemas.evaluation import EvaluationConfig
from schemas.features import ACCOUNT_FEATURE_MAP, FEATURES, model_features

C = TypeVar("C", bound=BaseModel)


@dataclass(frozen=True)
class DetectorKind(Generic[C]):
    """A detector class and how its settings come from a configuration of type ``C``."""

    name: str
    cls: Callable[..., Detector]
    settings: Callable[[C], dict[str, Any]]
    """Constructor keyword arguments from the configuration."""
    label: Callable[[C], str]
    """How reports name the detector with its settings."""

    def build(self, config: C, **inputs: Any) -> Detector:
        """The detector with its configured settings (``inputs``: e.g. the features)."""
        return self.cls(**inputs, **self.settings(config))


_MODELS: tuple[DetectorKind[ModelConfig], ...] = (
    DetectorKind(
        name="iforest",
        cls=IsolationForestDetector,
        settings=lambda m: {"seed": m.seed, **m.iforest.model_dump()},
        label=lambda m: f"isolation forest ({m.iforest.n_estimators} trees)",
    ),
    DetectorKind(
        name="ecod",
        cls=EcodDetector,
        settings=lambda m: m.ecod.model_dump(),
        label=lambda m: "ECOD",
    ),
)
MODEL_DETECTORS: dict[str, DetectorKind[ModelConfig]] = {k.name: k for k in _MODELS}

_BASELINES: tuple[DetectorKind[EvaluationConfig], ...] = (
    DetectorKind(
        name="volume_alarm",
        cls=VolumeAlarmDetector,
        settings=lambda e: {
            "multiple": e.volume_multiple,
            "history_days": e.volume_history_days,
        },
        label=lambda e: "volume alarm",
    ),
    DetectorKind(
        name="raw_iforest",
        cls=RawIsolationForestDetector,
        settings=lambda e: {"n_estimators": e.iforest_estimators, "seed": e.iforest_seed},
        label=lambda e: "raw isolation forest",
    ),
)
BASELINES: dict[str, DetectorKind[EvaluationConfig]] = {k.name: k for k in _BASELINES}

REGISTRY: dict[str, DetectorKind[Any]] = {**MODEL_DETECTORS, **BASELINES}


def configured_models(cfg: DetectionConfig) -> list[DetectorKind[ModelConfig]]:
    """The model detector kinds the ensemble uses, in the order of ``ensemble.weights``.

    Raises ``KeyError`` for a weight naming no registered model detector (a misspelt name
    must not silently leave a detector out)."""
    unknown = [n for n in cfg.ensemble.weights if n not in MODEL_DETECTORS]
    if unknown:
        raise KeyError(
            f"ensemble weights name unknown detectors: {', '.join(unknown)} "
            f"(registered: {', '.join(MODEL_DETECTORS)})"
        )
    return [MODEL_DETECTORS[n] for n in cfg.ensemble.weights]


def _directions(level: Level) -> dict[str, int]:
    registry = FEATURES if level is Level.org else ACCOUNT_FEATURE_MAP
    return {name: f.direction for name, f in registry.items()}


def build_ensemble(
    cfg: DetectionConfig,
    level: Level,
    columns: Sequence[str],
    explained: Mapping[str, Sequence[str]] | None = None,
    formatter: Callable[[str, float], str] = plain_format,
) -> EnsembleDetector:
    """The detectors for one level: the rules and the configured model detectors, reading
    the configured (or default) model features that ``columns`` has.

    ``explained`` (org_id -> explanation ids, see :func:`detectors.explanations.holding`)
    makes the models see those orgs' explained features at the peer norm; ``formatter``
    words feature values in rule messages."""
    chosen = cfg.models.org_features if level is Level.org else cfg.models.account_features
    feats = list(chosen) if chosen else model_features(level.value)
    feats = [f for f in feats if f in columns]
    directions = _directions(level)
    models = [
        k.build(cfg.models, features=feats, directions=directions) for k in configured_models(cfg)
    ]
    return EnsembleDetector(
        rules=RuleDetector(
            rules=cfg.rules, level=level, ensemble=cfg.ensemble, formatter=formatter
        ),
        models=models if feats else [],
        config=cfg.ensemble,
        active=cfg.models.active_feature,
        min_fit_rows=cfg.models.min_fit_rows,
        view=model_view(explained, cfg.explanations, directions, feats) if explained else None,
    )
