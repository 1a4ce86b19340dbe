"""Small all-atom test systems made with the project's own code.

:func:`make_solvated_fixture` builds a real, solvated, all-atom system from the
bundled AdK crystal structure and runs a few hundred OpenMM steps on the CPU.
It writes the frames the way MD engines do -- every atom wrapped into the
periodic box, so molecules are split across the box faces -- and also returns
the ground truth (the unwrapped protein coordinates and bonds from the force
field topology) so tests can check what a loader reconstructs.

The system (defaults): two peptide chains cut from closed AdK (PDB 1AKE)
that touch in the crystal,

* chain A: residues 1-6, ``MRIILL``
* chain B: residues 168-173, ``LVEYHQ`` (contains a histidine)

with charged termini, hydrogens (Amber14, pH 7), TIP3P-FB water in a rhombic
dodecahedron box (a triclinic cell, as GROMACS users run; 0.5 nm padding) and
0.15 M NaCl: about 5,000 atoms. Building and simulating it takes about ten
seconds on one CPU core (reaction-field cutoff electrostatics, not PME, to keep
it cheap: this is test data, not production physics). OpenMM is imported only
when a function here is called.
"""
from __future__ import annotations

import io
import logging
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np

from .datasets import data_path

__all__ = ["AllAtomFixture", "make_solvated_fixture", "protonated_crystal", "simulate_in_vacuum", "wrap_atoms"]

logger = logging.getLogger(__name__)

#: AdK segments used by default: (chain id, first resSeq, last resSeq).
DEFAULT_SEGMENTS: tuple[tuple[str, int, int], ...] = (("A", 1, 6), ("B", 168, 173))


@dataclass(frozen=True)
class AllAtomFixture:
    """Files and ground truth of a system written by :func:`make_solvated_fixture`.

    Attributes
    ----------
    directory : pathlib.Path
        Folder holding the files.
    topology_pdb, topology_gro : pathlib.Path
        First frame of the full solvated system (atoms wrapped into the box).
    trajectories : dict of str to pathlib.Path
        Trajectory files of the full system keyed by extension without dot
        (``"xtc"``, ``"dcd"``, ``"trr"``, ``"nc"``), every atom wrapped into the box.
    n_frames, n_atoms : int
        Frames in each trajectory; atoms of the full system.
    protein_atoms : numpy.ndarray, shape (n_protein,)
        Indices of the protein atoms in the full system (they come first).
    protein_bonds : numpy.ndarray, shape (n_bonds, 2)
        Covalent bonds between protein atoms from the OpenMM force-field
        topology, indexed within the protein atoms.
    protein_xyz : numpy.ndarray, shape (n_frames, n_protein, 3)
        Unwrapped (whole) protein coordinates in nm, translated by the same
        shift as the written files.
    box_vectors : numpy.ndarray, shape (3, 3)
        Box vectors (rows) in nm; a rhombic dodecahedron by default.
    chains : tuple of (str, int, int)
        The segments, ``(chain id, first resSeq, last resSeq)``.
    n_water, n_ions : int
        Water molecules and ions in the system.
    """

    directory: Path
    topology_pdb: Path
    topology_gro: Path
    trajectories: dict[str, Path]
    n_frames: int
    n_atoms: int
    protein_atoms: np.ndarray
    protein_bonds: np.ndarray
    protein_xyz: np.ndarray
    box_vectors: np.ndarray
    chains: tuple[tuple[str, int, int], ...]
    n_water: int
    n_ions: int
    extra: dict = field(default_factory=dict)


def wrap_atoms(xyz: np.ndarray, box_vectors: np.ndarray) -> np.ndarray:
    """Put every atom into the periodic cell, splitting molecules across it.

    Parameters
    ----------
    xyz : numpy.ndarray, shape (n_frames, n_atoms, 3)
        Coordinates in nm.
    box_vectors : numpy.ndarray, shape (3, 3)
        Box vectors as rows, in nm (any triclinic cell).

    Returns
    -------
    numpy.ndarray, shape (n_frames, n_atoms, 3)
        Coordinates with every atom's fractional coordinates in ``[0, 1)``
        (a new float32 array).
    """
    box = np.asarray(box_vectors, dtype=float)
    frac = np.asarray(xyz, dtype=float) @ np.linalg.inv(box)
    frac -= np.floor(frac)
    return (frac @ box).astype(np.float32)


def _segment_pdb(segments: tuple[tuple[str, int, int], ...]) -> str:
    """PDB text of AdK residue segments as separate chains, each with an OXT."""
    lines = data_path("adk", "adk_closed.pdb").read_text().splitlines()
    out: list[str] = []
    serial = 1
    for chain_id, first, last in segments:
        last_atoms: dict[str, np.ndarray] = {}
        last_line = ""
        for line in lines:
            if not line.startswith(("ATOM", "HETATM")):
                continue
            res_seq = int(line[22:26])
            if not first <= res_seq <= last:
                continue
            new = f"ATOM  {serial:5d}{line[11:21]}{chain_id}{line[22:]}"
            out.append(new)
            serial += 1
            if res_seq == last:
                last_atoms[line[12:16].strip()] = np.array(
                    [float(line[30:38]), float(line[38:46]), float(line[46:54])]
                )
                last_line = new
        if not last_line:
            raise ValueError(f"AdK has no residues {first}-{last}")
        ca, c, o = last_atoms["CA"], last_atoms["C"], last_atoms["O"]
        u = (c - ca) / np.linalg.norm(c - ca) + (c - o) / np.linalg.norm(c - o)
        oxt = c + 1.25 * u / np.linalg.norm(u)  # Angstrom
        out.append(
            f"ATOM  {serial:5d}  OXT {last_line[17:30]}{oxt[0]:8.3f}{oxt[1]:8.3f}{oxt[2]:8.3f}"
            f"  1.00  0.00           O"
        )
        serial += 1
        out.append("TER")
    out.append("END")
    return "\n".join(out) + "\n"


def make_solvated_fixture(
    directory: str | Path,
    *,
    segments: tuple[tuple[str, int, int], ...] = DEFAULT_SEGMENTS,
    n_frames: int = 5,
    steps_per_frame: int = 25,
    padding_nm: float = 0.5,
    box_shape: str = "dodecahedron",
    seed: int = 2024,
    threads: int = 1,
) -> AllAtomFixture:
    """Build, solvate and briefly simulate AdK fragments; write wrapped frames.

    Parameters
    ----------
    directory : str or pathlib.Path
        Output folder (created if missing).
    segments : tuple of (str, int, int)
        ``(chain id, first resSeq, last resSeq)`` of each AdK segment; each
        becomes its own chain with charged termini.
    n_frames : int
        Frames to write; frame 0 is the minimized structure.
    steps_per_frame : int
        2 fs Langevin steps (300 K) between written frames.
    padding_nm : float
        Water padding around the protein in nm.
    box_shape : {"dodecahedron", "cube", "octahedron"}
        Shape of the periodic cell (OpenMM ``Modeller.addSolvent``).
    seed : int
        Seed of ion placement and of the Langevin integrator (the same seed
        gives the same system; trajectories are reproducible on one machine).
    threads : int
        CPU threads OpenMM may use.

    Returns
    -------
    AllAtomFixture
        Paths of the written files and the ground truth.

    Notes
    -----
    The system is translated so the protein's centroid sits on a box corner,
    then every atom is wrapped into the cell: the protein is split across
    all three box faces in every frame, as in a raw GROMACS trajectory.
    """
    import openmm
    import openmm.app as app
    import openmm.unit as unit

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    pdb = app.PDBFile(io.StringIO(_segment_pdb(segments)))
    ff = app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    # Modeller places hydrogens and ions with the global `random`: seed it, then restore it
    saved_state = random.getstate()
    random.seed(seed)
    try:
        modeller.addHydrogens(ff, pH=7.0)
        n_protein = modeller.topology.getNumAtoms()
        modeller.addSolvent(
            ff,
            model="tip3p",
            padding=padding_nm * unit.nanometer,
            ionicStrength=0.15 * unit.molar,
            boxShape=box_shape,
        )
    finally:
        random.setstate(saved_state)
    topology = modeller.topology
    system = ff.createSystem(
        topology,
        nonbondedMethod=app.CutoffPeriodic,
        nonbondedCutoff=0.8 * unit.nanometer,
        constraints=app.HBonds,
    )
    integrator = openmm.LangevinMiddleIntegrator(
        300 * unit.kelvin, 1.0 / unit.picosecond, 0.002 * unit.picoseconds
    )
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(threads)})
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 100.0, 50)
    context.setVelocitiesToTemperature(300 * unit.kelvin, seed)

    frames = []
    for i in range(n_frames):
        if i:
            integrator.step(steps_per_frame)
        state = context.getState(getPositions=True)
        frames.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    xyz = np.asarray(frames, dtype=float)
    box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))

    # protein centroid of frame 0 onto the box corner, then wrap every atom
    xyz -= xyz[0, :n_protein].mean(axis=0)
    wrapped = wrap_atoms(xyz, box)

    mdtop = md.Topology.from_openmm(topology)
    traj = md.Trajectory(
        wrapped,
        mdtop,
        time=np.arange(n_frames) * steps_per_frame * 0.002,
    )
    traj.unitcell_vectors = np.tile(box, (n_frames, 1, 1)).astype(np.float32)
    top_pdb, top_gro = out / "system.pdb", out / "system.gro"
    traj[0].save_pdb(str(top_pdb))
    traj[0].save_gro(str(top_gro))
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mdtraj: netCDF4 missing, using scipy
        for ext in ("xtc", "dcd", "trr", "nc"):
            paths[ext] = out / f"traj.{ext}"
            traj.save(str(paths[ext]))

    index = {atom: atom.index for atom in topology.atoms()}
    bonds = np.array(
        sorted(
            tuple(sorted((index[a], index[b])))
            for a, b in topology.bonds()
            if index[a] < n_protein and index[b] < n_protein
        ),
        dtype=int,
    )
    n_water = sum(1 for r in topology.residues() if r.name == "HOH")
    n_ions = sum(1 for r in topology.residues() if r.name in ("NA", "CL"))
    logger.info(
        "all-atom fixture: %d atoms (%d protein, %d waters, %d ions), box %.2f nm³, %d frames in %s",
        topology.getNumAtoms(), n_protein, n_water, n_ions, abs(np.linalg.det(box)), n_frames, out,
    )
    return AllAtomFixture(
        directory=out,
        topology_pdb=top_pdb,
        topology_gro=top_gro,
        trajectories=paths,
        n_frames=n_frames,
        n_atoms=topology.getNumAtoms(),
        protein_atoms=np.arange(n_protein),
        protein_bonds=bonds,
        protein_xyz=xyz[:, :n_protein].astype(np.float32),
        box_vectors=box,
        chains=tuple(segments),
        n_water=n_water,
        n_ions=n_ions,
    )


def protonated_crystal(state: str, forcefield: Any, seed: int) -> Any:
    """A bundled AdK crystal structure with hydrogens added for ``forcefield`` (pH 7), reproducibly.

    Parameters
    ----------
    state : {"closed", "open"}
        Which bundled crystal structure (``adk_closed.pdb``, 1AKE; ``adk_open.pdb``, 4AKE).
    forcefield : openmm.app.ForceField
    seed : int
        Seed of OpenMM's hydrogen placement (it draws from Python's ``random``, whose state is restored).

    Returns
    -------
    openmm.app.Modeller
    """
    import openmm.app as app

    pdb = app.PDBFile(str(data_path("adk", f"adk_{state}.pdb")))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    saved_state = random.getstate()
    random.seed(seed)
    try:
        modeller.addHydrogens(forcefield, pH=7.0)
    finally:
        random.setstate(saved_state)
    return modeller


def simulate_in_vacuum(
    state: str = "closed",
    *,
    n_frames: int = 10,
    steps_per_frame: int = 50,
    seed: int = 2024,
    threads: int = 1,
) -> md.Trajectory:
    """Real all-atom MD frames of a whole AdK crystal structure, briefly simulated in vacuum.

    The bundled crystal structure gets hydrogens (Amber14, pH 7) and runs
    Langevin dynamics at 300 K (2 fs steps, bonds to hydrogen constrained,
    1 nm non-periodic cutoff) on the CPU after a short minimisation. The
    frames have the bond-length and angle fluctuations of thermal MD, which
    a crystal structure lacks: validity criteria must pass them. About 15 s
    on one core for the defaults.

    Parameters
    ----------
    state : {"closed", "open"}
        Which bundled AdK crystal structure to start from.
    n_frames : int
        Frames returned, the first after ``steps_per_frame`` steps.
    steps_per_frame : int
        2 fs steps between frames.
    seed : int
        Seed of the hydrogen placement, the velocities and the integrator.
    threads : int
        CPU threads of OpenMM.

    Returns
    -------
    mdtraj.Trajectory
        ``n_frames`` frames of the protein's heavy atoms (nm; time in ps).
    """
    import openmm
    import openmm.app as app
    import openmm.unit as unit

    ff = app.ForceField("amber14-all.xml")
    modeller = protonated_crystal(state, ff, seed)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.CutoffNonPeriodic,
                             nonbondedCutoff=1.0 * unit.nanometer, constraints=app.HBonds)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.002 * unit.picoseconds)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 100.0, 100)
    context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    frames = []
    for _ in range(n_frames):
        integrator.step(steps_per_frame)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    topology = md.Topology.from_openmm(modeller.topology)
    time = np.arange(1, n_frames + 1) * steps_per_frame * 0.002
    traj = md.Trajectory(np.asarray(frames, dtype=np.float32), topology, time=time)
    return traj.atom_slice(topology.select("not element H"))


if __name__ == "__main__":  # python -m mdllm_kit.testing OUTDIR
    import sys

    logging.basicConfig(level=logging.INFO)
    make_solvated_fixture(sys.argv[1] if len(sys.argv) > 1 else "allatom_fixture")
