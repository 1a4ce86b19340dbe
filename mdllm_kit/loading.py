"""Trajectory loading (first cut; the full loader with validation replaces this)."""
from __future__ import annotations

from os import PathLike

import mdtraj as md


def load_trajectory(path: str | PathLike, top: str | PathLike | None = None) -> md.Trajectory:
    """Load a trajectory with mdtraj and keep its protein atoms."""
    traj = md.load(str(path), top=None if top is None else str(top))
    return traj.atom_slice(traj.topology.select("protein"))
