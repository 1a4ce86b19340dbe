import mdtraj as md
import numpy as np
import pytest

from mdllm_kit.analysis.validity import validity_report
from mdllm_kit.errors import VisualizationError
from mdllm_kit.viz import validity_summary


def test_counts_from_a_real_validity_report(closed_ca):
    # 4 frames: intact, one Calpha pulled 2 nm away (2 bond breaks), intact, intact
    xyz = np.repeat(closed_ca.xyz, 4, axis=0)
    xyz[1, 50] += np.array([2.0, 0.0, 0.0], dtype=np.float32)
    report = validity_report(md.Trajectory(xyz, closed_ca.topology))
    assert list(report["per_frame"]["ca_breaks"]) == [0, 2, 0, 0]
    fig = validity_summary({"generated": report, "training": {"ca_breaks": np.zeros(5, int),
                                                              "ca_clashes": np.zeros(5, int)}})
    assert [a.text for a in fig.layout.annotations] == ["Calpha bond breaks", "Calpha clashes"]
    gen_breaks = next(t for t in fig.data if t.legendgroup == "generated" and t.meta == "ca_breaks")
    assert list(gen_breaks.x) == ["0", "1", "2", ">=3"]
    np.testing.assert_allclose(gen_breaks.y, [75.0, 0.0, 25.0, 0.0])
    assert gen_breaks.name == "generated (75% clean)"
    train_clashes = next(t for t in fig.data if t.legendgroup == "training" and t.meta == "ca_clashes")
    np.testing.assert_allclose(train_clashes.y, [100.0, 0.0, 0.0, 0.0])
    # cn_breaks is None for Calpha traces and ca_valid is a flag: neither gets a panel
    assert {t.meta for t in fig.data} == {"ca_breaks", "ca_clashes"}


def test_large_counts_share_the_last_bar():
    fig = validity_summary({"x": {"clashes": np.array([0, 3, 7, 1])}})
    np.testing.assert_allclose(fig.data[0].y, [25.0, 25.0, 0.0, 50.0])


def test_bad_counts_are_refused():
    with pytest.raises(VisualizationError, match="non-negative integer"):
        validity_summary({"x": {"clashes": np.array([0.5, 1.0])}})
    with pytest.raises(VisualizationError, match="no per-frame counts"):
        validity_summary({"x": {"cn_breaks": None}})
