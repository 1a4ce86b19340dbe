import numpy as np
import pytest
from plotly.callbacks import Points

from mdllm_kit.errors import VisualizationError
from mdllm_kit.viz import linked_view
from mdllm_kit.viz.state_map import TRACE_GENERATED, TRACE_SELECTED


def _click(fig, trace_index, point_index):
    """What the browser sends when a point is clicked (plotly's FigureWidget points callback message)."""
    trace = fig.data[trace_index]
    fig._js2py_pointsCallback = {
        "event_type": "plotly_click",
        "points": {"trace_indexes": [trace_index], "point_indexes": [point_index],
                   "xs": [trace.x[point_index]], "ys": [trace.y[point_index]]},
    }


@pytest.fixture
def linked(ca_frames):
    # 8 frames = 4 frame-major steps of 2 walkers; map coordinates: frame j at (j, -j) nm
    xy = np.column_stack([np.arange(8.0), -np.arange(8.0)])
    return linked_view(ca_frames, xy, train_xy=np.random.default_rng(1).normal(size=(50, 2)),
                       reference_xy={"closed": (0.0, 0.0)}, n_walkers=2, labels=("PC1", "PC2"), unit="nm")


def test_clicking_a_point_shows_its_frame(linked):
    fig, view = linked.figure, linked.view
    gen = [i for i, t in enumerate(fig.data) if t.meta == TRACE_GENERATED]
    assert [fig.data[i].name for i in gen] == ["walker 0", "walker 1"]
    walker1 = gen[1]
    np.testing.assert_array_equal(fig.data[walker1].customdata, [1, 3, 5, 7])
    _click(fig, walker1, 2)  # third point of walker 1 = frame 2 * 2 + 1
    assert view.frame == 5 and linked.selected == 5
    ring = next(t for t in fig.data if t.meta == TRACE_SELECTED)
    assert (ring.x[0], ring.y[0]) == (50.0, -50.0)  # Angstrom, where the point is drawn
    _click(fig, gen[0], 0)
    assert view.frame == 0


def test_registered_handler_takes_plotly_points(linked):
    trace = next(t for t in linked.figure.data if t.meta == TRACE_GENERATED and t.name == "walker 0")
    (handler,) = trace._click_callbacks
    handler(trace, Points(point_inds=[3], xs=[trace.x[3]], ys=[trace.y[3]], trace_name=trace.name), None)
    assert linked.view.frame == 6
    handler(trace, Points(point_inds=[]), None)  # plotly calls every trace; those without points do nothing
    assert linked.view.frame == 6


def test_clicks_on_other_traces_do_nothing(linked):
    fig = linked.figure
    ref = next(i for i, t in enumerate(fig.data) if t.name == "closed")
    _click(fig, ref, 0)
    assert linked.view.frame == 0 and linked.selected is None
    assert len(linked.widget.children) == 2


def test_points_must_match_frames(ca_frames):
    with pytest.raises(VisualizationError, match="8 frames"):
        linked_view(ca_frames, np.zeros((5, 2)))
    lv = linked_view(ca_frames, np.zeros((8, 2)))
    with pytest.raises(VisualizationError, match="does not exist"):
        lv.show_frame(8)


def test_a_generated_ensemble_links_frame_major(trained_bundle, toy_traj):
    import mdllm_kit as mk

    ens = mk.Sampler(trained_bundle).sample(n_frames=3, n_walkers=2, seed=0)
    pca = mk.fit_pca(toy_traj)
    lv = linked_view(ens, pca.transform(ens.trajectory), train_xy=pca.transform(toy_traj), unit="nm",
                     labels=tuple(pca.labels))
    gen = [t for t in lv.figure.data if t.meta == TRACE_GENERATED]
    assert [list(t.customdata) for t in gen] == [[0, 2, 4], [1, 3, 5]]  # walker taken from the ensemble
    assert lv.view.max_frame == 5
    lv.show_frame(3)
    assert lv.view.frame == 3
