"""The analyst notebooks: each runs without error in a real Jupyter kernel (this venv's
Python) against the sample home, stays in sync with its jupytext text pair, and is committed
without outputs. Executed copies and their plots are kept in test-artifacts/notebooks/."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import pytest

from tests.conftest import REPO, SAMPLE, TEST_KEY, SampleRun
from tests.contract.test_privacy import assert_no_personal_data, personal_values

NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "notebooks"
NOTEBOOK_SECONDS = 60
"""Target run time of each notebook on an idle 2-core machine (the test allows twice that,
so a busy machine does not fail it; the measured times are written beside the copies)."""
PAIRS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_has_its_text_pair() -> None:
    assert PAIRS, "no notebooks found"
    texts = sorted(NOTEBOOKS.glob("*.py"))
    assert [p.stem for p in PAIRS] == [p.stem for p in texts]


@pytest.mark.parametrize("ipynb", PAIRS, ids=lambda p: p.stem)
def test_the_notebook_and_its_py_percent_pair_are_in_sync(ipynb: Path) -> None:
    """Edit either and run ``jupytext --sync notebooks/<name>.py`` before committing."""
    text = ipynb.with_suffix(".py")
    assert "format_name: percent" in text.read_text()
    assert _cells(jupytext.read(ipynb)) == _cells(jupytext.read(text)), (
        f"{ipynb.name} and {text.name} differ: run `jupytext --sync {text}`"
    )


@pytest.mark.parametrize("ipynb", PAIRS, ids=lambda p: p.stem)
def test_the_notebook_is_committed_clean_with_a_parameters_cell(ipynb: Path) -> None:
    nb = nbformat.read(ipynb, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs or c.execution_count for c in code), "commit without outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert nb.metadata.kernelspec.name == "python3"


@pytest.fixture(scope="module")
def kernel_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Path:
    """A ``python3`` kernel spec that runs this venv's Python, found before any user-level
    or system one (``JUPYTER_PATH`` comes first), and private IPython / Jupyter folders: no
    network, no user install, no writes to the home folder."""
    from jupyter_client.kernelspec import KernelSpecManager

    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "accesswatch venv",
                "language": "python",
            }
        )
    )
    for name, value in {
        "JUPYTER_PATH": str(root),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "IPYTHONDIR": str(root / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLCONFIGDIR": str(root / "matplotlib"),
    }.items():
        monkeypatch_module.setenv(name, value)
    resolved = KernelSpecManager().get_kernel_spec("python3")
    assert resolved.argv[0] == sys.executable
    assert Path(sys.executable).is_relative_to(sys.prefix) and sys.prefix != sys.base_prefix
    return root


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def notebook_home(sample_home: SampleRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample home with one verdict recorded, so the triage notebook shows a
    verdict history."""
    from pipeline.triage.verdicts import record
    from schemas.settings import load_settings

    home = tmp_path_factory.mktemp("notebooks") / "home"
    shutil.copytree(sample_home.home, home)
    settings = load_settings(home=home, pseudonym_key=TEST_KEY)
    record(settings, "ORG00050", "needs_info", "asked the provider for its contracts", "ana")
    return home


@pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet")
@pytest.mark.parametrize("ipynb", PAIRS, ids=lambda p: p.stem)
def test_the_notebook_runs_against_the_sample_in_a_real_kernel(
    ipynb: Path, kernel_env: Path, notebook_home: Path
) -> None:
    import papermill

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / ipynb.name
    parameters = {"home": str(notebook_home), "img_dir": str(ARTIFACTS / "img")}
    if ipynb.stem == "01_triage":
        parameters["org"] = "ORG00050"  # the reseller: rules, reasons, events and a verdict
    started = time.monotonic()
    papermill.execute_notebook(
        str(ipynb),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        execution_timeout=2 * NOTEBOOK_SECONDS,
    )
    seconds = time.monotonic() - started
    timings = ARTIFACTS / "durations.json"
    known = json.loads(timings.read_text()) if timings.exists() else {}
    timings.write_text(json.dumps({**known, ipynb.stem: round(seconds, 1)}, indent=2))
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "image/png" in text, "no plot was drawn"
    if ipynb.stem == "01_triage":
        # the kernel is this venv's Python, and the verdict recorded above is shown
        assert f"({sys.executable})" in text
        assert "asked the provider for its contracts" in text
    assert seconds < 2 * NOTEBOOK_SECONDS, f"{ipynb.name} took {seconds:.0f} s"


@pytest.mark.skipif(not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet")
def test_executed_notebooks_show_no_personal_data(notebook_home: Path) -> None:
    """The triage notebook prints events: only pseudonyms, never a ULN, birth date or postcode."""
    executed = [ARTIFACTS / p.name for p in PAIRS]
    if not all(p.exists() for p in executed):
        pytest.skip("run the notebook tests first (they write test-artifacts/notebooks/)")
    assert_no_personal_data(ARTIFACTS, personal_values(SAMPLE / "landing"))
