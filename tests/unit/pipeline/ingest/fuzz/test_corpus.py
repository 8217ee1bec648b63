"""The broken-delivery corpus (``corpus.py`` beside this file), through the real CLI and directly.

One CLI run ingests every case at once (one process, each case its own day folder); each case
is then checked against the ledger and the quarantine. The same files are also staged
directly with :func:`pipeline.ingest.deliveries.stage_delivery`, which pins what each case reads as
without the CLI (and covers the cases the CLI cannot print yet).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ingest.deliveries import delivery_days, stage_delivery, unexpected_entries
from schemas.settings import load_settings
from tests.unit.pipeline.ingest.fuzz.corpus import (
    CASES,
    KEY,
    Case,
    Run,
    build_landing,
    check,
    run_corpus,
    summary,
)

CLI_CASES = [c for c in CASES if c.cli]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_corpus(tmp_path_factory.mktemp("fuzz"), CLI_CASES)


def test_the_corpus_covers_at_least_40_kinds_of_broken_file() -> None:
    assert len(CASES) >= 40
    assert len({c.kind for c in CASES}) == len(CASES)


def test_the_cli_run_over_the_corpus_ends_cleanly(corpus_run: Run) -> None:
    """Exit 1 (some files are refused), never 2, and no traceback."""
    assert corpus_run.returncode == 1, corpus_run.stderr[-2000:]
    assert "Traceback" not in corpus_run.stdout + corpus_run.stderr
    # Every refused file is named on stderr (names with markup or escapes are printed by
    # cli/ingest.py, which escapes them: not checked here).
    for rel in corpus_run.ledger.filter(corpus_run.ledger["status"] == "refused")["source_file"]:
        if "[" not in rel and "\x1b" not in rel:
            assert f"refused {rel}" in corpus_run.stderr.replace("\n", "")


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.kind)
def test_each_case_through_the_cli(case: Case, corpus_run: Run) -> None:
    assert check(case, corpus_run) == []


def test_summary_table(corpus_run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    figures = summary(corpus_run, CLI_CASES)
    with capsys.disabled():
        print("\n" + "\n".join(f"| {k} | {v} |" for k, v in figures.items()))
    assert figures["tracebacks"] == 0
    assert figures["reconciliation failures"] == 0
    assert figures["rows lost"] == 0
    assert figures["kinds passing every check"] == figures["kinds tried"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
def test_each_case_staged_directly(case: Case, tmp_path: Path) -> None:
    landing, days = build_landing(tmp_path, [case])
    day = days[case.kind]
    if case.entry:
        assert day not in delivery_days(landing, "lrs")
        warnings = unexpected_entries(landing, "lrs")
        assert any(w.startswith(f"lrs/{case.entry} ") for w in warnings), warnings
        return
    settings = load_settings(home=tmp_path / "home", landing=landing, pseudonym_key=KEY)
    staged = stage_delivery(settings, "lrs", day, "run-1")
    by_name = {Path(f.rel).name: f for f in staged.files}
    e = case.expect
    if e.status == "absent":
        assert case.main not in by_name
        assert any(case.main in w for w in unexpected_entries(landing, "lrs"))
        return
    f = by_name[case.main]
    assert f.rel == f"lrs/{day.isoformat()}/{case.main}"  # the true name, as delivered
    if e.status == "refused":
        assert e.reason in f.refused and f.staged == []
    else:
        assert not f.refused, f.refused
        assert (f.rows_read, f.quarantined) == (e.rows, e.quarantined)
