"""Checks of a protein topology and structure: backbone atoms, chain breaks, summaries.

Units are mdtraj's: nm.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mdtraj as md
import numpy as np

from ..bonds import CA_CHAIN_BREAK_NM, PEPTIDE_BOND_MAX_NM
from ..errors import TrajectoryError

logger = logging.getLogger(__name__)

#: Alternative names accepted for backbone atoms (C-terminal oxygens of
#: CHARMM ``OT1/OT2``, GROMOS/OPLS ``OC1/OC2``, Amber ``OXT``).
BACKBONE_ALIASES: dict[str, frozenset[str]] = {
    "O": frozenset({"O", "OT1", "OT2", "OC1", "OC2", "O1", "O2", "OXT"}),
}
#: Capping groups: protein residues without a full backbone, never checked.
CAP_RESIDUES: frozenset[str] = frozenset({"ACE", "NME", "NMA", "NH2", "FOR", "NHE", "CT3"})

_PEPTIDE_BOND_MAX_NM = PEPTIDE_BOND_MAX_NM  # C-N peptide bond is 0.133 nm (limits: mdllm_kit.bonds)
_CA_CA_MAX_NM = CA_CHAIN_BREAK_NM  # consecutive CA: 0.38 nm (trans), 0.29 nm (cis); CA(i)-CA(i+2) >= 0.5 nm
_DEFAULT_BACKBONE = ("N", "CA", "C", "O")
_MAX_LISTED = 20


@dataclass(frozen=True)
class ChainBreak:
    """A gap between two residues that follow each other in a chain.

    Attributes
    ----------
    chain_index : int
        Index of the chain in the topology.
    before, after : str
        Labels (``"ALA12"``) of the residues on either side of the gap.
    residue_indices : tuple of int
        Topology indices of those two residues.
    atoms : tuple of str
        The atoms whose distance was measured: ``("C", "N")``, or
        ``("CA", "CA")`` where a residue lacks C or N (Calpha-only models).
    distance_nm : float
        Their distance in nm (minimum image if the frame has a unit cell).
    """

    chain_index: int
    before: str
    after: str
    residue_indices: tuple[int, int]
    atoms: tuple[str, str]
    distance_nm: float

    def __str__(self) -> str:
        return (
            f"{self.before}-{self.after} in chain {self.chain_index} "
            f"({self.atoms[0]}-{self.atoms[1]} {self.distance_nm:.2f} nm)"
        )




def _label(residue: md.core.topology.Residue, multi_chain: bool) -> str:
    label = f"{residue.name}{residue.resSeq}"
    if multi_chain:
        chain_id = getattr(residue.chain, "chain_id", None) or str(residue.chain.index)
        label = f"{chain_id}:{label}"
    return label


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... ({len(items) - _MAX_LISTED} more)"
    return shown


def _has_backbone_names(residue: md.core.topology.Residue, names: Sequence[str]) -> bool:
    present = {a.name for a in residue.atoms}
    return all(n in present for n in names)


def _atom(residue: md.core.topology.Residue, name: str) -> int | None:
    for atom in residue.atoms:
        if atom.name == name:
            return atom.index
    return None


# --------------------------------------------------------------------------- public checks


def missing_backbone_atoms(
    topology: md.Topology, atoms: Sequence[str] = _DEFAULT_BACKBONE
) -> dict[str, tuple[str, ...]]:
    """Backbone atoms missing from the protein residues of a topology.

    Parameters
    ----------
    topology : mdtraj.Topology
        Topology to check. Residues that are not amino acids (water, ions,
        ligands) and capping groups (ACE, NME, ...) are skipped. A residue
        counts as an amino acid if mdtraj knows its name as protein or it has
        atoms named N, CA and C.
    atoms : sequence of str
        Required atom names. ``"O"`` is also satisfied by C-terminal oxygen
        names (OT1, OT2, OC1, OC2, OXT).

    Returns
    -------
    dict of str to tuple of str
        Residue label (``"ALA12"``, or ``"B:ALA12"`` with several chains) to
        the missing names, in topology order; empty if nothing is missing.
    """
    multi_chain = topology.n_chains > 1
    missing: dict[str, tuple[str, ...]] = {}
    for residue in topology.residues:
        if residue.name in CAP_RESIDUES:
            continue
        if not (residue.is_protein or _has_backbone_names(residue, ("N", "CA", "C"))):
            continue
        present = {a.name for a in residue.atoms}
        lacking = tuple(
            name for name in atoms if not (present & BACKBONE_ALIASES.get(name, frozenset({name})))
        )
        if lacking:
            missing[_label(residue, multi_chain)] = lacking
    return missing


def check_backbone(topology: md.Topology, atoms: Sequence[str] = _DEFAULT_BACKBONE) -> None:
    """Raise if protein residues lack backbone atoms.

    Parameters
    ----------
    topology : mdtraj.Topology
        Topology to check (see :func:`missing_backbone_atoms` for which
        residues are checked).
    atoms : sequence of str
        Required atom names, e.g. ``("N", "CA", "C", "O")`` for all-atom or
        heavy-atom models, ``("CA",)`` for Calpha models.

    Raises
    ------
    TrajectoryError
        Listing each residue and the atoms it lacks.
    """
    missing = missing_backbone_atoms(topology, atoms)
    if missing:
        listed = _listing([f"{label} ({', '.join(names)})" for label, names in missing.items()])
        raise TrajectoryError(
            f"residues missing backbone atoms: {listed}. The structure is incomplete "
            "(e.g. atoms unresolved in a crystal structure): rebuild them (PDBFixer, "
            "MODELLER), leave those residues out with selection=..., or pass "
            "require_backbone=None to skip this check"
        )


def find_chain_breaks(
    traj: md.Trajectory,
    *,
    frame: int = 0,
    peptide_cutoff_nm: float = _PEPTIDE_BOND_MAX_NM,
    ca_cutoff_nm: float = _CA_CA_MAX_NM,
) -> list[ChainBreak]:
    """Gaps between residues that follow each other in a chain.

    Consecutive amino-acid residues of a chain are bonded C(i)-N(i+1)
    (0.133 nm). A longer distance means residues are missing (unresolved
    loops) or two molecules share a chain (GRO files have no chain IDs).

    Parameters
    ----------
    traj : mdtraj.Trajectory
        Trajectory; only ``frame`` is measured.
    frame : int
        Frame to measure.
    peptide_cutoff_nm : float
        C-N distance (nm) above which two residues are not bonded.
    ca_cutoff_nm : float
        CA-CA distance (nm) used instead where a residue has no C or N
        (Calpha-only models).

    Returns
    -------
    list of ChainBreak
        In topology order; empty if every chain is continuous.
    """
    top = traj.topology
    multi_chain = top.n_chains > 1
    pairs: list[tuple[int, int]] = []
    meta: list[tuple[int, md.core.topology.Residue, md.core.topology.Residue, tuple[str, str], float]] = []
    for chain in top.chains:
        residues = list(chain.residues)
        for prev, nxt in zip(residues[:-1], residues[1:]):
            c, n = _atom(prev, "C"), _atom(nxt, "N")
            if c is not None and n is not None and _atom(prev, "CA") is not None and _atom(nxt, "CA") is not None:
                pairs.append((c, n))
                meta.append((chain.index, prev, nxt, ("C", "N"), peptide_cutoff_nm))
                continue
            ca1, ca2 = _atom(prev, "CA"), _atom(nxt, "CA")
            if ca1 is not None and ca2 is not None:
                pairs.append((ca1, ca2))
                meta.append((chain.index, prev, nxt, ("CA", "CA"), ca_cutoff_nm))
    if not pairs:
        return []
    snapshot = traj[frame]
    distances = md.compute_distances(snapshot, np.array(pairs), periodic=snapshot.unitcell_vectors is not None)[0]
    breaks = []
    for (chain_index, prev, nxt, atoms, cutoff), distance in zip(meta, distances):
        if distance > cutoff:
            breaks.append(
                ChainBreak(
                    chain_index=chain_index,
                    before=_label(prev, multi_chain),
                    after=_label(nxt, multi_chain),
                    residue_indices=(prev.index, nxt.index),
                    atoms=atoms,
                    distance_nm=float(distance),
                )
            )
    return breaks


def describe_trajectory(traj: md.Trajectory) -> dict[str, Any]:
    """A JSON-serializable summary of a trajectory (what ``mdllm inspect`` prints).

    Parameters
    ----------
    traj : mdtraj.Trajectory
        Any trajectory, typically one returned by :func:`load_trajectory`.

    Returns
    -------
    dict
        ``n_frames``, ``n_atoms``, ``n_residues``, ``n_chains``,
        ``sequences`` (one-letter code per chain, ``X`` for unknown names),
        ``calpha_only``, ``time_start_ps``, ``time_end_ps``, ``timestep_ps``
        (``None`` for one frame), ``unitcell_nm`` (mean box edge lengths or
        ``None``) and ``chain_breaks`` (strings, see :func:`find_chain_breaks`).
    """
    top = traj.topology
    time = np.asarray(traj.time, dtype=float)
    steps = np.diff(time)
    lengths = traj.unitcell_lengths
    return {
        "n_frames": int(traj.n_frames),
        "n_atoms": int(traj.n_atoms),
        "n_residues": int(traj.n_residues),
        "n_chains": int(top.n_chains),
        "sequences": ["".join(r.code or "X" for r in chain.residues) for chain in top.chains],
        "calpha_only": bool(traj.n_atoms) and all(a.name == "CA" for a in top.atoms),
        "time_start_ps": float(time[0]) if time.size else None,
        "time_end_ps": float(time[-1]) if time.size else None,
        "timestep_ps": float(np.median(steps)) if steps.size else None,
        "unitcell_nm": None if lengths is None else [float(x) for x in lengths.mean(axis=0)],
        "chain_breaks": [str(b) for b in find_chain_breaks(traj)] if traj.n_frames else [],
    }


# --------------------------------------------------------------------------- loading steps

