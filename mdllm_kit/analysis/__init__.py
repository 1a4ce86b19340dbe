"""Analysis of trajectories and generated ensembles (pure functions).

Coordinates are in nm as in mdtraj; functions whose names end in ``_A``
return Angstrom for display.
"""
from __future__ import annotations

from .rmsd import matched_atom_indices, rmsd_to_references

__all__ = ["matched_atom_indices", "rmsd_to_references"]
