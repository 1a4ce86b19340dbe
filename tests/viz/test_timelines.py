import numpy as np
import pytest

from mdllm_kit.errors import VisualizationError
from mdllm_kit.viz import rmsd_timelines


def test_frame_major_values_become_one_line_per_walker():
    n_walkers, n_frames = 2, 4
    # frame-major: value i * n_walkers + k is frame i of walker k; here walker k has RMSD (10 i + k) / 100 nm
    closed = np.array([(10 * i + k) / 100 for i in range(n_frames) for k in range(n_walkers)])
    fig = rmsd_timelines({"closed": closed, "open": closed + 0.5}, n_walkers=n_walkers, threshold_nm=0.25)
    assert len(fig.data) == 4
    closed_lines = [t for t in fig.data if t.meta == "closed"]
    assert [t.name for t in closed_lines] == ["walker 0", "walker 1"]
    np.testing.assert_allclose(closed_lines[1].y, [(10 * i + 1) / 10 for i in range(n_frames)])  # Angstrom
    np.testing.assert_array_equal(closed_lines[0].x, np.arange(n_frames))
    open_lines = [t for t in fig.data if t.meta == "open"]
    np.testing.assert_allclose(open_lines[0].y, closed_lines[0].y + 5.0)
    assert not open_lines[0].showlegend  # one legend entry per walker
    assert sorted(s.y0 for s in fig.layout.shapes) == [2.5, 2.5]
    assert fig.layout.yaxis.title.text == "Calpha RMSD (A)"


def test_two_dimensional_input_time_and_per_reference_thresholds():
    rmsd = np.array([[0.1, 0.2, 0.3]])
    fig = rmsd_timelines({"closed": rmsd, "open": rmsd}, time_ps=np.array([0.0, 500.0, 1000.0]),
                         threshold_nm={"open": 0.3})
    np.testing.assert_allclose(fig.data[0].x, [0.0, 0.5, 1.0])
    assert [s.y0 for s in fig.layout.shapes] == [3.0]
    assert fig.layout.xaxis2.title.text == "time (ns)"


def test_inconsistent_input_is_refused():
    with pytest.raises(VisualizationError, match="multiple of n_walkers"):
        rmsd_timelines({"closed": np.zeros(5)}, n_walkers=2)
    with pytest.raises(VisualizationError, match="same"):
        rmsd_timelines({"closed": np.zeros((2, 3)), "open": np.zeros((2, 4))})
    with pytest.raises(VisualizationError, match="empty"):
        rmsd_timelines({})


def test_rmsd_timeline_is_one_walker_of_rmsd_timelines():
    from mdllm_kit.viz import rmsd_timeline

    rmsd = {"closed": np.array([0.1, 0.2, 0.3]), "open": np.array([0.3, 0.2, 0.1])}
    fig = rmsd_timeline(rmsd, np.array([0.0, 1000.0, 2000.0]))
    assert [t.meta for t in fig.data] == ["closed", "open"]
    np.testing.assert_allclose(fig.data[1].y, [3.0, 2.0, 1.0])  # Angstrom
    np.testing.assert_allclose(fig.data[0].x, [0.0, 1.0, 2.0])  # ns
