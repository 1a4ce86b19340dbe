"""Load MD trajectories of a protein, validated and ready for featurization.

:func:`load_trajectory` reads any format mdtraj reads, keeps the protein,
makes it whole across periodic boundaries, superposes it on a reference and
checks the data on the way, raising :class:`~mdllm_kit.errors.TrajectoryError`
with a message that names the problem and the fix.

Units are mdtraj's: nm and ps.

Making molecules whole
----------------------
MD engines write atoms wrapped into the periodic cell, so a protein is split
across the cell faces. The loader rebuilds it without relying on topology bonds
(which are missing for residue names a topology reader does not know):

1. within each chain, the anchor atom of each residue (CA, or the first atom
   of residues without one) is placed at the minimum image of the previous
   residue's anchor;
2. every atom is placed at the minimum image of its residue's anchor;
3. each chain (and each non-polymer residue in the selection) is moved to the
   periodic image whose centroid is nearest the centroid of the chains placed
   before it, so complexes stay together;
4. whole frames are translated by lattice vectors so the first anchor does not
   jump between frames.

This is exact as long as consecutive CA atoms, and every atom and its CA, are
closer than half the narrowest width of the cell (about 0.8 nm is needed; real
solvated cells are several nm wide). Any triclinic cell works.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, overload

import mdtraj as md
import numpy as np

from .errors import TrajectoryError

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

logger = logging.getLogger(__name__)

PathType = str | PathLike

#: Extensions whose files carry a topology (atom names, residues) of their own.
TOPOLOGY_TRAJECTORY_FORMATS: frozenset[str] = frozenset(
    {
        ".pdb", ".pdb.gz", ".pdbx", ".pdbx.gz", ".cif", ".cif.gz", ".mmcif", ".mmcif.gz",
        ".h5", ".hdf5", ".lh5", ".mol2", ".gro", ".arc", ".hoomdxml", ".gsd",
    }
)
#: Extensions mdtraj reads as topology only (``top=``).
TOPOLOGY_ONLY_FORMATS: frozenset[str] = frozenset({".prmtop", ".parm7", ".prm7", ".psf"})

#: Alternative names accepted for backbone atoms (C-terminal oxygens of
#: CHARMM ``OT1/OT2``, GROMOS/OPLS ``OC1/OC2``, Amber ``OXT``).
BACKBONE_ALIASES: dict[str, frozenset[str]] = {
    "O": frozenset({"O", "OT1", "OT2", "OC1", "OC2", "O1", "O2", "OXT"}),
}
#: Capping groups: protein residues without a full backbone, never checked.
CAP_RESIDUES: frozenset[str] = frozenset({"ACE", "NME", "NMA", "NH2", "FOR", "NHE", "CT3"})

_PEPTIDE_BOND_MAX_NM = 0.2  # C-N peptide bond is 0.133 nm
_CA_CA_MAX_NM = 0.5  # consecutive CA: 0.38 nm (trans), 0.29 nm (cis); CA(i)-CA(i+2) >= 0.5 nm
_DEFAULT_BACKBONE = ("N", "CA", "C", "O")
_MIN_CELL_WIDTH_NM = 1.6
_MAX_LISTED = 20


class TrajectoryFileNotFoundError(TrajectoryError, FileNotFoundError):
    """A trajectory or topology path does not exist (a TrajectoryError and a FileNotFoundError)."""


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


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_trajectory` did, returned with ``return_report=True``.

    Attributes
    ----------
    path, topology : str
        The files read (``topology`` is ``None`` when it came from ``path``).
    n_frames : int
        Frames returned (after ``stride``).
    n_atoms_file, n_atoms : int
        Atoms in the file and atoms kept.
    dropped_residues : dict of str to int
        Names and counts of the residues not kept (water, ions, ligands).
    unknown_residues : tuple of str
        Residues kept although mdtraj does not know their name as protein
        (kept because their N, CA, C are bonded into a chain).
    chain_breaks : tuple of ChainBreak
        Gaps inside chains found in the first frame.
    backbone_atoms : tuple of str
        Backbone atoms every protein residue was required to have.
    made_whole, superposed : bool
        Whether molecules were made whole (needs a unit cell) and superposed.
    """

    path: str
    topology: str | None
    n_frames: int
    n_atoms_file: int
    n_atoms: int
    dropped_residues: dict[str, int] = field(default_factory=dict)
    unknown_residues: tuple[str, ...] = ()
    chain_breaks: tuple[ChainBreak, ...] = ()
    backbone_atoms: tuple[str, ...] = ()
    made_whole: bool = False
    superposed: bool = False


# --------------------------------------------------------------------------- helpers


def _extension(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if not suffixes:
        return ""
    if suffixes[-1] == ".gz" and len(suffixes) > 1:
        return "".join(suffixes[-2:])
    return suffixes[-1]


def _supported_extensions() -> list[str]:
    from mdtraj.formats.registry import FormatRegistry

    return sorted(FormatRegistry.loaders)


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


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise TrajectoryFileNotFoundError(f"{what} file {str(path)!r} does not exist; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise TrajectoryError(
            f"{what} file {str(path)!r} is empty (0 bytes): the run may have stopped before "
            "writing anything, or the copy failed; use a complete file"
        )


def _minimum_image(d: np.ndarray, box: np.ndarray, inv: np.ndarray | None = None) -> np.ndarray:
    """Shortest periodic image of difference vectors.

    ``d`` has shape (n_frames, m, 3) and ``box`` (n_frames, 3, 3) with the box
    vectors as rows (``inv`` is its inverse, if already computed). Exact for
    vectors shorter than half the narrowest cell width, which is all this
    module relies on.
    """
    if inv is None:
        inv = np.linalg.inv(box)
    frac = d @ inv  # batched over frames: (f, m, 3) @ (f, 3, 3)
    frac -= np.round(frac)
    return frac @ box


def _box_vectors(traj: md.Trajectory) -> np.ndarray | None:
    """Box vectors (n_frames, 3, 3) in nm as rows, or None.

    Same convention as ``traj.unitcell_vectors`` (a along x, b in the xy
    plane) but vectorized: mdtraj's property checks each frame's angles in a
    Python loop, which takes seconds for long trajectories.
    """
    if traj.unitcell_lengths is None or traj.unitcell_angles is None:
        return None
    a, b, c = (traj.unitcell_lengths[:, i].astype(np.float64) for i in range(3))
    alpha, beta, gamma = (np.radians(traj.unitcell_angles[:, i].astype(np.float64)) for i in range(3))
    cos_a, cos_b, cos_g, sin_g = np.cos(alpha), np.cos(beta), np.cos(gamma), np.sin(gamma)
    box = np.zeros((traj.n_frames, 3, 3))
    box[:, 0, 0] = a
    box[:, 1, 0] = b * cos_g
    box[:, 1, 1] = b * sin_g
    box[:, 2, 0] = c * cos_b
    cy = (cos_a - cos_b * cos_g) / sin_g
    box[:, 2, 1] = c * cy
    box[:, 2, 2] = c * np.sqrt(np.clip(1.0 - cos_b**2 - cy**2, 0.0, None))
    box[np.abs(box) < 1e-6] = 0.0
    return box


def _cell_widths(box: np.ndarray) -> np.ndarray:
    """Perpendicular widths of each cell, shape (n_frames, 3), from box vectors (n_frames, 3, 3)."""
    volume = np.abs(np.linalg.det(box))
    widths = np.empty(box.shape[:2])
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        area = np.linalg.norm(np.cross(box[:, j], box[:, k]), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            widths[:, i] = np.where(area > 0, volume / area, 0.0)
    return widths


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


def _load_topology(path: Path, top: PathType | md.Topology | md.Trajectory | None, ext: str) -> md.Topology:
    if isinstance(top, md.Topology):
        return top
    if isinstance(top, md.Trajectory):
        return top.topology
    if top is None:
        if ext not in TOPOLOGY_TRAJECTORY_FORMATS:
            raise TrajectoryError(
                f"{ext.lstrip('.')} files hold coordinates only, not atom names or residues; "
                "pass top= a PDB/GRO/PSF/PRMTOP file of the same system "
                f"(e.g. load_trajectory({path.name!r}, top='system.pdb'))"
            )
        source = path
    else:
        source = Path(top)
        _check_file(source, "topology")
        top_ext = _extension(source)
        if top_ext not in TOPOLOGY_TRAJECTORY_FORMATS | TOPOLOGY_ONLY_FORMATS:
            raise TrajectoryError(
                f"top={str(source)!r} is not a topology format; pass a PDB, GRO, PSF, "
                f"PRMTOP, mmCIF, MOL2 or H5 file (got {top_ext or 'no extension'!r})"
            )
    try:
        return md.load_topology(str(source))
    except Exception as exc:  # mdtraj raises many types for unreadable files
        raise TrajectoryError(
            f"cannot read a topology from {str(source)!r} ({type(exc).__name__}: {exc}); "
            "check that the file is complete and in the format its extension says"
        ) from exc


def _count_file_atoms(path: Path, ext: str) -> tuple[int, int] | None:
    """(n_atoms, n_frames_read<=1) of a coordinate file's first frame, or None if unknown."""
    if ext not in {".xtc", ".trr", ".dcd", ".nc", ".ncdf", ".netcdf"}:
        return None
    try:
        with md.open(str(path)) as handle:
            xyz = np.asarray(handle.read(n_frames=1)[0])
    except Exception:  # leave the diagnosis to the full load
        logger.debug("could not peek at %s", path, exc_info=True)
        return None
    if xyz.ndim != 3:
        return None
    return xyz.shape[1], xyz.shape[0]


def _chain_candidates(topology: md.Topology) -> list[md.core.topology.Residue]:
    """Residues unknown to mdtraj as protein that may be amino acids in a chain."""
    candidates = []
    for chain in topology.chains:
        residues = list(chain.residues)
        for i, residue in enumerate(residues):
            if residue.is_protein or not _has_backbone_names(residue, ("N", "CA", "C")):
                continue
            neighbours = residues[max(i - 1, 0) : i] + residues[i + 1 : i + 2]
            if any(_has_backbone_names(r, ("N", "CA", "C")) for r in neighbours):
                candidates.append(residue)
    return candidates


def _bonded_candidates(
    traj: md.Trajectory, candidates: set[int]
) -> set[int]:
    """Candidate residues (topology indices of ``traj``) peptide-bonded to a chain neighbour."""
    top = traj.topology
    pairs, owners = [], []
    for chain in top.chains:
        residues = list(chain.residues)
        for prev, nxt in zip(residues[:-1], residues[1:]):
            if prev.index not in candidates and nxt.index not in candidates:
                continue
            c, n = _atom(prev, "C"), _atom(nxt, "N")
            if c is None or n is None:
                continue
            pairs.append((c, n))
            owners.append((prev.index, nxt.index))
    bonded: set[int] = set()
    if pairs:
        snapshot = traj[0]
        d = md.compute_distances(snapshot, np.array(pairs), periodic=snapshot.unitcell_vectors is not None)[0]
        for (a, b), distance in zip(owners, d):
            if distance <= _PEPTIDE_BOND_MAX_NM:
                bonded.update({a, b})
    return bonded & candidates


def _make_whole(traj: md.Trajectory, boxes: np.ndarray, polymer: set[int], chunk: int = 2000) -> None:
    """Make chains whole and keep them together, in place (see the module docstring).

    Frames are processed in chunks of ``chunk`` so memory stays bounded for
    long trajectories.
    """
    top = traj.topology
    anchors = np.empty(top.n_residues, dtype=int)
    for residue in top.residues:
        ca = _atom(residue, "CA")
        anchors[residue.index] = ca if ca is not None else residue.atom(0).index

    # units: runs of consecutive polymer residues in a chain, or single other residues
    units: list[list[int]] = []
    for chain in top.chains:
        previous = None
        for residue in chain.residues:
            if previous is not None and previous in polymer and residue.index in polymer:
                units[-1].append(residue.index)
            else:
                units.append([residue.index])
            previous = residue.index
    residue_of = np.array([atom.residue.index for atom in top.atoms], dtype=int)
    atoms_of_residue = [[a.index for a in r.atoms] for r in top.residues]
    unit_atoms = [np.concatenate([atoms_of_residue[r] for r in unit]) for unit in units]

    for start in range(0, traj.n_frames, chunk):
        frames = slice(start, start + chunk)
        xyz = traj.xyz[frames].astype(np.float64)
        box = boxes[frames]
        inv = np.linalg.inv(box)
        n = xyz.shape[0]

        # 1. anchors along each unit
        new_anchor = xyz[:, anchors].copy()
        for unit in units:
            if len(unit) > 1:
                a = anchors[unit]
                steps = _minimum_image(xyz[:, a[1:]] - xyz[:, a[:-1]], box, inv)
                new_anchor[:, unit[1:]] = xyz[:, a[:1]] + np.cumsum(steps, axis=1)

        # 2. every atom next to its residue's anchor
        offsets = _minimum_image(xyz - xyz[:, anchors[residue_of]], box, inv)
        xyz = new_anchor[:, residue_of] + offsets

        # 3. each unit at the image nearest to the units already placed
        placed_sum = np.zeros((n, 3))
        placed_n = 0
        for k, idx in enumerate(unit_atoms):
            centroid = xyz[:, idx].mean(axis=1)
            if k:
                d = centroid - placed_sum / placed_n
                shift = _minimum_image(d[:, None, :], box, inv)[:, 0] - d
                xyz[:, idx] += shift[:, None, :]
                centroid = centroid + shift
            placed_sum += centroid * len(idx)
            placed_n += len(idx)
        traj.xyz[frames] = xyz

    # 4. no jumps of the whole system between frames
    if traj.n_frames > 1:
        first = traj.xyz[:, anchors[units[0][0]]].astype(np.float64)
        steps = _minimum_image((first[1:] - first[:-1])[:, None, :], boxes[1:])[:, 0]
        target = first[0] + np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
        traj.xyz += (target - first).astype(np.float32)[:, None, :]


def _resolve_reference(
    traj: md.Trajectory, reference: int | md.Trajectory | PathType | None
) -> md.Trajectory:
    if reference is None:
        return traj[0]
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        if not -traj.n_frames <= reference < traj.n_frames:
            raise TrajectoryError(
                f"reference={reference} is not a frame of the loaded trajectory "
                f"({traj.n_frames} frames after stride); pass an index in "
                f"[0, {traj.n_frames - 1}] or a structure"
            )
        return traj[int(reference)]
    if isinstance(reference, (str, PathLike)):
        ref_path = Path(reference)
        _check_file(ref_path, "reference")
        try:
            reference = md.load_frame(str(ref_path), 0)
        except Exception as exc:
            raise TrajectoryError(
                f"cannot read reference structure {str(ref_path)!r} ({type(exc).__name__}: {exc}); "
                "pass a PDB/GRO/H5 file, an mdtraj.Trajectory or a frame index"
            ) from exc
    if isinstance(reference, md.Trajectory):
        if reference.n_frames == 0:
            raise TrajectoryError("the reference trajectory has no frames; pass a structure with coordinates")
        return reference[0]
    raise TrajectoryError(
        f"reference must be None, a frame index, an mdtraj.Trajectory or a structure file; "
        f"got {type(reference).__name__}"
    )


def _select(topology: md.Topology, selection: str, what: str) -> np.ndarray:
    try:
        return np.asarray(topology.select(selection), dtype=int)
    except Exception as exc:
        raise TrajectoryError(
            f"{what}={selection!r} is not a valid mdtraj selection ({type(exc).__name__}: {exc}); "
            "see https://mdtraj.org/1.9.4/atom_selection.html for the syntax, e.g. 'protein and not name H'"
        ) from exc


# --------------------------------------------------------------------------- the loader


@overload
def load_trajectory(
    path: PathType,
    top: PathType | md.Topology | md.Trajectory | None = ...,
    *,
    selection: str | None = ...,
    stride: int | None = ...,
    make_whole: bool = ...,
    superpose: bool = ...,
    reference: int | md.Trajectory | PathType | None = ...,
    superpose_selection: str = ...,
    require_backbone: Sequence[str] | Literal["auto"] | None = ...,
    return_report: Literal[False] = ...,
) -> md.Trajectory: ...


@overload
def load_trajectory(
    path: PathType,
    top: PathType | md.Topology | md.Trajectory | None = ...,
    *,
    selection: str | None = ...,
    stride: int | None = ...,
    make_whole: bool = ...,
    superpose: bool = ...,
    reference: int | md.Trajectory | PathType | None = ...,
    superpose_selection: str = ...,
    require_backbone: Sequence[str] | Literal["auto"] | None = ...,
    return_report: Literal[True],
) -> tuple[md.Trajectory, LoadReport]: ...


def load_trajectory(
    path: PathType,
    top: PathType | md.Topology | md.Trajectory | None = None,
    *,
    selection: str | None = "protein",
    stride: int | None = None,
    make_whole: bool = True,
    superpose: bool = True,
    reference: int | md.Trajectory | PathType | None = None,
    superpose_selection: str = "name CA",
    require_backbone: Sequence[str] | Literal["auto"] | None = "auto",
    return_report: bool = False,
) -> md.Trajectory | tuple[md.Trajectory, LoadReport]:
    """Load a protein trajectory: select, check, make whole, superpose.

    Parameters
    ----------
    path : str or path-like
        Trajectory in any format mdtraj reads (xtc, trr, dcd, nc, h5, pdb,
        gro, ...).
    top : str, path-like, mdtraj.Topology or mdtraj.Trajectory, optional
        Topology of the same system (PDB, GRO, PSF, PRMTOP, ...). Required for
        coordinate-only formats (xtc, trr, dcd, nc, ...).
    selection : str or None, default "protein"
        Atoms to keep. ``"protein"`` keeps mdtraj's protein residues plus
        residues with names mdtraj does not know (HID, CYX, ASH, NALA, ...)
        whose N, CA and C are peptide-bonded into a chain; those are logged
        as a warning. Water, ions and ligands are dropped. Any other string is
        an mdtraj selection used as is; ``None`` keeps every atom.
    stride : int, optional
        Keep every ``stride``-th frame of the file.
    make_whole : bool, default True
        Rebuild molecules split across periodic boundaries (needs a unit cell
        in the file; skipped with a log message otherwise). See the module
        docstring.
    superpose : bool, default True
        Superpose every frame on ``reference`` using ``superpose_selection``.
    reference : int, mdtraj.Trajectory, str or path-like, optional
        ``None``: the first loaded frame. An int: that frame of the loaded
        (strided) trajectory. A trajectory or structure file of the same
        protein: its first frame; it must have as many atoms matching
        ``superpose_selection`` as the loaded trajectory (it may have other
        atoms, e.g. no hydrogens).
    superpose_selection : str, default "name CA"
        mdtraj selection of the atoms fitted.
    require_backbone : sequence of str, "auto" or None, default "auto"
        Backbone atoms every amino-acid residue must have. ``"auto"``: only
        ``("CA",)`` for Calpha-only models (every kept atom named CA), else
        ``("N", "CA", "C", "O")``. ``None`` skips the check (e.g. for
        coarse-grained models with other bead names).
    return_report : bool, default False
        Also return a :class:`LoadReport`.

    Returns
    -------
    mdtraj.Trajectory
        ``n_frames`` frames of the kept atoms; coordinates in nm
        (``xyz`` of shape (n_frames, n_atoms, 3)), time in ps, unit cell
        kept from the file.
    LoadReport
        Only with ``return_report=True``.

    Raises
    ------
    TrajectoryError
        On unreadable, empty or inconsistent input: a missing topology,
        atom counts that differ between topology and trajectory, no protein
        atoms, residues missing backbone atoms, NaN/inf coordinates, an
        unusable selection or reference. A missing file raises
        :class:`TrajectoryFileNotFoundError` (also a ``FileNotFoundError``).

    Notes
    -----
    Chain breaks (residues missing inside a chain) are logged as a warning
    and listed in the report; :func:`find_chain_breaks` finds them on any
    trajectory.

    Examples
    --------
    >>> traj = load_trajectory("run.xtc", top="system.gro")  # doctest: +SKIP
    >>> traj, report = load_trajectory("run.xtc", top="system.gro", return_report=True)  # doctest: +SKIP
    >>> report.chain_breaks  # doctest: +SKIP
    ()
    """
    path = Path(path)
    _check_file(path, "trajectory")
    ext = _extension(path)
    supported = _supported_extensions()
    if ext not in supported:
        raise TrajectoryError(
            f"cannot read {str(path)!r}: unknown trajectory format {ext or '(no extension)'!r}; "
            f"mdtraj reads {', '.join(supported)}. Convert the file or rename it to its real extension"
        )
    if stride is not None and (not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 1):
        raise TrajectoryError(f"stride must be a positive integer or None, got {stride!r}")

    topology = _load_topology(path, top, ext)
    top_name = None if top is None else (str(top) if isinstance(top, (str, PathLike)) else type(top).__name__)

    peek = _count_file_atoms(path, ext)
    if peek is not None:
        n_file, n_first = peek
        if n_first == 0:
            raise TrajectoryError(f"trajectory {str(path)!r} contains no frames; use a file with at least one frame")
        if n_file != topology.n_atoms:
            raise TrajectoryError(
                f"topology has {topology.n_atoms} atoms but trajectory has {n_file}: they are not the same "
                f"system. Pass the topology the trajectory was written with (if the run saved only "
                f"part of the system, e.g. the protein, make a topology of that part)"
            )
    elif top is not None and ext in TOPOLOGY_TRAJECTORY_FORMATS:
        try:
            n_file = md.load_topology(str(path)).n_atoms
        except Exception:  # leave the diagnosis to the full load
            n_file = topology.n_atoms
        if n_file != topology.n_atoms:
            raise TrajectoryError(
                f"topology has {topology.n_atoms} atoms but trajectory has {n_file}: they are not the same "
                "system. Pass the matching topology, or leave out top= to use the file's own"
            )
    n_atoms_file = topology.n_atoms

    # -- which atoms to keep (decided on the topology, so solvent is never loaded)
    candidates: list[md.core.topology.Residue] = []
    if selection is None:
        keep = np.arange(topology.n_atoms)
    elif selection == "protein":
        keep = _select(topology, "protein", "selection")
        candidates = _chain_candidates(topology)
        if candidates:
            extra = [a.index for r in candidates for a in r.atoms]
            keep = np.union1d(keep, extra).astype(int)
    else:
        keep = _select(topology, selection, "selection")
    if keep.size == 0:
        names = Counter(r.name for r in topology.residues)
        problem = "no protein atoms" if selection == "protein" else "no atoms selected"
        raise TrajectoryError(
            f"{problem}: selection {selection!r} matched none of the {topology.n_atoms} atoms "
            f"(residues: {_listing([f'{n} x{c}' for n, c in names.most_common()])}). Check that this is the "
            "right topology; for proteins with unusual residue names pass e.g. selection='resname XYZ or protein'"
        )

    try:
        traj = md.load(str(path), top=topology, atom_indices=keep, stride=stride)
    except Exception as exc:
        raise TrajectoryError(
            f"mdtraj could not read {str(path)!r} ({type(exc).__name__}: {exc}); check that the file "
            f"is complete, is a {ext.lstrip('.')} file, and matches the topology"
        ) from exc
    if traj.n_frames == 0:
        raise TrajectoryError(f"trajectory {str(path)!r} contains no frames; use a file with at least one frame")
    if traj.n_atoms != keep.size:  # formats without a header we could peek at
        raise TrajectoryError(
            f"topology has {topology.n_atoms} atoms but trajectory {str(path)!r} does not match it "
            f"(read {traj.n_atoms} of {keep.size} selected atoms); pass the topology the trajectory was written with"
        )

    finite = np.isfinite(traj.xyz).all(axis=(1, 2))
    if not finite.all():
        step = stride or 1
        bad = [int(i) * step for i in np.flatnonzero(~finite)]
        kinds = "NaN" if np.isnan(traj.xyz).any() else "inf"
        if np.isnan(traj.xyz).any() and np.isinf(traj.xyz).any():
            kinds = "NaN and inf"
        which = f"frame {bad[0]} has" if len(bad) == 1 else f"frames {_listing([str(b) for b in bad])} have"
        raise TrajectoryError(
            f"{which} {kinds} coordinates (frame numbers in the file): the simulation probably blew up. "
            "Cut the file before that frame (e.g. gmx trjconv -e, or md.load(...)[:n].save(...)) "
            "or rerun the simulation with a smaller time step"
        )

    # -- residues kept despite unknown names must be bonded into a chain
    unknown: list[str] = []
    unknown_idx: set[int] = set()
    dropped_candidates: Counter[str] = Counter()
    if candidates:
        # map original residue index -> index in the loaded topology (residue order is kept)
        kept_residues = sorted({topology.atom(int(i)).residue.index for i in keep})
        new_index = {old: new for new, old in enumerate(kept_residues)}
        candidate_new = {new_index[r.index] for r in candidates}
        bonded = _bonded_candidates(traj, candidate_new)
        dropped = candidate_new - bonded
        if dropped:
            logger.info(
                "dropped residues with N, CA, C atoms that are not bonded into a chain: %s",
                _listing([_label(traj.topology.residue(i), traj.topology.n_chains > 1) for i in sorted(dropped)]),
            )
            dropped_candidates.update(traj.topology.residue(i).name for i in dropped)
            atoms = [a.index for a in traj.topology.atoms if a.residue.index not in dropped]
            if not atoms:
                raise TrajectoryError(
                    f"no protein atoms in {str(path)!r}: no residue is an amino acid bonded in a chain; "
                    "pass selection= to choose atoms explicitly"
                )
            traj = traj.atom_slice(atoms)
            bonded = {i - sum(1 for d in dropped if d < i) for i in bonded}
        multi_chain = traj.topology.n_chains > 1
        unknown_idx = set(bonded)
        unknown = [_label(traj.topology.residue(i), multi_chain) for i in sorted(bonded)]
        if unknown:
            logger.warning(
                "kept %d residues whose names mdtraj does not know as protein, because their N, CA, C "
                "are bonded into a chain: %s; check they are amino acids",
                len(unknown),
                _listing(unknown),
            )
    protein_like = {r.index for r in traj.topology.residues if r.is_protein} | unknown_idx

    # -- backbone
    if require_backbone == "auto":
        ca_only = all(a.name == "CA" for a in traj.topology.atoms)
        backbone: tuple[str, ...] = ("CA",) if ca_only else _DEFAULT_BACKBONE
    elif require_backbone is None:
        backbone = ()
    else:
        backbone = (require_backbone,) if isinstance(require_backbone, str) else tuple(require_backbone)
    if backbone:
        check_backbone(traj.topology, backbone)

    # -- periodic boundaries
    made_whole = False
    if make_whole:
        boxes = _box_vectors(traj)
        if boxes is None:
            logger.debug("%s has no unit cell; not making molecules whole", path)
        else:
            widths = _cell_widths(boxes)
            if not np.all(np.isfinite(widths)) or widths.min() < _MIN_CELL_WIDTH_NM:
                logger.warning(
                    "unit cell of %s is too small to be a simulation cell (narrowest width %.3g nm); "
                    "not making molecules whole (pass make_whole=False to silence this)",
                    path,
                    float(np.nan_to_num(widths).min()),
                )
            else:
                polymer = {
                    r.index for r in traj.topology.residues if r.index in protein_like and _atom(r, "CA") is not None
                }
                _make_whole(traj, boxes, polymer)
                made_whole = True

    breaks = find_chain_breaks(traj)
    if breaks:
        top_ext = _extension(Path(top)) if isinstance(top, (str, PathLike)) else ""
        gro = ".gro" in (ext, top_ext)
        hint = " (GRO files have no chain IDs, so separate chains show up as breaks)" if gro else ""
        logger.warning(
            "%d chain break(s) in %s: %s%s; residues are missing there or these are separate molecules, so "
            "features across a gap are not those of a continuous chain",
            len(breaks),
            path.name,
            _listing([str(b) for b in breaks]),
            hint,
        )

    # -- superposition
    superposed = False
    if superpose:
        atom_indices = _select(traj.topology, superpose_selection, "superpose_selection")
        if atom_indices.size == 0:
            raise TrajectoryError(
                f"superpose_selection={superpose_selection!r} matches no atoms of the loaded trajectory; "
                "pass another one (e.g. 'backbone' or 'all') or superpose=False"
            )
        ref = _resolve_reference(traj, reference)
        ref_indices = _select(ref.topology, superpose_selection, "superpose_selection")
        if ref_indices.size != atom_indices.size:
            raise TrajectoryError(
                f"reference has {ref_indices.size} atoms matching {superpose_selection!r} but the trajectory has "
                f"{atom_indices.size}: the reference must be the same protein (same residues); pass a matching "
                "structure, a frame index, or a superpose_selection that picks the same atoms in both"
            )
        ours = [traj.topology.atom(int(i)).residue.name for i in atom_indices]
        theirs = [ref.topology.atom(int(i)).residue.name for i in ref_indices]
        differ = sum(a != b for a, b in zip(ours, theirs))
        if differ:
            logger.warning(
                "superposing on a reference whose residue names differ at %d of %d fitted atoms "
                "(e.g. HIS vs HIE is harmless; a different sequence is not): check the reference",
                differ,
                len(ours),
            )
        if not np.isfinite(ref.xyz[0, ref_indices]).all():
            raise TrajectoryError(
                "the reference has NaN/inf coordinates in superpose_selection; pass another reference"
            )
        traj.superpose(ref, 0, atom_indices=atom_indices, ref_atom_indices=ref_indices)
        superposed = True

    dropped_names = Counter(topology.atom(int(i)).residue for i in np.setdiff1d(np.arange(topology.n_atoms), keep))
    dropped_residues = dict(Counter(r.name for r in dropped_names) + dropped_candidates)
    logger.info(
        "loaded %s: %d frames, %d of %d atoms (%d residues in %d chains)%s%s%s",
        path.name,
        traj.n_frames,
        traj.n_atoms,
        n_atoms_file,
        traj.n_residues,
        traj.topology.n_chains,
        f"; dropped {', '.join(f'{n} x{c}' for n, c in dropped_residues.items())}" if dropped_residues else "",
        "; made whole" if made_whole else "",
        "; superposed" if superposed else "",
    )
    if not return_report:
        return traj
    report = LoadReport(
        path=str(path),
        topology=top_name,
        n_frames=traj.n_frames,
        n_atoms_file=n_atoms_file,
        n_atoms=traj.n_atoms,
        dropped_residues=dropped_residues,
        unknown_residues=tuple(unknown),
        chain_breaks=tuple(breaks),
        backbone_atoms=backbone,
        made_whole=made_whole,
        superposed=superposed,
    )
    return traj, report
