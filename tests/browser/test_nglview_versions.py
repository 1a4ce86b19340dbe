"""The installed nglview's two halves agree (no browser needed).

The Python widgets ask the page for ``nglview-js-widgets`` at
``nglview.widget.__frontend_version__``; the JupyterLab/Notebook 7 front end registers the
version in its labextension's ``package.json``. nglview 4.0.1 asks for 4.0 but ships 3.1.5,
and every view then shows "Click to show javascript error" (nglview #1181), which is why
``pyproject.toml`` pins nglview 4.0. This test fails fast, in a second, if an upgrade or a
stale extension brings the mismatch back; the browser tests show the consequence.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

nglview = pytest.importorskip("nglview")


def _labextension_package_json() -> Path:
    from jupyter_core.paths import jupyter_path

    # The first folder on Jupyter's data path that has the extension is the one served.
    for folder in jupyter_path("labextensions"):
        candidate = Path(folder) / "nglview-js-widgets" / "package.json"
        if candidate.is_file():
            return candidate
    pytest.fail("nglview's JupyterLab extension (nglview-js-widgets) is not installed on "
                "Jupyter's data path: reinstall nglview (make install-dev)")


def test_python_side_asks_for_the_installed_front_end_version():
    frontend = json.loads(_labextension_package_json().read_text())["version"]
    wanted = nglview.widget.__frontend_version__
    assert nglview.NGLWidget._view_module_version.default_value == wanted
    assert nglview.NGLWidget._model_module_version.default_value == wanted
    assert wanted == frontend, (
        f"nglview {nglview.__version__}: Python asks for front end {wanted}, installed is "
        f"{frontend}; install the pinned nglview (pyproject.toml) or remove the stale extension")


def test_the_served_extension_bundle_exists():
    package = _labextension_package_json()
    load = json.loads(package.read_text())["jupyterlab"]["_build"]["load"]
    assert (package.parent / load).is_file(), f"{package.parent / load} missing: reinstall nglview"
