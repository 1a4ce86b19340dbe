"""Analysis of trajectories and generated ensembles (pure functions).

Coordinates are in nm as in mdtraj; RMSD values are returned in nm, except
:func:`rmsd_per_frame`, which returns Angstrom for display.
"""
from __future__ import annotations

from .rmsd import matched_atom_indices, rmsd_per_frame, rmsd_to_references

__all__ = ["matched_atom_indices", "rmsd_per_frame", "rmsd_to_references"]
