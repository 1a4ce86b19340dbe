import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import (compare_ensembles, fit_pca, js_distances, msm_comparison, rmsf_correlation,
                                state_populations)
from synthetic_chains import (calpha_topology, extended_trace, helix_trace, rigidly_moved, trajectory,
                              two_state_chain)

N_RES = 16


def test_js_distance_is_zero_for_identical_and_one_for_disjoint():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 2))
    same = js_distances(a, a.copy(), ["PC1", "PC2"])
    assert set(same) == {"PC1", "PC2", "PC1-PC2"}
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in same.values())
    apart = js_distances(a, a + 100.0, ["PC1", "PC2"])
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in apart.values())


def test_rmsf_correlation_is_one_for_scaled_fluctuations():
    rng = np.random.default_rng(1)
    base = helix_trace(N_RES)
    scale = np.linspace(0.002, 0.03, N_RES)[None, :, None]  # per-residue amplitude, nm
    top = calpha_topology(N_RES)
    ref = trajectory(rigidly_moved(base + scale * rng.normal(size=(3000, N_RES, 3)), rng), top)
    gen = trajectory(rigidly_moved(base + 2 * scale * rng.normal(size=(3000, N_RES, 3)), rng), top)
    out = rmsf_correlation(gen, ref)
    assert out["pearson_r"] > 0.98
    assert out["mean_rmsf_generated_A"] == pytest.approx(2 * out["mean_rmsf_reference_A"], rel=0.15)
    assert len(out["rmsf_reference_nm"]) == N_RES


def test_state_populations_from_labels_and_from_kmeans():
    out = state_populations(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), n_states=2, labelled=True,
                            state_names=["closed", "open"])
    assert out["generated"] == [0.5, 0.5] and out["reference"] == [0.25, 0.75]
    assert out["states"] == ["closed", "open"] and out["method"] == "labels"
    rng = np.random.default_rng(2)
    ref = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(100, 2)) + 20])
    gen = np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 20])
    km = state_populations(gen, ref, n_states=2)
    assert sorted(km["reference"]) == [0.25, 0.75]
    assert km["generated"] == [0.5, 0.5]
    with pytest.raises(mk.MdllmError, match="labels"):
        state_populations(np.array([0, 3]), np.array([0, 1]), n_states=2, labelled=True)


def _two_state_frames(n_frames, p_switch, rng):
    states = two_state_chain(n_frames, p_switch, rng)
    a, b = helix_trace(N_RES), extended_trace(N_RES)
    xyz = np.where(states[:, None, None] == 0, a[None], b[None]) + rng.normal(scale=0.02, size=(n_frames, N_RES, 3))
    return states, xyz


def test_msm_of_a_two_state_jump_process_recovers_timescale_and_populations():
    rng = np.random.default_rng(3)
    p_switch = 0.05
    top = calpha_topology(N_RES)
    ref_states, ref_xyz = _two_state_frames(6000, p_switch, rng)
    gen_states, gen_xyz = _two_state_frames(4000, p_switch, rng)
    reference = trajectory(ref_xyz, top)
    walkers = [trajectory(gen_xyz[k * 500:(k + 1) * 500], top) for k in range(8)]
    proj = fit_pca(reference)
    out = msm_comparison(walkers, reference, proj, n_clusters=10, lagtime=1, reference_dt_ps=5.0,
                         state_labels=(gen_states, ref_states), state_names=["A", "B"])
    expected = -1.0 / np.log(1.0 - 2.0 * p_switch)  # 9.5 frames
    for name in ("generated", "reference"):
        assert out[name]["timescales_frames"][0] == pytest.approx(expected, rel=0.2)
        assert out[name]["state_populations"]["A"] == pytest.approx(0.5, abs=0.1)
        assert sum(out[name]["stationary_populations"]) == pytest.approx(1.0)
    assert out["reference"]["timescales_ps"][0] == pytest.approx(5.0 * out["reference"]["timescales_frames"][0])
    assert out["population_js_distance"] < 0.2


def test_msm_reports_walkers_that_never_move():
    rng = np.random.default_rng(4)
    top = calpha_topology(N_RES)
    _, ref_xyz = _two_state_frames(500, 0.05, rng)
    reference = trajectory(ref_xyz, top)
    frozen = [trajectory(np.repeat(helix_trace(N_RES)[None], 3, 0), top)]
    out = msm_comparison(frozen, reference, fit_pca(reference), n_clusters=5)
    assert "error" in out["generated"] and "timescales_frames" in out["reference"]


def test_compare_ensembles_of_an_ensemble_with_itself():
    rng = np.random.default_rng(5)
    _, xyz = _two_state_frames(400, 0.05, rng)
    traj = trajectory(xyz, calpha_topology(N_RES))
    out = compare_ensembles(traj, traj, fit_pca(traj), n_states=2)
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in out["js_distance"].values())
    assert out["rmsf"]["pearson_r"] == pytest.approx(1.0, abs=1e-6)
    assert out["populations"]["generated"] == out["populations"]["reference"]


def test_kmeans_populations_need_as_many_reference_frames_as_states():
    rng = np.random.default_rng(5)
    with pytest.raises(mk.MdllmError, match="reference has 3 frames, fewer than 4 states"):
        state_populations(rng.normal(size=(10, 2)), rng.normal(size=(3, 2)), n_states=4)


def test_compare_ensembles_rejects_labels_of_the_wrong_length():
    rng = np.random.default_rng(6)
    top = calpha_topology(N_RES)
    ens = trajectory(rigidly_moved(helix_trace(N_RES) + 0.01 * rng.normal(size=(30, N_RES, 3)), rng), top)
    pca = fit_pca(ens)
    with pytest.raises(mk.MdllmError, match=r"generated labels have shape \(29,\), expected \(30,\)"):
        compare_ensembles(ens, ens, pca, n_states=2, generated_labels=np.zeros(29, int),
                          reference_labels=np.zeros(30, int))
    with pytest.raises(mk.MdllmError, match=r"reference labels have shape \(31,\), expected \(30,\)"):
        compare_ensembles(ens, ens, pca, n_states=2, generated_labels=np.zeros(30, int),
                          reference_labels=np.zeros(31, int))
