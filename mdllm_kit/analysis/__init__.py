"""Analysis of trajectories and generated ensembles (pure functions).

Coordinates are in nm as in mdtraj; RMSD values are returned in nm, except
:func:`rmsd_per_frame`, which returns Angstrom for display.

Modules: :mod:`.rmsd` (RMSD to references), :mod:`.projection` (PCA and
TICA fitted on a training ensemble).
"""
from __future__ import annotations

from .projection import FittedProjection, distance_pairs, fit_pca, fit_tica
from .rmsd import matched_atom_indices, rmsd_per_frame, rmsd_to_references

__all__ = [
    "FittedProjection",
    "distance_pairs",
    "fit_pca",
    "fit_tica",
    "matched_atom_indices",
    "rmsd_per_frame",
    "rmsd_to_references",
]
