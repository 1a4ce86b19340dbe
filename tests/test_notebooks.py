"""Every notebook in ``tutorials/`` and ``notebooks/``: executed top to bottom, and committed clean.

Execution
    Each notebook found by glob runs on a fresh ``python3`` kernel (the one
    ``make install-dev`` installs into the venv) through nbclient, with the
    notebook's own folder as working directory and ``MDLLM_QUICK=1`` in the
    kernel's environment, so the notebook picks its small settings (the same
    notebook, not a CI copy). Files the notebooks write go to a temporary
    folder through ``MDLLM_NOTEBOOK_OUT`` (the test fails if a notebook
    creates files next to itself); ``HF_HUB_OFFLINE=1`` makes any attempt
    to download a model fail. A new notebook is picked up automatically.

Cleanliness
    Committed notebooks carry no outputs, no execution counts, no saved
    widget state and no timing metadata, and name the ``python3`` kernel.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
#: Folders whose ``*.ipynb`` files are executed and checked.
NOTEBOOK_DIRS: tuple[str, ...] = ("tutorials", "notebooks")
#: Kernel every notebook names and runs on (``make install-dev`` installs the venv's kernel under it).
KERNEL_NAME = "python3"
#: Upper bound for one notebook in quick mode (the whole suite should stay under ~10 minutes on 2 cores).
NOTEBOOK_TIMEOUT_S = 600
#: Upper bound for one cell; a hung kernel fails the test instead of blocking CI.
CELL_TIMEOUT_S = 480
#: The numbered tutorials the README promises.
TUTORIAL_COUNT = 6

NOTEBOOKS = sorted(p for d in NOTEBOOK_DIRS for p in (REPO / d).glob("*.ipynb"))
IDS = [str(p.relative_to(REPO)) for p in NOTEBOOKS]


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _tree(folder: Path) -> set[Path]:
    """Paths below ``folder``, without Python and Jupyter caches."""
    return {p.relative_to(folder) for p in folder.rglob("*")
            if "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


@pytest.mark.slow
@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    # the kernel inherits this process's environment
    monkeypatch.setenv("MDLLM_QUICK", "1")
    monkeypatch.setenv("MDLLM_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT_S, allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    before = _tree(path.parent)
    client.execute()  # raises CellExecutionError, with the cell's traceback, on the first failing cell
    # everything a notebook writes goes under MDLLM_NOTEBOOK_OUT, never into the repository
    assert _tree(path.parent) == before, f"{path.name} created or removed files next to itself"
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    assert all(cell.execution_count is not None for cell in cells), "every code cell must have run"
    errors = [out for cell in cells for out in cell.outputs if out.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == KERNEL_NAME, f"{path.name}: kernelspec name must be {KERNEL_NAME!r}"
    assert spec.get("language") == "python" and spec.get("display_name"), f"{path.name}: incomplete kernelspec"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state; clear it before committing"
    for i, cell in enumerate(_code_cells(nb)):
        where = f"{path.name}, code cell {i}"
        assert cell.outputs == [], f"{where} has outputs; strip them before committing"
        assert cell.execution_count is None, f"{where} has an execution count; strip it before committing"
        assert "execution" not in cell.metadata, f"{where} has timing metadata"


def test_numbered_tutorials_exist_and_pick_quick_settings() -> None:
    tutorials = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.ipynb"))
    assert [p.name[:2] for p in tutorials] == [f"{i:02d}" for i in range(1, TUTORIAL_COUNT + 1)]
    for path in [*tutorials, REPO / "notebooks" / "benchmarks.ipynb"]:
        nb = nbformat.read(path, as_version=4)
        sources = [cell.source for cell in _code_cells(nb)]
        # the parameters cell near the top reads the environment variable the CI run sets
        assert any('os.environ.get("MDLLM_QUICK") == "1"' in s for s in sources[:3]), path.name


def _builder():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_notebooks", REPO / "tutorials" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percent_sources_become_markdown_and_code_cells() -> None:
    cells = _builder().parse_percent(
        "preamble is ignored\n# %% [markdown]\n# # Title\n#\n# text *here*\n\n# %%\nx = 1\n\nprint(x)\n# %%\n\n"
    )
    assert [(c.cell_type, c.source) for c in cells] == [("markdown", "# Title\n\ntext *here*"),
                                                        ("code", "x = 1\n\nprint(x)")]


def test_committed_notebooks_match_their_sources(capsys: pytest.CaptureFixture[str]) -> None:
    # the .ipynb files are generated from tutorials/src/; editing only one of the two is a mistake
    assert _builder().main(["--check"]) == 0, capsys.readouterr().err
