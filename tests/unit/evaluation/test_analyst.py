"""The simulated analyst on a tiny generated world (220 orgs, 14 days; about 45 s): with no
verdicts its figures are ``evaluate``'s budget view of our scores, budgets are kept, the
home's triage folder is never touched, and the CLI writes Markdown and JSON that
``evaluate-analyst-summary`` reads."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from evaluation.analyst import method_name, seen_ranking, simulate, true_verdict
from evaluation.evaluate import (
    accesswatch_scores,
    active_days,
    budget_figures,
    budget_view,
    from_first_activity,
    read_truth,
)
from evaluation.generate import generate_world
from evaluation.run import run_landing
from schemas.detection import Suspect
from schemas.evaluation import EvaluationConfig
from schemas.generate import WorldConfig
from schemas.settings import Settings, load_settings
from schemas.triage import Verdict
from tests.conftest import TEST_KEY
from tests.unit.cli.test_cli import run

D1, D2 = date(2026, 9, 1), date(2026, 9, 2)


def test_the_true_verdict_is_misuse_only_inside_the_labelled_period() -> None:
    labels = pl.DataFrame({"org_id": ["bad"], "start_date": [D2], "end_date": [D2]})
    assert true_verdict(labels, "bad", D2) is Verdict.misuse
    assert true_verdict(labels, "bad", D1) is Verdict.legitimate  # before its onset
    assert true_verdict(labels, "other", D2) is Verdict.legitimate


def test_the_seen_ranking_pins_hides_and_keeps_unlisted_orgs_below() -> None:
    def row(org: str, score: float, status: str = "new", pinned: bool = False) -> Suspect:
        return Suspect(rank=1, org_id=org, org_name=org, org_type="x", score=score,
                       first_flagged=D1, triage_status=status, pinned=pinned)  # fmt: skip

    rows = [row("pin", 10.0, "misuse", True), row("a", 50.0), row("gone", 60.0, "legitimate")]
    stored = pl.DataFrame(
        {"org_id": ["pin", "a", "gone", "b", "hid"], "score": [10.0, 50.0, 60.0, 5.0, 4.0]}
    )
    seen = seen_ranking(rows, stored, {"gone", "hid"}, D1)
    assert dict(zip(seen["org_id"], seen["score"], strict=True)) == {
        "pin": 1010.0, "a": 50.0, "b": 5.0
    }  # fmt: skip
    assert set(seen["day"]) == {D1}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    root = tmp_path_factory.mktemp("analyst")
    config = WorldConfig(orgs=220, days=14, start=date(2026, 8, 24), seed=11, volume_scale=0.2)
    generate_world(root / "world", config)
    s = load_settings(home=root / "home", landing=root / "world" / "landing",
                      pseudonym_key=TEST_KEY)  # fmt: skip
    run_landing(s)
    return s, root / "world" / "truth" / "labels.csv"


def test_no_verdicts_is_evaluates_budget_view_and_budgets_are_kept(
    evaluated: tuple[Settings, Path],
) -> None:
    s, labels_file = evaluated
    runs = simulate(labels_file, s, [0, 5])
    assert [r.result.method for r in runs] == [
        method_name(0, True), "5 verdicts, learning", "5 verdicts, hide/pin only"
    ]  # fmt: skip
    labels, decoys = read_truth(labels_file)
    ours = accesswatch_scores(s)
    days = ours["day"]
    acting = from_first_activity(labels, active_days(s, days.min(), days.max()))  # type: ignore[arg-type]
    plain = budget_view(ours, acting, decoys, EvaluationConfig())
    assert runs[0].result.budget == plain and runs[0].verdicts == 0
    assert all(r.verdicts <= r.budget for r in runs)
    assert runs[1].verdicts == 5
    assert not (s.home / "triage").exists()  # verdicts were kept in memory


def test_the_cli_writes_markdown_and_json_and_the_summary_reads_them(
    evaluated: tuple[Settings, Path], tmp_path: Path
) -> None:
    s, labels_file = evaluated
    report = tmp_path / "a.md"
    out = run("evaluate-analyst", "--labels", str(labels_file), "--home", str(s.home),
              "--verdicts", "0,3", "--report", str(report))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "3 verdicts, learning" in out.stdout and "decoy-days" in out.stdout
    assert "| 3 verdicts, hide/pin only |" in report.read_text()
    payload = json.loads(report.with_suffix(".json").read_text())
    assert [v["given"] for v in payload["verdicts"]] == [0, 3, 3]
    assert budget_figures_of(payload)  # the methods read back as evaluate's results
    summary = run("evaluate-analyst-summary", str(report.with_suffix(".json")),
                  str(report.with_suffix(".json")))  # fmt: skip
    assert summary.returncode == 0, summary.stderr
    assert "3 verdicts, learning" in summary.stdout and "recall@10" in summary.stdout
    bad = run("evaluate-analyst", "--labels", str(labels_file), "--home", str(s.home),
              "--verdicts", "5,x", "--report", str(report))  # fmt: skip
    assert bad.returncode == 2 and "--verdicts" in bad.stderr


def budget_figures_of(payload: dict[str, object]) -> list[dict[str, float | None]]:
    from schemas.evaluation import MethodResult

    methods = payload["methods"]
    assert isinstance(methods, list)
    return [budget_figures(MethodResult.model_validate(m)) for m in methods]
