"""Small synthetic protein chains with known geometry, for analysis tests.

Coordinates in nm. Calpha traces have consecutive atoms 0.38 nm apart.
"""
from __future__ import annotations

import mdtraj as md
import numpy as np

CA_CA_NM = 0.38


def calpha_topology(n_residues: int, n_chains: int = 1, backbone: bool = False) -> md.Topology:
    """Alanine chains of Calpha atoms (or N, CA, C, O when ``backbone``)."""
    top = md.Topology()
    per_chain = n_residues // n_chains
    for c in range(n_chains):
        chain = top.add_chain()
        for i in range(per_chain):
            res = top.add_residue("ALA", chain, resSeq=c * per_chain + i + 1)
            for name in (("N", "CA", "C", "O") if backbone else ("CA",)):
                top.add_atom(name, md.element.get_by_symbol(name[0]), res)
    return top


def helix_trace(n_residues: int) -> np.ndarray:
    """An alpha-helix-like Calpha trace, shape (n_residues, 3): rise 0.15 nm, 100 deg per residue.

    Radius chosen so consecutive Calpha atoms are :data:`CA_CA_NM` apart;
    non-consecutive atoms are at least 0.5 nm apart.
    """
    turn = np.deg2rad(100.0)
    rise = 0.15
    radius = np.sqrt((CA_CA_NM**2 - rise**2) / (2 - 2 * np.cos(turn)))
    k = np.arange(n_residues)
    return np.stack([radius * np.cos(k * turn), radius * np.sin(k * turn), rise * k], axis=1)


def extended_trace(n_residues: int) -> np.ndarray:
    """A straight zig-zag Calpha trace along x, shape (n_residues, 3); bonds :data:`CA_CA_NM`."""
    k = np.arange(n_residues)
    dy = 0.1
    dx = np.sqrt(CA_CA_NM**2 - (2 * dy) ** 2)
    return np.stack([k * dx, dy * (-1.0) ** k, np.zeros(n_residues)], axis=1)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix (3, 3)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def rigidly_moved(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every frame of ``xyz`` (n_frames, n_atoms, 3) rotated and translated at random."""
    out = np.empty_like(xyz)
    for f in range(len(xyz)):
        out[f] = xyz[f] @ random_rotation(rng).T + rng.normal(scale=2.0, size=3)
    return out


def two_state_chain(n_frames: int, p_switch: float, rng: np.random.Generator) -> np.ndarray:
    """A two-state Markov jump process: state sequence of length ``n_frames`` (0/1), switching with ``p_switch``."""
    flips = rng.random(n_frames) < p_switch
    flips[0] = False
    return (np.cumsum(flips) % 2).astype(int)


def trajectory(xyz: np.ndarray, top: md.Topology, dt_ps: float = 1.0) -> md.Trajectory:
    """An mdtraj Trajectory of ``xyz`` (n_frames, n_atoms, 3) nm with time in ps."""
    xyz = np.asarray(xyz, dtype=np.float32)
    return md.Trajectory(xyz, top, time=np.arange(len(xyz)) * dt_ps)
