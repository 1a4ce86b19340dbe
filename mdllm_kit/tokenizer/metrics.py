"""Fidelity measures of decoded frames (reported in Angstrom for people)."""
from __future__ import annotations

import numpy as np

__all__ = ["bond_ok_fraction", "rmsd_per_frame"]


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
    return np.sqrt(np.maximum(e, 0.0) / a.shape[1]) * 10.0


def bond_ok_fraction(ca: np.ndarray, low: float = 0.35, high: float = 0.41) -> float:
    """Fraction of consecutive Calpha-Calpha distances within ``[low, high]`` nm.

    Parameters
    ----------
    ca : numpy.ndarray, shape (n_frames, n_residues, 3)
        Calpha coordinates (nm).
    """
    d = np.linalg.norm(np.diff(np.asarray(ca, dtype=np.float64), axis=1), axis=-1)
    return float(((d >= low) & (d <= high)).mean())
