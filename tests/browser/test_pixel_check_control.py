"""Negative control: the canvas check cannot pass without WebGL.

The same nglview notebook as ``test_nglview_frontend``, in a Chromium launched with
``--disable-3d-apis``: NGL gets no WebGL context, and the colour count of the view stays
far below the threshold the other tests require. If this test failed, the pixel check
would be measuring something other than rendering.
"""
from __future__ import annotations

import pytest

#: Outer bound (the waits inside are bounded too); a hung browser or kernel fails the test.
pytestmark = pytest.mark.timeout(600)

CHECK_NOTEBOOK = "checks/nglview_check.ipynb"
#: Enough for NGL to draw, were it able to (with WebGL it draws within about a second).
NO_WEBGL_WAIT_S = 8.0


@pytest.mark.slow
def test_canvas_check_fails_without_webgl(no_webgl_notebook_page):
    nb = no_webgl_notebook_page.open(CHECK_NOTEBOOK, ui="lab")
    webgl = nb.page.evaluate("() => !!document.createElement('canvas').getContext('webgl')")
    assert webgl is False, "--disable-3d-apis did not disable WebGL; the control is void"
    nb.run_all()
    nb.wait_for_all_cells()
    if nb.page.locator(f"{nb.NOTEBOOK} .mdllm-check-allatom canvas").count() == 0:
        n = 0   # NGL gave up before making a canvas: nothing drawn
    else:
        n = nb.canvas_colours(".mdllm-check-allatom", "control-no-webgl-allatom", timeout_s=NO_WEBGL_WAIT_S)
    nb.screenshot("control-no-webgl-page")
    assert n <= nb.min_colours, f"{n} colours without WebGL: the pixel check does not prove rendering"
