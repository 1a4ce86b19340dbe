"""Fidelity measures of decoded frames (reported in Angstrom for people)."""
from __future__ import annotations

import numpy as np

from ..analysis.rmsd import rmsd_per_frame  # re-exported: the tokenizer reports it

__all__ = ["bond_ok_fraction", "rmsd_per_frame"]


def bond_ok_fraction(ca: np.ndarray, low: float = 0.35, high: float = 0.41) -> float:
    """Fraction of consecutive Calpha-Calpha distances within ``[low, high]`` nm.

    Parameters
    ----------
    ca : numpy.ndarray, shape (n_frames, n_residues, 3)
        Calpha coordinates (nm).
    """
    d = np.linalg.norm(np.diff(np.asarray(ca, dtype=np.float64), axis=1), axis=-1)
    return float(((d >= low) & (d <= high)).mean())
