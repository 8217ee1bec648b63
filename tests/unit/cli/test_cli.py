"""The command line, run as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import LRS_COLUMNS, TEST_KEY, lrs_row, write_csv

ACCESSWATCH = [sys.executable, "-m", "cli.app"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*ACCESSWATCH, *args], capture_output=True, text=True, env=full_env, timeout=900
    )


def test_config_show_masks_the_key_and_honours_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "aw.toml"
    toml.write_text(
        'home = "/from/toml"\nmax_bad_share = 0.2\npseudonym_key = "toml-key-0123456789abc"\n'
    )
    out = run("config", "show", "--config", str(toml), env={"ACCESSWATCH_HOME": "/from/env"})
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["home"] == "/from/env"  # env beats the file
    assert shown["max_bad_share"] == 0.2  # the file beats defaults
    assert shown["pseudonym_key"] == "********"
    assert "toml-key" not in out.stdout
    flagged = run("config", "show", "--config", str(toml), "--home", "/from/flag")
    assert json.loads(flagged.stdout)["home"] == "/from/flag"


def test_invalid_settings_are_a_clear_error(tmp_path: Path) -> None:
    out = run("config", "show", env={"ACCESSWATCH_MAX_BAD_SHARE": "7"})
    assert out.returncode == 2
    assert "max_bad_share" in out.stderr


def test_ingest_exits_1_and_names_the_refused_file(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    day = landing / "lrs" / "2026-03-02"
    write_csv(day / "ok.csv", [lrs_row("e1")], LRS_COLUMNS)
    write_csv(day / "drift.csv", [lrs_row("e2")], [c for c in LRS_COLUMNS if c != "channel"])
    env = {"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY}
    args = [
        "ingest",
        "--source",
        "lrs",
        "--all",
        "--home",
        str(tmp_path / "h"),
        "--landing",
        str(landing),
    ]
    out = run(*args, env=env)
    assert out.returncode == 1
    assert "refused lrs/2026-03-02/drift.csv" in out.stderr
    assert "missing required column(s): channel" in out.stderr
    assert "committed" in out.stdout


def test_ingest_without_a_key_says_how_to_set_one(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "lrs" / "2026-03-02" / "a.csv", [lrs_row("e1")], LRS_COLUMNS)
    out = run(
        "ingest",
        "--source",
        "lrs",
        "--day",
        "2026-03-02",
        "--home",
        str(tmp_path / "h"),
        "--landing",
        str(landing),
    )
    assert out.returncode == 2
    assert "ACCESSWATCH_PSEUDONYM_KEY" in out.stderr


def test_every_command_has_help_whose_paragraphs_reflow() -> None:
    from typer.main import get_command

    from cli.app import app

    group = get_command(app)
    commands = sorted(group.commands)  # type: ignore[attr-defined]
    assert {"backfill", "detect", "evaluate", "ingest", "nightly", "suspects"} <= set(commands)
    out = run("backfill", "--help", env={"COLUMNS": "100"})
    assert out.returncode == 0, out.stderr
    # The docstring's line breaks are not kept: a sentence is not cut mid-line.
    assert "meanwhile days are profiled" in " ".join(out.stdout.split())
    assert all(len(line) <= 100 for line in out.stdout.splitlines())
    for name in commands:
        shown = run(name, "--help")
        assert shown.returncode == 0, f"{name}: {shown.stderr}"
        assert shown.stdout.startswith("Usage: "), f"{name}: {shown.stdout[:200]}"


def test_alerts_settings_come_from_the_toml_section_and_nested_env_vars(tmp_path: Path) -> None:
    toml = tmp_path / "aw.toml"
    toml.write_text('max_bad_share = 0.2\n[alerts]\nmin_score = 50\nblock = "from-toml"\n')
    env = {"ACCESSWATCH_ALERTS__ENABLED": "true", "ACCESSWATCH_MAX_BAD_SHARE": "0.3"}
    out = run("config", "show", "--config", str(toml), env=env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["max_bad_share"] == 0.3  # the flat variables still work beside "__"
    assert shown["alerts"]["enabled"] is True  # env reaches into the section...
    assert shown["alerts"]["min_score"] == 50 and shown["alerts"]["block"] == "from-toml"
    assert shown["alerts"]["quiet_days"] == 7  # ...and the file's other keys and defaults stay
    bad = run("config", "show", env={"ACCESSWATCH_ALERTS__MIN_SEVERITY": "dire"})
    assert bad.returncode == 2 and "min_severity" in bad.stderr
    toml.write_text("[alerts]\nmin_scor = 50\n")  # a misspelt key is an error, not ignored
    typo = run("config", "show", "--config", str(toml))
    assert typo.returncode == 2 and "min_scor" in typo.stderr


def test_alerts_setup_without_a_prefect_server_exits_2_and_says_what_to_set() -> None:
    url = "https://hooks.example/T000/secret-token"
    out = run("alerts", "setup", "--webhook-url", url, env={"PREFECT_API_URL": ""})
    assert out.returncode == 2
    assert "PREFECT_API_URL is not set" in out.stderr
    assert "secret-token" not in out.stdout + out.stderr
    test = run("alerts", "test", env={"PREFECT_API_URL": ""})
    assert test.returncode == 2 and "PREFECT_API_URL is not set" in test.stderr


def test_alerts_preview_of_a_home_with_no_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    out = run("alerts", "preview", "--day", "2026-09-01", "--home", str(tmp_path / "none"))
    assert out.returncode == 2 and "no warehouse at" in out.stderr
