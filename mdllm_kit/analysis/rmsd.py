"""RMSD of trajectory frames to reference structures with different atom sets."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import mdtraj as md
import numpy as np

from ..errors import TrajectoryError
from .units import NM_TO_A

__all__ = ["matched_atom_indices", "matched_trajectories", "rmsd_per_frame", "rmsd_to_references"]


def matched_atom_indices(
    top_a: md.Topology, top_b: md.Topology, atom_names: Sequence[str] = ("CA",)
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the atoms shared by two topologies of the same protein.

    Atoms are matched by residue position (index in the chain order) and atom
    name, so a Calpha-only trajectory can be compared with an all-atom
    crystal structure.

    Parameters
    ----------
    top_a, top_b : mdtraj.Topology
        Topologies with the same number of residues in the same order.
    atom_names : sequence of str
        Atom names to match, e.g. ``("CA",)`` or ``("N", "CA", "C", "O")``.

    Returns
    -------
    idx_a, idx_b : numpy.ndarray of int, shape (n_matched,)
        Paired atom indices into ``top_a`` and ``top_b``.
    """
    if top_a.n_residues != top_b.n_residues:
        raise TrajectoryError(
            f"cannot compare structures with {top_a.n_residues} and {top_b.n_residues} residues; "
            "RMSD needs two structures of the same protein (same residues in the same order): "
            "slice both to the common residues first (traj.atom_slice)"
        )
    wanted = set(atom_names)
    idx_a, idx_b = [], []
    for res_a, res_b in zip(top_a.residues, top_b.residues):
        atoms_b = {atom.name: atom.index for atom in res_b.atoms if atom.name in wanted}
        for atom in res_a.atoms:
            if atom.name in atoms_b:
                idx_a.append(atom.index)
                idx_b.append(atoms_b[atom.name])
    if not idx_a:
        raise TrajectoryError(
            f"the two structures share no atoms named {', '.join(sorted(wanted))}; "
            "check the atom names of both topologies"
        )
    return np.asarray(idx_a, dtype=int), np.asarray(idx_b, dtype=int)


def matched_trajectories(
    a: md.Trajectory, b: md.Trajectory, atom_names: Sequence[str] = ("CA",)
) -> tuple[md.Trajectory, md.Trajectory]:
    """``a`` and ``b`` cut to the atoms they share (:func:`matched_atom_indices`), atom ``i`` of one matching atom ``i`` of the other.

    Returns
    -------
    sub_a, sub_b : mdtraj.Trajectory
        All frames of each, ``n_matched`` atoms, nm (new coordinate arrays).
    """
    idx_a, idx_b = matched_atom_indices(a.topology, b.topology, atom_names)
    return (md.Trajectory(a.xyz[:, idx_a], a.topology.subset(idx_a)),
            md.Trajectory(b.xyz[:, idx_b], b.topology.subset(idx_b)))


def rmsd_to_references(
    traj: md.Trajectory,
    references: Mapping[str, md.Trajectory],
    atom_names: Sequence[str] = ("CA",),
) -> dict[str, np.ndarray]:
    """RMSD of every frame to each named reference after optimal superposition.

    Parameters
    ----------
    traj : mdtraj.Trajectory
        Frames to measure, shape ``(n_frames, n_atoms, 3)`` in nm.
    references : mapping of str to mdtraj.Trajectory
        Named reference structures of the same protein; the first frame of
        each is used. They may hold other atoms than ``traj`` (e.g.
        all-atom crystal structures against a Calpha trace).
    atom_names : sequence of str
        Atoms used for superposition and RMSD (default Calpha).

    Returns
    -------
    dict of str to numpy.ndarray, shape (n_frames,)
        RMSD in nm per reference name.
    """
    out: dict[str, np.ndarray] = {}
    for name, ref in references.items():
        moving, target = matched_trajectories(traj, ref[0], atom_names)
        out[name] = md.rmsd(moving, target, 0).astype(np.float64)
    return out


def rmsd_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMSD of frame ``a[i]`` to frame ``b[i]`` after optimal superposition (Kabsch).

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n_frames, n_atoms, 3)
        Coordinates in nm (``b`` may have one frame; it is then broadcast).

    Returns
    -------
    numpy.ndarray, shape (n_frames,)
        RMSD in Angstrom.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    h = np.einsum("fni,fnj->fij", a, b)
    u, s, vt = np.linalg.svd(h)
    s[:, -1] *= np.sign(np.linalg.det(u @ vt))
    e = (a**2).sum((1, 2)) + (b**2).sum((1, 2)) - 2.0 * s.sum(1)
    return np.sqrt(np.maximum(e, 0.0) / a.shape[1]) * NM_TO_A
