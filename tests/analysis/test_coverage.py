import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import reference_coverage, rmsd_to_references
from synthetic_chains import calpha_topology, helix_trace, rigidly_moved, trajectory

N_RES = 20


def _displaced(base, rmsd_nm, rng):
    """``base`` with every atom moved by a vector orthogonal to rigid motions, of RMS ``rmsd_nm``."""
    v = rng.normal(size=base.shape)
    v -= v.mean(0)
    # remove the rotational component (infinitesimal rotations r x w) by least squares
    a = np.concatenate([np.cross(base - base.mean(0), e) for e in np.eye(3)]).reshape(3, -1).T
    v = v.ravel() - a @ np.linalg.lstsq(a, v.ravel(), rcond=None)[0]
    v = v.reshape(base.shape)
    return base + v * rmsd_nm / np.sqrt((v**2).sum(1).mean())


def test_known_rmsd_gives_known_min_first_frame_and_coverage():
    rng = np.random.default_rng(0)
    base = helix_trace(N_RES)
    # 2 walkers x 5 steps, frame-major; RMSD grows with the step, walker 1 is 0.05 nm farther
    targets = np.array([[0.50, 0.55], [0.40, 0.45], [0.25, 0.32], [0.10, 0.35], [0.02, 0.28]])
    frames = np.stack([_displaced(base, t, rng) for t in targets.ravel()])
    top = calpha_topology(N_RES)
    gen = trajectory(rigidly_moved(frames, rng), top)
    ref = trajectory(base[None], top)
    rmsd = rmsd_to_references(gen, {"ref": ref})
    # small displacements orthogonal to rigid motions: RMSD after superposition is the RMS displacement
    np.testing.assert_allclose(rmsd["ref"], targets.ravel(), atol=0.003)
    cov = reference_coverage(rmsd, thresholds_nm=(0.15, 0.3), reached_nm=0.3, n_walkers=2)["ref"]
    assert cov["min_rmsd_A"] == pytest.approx(0.2, abs=0.03)
    assert (cov["argmin_step"], cov["argmin_walker"]) == (4, 0)
    assert cov["reached"]
    assert cov["first_step_within"] == 2
    assert cov["first_step_within_per_walker"] == [2, 4]  # walker 1 gets below 3 A at step 4 only
    assert cov["fraction_within"] == {"1.5": pytest.approx(0.2), "3.0": pytest.approx(0.4)}
    assert cov["covered"]["1.5"]


def test_unreached_reference_has_no_first_frame():
    cov = reference_coverage({"open": np.array([0.6, 0.5, 0.7, 0.65])}, n_walkers=2)["open"]
    assert not cov["reached"]
    assert cov["first_step_within"] is None and cov["first_step_within_per_walker"] == [None, None]
    assert cov["min_rmsd_A"] == pytest.approx(5.0)
    assert all(v == 0 for v in cov["fraction_within"].values())
    assert not any(cov["covered"].values())


def test_bioemu_coverage_needs_a_tenth_of_a_percent():
    values = np.full(2000, 0.8)
    values[0] = 0.1  # 1 of 2000 frames = 0.05%
    assert not reference_coverage({"r": values})["r"]["covered"]["3.0"]
    values[1] = 0.1  # 0.1%
    assert reference_coverage({"r": values})["r"]["covered"]["3.0"]


def test_walker_count_must_divide_frames():
    with pytest.raises(mk.MdllmError, match="walkers"):
        reference_coverage({"r": np.ones(5)}, n_walkers=2)
