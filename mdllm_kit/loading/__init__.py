"""Load MD trajectories of a protein, validated and ready for featurization.

:func:`load_trajectory` (in :mod:`.reader`) reads any format mdtraj reads, keeps
the protein, makes it whole across periodic boundaries (:mod:`.pbc`),
superposes it on a reference and checks the data on the way (:mod:`.checks`),
raising :class:`~mdllm_kit.errors.TrajectoryError` with a message that names
the problem and the fix. Units are mdtraj's: nm and ps.
"""
from __future__ import annotations

from .checks import ChainBreak, check_backbone, describe_trajectory, find_chain_breaks, missing_backbone_atoms
from .reader import LoadReport, TrajectoryFileNotFoundError, load_trajectory

__all__ = [
    "ChainBreak",
    "LoadReport",
    "TrajectoryFileNotFoundError",
    "check_backbone",
    "describe_trajectory",
    "find_chain_breaks",
    "load_trajectory",
    "missing_backbone_atoms",
]
