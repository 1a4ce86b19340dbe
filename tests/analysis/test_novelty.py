import numpy as np
import pytest

from mdllm_kit.analysis import nearest_training_rmsd, novel_fraction, training_novelty_cutoff
from mdllm_kit.analysis.novelty import subsample_evenly
from mdllm_kit.subsample import evenly_spaced_indices
from synthetic_chains import calpha_topology, extended_trace, helix_trace, rigidly_moved, trajectory

N_RES = 16


def test_nearest_training_frame_and_novel_fraction():
    rng = np.random.default_rng(0)
    top = calpha_topology(N_RES)
    helix = helix_trace(N_RES)
    train = trajectory(rigidly_moved(helix[None] + rng.normal(scale=0.01, size=(50, N_RES, 3)), rng), top)
    # generated: one exact copy of a training frame (rigidly moved), one far away (extended chain)
    gen = trajectory(rigidly_moved(np.stack([train.xyz[7], extended_trace(N_RES)]), rng), top)
    nearest = nearest_training_rmsd(gen, train)
    assert nearest[0] == pytest.approx(0.0, abs=1e-3)
    assert nearest[1] > 0.3
    cutoff = training_novelty_cutoff(train)
    # training frames are ~0.01 nm noise apart: sqrt(2) * 0.01 * sqrt(3) ~ 0.024 nm between two frames
    assert 0.01 < cutoff < 0.04
    assert novel_fraction(nearest, cutoff) == 0.5


def test_subsampling_keeps_at_most_the_maximum():
    top = calpha_topology(N_RES)
    traj = trajectory(np.repeat(helix_trace(N_RES)[None], 25, 0), top)
    assert subsample_evenly(traj, 10).n_frames == 10  # evenly spaced, first and last frame included
    np.testing.assert_array_equal(subsample_evenly(traj, 10).time, traj.time[evenly_spaced_indices(25, 10)])
    assert subsample_evenly(traj, 10).time[-1] == traj.time[-1]
    assert subsample_evenly(traj, 100).n_frames == 25
