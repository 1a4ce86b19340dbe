"""Load MD trajectories of a protein, validated and ready for featurization.

:func:`load_trajectory` reads any format mdtraj reads, keeps the protein,
makes it whole across periodic boundaries, superposes it on a reference and
checks the data on the way, raising :class:`~mdllm_kit.errors.TrajectoryError`
with a message that names the problem and the fix.

Units are mdtraj's: nm and ps.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Literal, overload

import mdtraj as md
import numpy as np

from ..errors import TrajectoryError

from .checks import (
    _DEFAULT_BACKBONE,
    _PEPTIDE_BOND_MAX_NM,
    ChainBreak,
    _atom,
    _has_backbone_names,
    _label,
    _listing,
    check_backbone,
    find_chain_breaks,
)
from .pbc import _box_vectors, _cell_widths, _make_whole

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

_MIN_CELL_WIDTH_NM = 1.6


class TrajectoryFileNotFoundError(TrajectoryError, FileNotFoundError):
    """A trajectory or topology path does not exist (a TrajectoryError and a FileNotFoundError)."""


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


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise TrajectoryFileNotFoundError(f"{what} file {str(path)!r} does not exist; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise TrajectoryError(
            f"{what} file {str(path)!r} is empty (0 bytes): the run may have stopped before "
            "writing anything, or the copy failed; use a complete file"
        )


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


def _one_line(exc: BaseException, limit: int = 120) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _select(topology: md.Topology, selection: str, what: str) -> np.ndarray:
    try:
        return np.asarray(topology.select(selection), dtype=int)
    except Exception as exc:
        raise TrajectoryError(
            f"{what}={selection!r} is not a valid mdtraj selection ({type(exc).__name__}: {_one_line(exc)}); "
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
        raise TrajectoryError(f"stride must be a positive integer or None, got {stride!r}; pass e.g. stride=2 "
                              "to keep every second frame")

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
