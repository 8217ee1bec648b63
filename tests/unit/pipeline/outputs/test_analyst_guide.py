"""docs/analyst-guide.md stays true to the code: its rule table is the one generated from
the rule config, every rule is named, and every picture it shows exists."""

from __future__ import annotations

import re

import pytest

from detectors.rules import load_config
from pipeline.outputs.guide import BEGIN, END, GUIDE, render, rule_table
from schemas.detection import DetectionConfig


def test_every_rule_id_of_the_config_is_in_the_guide() -> None:
    text = GUIDE.read_text()
    ids = [r.id for r in load_config().rules]
    assert ids
    missing = [i for i in ids if f"`{i}`" not in text]
    assert not missing, f"rules missing from {GUIDE.name}: {missing}"


def test_the_rule_table_is_the_generated_one() -> None:
    text = GUIDE.read_text()
    assert render(text) == text, "the rule table is stale: run `python -m pipeline.outputs.guide`"


def test_the_table_shows_every_condition_guard_and_hard_fact() -> None:
    """Generated from literal rules: conditions, guards, level and hard facts all appear."""
    cfg = DetectionConfig.model_validate(
        {
            "rules": [
                {"id": "ENT-01", "description": "calls while revoked", "severity": "critical",
                 "feature": "calls_while_inactive_7d", "operator": ">=", "threshold": 1,
                 "hard_fact": True},
                {"id": "HRS-01", "description": "night use far above peers", "severity": "low",
                 "level": "account", "feature": "night_share_7d", "operator": ">=",
                 "threshold": 0.15, "min_peer_z": 5, "min_volume": 20, "evidence": "out_of_hours",
                 "also": [{"feature": "calls_1d", "operator": ">", "threshold": 2}]},
            ]
        }
    )  # fmt: skip
    table = rule_table(cfg)
    assert "| `ENT-01` | critical, hard fact (score >= 90) | org |" in table
    hrs = next(line for line in table.splitlines() if "`HRS-01`" in line)
    parts = [
        "| low | account |",
        "`night_share_7d >= 0.15`",
        "`calls_1d > 2`",
        "`night_share_7d_pz >= 5`",
        "`calls_7d >= 20`",
        "calls out of office hours",
    ]
    for part in parts:
        assert part in hrs


def test_render_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        render("# a guide without a table\n")
    assert render(f"x\n{BEGIN}\nold\n{END}\ny\n").startswith(f"x\n{BEGIN}\n| rule |")


def test_every_picture_the_guide_shows_exists() -> None:
    text = GUIDE.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "img/report.png" in pictures and "img/triage_timeline.png" in pictures
    missing = [p for p in pictures if not (GUIDE.parent / p).is_file()]
    assert not missing, f"pictures missing under docs/: {missing}"
