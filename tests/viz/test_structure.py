import subprocess
import sys

import numpy as np
import pytest

from mdllm_kit.errors import VisualizationError
from mdllm_kit.viz import FrameStore, default_representation, show_ensemble
from mdllm_kit.viz.structure import show_frame


def _calls(view, method):
    """The NGL calls the widget queued for its front end (kept in nglview's message archive)."""
    return [m for m in view._ngl_msg_archive if m["methodName"] == method]


def test_show_ensemble_has_every_frame_and_a_player(ca_frames):
    view = show_ensemble(ca_frames)
    assert view.max_frame == ca_frames.n_frames - 1
    assert view._iplayer is not None  # nglview's play button and frame slider
    (load,) = _calls(view, "loadFile")
    assert load["kwargs"]["defaultRepresentation"] is False
    (rep,) = _calls(view, "addRepresentation")
    assert rep["args"] == ["backbone"] and rep["kwargs"]["colorScheme"] == "residueindex"
    # frames are superposed on the first: the rigid shift of the fixture is gone
    view.frame = 5
    np.testing.assert_allclose(view._coordinates_dict[0], ca_frames.xyz[0] * 10, atol=1e-3)
    assert ca_frames.xyz[5, 0, 0] == pytest.approx(ca_frames.xyz[0, 0, 0] + 0.5)  # input untouched


def test_show_ensemble_without_superposition_plays_the_input(ca_frames):
    view = show_ensemble(ca_frames, superpose=False)
    view.frame = 3
    np.testing.assert_allclose(view._coordinates_dict[0], ca_frames.xyz[3] * 10, atol=1e-4)


def test_representation_follows_the_topology(references, closed_ca):
    assert default_representation(closed_ca.topology) == "backbone"
    assert default_representation(references["closed"].topology) == "cartoon"
    view = show_ensemble(references["open"])
    assert _calls(view, "addRepresentation")[0]["args"] == ["cartoon"]


def test_frame_store_grows_while_shown(ca_frames):
    import nglview

    store = FrameStore(ca_frames[0])
    view = nglview.NGLWidget()
    view.add_trajectory(store, default=False)
    np.testing.assert_allclose(store.get_coordinates(0), ca_frames.xyz[0] * 10)  # the topology frame while empty
    assert store.extend(ca_frames[:3]) == 3
    show_frame(view, store, 2)
    assert view.frame == 2 and view.max_frame == 2
    np.testing.assert_allclose(view._coordinates_dict[0], ca_frames.xyz[2] * 10, atol=1e-4)
    store.extend(ca_frames[3:])
    show_frame(view, store, 2)  # same index again: the coordinates are sent anyway
    assert view.max_frame == 7
    store.clear()
    assert store.n_frames == 0
    with pytest.raises(VisualizationError, match="atoms"):
        store.extend(ca_frames.atom_slice(range(10)))


def test_no_frames_is_refused(ca_frames):
    with pytest.raises(VisualizationError, match="no frames"):
        show_ensemble(ca_frames[:0])


def test_import_does_not_load_widget_libraries():
    code = ("import sys, mdllm_kit as mk; mk.viz.state_map; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'nglview', 'ipywidgets', 'anywidget'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
