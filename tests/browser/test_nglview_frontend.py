"""nglview draws in a real browser, in JupyterLab 4 and in Notebook 7.

nglview 4.0.1 (the current release) ships a 3.1.5 front end while its Python side asks
for 4.0, so every view shows a JavaScript error instead of the protein (nglview #1172,
#1181); the project pins a release whose two halves agree. These tests prove the pin
where it matters: the canvas of an all-atom crystal and of a Calpha-only trace (the
tokenizer's frames) has many distinct colours.
"""
from __future__ import annotations

import pytest

#: Outer bound (the waits inside are bounded too); a hung browser or kernel fails the test.
pytestmark = pytest.mark.timeout(600)

CHECK_NOTEBOOK = "checks/nglview_check.ipynb"


@pytest.mark.slow
@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_nglview_renders_allatom_and_calpha(notebook_page, ui):
    nb = notebook_page.open(CHECK_NOTEBOOK, ui=ui)
    nb.run_all()
    nb.wait_for_all_cells()
    assert nb.error_texts() == []
    n_allatom = nb.canvas_colours(".mdllm-check-allatom", f"nglview-{ui}-allatom")
    n_ca = nb.canvas_colours(".mdllm-check-ca", f"nglview-{ui}-calpha")
    nb.screenshot(f"nglview-{ui}-page", readme=True)
    assert n_allatom > nb.min_colours, f"all-atom view blank: {n_allatom} colours"
    assert n_ca > nb.min_colours, f"Calpha view blank: {n_ca} colours"
