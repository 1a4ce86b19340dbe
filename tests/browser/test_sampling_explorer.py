"""The sampling explorer notebook, run in JupyterLab in headless Chromium.

Run All Cells trains a quick model (``MDLLM_QUICK=1``), shows ``mk.viz.SamplingExplorer``
and samples once from code. The test then checks what a user sees: the nglview canvas
is drawn (many distinct colours), the plotly state map shows the generated points; it
moves the *frames* slider with the keyboard, presses *Generate*, and checks that the new
run's frames appear on the map, in the status line and in the 3D view's frame count.

Selectors used (all from the explorer's widget descriptions, no test-only hooks):
the output holding the button named "Generate"; in it the slider labelled "frames",
the status line (the ``.widget-html`` starting with "Done:"), the plotly graph
(``.js-plotly-plot``; traces with ``meta == "generated"``, points ``.scatterlayer .point``),
and nglview's element (``.ui-resizable``: its canvas and its frame slider).
"""
from __future__ import annotations

import re
import time

import pytest

#: Outer bound (the waits inside are bounded too); a hung browser or kernel fails the test.
pytestmark = pytest.mark.timeout(600)

EXPLORER_NOTEBOOK = "notebooks/sampling_explorer.ipynb"
#: Walkers in the notebook's quick settings (MDLLM_QUICK=1) and frames of its first run.
QUICK_WALKERS, QUICK_FRAMES = 2, 3
#: Bounded wait for the second run (a handful of frames of an untrained model on a loaded CPU).
GENERATE_TIMEOUT_S = 180.0

# In-page probes. Plotly keeps the traces it drew on the graph div (gd.data).
GENERATED_POINTS_JS = """(out) => {
    const gd = out.querySelector('.js-plotly-plot');
    if (!gd || !gd.data) return -1;
    return gd.data.filter(t => t.meta === 'generated').reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
}"""
# SVG markers drawn for the generated traces (plotly binds each trace's data to its <g class="trace">).
RENDERED_POINTS_JS = """(out) => Array.from(out.querySelectorAll('.js-plotly-plot .scatterlayer .trace'))
    .filter(g => g.__data__ && g.__data__[0] && g.__data__[0].trace.meta === 'generated')
    .reduce((n, g) => n + g.querySelectorAll('.point').length, 0)"""
# The closest-approach plot below the map: points per reference line (one per step of the run).
APPROACH_POINTS_JS = """(out) => { const plots = out.querySelectorAll('.js-plotly-plot');
    if (plots.length < 2 || !plots[1].data) return null; return plots[1].data.map(t => t.x ? t.x.length : 0); }"""
# The map is a real size on screen and its generated markers are inside it.
MAP_VISIBLE_JS = """(out) => { const gd = out.querySelector('.js-plotly-plot'); const r = gd.getBoundingClientRect();
    const pts = Array.from(gd.querySelectorAll('.scatterlayer .point')).map(p => p.getBoundingClientRect());
    return r.width > 300 && r.height > 200 && pts.length > 0 && pts.every(p =>
        p.width > 0 && p.left >= r.left && p.right <= r.right && p.top >= r.top && p.bottom <= r.bottom); }"""
STATUS_JS = """(out) => { const h = Array.from(out.querySelectorAll('.widget-html')).map(e => e.innerText);
                          return h.find(t => /^(Done|Stopped|Sampling|Cannot|Set the)/.test(t)) || ''; }"""
# nglview's player slider runs from frame 0 to the last frame of its trajectory.
VIEW_FRAMES_JS = """(out) => { const h = out.querySelector('.ui-resizable .noUi-handle');
                               return h ? Math.round(Number(h.getAttribute('aria-valuemax'))) + 1 : -1; }"""


@pytest.mark.slow
def test_explorer_renders_and_generates_new_frames(notebook_page):
    from playwright.sync_api import expect  # after the fixture, which explains a missing Playwright

    nb = notebook_page.open(EXPLORER_NOTEBOOK, ui="lab")
    page = nb.page
    nb.run_all()
    seconds = nb.wait_for_all_cells()
    assert nb.error_texts() == []

    out = page.locator(f"{nb.NOTEBOOK} .jp-OutputArea-output", has=page.get_by_role("button", name="Generate"))
    assert out.count() == 1, "the explorer's widget (with its Generate button) is not shown"
    handle = out.element_handle()

    # The 3D view draws the generated frames: a rendered scene, not a blank canvas.
    n_colours = nb.canvas_colours(".jp-OutputArea-output .ui-resizable", "explorer-view")
    assert n_colours > nb.min_colours, f"nglview canvas blank: {n_colours} colours"

    # The map shows the first run (from the notebook's code cell): every point drawn.
    first = QUICK_FRAMES * QUICK_WALKERS
    assert page.evaluate(GENERATED_POINTS_JS, handle) == first
    assert page.evaluate(RENDERED_POINTS_JS, handle) == first
    assert page.evaluate(APPROACH_POINTS_JS, handle) == [QUICK_FRAMES, QUICK_FRAMES]  # closed and open
    plot = out.locator(".js-plotly-plot").first  # the state map (the closest-approach plot follows it)
    plot.scroll_into_view_if_needed()
    assert page.evaluate(MAP_VISIBLE_JS, handle), "the state map is not drawn at a visible size"
    assert page.evaluate(STATUS_JS, handle).startswith(f"Done: {QUICK_FRAMES} frames x {QUICK_WALKERS} walkers")
    assert page.evaluate(VIEW_FRAMES_JS, handle) == first
    nb.screenshot("explorer-after-run-all")

    # Move the "frames" slider one step with the keyboard, as a user would.
    frames = out.locator(".widget-hslider", has=page.locator(".widget-label", has_text=re.compile(r"^frames$")))
    frames.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    n_frames = QUICK_FRAMES + 1
    expect(frames.locator(".widget-readout")).to_have_text(str(n_frames), timeout=10_000)

    page.get_by_role("button", name="Generate").click()
    expected = n_frames * QUICK_WALKERS
    t0 = time.monotonic()
    page.wait_for_function(
        f"(out) => ({STATUS_JS})(out).startsWith('Done: {n_frames} frames') && ({GENERATED_POINTS_JS})(out) === {expected}",
        arg=handle, timeout=GENERATE_TIMEOUT_S * 1e3, polling=500)
    generate_s = time.monotonic() - t0

    page.wait_for_function(f"(out) => ({RENDERED_POINTS_JS})(out) === {expected}", arg=handle, timeout=10_000)
    page.wait_for_function(f"(out) => ({VIEW_FRAMES_JS})(out) === {expected}", arg=handle, timeout=30_000)
    n_colours = nb.canvas_colours(".jp-OutputArea-output .ui-resizable", "explorer-view-after-generate")
    assert n_colours > nb.min_colours, f"nglview canvas blank after Generate: {n_colours} colours"
    nb.screenshot("sampling-explorer-view", out.locator(".ui-resizable canvas").first,
                  readme=True)
    plot.scroll_into_view_if_needed()
    assert page.evaluate(MAP_VISIBLE_JS, handle)
    nb.screenshot("sampling-explorer", out, readme=True)
    print(f"all cells {seconds:.1f} s; Generate ({n_frames} x {QUICK_WALKERS}) {generate_s:.1f} s; "
          f"canvas {n_colours} colours")
