"""Novelty: how far generated frames are from everything in the training ensemble.

The distance of a generated frame to the training ensemble is its Calpha
RMSD (optimal superposition, mdtraj) to the *nearest* training frame. Long
training runs are subsampled evenly to at most
:data:`NOVELTY_MAX_TRAINING_FRAMES` frames (stride ``ceil(n / max)``); at
the 5 ps frame spacing of the bundled AdK data, neighbouring frames differ by
far less than the thresholds that matter here.

**Outside the training ensemble** (:func:`novel_fraction`): a generated frame
is novel when its nearest-training RMSD exceeds the
:data:`NOVELTY_PERCENTILE`-th percentile of the training frames' own
nearest-neighbour RMSDs (each subsampled training frame to its nearest
*other* subsampled training frame, :func:`training_novelty_cutoff`). A
frame farther from the training set than 99% of training frames are from
each other is something the training data do not contain. A fixed cutoff
can be passed instead.
"""
from __future__ import annotations

from collections.abc import Sequence

import mdtraj as md
import numpy as np

from ..errors import TrajectoryError
from ..subsample import evenly_spaced_indices
from .rmsd import matched_trajectories

__all__ = [
    "NOVELTY_MAX_TRAINING_FRAMES",
    "NOVELTY_PERCENTILE",
    "nearest_training_rmsd",
    "novel_fraction",
    "subsample_evenly",
    "training_novelty_cutoff",
]

#: Training frames kept (evenly strided) for nearest-neighbour RMSDs.
NOVELTY_MAX_TRAINING_FRAMES = 1000
#: Percentile of the training set's own nearest-neighbour RMSDs beyond which a frame is novel.
NOVELTY_PERCENTILE = 99.0


def subsample_evenly(traj: md.Trajectory, max_frames: int) -> md.Trajectory:
    """At most ``max_frames`` frames of ``traj``, evenly spaced (:func:`mdllm_kit.subsample.evenly_spaced_indices`)."""
    if max_frames < 1:
        raise TrajectoryError(f"max_frames must be >= 1, got {max_frames}")
    return traj[evenly_spaced_indices(traj.n_frames, max_frames)]


def _matched(a: md.Trajectory, b: md.Trajectory, atom_names: Sequence[str]) -> tuple[md.Trajectory, md.Trajectory]:
    sub_a, sub_b = matched_trajectories(a, b, atom_names)
    sub_a.center_coordinates()
    sub_b.center_coordinates()
    return sub_a, sub_b


def _rmsd_matrix(a: md.Trajectory, b: md.Trajectory) -> np.ndarray:
    """RMSD (nm) of every frame of ``a`` to every frame of ``b``, shape (a.n_frames, b.n_frames); precentered."""
    out = np.empty((a.n_frames, b.n_frames), dtype=np.float64)
    if a.n_frames <= b.n_frames:
        for i in range(a.n_frames):
            out[i] = md.rmsd(b, a, i, precentered=True)
    else:
        for j in range(b.n_frames):
            out[:, j] = md.rmsd(a, b, j, precentered=True)
    return out


def nearest_training_rmsd(
    generated: md.Trajectory,
    training: md.Trajectory,
    atom_names: Sequence[str] = ("CA",),
    max_training_frames: int = NOVELTY_MAX_TRAINING_FRAMES,
) -> np.ndarray:
    """RMSD of each generated frame to its nearest training frame.

    Parameters
    ----------
    generated : mdtraj.Trajectory
        Generated frames, nm.
    training : mdtraj.Trajectory
        Training frames of the same protein, nm; subsampled evenly to at
        most ``max_training_frames``.
    atom_names : sequence of str
        Atoms superposed and compared (default Calpha).
    max_training_frames : int
        Training frames kept.

    Returns
    -------
    numpy.ndarray, shape (n_generated,)
        Minimum RMSD over the (subsampled) training frames, nm.
    """
    gen, train = _matched(generated, subsample_evenly(training, max_training_frames), atom_names)
    return _rmsd_matrix(gen, train).min(1)


def training_novelty_cutoff(
    training: md.Trajectory,
    percentile: float = NOVELTY_PERCENTILE,
    atom_names: Sequence[str] = ("CA",),
    max_training_frames: int = NOVELTY_MAX_TRAINING_FRAMES,
) -> float:
    """The RMSD beyond which a frame lies outside the training ensemble.

    Parameters
    ----------
    training : mdtraj.Trajectory
        Training frames, nm (at least two after subsampling).
    percentile : float
        Percentile (0-100) of the nearest-neighbour RMSDs.
    atom_names : sequence of str
        Atoms compared.
    max_training_frames : int
        Training frames kept (evenly strided), as in :func:`nearest_training_rmsd`.

    Returns
    -------
    float
        ``percentile``-th percentile of each subsampled training frame's
        RMSD to its nearest other subsampled training frame, nm.
    """
    sub = subsample_evenly(training, max_training_frames)
    if sub.n_frames < 2:
        raise TrajectoryError("the novelty cutoff needs at least two training frames; pass a longer training run")
    a, _ = _matched(sub, sub, atom_names)
    matrix = _rmsd_matrix(a, a)
    np.fill_diagonal(matrix, np.inf)
    return float(np.percentile(matrix.min(1), percentile))


def novel_fraction(nearest_rmsd_nm: np.ndarray, cutoff_nm: float) -> float:
    """Fraction of frames whose nearest-training RMSD (nm) exceeds ``cutoff_nm``.

    Parameters
    ----------
    nearest_rmsd_nm : numpy.ndarray, shape (n_frames,)
        From :func:`nearest_training_rmsd`, nm.
    cutoff_nm : float
        From :func:`training_novelty_cutoff` or a fixed value, nm.
    """
    values = np.asarray(nearest_rmsd_nm, dtype=np.float64)
    if values.size == 0:
        raise TrajectoryError("no frames to measure novelty of")
    return float(np.mean(values > cutoff_nm))
