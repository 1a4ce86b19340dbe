import numpy as np
import plotly.graph_objects as go
import pytest

from mdllm_kit.errors import VisualizationError
from mdllm_kit.viz import state_map
from mdllm_kit.viz.state_map import TRACE_GENERATED, TRACE_REFERENCE, TRACE_TRAINING


def _by_meta(fig, meta):
    return [t for t in fig.data if t.meta == meta]


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    n_walkers, n_frames = 3, 5
    generated = rng.normal(size=(n_walkers * n_frames, 2))
    walker = np.tile(np.arange(n_walkers), n_frames)  # frame-major
    time = np.repeat(np.arange(n_frames), n_walkers)
    return rng.normal(size=(200, 2)), generated, walker, time


def test_walker_traces_partition_the_frames(points):
    train, generated, walker, time = points
    fig = state_map(train, generated, {"closed": (0.1, 0.2), "open": (1.0, -1.0)}, walker=walker, time=time,
                    labels=("PC1", "PC2"))
    (density,) = _by_meta(fig, TRACE_TRAINING)
    assert isinstance(density, go.Histogram2dContour) and len(density.x) == 200
    gen = _by_meta(fig, TRACE_GENERATED)
    assert [t.name for t in gen] == ["walker 0", "walker 1", "walker 2"]
    index = np.concatenate([t.customdata for t in gen])
    assert sorted(index) == list(range(15))
    for k, trace in enumerate(gen):
        assert (walker[trace.customdata] == k).all() and len(trace.x) == 5
        np.testing.assert_allclose(np.column_stack([trace.x, trace.y]), generated[trace.customdata])
    assert len({t.marker.color for t in gen}) == 3
    refs = _by_meta(fig, TRACE_REFERENCE)
    assert [(t.name, t.text[0], t.x[0], t.y[0]) for t in refs] == [("closed", "closed", 0.1, 0.2),
                                                                   ("open", "open", 1.0, -1.0)]
    assert fig.layout.xaxis.title.text == "PC1" and fig.layout.yaxis.title.text == "PC2"


def test_nm_coordinates_are_shown_in_angstrom(points):
    train, generated, walker, _ = points
    fig = state_map(train, generated, {"open": (0.5, -0.25)}, walker=walker, labels=("PC1", "PC2"), unit="nm")
    (density,) = _by_meta(fig, TRACE_TRAINING)
    np.testing.assert_allclose(density.x, train[:, 0] * 10)
    for trace in _by_meta(fig, TRACE_GENERATED):
        np.testing.assert_allclose(trace.y, generated[trace.customdata, 1] * 10)
    (ref,) = _by_meta(fig, TRACE_REFERENCE)
    assert (ref.x[0], ref.y[0]) == (5.0, -2.5)
    assert fig.layout.xaxis.title.text == "PC1 (A)" and fig.layout.yaxis.title.text == "PC2 (A)"


def test_color_by_time(points):
    _, generated, walker, time = points
    fig = state_map(None, generated, color_by="time", walker=walker, time=time * 2.0, time_label="time (ps)")
    (trace,) = _by_meta(fig, TRACE_GENERATED)
    np.testing.assert_array_equal(trace.customdata, np.arange(15))
    np.testing.assert_allclose(trace.marker.color, time * 2.0)
    assert trace.marker.showscale and trace.marker.colorbar.title.text == "time (ps)"
    assert "walker 2" in trace.text[2] and "time (ps) 0" in trace.text[2]
    assert not _by_meta(fig, TRACE_TRAINING)


def test_bad_input_is_named():
    with pytest.raises(VisualizationError, match="generated_xy must have shape"):
        state_map(None, np.zeros((4, 3)))
    with pytest.raises(VisualizationError, match="walker must have one value per generated frame"):
        state_map(None, np.zeros((4, 2)), walker=[0, 1])
    with pytest.raises(VisualizationError, match="color_by"):
        state_map(None, np.zeros((4, 2)), color_by="energy")
    with pytest.raises(VisualizationError, match="unit"):
        state_map(np.zeros((4, 2)), unit="A")
