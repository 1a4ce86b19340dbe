"""Periodic boundaries: minimum images, cell vectors, making molecules whole.

Making molecules whole
----------------------
MD engines write atoms wrapped into the periodic cell, so a protein is split
across the cell faces. The loader rebuilds it without relying on topology bonds
(which are missing for residue names a topology reader does not know):

1. within each chain, the anchor atom of each residue (CA, or the first atom
   of residues without one) is placed at the minimum image of the previous
   residue's anchor;
2. every atom is placed at the minimum image of its residue's anchor;
3. each chain (and each non-polymer residue in the selection) is moved to the
   periodic image whose centroid is nearest the centroid of the chains placed
   before it, so complexes stay together;
4. whole frames are translated by lattice vectors so the first anchor does not
   jump between frames.

This is exact as long as consecutive CA atoms, and every atom and its CA, are
closer than half the narrowest width of the cell (about 0.8 nm is needed; real
solvated cells are several nm wide). Any triclinic cell works.
"""
from __future__ import annotations

import mdtraj as md
import numpy as np


from .checks import _atom


def _minimum_image(d: np.ndarray, box: np.ndarray, inv: np.ndarray | None = None) -> np.ndarray:
    """Shortest periodic image of difference vectors.

    ``d`` has shape (n_frames, m, 3) and ``box`` (n_frames, 3, 3) with the box
    vectors as rows (``inv`` is its inverse, if already computed). Exact for
    vectors shorter than half the narrowest cell width, which is all this
    module relies on.
    """
    if inv is None:
        inv = np.linalg.inv(box)
    frac = d @ inv  # batched over frames: (f, m, 3) @ (f, 3, 3)
    frac -= np.round(frac)
    return frac @ box


def _box_vectors(traj: md.Trajectory) -> np.ndarray | None:
    """Box vectors (n_frames, 3, 3) in nm as rows, or None.

    Same convention as ``traj.unitcell_vectors`` (a along x, b in the xy
    plane) but vectorized: mdtraj's property checks each frame's angles in a
    Python loop, which takes seconds for long trajectories.
    """
    if traj.unitcell_lengths is None or traj.unitcell_angles is None:
        return None
    a, b, c = (traj.unitcell_lengths[:, i].astype(np.float64) for i in range(3))
    alpha, beta, gamma = (np.radians(traj.unitcell_angles[:, i].astype(np.float64)) for i in range(3))
    cos_a, cos_b, cos_g, sin_g = np.cos(alpha), np.cos(beta), np.cos(gamma), np.sin(gamma)
    box = np.zeros((traj.n_frames, 3, 3))
    box[:, 0, 0] = a
    box[:, 1, 0] = b * cos_g
    box[:, 1, 1] = b * sin_g
    box[:, 2, 0] = c * cos_b
    cy = (cos_a - cos_b * cos_g) / sin_g
    box[:, 2, 1] = c * cy
    box[:, 2, 2] = c * np.sqrt(np.clip(1.0 - cos_b**2 - cy**2, 0.0, None))
    box[np.abs(box) < 1e-6] = 0.0
    return box


def _cell_widths(box: np.ndarray) -> np.ndarray:
    """Perpendicular widths of each cell, shape (n_frames, 3), from box vectors (n_frames, 3, 3)."""
    volume = np.abs(np.linalg.det(box))
    widths = np.empty(box.shape[:2])
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        area = np.linalg.norm(np.cross(box[:, j], box[:, k]), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            widths[:, i] = np.where(area > 0, volume / area, 0.0)
    return widths


def _make_whole(traj: md.Trajectory, boxes: np.ndarray, polymer: set[int], chunk: int = 2000) -> None:
    """Make chains whole and keep them together, in place (see the module docstring).

    Frames are processed in chunks of ``chunk`` so memory stays bounded for
    long trajectories.
    """
    top = traj.topology
    anchors = np.empty(top.n_residues, dtype=int)
    for residue in top.residues:
        ca = _atom(residue, "CA")
        anchors[residue.index] = ca if ca is not None else residue.atom(0).index

    # units: runs of consecutive polymer residues in a chain, or single other residues
    units: list[list[int]] = []
    for chain in top.chains:
        previous = None
        for residue in chain.residues:
            if previous is not None and previous in polymer and residue.index in polymer:
                units[-1].append(residue.index)
            else:
                units.append([residue.index])
            previous = residue.index
    residue_of = np.array([atom.residue.index for atom in top.atoms], dtype=int)
    atoms_of_residue = [[a.index for a in r.atoms] for r in top.residues]
    unit_atoms = [np.concatenate([atoms_of_residue[r] for r in unit]) for unit in units]

    for start in range(0, traj.n_frames, chunk):
        frames = slice(start, start + chunk)
        xyz = traj.xyz[frames].astype(np.float64)
        box = boxes[frames]
        inv = np.linalg.inv(box)
        n = xyz.shape[0]

        # 1. anchors along each unit
        new_anchor = xyz[:, anchors].copy()
        for unit in units:
            if len(unit) > 1:
                a = anchors[unit]
                steps = _minimum_image(xyz[:, a[1:]] - xyz[:, a[:-1]], box, inv)
                new_anchor[:, unit[1:]] = xyz[:, a[:1]] + np.cumsum(steps, axis=1)

        # 2. every atom next to its residue's anchor
        offsets = _minimum_image(xyz - xyz[:, anchors[residue_of]], box, inv)
        xyz = new_anchor[:, residue_of] + offsets

        # 3. each unit at the image nearest to the units already placed
        placed_sum = np.zeros((n, 3))
        placed_n = 0
        for k, idx in enumerate(unit_atoms):
            centroid = xyz[:, idx].mean(axis=1)
            if k:
                d = centroid - placed_sum / placed_n
                shift = _minimum_image(d[:, None, :], box, inv)[:, 0] - d
                xyz[:, idx] += shift[:, None, :]
                centroid = centroid + shift
            placed_sum += centroid * len(idx)
            placed_n += len(idx)
        traj.xyz[frames] = xyz

    # 4. no jumps of the whole system between frames
    if traj.n_frames > 1:
        first = traj.xyz[:, anchors[units[0][0]]].astype(np.float64)
        steps = _minimum_image((first[1:] - first[:-1])[:, None, :], boxes[1:])[:, 0]
        target = first[0] + np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
        traj.xyz += (target - first).astype(np.float32)[:, None, :]

