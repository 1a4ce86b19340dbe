"""Physical validity of frames: Calpha bond breaks, Calpha clashes, peptide-bond breaks.

The criteria are those ProteinBench reports, as implemented in its
conformation-sampling evaluation (bytedance/ConfDiff,
``src/analysis/struct_quality.py``, after Str2Str):

* **Calpha bond break**: consecutive Calpha atoms more than
  :data:`CA_BREAK_NM` (3.8 + 0.4 = 4.2 A) apart; 4.19 A is the largest
  consecutive Calpha distance ConfDiff's authors found in MD trajectories.
* **Calpha clash**: two non-bonded Calpha atoms closer than
  :data:`CA_CLASH_NM` (2 x 1.7 A carbon van der Waals radius - 0.4 A
  tolerance = 3.0 A). Unlike ConfDiff, bonded (consecutive) Calpha pairs are
  not counted: a cis peptide bond puts them 2.9 A apart (Phe86-Pro87 of the
  closed AdK crystal, 1AKE), which is physical.
* **Peptide-bond break** (only when backbone N and C atoms are present):
  C(i)-N(i+1) longer than :data:`CN_BREAK_NM` (2.0 A, the cut-off at which
  :func:`mdllm_kit.find_chain_breaks` calls two residues not bonded). The
  bond is 1.33 A; ConfDiff's 1.4 A (Biopython's ``maxPeptideBond``, made for
  crystal structures) is only 3.5 thermal standard deviations above it and
  calls real MD broken: in all-atom Amber14 MD of AdK at 300 K
  (:func:`mdllm_kit.testing.simulate_in_vacuum`) 0.2-0.3 % of C-N bonds
  exceed 1.4 A and 30 % of frames have one such bond (mean 1.34 A, standard
  deviation 0.02 A, maximum 1.42 A over 4,260 bonds); on a real all-atom
  closed-to-open AdK path 3.3 % do. No MD frame comes near 2.0 A, which is
  what a break means: the two residues are no longer bonded.

The report also gives the distribution of the Calpha-Calpha and C-N bond
lengths (``ca_bond_length_A``, ``cn_bond_length_A``: mean, 99th percentile,
maximum), to compare generated frames with the training frames
(:func:`mdllm_kit.analyze` reports both side by side) on a scale that does
not depend on a threshold.

Bonds are only checked between residues that follow each other in the same
chain with consecutive residue numbers, so chain ends and gaps in the
numbering (missing residues) are not counted as breaks.

Frame-level validity follows ConfDiff: a frame is Calpha-valid if it has no
Calpha bond break and no Calpha clash.
"""
from __future__ import annotations

from typing import Any

import mdtraj as md
import numpy as np

from ..errors import TrajectoryError
from ..bonds import CA_BREAK_NM, CA_CLASH_NM, PEPTIDE_BOND_MAX_NM
from .units import NM_TO_A

__all__ = ["CA_BREAK_NM", "CA_CLASH_NM", "CN_BREAK_NM", "bonded_residue_pairs", "frame_validity", "validity_report"]

# CA_BREAK_NM (4.2 A) and CA_CLASH_NM (3.0 A) are defined in mdllm_kit.bonds, with every bond limit.
#: A C(i)-N(i+1) peptide bond longer than this (nm) is broken (2.0 A; the loader's chain-break cut-off).
CN_BREAK_NM = PEPTIDE_BOND_MAX_NM
#: Frames per block when computing all Calpha pair distances (bounds memory to ~100 MB for 500 residues).
_CLASH_CHUNK_FRAMES = 100


def _atom(residue: md.core.topology.Residue, name: str) -> int | None:
    for atom in residue.atoms:
        if atom.name == name:
            return atom.index
    return None


def bonded_residue_pairs(topology: md.Topology) -> list[tuple[md.core.topology.Residue, md.core.topology.Residue]]:
    """Pairs of residues joined by a peptide bond: consecutive in a chain with consecutive numbers.

    Returns
    -------
    list of (Residue, Residue)
        In chain order.
    """
    pairs = []
    for chain in topology.chains:
        residues = list(chain.residues)
        for prev, nxt in zip(residues[:-1], residues[1:]):
            if nxt.resSeq - prev.resSeq == 1:
                pairs.append((prev, nxt))
    return pairs


def _count_clashes(xyz: np.ndarray, threshold_nm: float, bonded: np.ndarray) -> tuple[np.ndarray, int]:
    """Non-bonded pairs closer than ``threshold_nm`` per frame, and the number of pairs checked.

    ``xyz`` (n_frames, n_atoms, 3) nm; ``bonded`` (n_bonds, 2) atom positions in ``xyz`` to skip.
    """
    n = xyz.shape[1]
    i, j = np.triu_indices(n, k=1)
    skip = np.zeros((n, n), dtype=bool)
    if len(bonded):
        skip[bonded[:, 0], bonded[:, 1]] = skip[bonded[:, 1], bonded[:, 0]] = True
    keep = ~skip[i, j]
    pairs = np.stack([i[keep], j[keep]], axis=1)
    top = md.Topology()
    chain = top.add_chain()
    for _ in range(n):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
    counts = np.empty(len(xyz), dtype=np.int64)
    for start in range(0, len(xyz), _CLASH_CHUNK_FRAMES):
        block = md.Trajectory(xyz[start:start + _CLASH_CHUNK_FRAMES], top)
        d = md.compute_distances(block, pairs, periodic=False)
        counts[start:start + len(d)] = (d < threshold_nm).sum(1)
    return counts, len(pairs)


def validity_report(
    traj: md.Trajectory,
    ca_break_nm: float = CA_BREAK_NM,
    ca_clash_nm: float = CA_CLASH_NM,
    cn_break_nm: float = CN_BREAK_NM,
) -> dict[str, Any]:
    """Calpha bond breaks, Calpha clashes and peptide-bond breaks of every frame.

    Parameters
    ----------
    traj : mdtraj.Trajectory
        Frames (nm) with Calpha atoms named ``CA``; backbone ``C`` and ``N``
        are used when present.
    ca_break_nm, ca_clash_nm, cn_break_nm : float
        Thresholds, nm (defaults: the ProteinBench/ConfDiff Calpha criteria and
        the 2.0 A peptide-bond break above).

    Returns
    -------
    dict
        ``per_frame``: arrays of shape (n_frames,) -- ``ca_breaks``,
        ``ca_clashes``, ``cn_breaks`` (counts; ``cn_breaks`` is ``None``
        without backbone atoms) and ``ca_valid`` (bool).
        Summary floats: ``ca_break_rate`` (broken / checked Calpha bonds over
        all frames), ``ca_clash_rate`` (clashing / non-bonded Calpha pairs;
        both rates are 0 when there is nothing to check, e.g. a chain of two
        Calpha atoms has no non-bonded pair),
        ``frames_without_ca_break``, ``frames_without_ca_clash``,
        ``ca_valid_fraction`` (frames with neither), and with backbone atoms
        ``cn_break_rate`` and ``frames_without_cn_break`` (else ``None``);
        ``ca_bond_length_A`` and ``cn_bond_length_A`` (``mean``, ``p99``,
        ``max`` of the bonded distances over all frames, Angstrom; ``None``
        without such bonds).
        Also ``n_frames``, ``n_ca_bonds``, ``n_ca_pairs``, ``n_cn_bonds``
        and ``thresholds_A``.
    """
    top = traj.topology
    ca = np.array([a.index for a in top.atoms if a.name == "CA"], dtype=int)
    if ca.size < 2:
        raise TrajectoryError(
            f"validity needs at least two Calpha atoms named CA, found {ca.size}; "
            "check the topology's atom names"
        )
    residue_pairs = bonded_residue_pairs(top)
    ca_bonds = [(_atom(a, "CA"), _atom(b, "CA")) for a, b in residue_pairs]
    ca_bonds = np.array([p for p in ca_bonds if None not in p], dtype=int).reshape(-1, 2)
    cn_bonds = [(_atom(a, "C"), _atom(b, "N")) for a, b in residue_pairs]
    cn_bonds = np.array([p for p in cn_bonds if None not in p], dtype=int).reshape(-1, 2)

    n_frames = traj.n_frames
    d_ca = None
    if len(ca_bonds):
        d_ca = md.compute_distances(traj, ca_bonds, periodic=False)
        ca_breaks = (d_ca > ca_break_nm).sum(1)
    else:
        ca_breaks = np.zeros(n_frames, dtype=np.int64)
    position = np.full(top.n_atoms, -1)
    position[ca] = np.arange(ca.size)
    ca_clashes, n_pairs = _count_clashes(traj.xyz[:, ca], ca_clash_nm, position[ca_bonds])
    cn_breaks = d_cn = None
    if len(cn_bonds):
        d_cn = md.compute_distances(traj, cn_bonds, periodic=False)
        cn_breaks = (d_cn > cn_break_nm).sum(1)
    ca_valid = (ca_breaks == 0) & (ca_clashes == 0)
    return {
        "n_frames": int(n_frames),
        "n_ca_bonds": int(len(ca_bonds)),
        "n_ca_pairs": int(n_pairs),
        "n_cn_bonds": int(len(cn_bonds)),
        "thresholds_A": {"ca_break": round(ca_break_nm * NM_TO_A, 6), "ca_clash": round(ca_clash_nm * NM_TO_A, 6),
                         "cn_break": round(cn_break_nm * NM_TO_A, 6)},
        "per_frame": {
            "ca_breaks": ca_breaks.astype(np.int64),
            "ca_clashes": ca_clashes.astype(np.int64),
            "cn_breaks": None if cn_breaks is None else cn_breaks.astype(np.int64),
            "ca_valid": ca_valid,
        },
        "ca_break_rate": float(ca_breaks.sum() / max(len(ca_bonds) * n_frames, 1)),
        "ca_clash_rate": float(ca_clashes.sum() / max(n_pairs * n_frames, 1)),
        "frames_without_ca_break": float(np.mean(ca_breaks == 0)),
        "frames_without_ca_clash": float(np.mean(ca_clashes == 0)),
        "ca_valid_fraction": float(np.mean(ca_valid)),
        "cn_break_rate": None if cn_breaks is None else float(cn_breaks.sum() / (len(cn_bonds) * n_frames)),
        "frames_without_cn_break": None if cn_breaks is None else float(np.mean(cn_breaks == 0)),
        "ca_bond_length_A": _length_stats(d_ca),
        "cn_bond_length_A": _length_stats(d_cn),
    }


def frame_validity(traj: md.Trajectory) -> np.ndarray:
    """Whether each frame is physically valid, shape (n_frames,) bool.

    The criteria of :func:`validity_report`: no Calpha bond break, no Calpha
    clash and, with backbone atoms, no peptide-bond break.
    """
    per_frame = validity_report(traj)["per_frame"]
    valid = np.asarray(per_frame["ca_valid"], dtype=bool)
    if per_frame["cn_breaks"] is not None:
        valid &= np.asarray(per_frame["cn_breaks"]) == 0
    return valid


def _length_stats(d_nm: np.ndarray | None) -> dict[str, float] | None:
    """Mean, 99th percentile and maximum of bond lengths (nm in, Angstrom out); ``None`` without bonds."""
    if d_nm is None or d_nm.size == 0:
        return None
    d = np.asarray(d_nm, dtype=np.float64) * NM_TO_A
    return {"mean": round(float(d.mean()), 4), "p99": round(float(np.percentile(d, 99)), 4),
            "max": round(float(d.max()), 4)}
