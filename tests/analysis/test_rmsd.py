import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import matched_atom_indices, rmsd_to_references


@pytest.fixture(scope="module")
def refs():
    return mk.datasets.adk_references()


def test_closed_open_rmsd_matches_published_value(refs):
    rmsd = rmsd_to_references(refs["closed"], refs)
    assert rmsd["closed"][0] == pytest.approx(0.0, abs=1e-4)
    assert rmsd["open"][0] * 10 == pytest.approx(6.91, abs=0.01)


def test_calpha_trace_against_all_atom_reference(refs):
    closed = refs["closed"]
    ca = closed.atom_slice(closed.topology.select("name CA"))
    # rigidly move the trace: RMSD after superposition must stay zero
    moved = ca.xyz.copy() @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32) + 1.5
    traj = md.Trajectory(np.concatenate([ca.xyz, moved]), ca.topology)
    rmsd = rmsd_to_references(traj, {"closed": closed})["closed"]
    np.testing.assert_allclose(rmsd, 0.0, atol=1e-4)


def test_backbone_matching_counts_atoms(refs):
    idx_a, idx_b = matched_atom_indices(refs["closed"].topology, refs["open"].topology, ("N", "CA", "C", "O"))
    assert len(idx_a) == len(idx_b) == 4 * 214


def test_different_proteins_are_refused(refs):
    closed = refs["closed"]
    short = closed.atom_slice(closed.topology.select("resid 0 to 99"))
    with pytest.raises(mk.TrajectoryError, match="same protein"):
        rmsd_to_references(short, {"closed": closed})


def test_rmsd_per_frame_matches_mdtraj_frame_by_frame(refs):
    from mdllm_kit.analysis import rmsd_per_frame

    closed, open_ = refs["closed"], refs["open"]
    ca = closed.topology.select("name CA")
    a = np.concatenate([closed.xyz[:, ca], open_.xyz[:, ca]])
    b = np.concatenate([open_.xyz[:, ca], open_.xyz[:, ca]])
    expected = [md.rmsd(md.Trajectory(a[i:i + 1], None), md.Trajectory(b[i:i + 1], None))[0] * 10 for i in range(2)]
    np.testing.assert_allclose(rmsd_per_frame(a, b), expected, atol=1e-3)
