"""Did a generated frame discover a state? Hits that are valid, on the real landscape, and close to the target.

A frame near an unseen state counts as a discovery only when it is also a
physical protein conformation (:func:`~mdllm_kit.analysis.validity.frame_validity`)
and lies on the real free-energy landscape: within ``landscape_nm`` of some
frame of a ground-truth ensemble (for the AdK demo, the bundled
``equilibrium`` run). A distorted frame that happens to sit near the target
is no discovery; neither is a frame the model could only reach by leaving
the landscape.
"""
from __future__ import annotations

from collections.abc import Sequence

import mdtraj as md
import numpy as np

from .coverage import STATE_REACHED_NM
from .novelty import nearest_training_rmsd
from .rmsd import rmsd_to_references
from .validity import frame_validity

__all__ = ["LANDSCAPE_NM", "LANDSCAPE_MAX_FRAMES", "discovery_scores"]

#: A frame within this Calpha RMSD (nm) of some ground-truth frame lies on the real landscape (2 A; held-out real
#: AdK frames sit about 1 A from their nearest neighbour in the equilibrium run).
LANDSCAPE_NM = 0.2
#: Ground-truth frames (evenly spaced) searched for each frame's nearest neighbour.
LANDSCAPE_MAX_FRAMES = 1200


def discovery_scores(frames: md.Trajectory, target: md.Trajectory, landscape: md.Trajectory, *,
                     hit_nm: float = STATE_REACHED_NM, landscape_nm: float = LANDSCAPE_NM,
                     max_landscape_frames: int = LANDSCAPE_MAX_FRAMES,
                     atom_names: Sequence[str] = ("CA",)) -> dict[str, np.ndarray]:
    """Per-frame discovery scores against one target state.

    Parameters
    ----------
    frames : mdtraj.Trajectory
        Frames to score, nm.
    target : mdtraj.Trajectory
        The unseen state (its first frame; may hold other atoms, e.g. an
        all-atom crystal structure, matched by residue and atom name).
    landscape : mdtraj.Trajectory
        Ground-truth frames of the same protein (subsampled evenly to
        ``max_landscape_frames``).
    hit_nm : float
        A hit is at most this far from ``target`` (default 0.3 nm = 3 A, the
        MD-LLM paper's criterion).
    landscape_nm : float
        On the landscape: at most this far from the nearest ground-truth frame.
    max_landscape_frames : int
    atom_names : sequence of str
        Atoms superposed and compared.

    Returns
    -------
    dict of numpy.ndarray, each shape (n_frames,)
        ``rmsd_nm`` (to the target), ``landscape_nm`` (to the nearest
        ground-truth frame), ``valid`` (bool), ``on_landscape`` (bool: valid
        and within ``landscape_nm``), ``hit`` (bool: on the landscape and
        within ``hit_nm`` of the target).
    """
    rmsd = rmsd_to_references(frames, {"target": target}, atom_names)["target"]
    near = nearest_training_rmsd(frames, landscape, atom_names, max_landscape_frames)
    valid = frame_validity(frames)
    on_landscape = valid & (near <= landscape_nm)
    return {"rmsd_nm": rmsd, "landscape_nm": near, "valid": valid, "on_landscape": on_landscape,
            "hit": on_landscape & (rmsd <= hit_nm)}
