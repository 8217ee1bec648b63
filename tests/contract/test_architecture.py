"""The folders import only downwards, as ``docs/architecture.md`` draws them.

Each test reads the source with :mod:`ast` (no import side effects) and fails naming the
file, the line and the import that breaks the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PIPELINE_STAGES = ("store", "ingest", "profile", "triage", "rank", "outputs", "plan")

ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "detectors": {"schemas"},
    "pipeline.store": {"schemas"},
    "pipeline.ingest": {"schemas", "pipeline.store"},
    "pipeline.profile": {"schemas", "detectors", "pipeline.store"},
    "pipeline.triage": {"schemas", "detectors", "pipeline.store"},
    "pipeline.rank": {
        "schemas", "detectors", "pipeline.store", "pipeline.profile", "pipeline.triage",
    },
    "pipeline.outputs": {
        "schemas", "detectors", "pipeline.store", "pipeline.ingest", "pipeline.profile",
        "pipeline.triage", "pipeline.rank",
    },
    "pipeline.plan": {"schemas", "detectors", *(f"pipeline.{s}" for s in PIPELINE_STAGES)},
    "evaluation": {"schemas", "detectors", *(f"pipeline.{s}" for s in PIPELINE_STAGES)},
    "flows": {"schemas", "detectors", *(f"pipeline.{s}" for s in PIPELINE_STAGES)},
    "cli": {
        "schemas", "detectors", "evaluation", "flows",
        *(f"pipeline.{s}" for s in PIPELINE_STAGES),
    },
}  # fmt: skip
"""Which of our folders each folder may import (its own modules aside)."""

ORCHESTRATION = ("prefect", "prefect_dask", "dask", "distributed", "typer", "click")
"""Libraries only ``flows/`` and ``cli/`` may import: logic never depends on them."""


def _unit(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[0] == "pipeline" and len(parts) > 2:
        return f"pipeline.{parts[1]}"
    return parts[0]


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "pipeline" and len(parts) > 1:
        return f"pipeline.{parts[1]}"
    return parts[0] if parts[0] in ALLOWED else None


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def _sources() -> list[Path]:
    roots = [REPO / r for r in ("schemas", "detectors", "pipeline", "evaluation", "flows", "cli")]
    return sorted(p for r in roots if r.exists() for p in r.rglob("*.py"))


def test_every_source_folder_has_a_rule() -> None:
    units = {_unit(p) for p in _sources()} - {"pipeline"}
    assert units <= set(ALLOWED), f"folders with no import rule: {sorted(units - set(ALLOWED))}"
    assert "cli" in units, "the CLI is its own package"


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_a_folder_imports_only_the_folders_below_it(unit: str) -> None:
    broken = []
    for path in _sources():
        if _unit(path) != unit:
            continue
        for line, module in _imports(path):
            target = _target(module)
            if target is None or target == unit:
                continue
            if target not in ALLOWED[unit]:
                broken.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("unit", sorted(set(ALLOWED) - {"flows", "cli"}))
def test_logic_never_imports_the_orchestration_libraries(unit: str) -> None:
    broken = [
        f"{path.relative_to(REPO)}:{line}: imports {module}"
        for path in _sources()
        if _unit(path) == unit
        for line, module in _imports(path)
        if module.split(".")[0] in ORCHESTRATION
    ]
    assert not broken, "\n".join(broken)
