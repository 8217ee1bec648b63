"""The transparency page and a learner's access-history letter in a real headless browser:
no console error, no request but the file itself, no script; charts drawn.

Reuses the ``chromium`` and ``browser`` fixtures of the report's browser tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_KEY, SampleRun
from tests.unit.cli.test_cli import run
from tests.unit.pipeline.outputs.test_access_history import reseller_searched_learner
from tests.unit.pipeline.outputs.test_report import _open, _screenshot, browser, chromium

__all__ = ["browser", "chromium"]  # fixtures, used by name


def _self_contained(driver: Any, path: Path) -> None:
    console, urls = _open(driver, path)
    assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == []
    assert urls == [path.resolve().as_uri()]
    dom = driver.execute_script(
        "return {scripts: document.scripts.length, images: document.images.length,"
        " handlers: [...document.querySelectorAll('*')].filter(el => [...el.attributes]"
        "   .some(a => a.name.startsWith('on'))).length}"
    )
    assert dom == {"scripts": 0, "images": 0, "handlers": 0}


@pytest.mark.slow
def test_transparency_page_and_letter_open_offline(
    sample_home: SampleRun, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "t"
    done = run("transparency", "--month", "2026-09", "--out", str(out),
               "--home", str(sample_home.home))  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out / "2026-09-transparency.html"
    _self_contained(browser, page)
    charts = int(browser.execute_script("return document.querySelectorAll('svg.chart').length"))
    tables = int(browser.execute_script("return document.querySelectorAll('section.table').length"))
    assert charts == tables >= 4
    _screenshot(browser, "transparency-sample.png")

    home = tmp_path / "home"
    shutil.copytree(sample_home.home, home)
    _, event = reseller_searched_learner()
    letter = run("access-history", "--uln", str(event["uln"]), "--format", "html",
                 "--home", str(home), env={"ACCESSWATCH_PSEUDONYM_KEY": TEST_KEY})  # fmt: skip
    assert letter.returncode == 0, letter.stderr
    path = tmp_path / "letter.html"
    path.write_text(letter.stdout, encoding="utf-8")
    _self_contained(browser, path)
    rows = int(
        browser.execute_script("return document.querySelectorAll('table.accesses tbody tr').length")
    )
    assert rows >= 1
    _screenshot(browser, "access-history-letter.png")
