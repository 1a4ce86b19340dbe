"""Fidelity measures of decoded frames (reported in Angstrom for people)."""
from __future__ import annotations

import numpy as np

from ..bonds import CA_BOND_OK_NM
from ..analysis.rmsd import rmsd_per_frame  # re-exported: the tokenizer reports it

__all__ = ["bond_ok_fraction", "rmsd_per_frame"]


def bond_ok_fraction(ca: np.ndarray, low: float = CA_BOND_OK_NM[0], high: float = CA_BOND_OK_NM[1]) -> float:
    """Fraction of consecutive Calpha-Calpha distances within ``[low, high]`` nm (default 3.5-4.1 A).

    Parameters
    ----------
    ca : numpy.ndarray, shape (n_frames, n_residues, 3)
        Calpha coordinates (nm).
    """
    d = np.linalg.norm(np.diff(np.asarray(ca, dtype=np.float64), axis=1), axis=-1)
    return float(((d >= low) & (d <= high)).mean())
