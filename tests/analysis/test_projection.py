import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import distance_pairs, fit_pca, fit_tica
from synthetic_chains import (calpha_topology, extended_trace, helix_trace, rigidly_moved, trajectory,
                              two_state_chain)

N_RES = 24


def _line_ensemble(rng, n_frames=60):
    """Frames base + t * v (v a fixed, non-rigid displacement), each rigidly moved at random."""
    base = helix_trace(N_RES)
    v = rng.normal(size=base.shape)
    v /= np.linalg.norm(v)
    t = np.linspace(-0.5, 0.5, n_frames)
    xyz = base[None] + t[:, None, None] * v[None]
    return t, rigidly_moved(xyz, rng)


def test_pca_of_frames_on_a_line_finds_the_line():
    rng = np.random.default_rng(0)
    t, xyz = _line_ensemble(rng)
    proj = fit_pca(trajectory(xyz, calpha_topology(N_RES)), n_components=2)
    assert proj.kind == "pca" and proj.labels == ["PC1", "PC2"]
    assert proj.explained_variance_ratio[0] > 0.99
    pc = proj.transform(trajectory(xyz, calpha_topology(N_RES)))
    assert pc.shape == (len(t), 2)
    # PC1 is the line parameter up to sign and scale: t was a unit-vector displacement in nm
    assert abs(np.corrcoef(pc[:, 0], t)[0, 1]) > 0.999
    np.testing.assert_allclose(np.abs(pc[:, 0] - pc[:, 0].mean()), np.abs(t - t.mean()), atol=0.02)


def test_pca_transform_is_invariant_to_rigid_motion_and_reads_arrays():
    rng = np.random.default_rng(1)
    _, xyz = _line_ensemble(rng)
    top = calpha_topology(N_RES)
    proj = fit_pca(trajectory(xyz, top))
    again = rigidly_moved(xyz, rng)
    np.testing.assert_allclose(proj.transform(again), proj.transform(xyz), atol=1e-4)
    np.testing.assert_allclose(proj.transform(trajectory(again, top)), proj.transform(xyz), atol=1e-4)


def test_calpha_projection_reads_an_all_atom_structure():
    refs = mk.datasets.adk_references()
    train = mk.datasets.load_adk_cg("closed_train")[::20]
    proj = fit_pca(train)
    closed = refs["closed"]
    ca_only = closed.atom_slice(closed.topology.select("name CA"))
    np.testing.assert_allclose(proj.transform(closed), proj.transform(ca_only), atol=1e-5)
    # the open crystal lies far outside the closed training ensemble along PC1
    pc_train = proj.transform(train)[:, 0]
    assert abs(proj.transform(refs["open"])[0, 0] - pc_train.mean()) > 5 * pc_train.std()


def test_projection_refuses_other_proteins():
    proj = fit_pca(trajectory(rigidly_moved(np.repeat(helix_trace(N_RES)[None], 5, 0), np.random.default_rng(2))
                              + np.random.default_rng(3).normal(scale=0.01, size=(5, N_RES, 3)),
                              calpha_topology(N_RES)))
    with pytest.raises(mk.TrajectoryError, match="same protein"):
        proj.transform(trajectory(helix_trace(N_RES + 1)[None], calpha_topology(N_RES + 1)))
    with pytest.raises(mk.TrajectoryError, match="n_frames"):
        proj.transform(np.zeros((2, N_RES + 1, 3)))


def test_tica_of_a_two_state_jump_process_recovers_its_timescale():
    rng = np.random.default_rng(4)
    p_switch = 0.02
    states = two_state_chain(20000, p_switch, rng)
    a, b = helix_trace(N_RES), extended_trace(N_RES)
    xyz = np.where(states[:, None, None] == 0, a[None], b[None])
    xyz = xyz + rng.normal(scale=0.02, size=xyz.shape)
    top = calpha_topology(N_RES)
    half = len(xyz) // 2
    # two trajectories: lagged pairs must not cross from one to the other
    proj = fit_tica([trajectory(xyz[:half], top), trajectory(xyz[half:], top)], lagtime=5, n_components=1,
                    stride=2)
    # eigenvalue of the two-state chain is 1 - 2p per frame: timescale -1 / ln(1 - 2p) = 24.5 frames
    expected = -1.0 / np.log(1.0 - 2.0 * p_switch)
    assert proj.timescales_frames[0] == pytest.approx(expected, rel=0.15)
    ic = proj.transform(trajectory(xyz, top))[:, 0]
    # IC1 separates the states
    assert abs(ic[states == 0].mean() - ic[states == 1].mean()) > 5 * ic[states == 0].std()
    assert proj.labels == ["IC1"] and proj.summary()["lagtime_frames"] == 5


def test_distance_pairs_subset():
    pairs = distance_pairs(13, stride=6, min_separation=1)
    np.testing.assert_array_equal(pairs, [[0, 6], [0, 12], [6, 12]])
    assert len(distance_pairs(214)) == 595  # the documented AdK feature count
    with pytest.raises(mk.TrajectoryError, match="lagtime"):
        fit_tica(trajectory(np.repeat(helix_trace(N_RES)[None], 3, 0), calpha_topology(N_RES)), lagtime=5)
