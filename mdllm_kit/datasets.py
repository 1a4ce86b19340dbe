"""Bundled demo data: adenylate kinase (AdK, E. coli, 214 residues).

AdK switches between a closed (PDB 1AKE) and an open (PDB 4AKE) state; their
Calpha RMSD is 6.9 A. The package ships

* protein-only heavy-atom reference structures of both states
  (made by ``scripts/make_adk_references.py``), and
* Calpha trajectories of a dual-basin structure-based (Go) model of AdK
  simulated with OpenMM (made by ``scripts/make_adk_cg.py``): two training
  runs, one that never leaves the closed basin and its mirror image that never
  leaves the open basin, so that state discovery can be measured in both
  directions, and a long equilibrium run that switches between the two
  states, the ground truth for populations and kinetics.

Ground-truth states of the CG runs (:func:`adk_cg_states`) come from the
Calpha RMSD (optimal superposition, in Angstrom) to the two crystal
structures, ``r_closed`` and ``r_open``, whose mutual distance is
``d = 6.9 A``:

* **closed** if ``r_closed < BASIN_RMSD_A`` (3 A), **open** if
  ``r_open < BASIN_RMSD_A`` (the two cannot both hold since ``d > 6 A``),
  otherwise **intermediate**;
* a frame is **on the path** between the states if
  ``r_closed + r_open <= d + ON_PATH_MARGIN_A`` (3.5 A). RMSD after optimal
  superposition is a metric, so ``r_closed + r_open >= d`` for every frame
  and the excess measures how far a frame strays sideways from the
  closed-open "segment" (the set of points with sum exactly ``d``). In the
  model the LID and NMP domains move partly independently, so the path
  bends: intermediate frames of the shipped equilibrium run have an excess
  of at most 2.9 A, while in trial runs of softer parameter sets the
  over-extended or loose frames we want to exclude reached 4-5.5 A;
* a frame is **admissible** (not unfolded, not over-extended) if it is in
  either basin or on the path; every frame of the equilibrium run is.

Transitions are counted core to core: intermediate frames are ignored and a
transition is a change between the last visited core (closed/open) and the
next one, so recrossings of the 3 A boundary without reaching the other state
do not count.

Everything here reads files inside the installed package; nothing is
downloaded.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np

from .analysis.rmsd import rmsd_to_references
from .analysis.units import NM_TO_A
from .atomic import atomic_write_bytes
from .errors import DatasetError

__all__ = [
    "export_adk",
    "ADK_CG_RUNS",
    "ADK_STATE_NAMES",
    "BASIN_RMSD_A",
    "ON_PATH_MARGIN_A",
    "STATE_CLOSED",
    "STATE_INTERMEDIATE",
    "STATE_OPEN",
    "adk_cg_metadata",
    "adk_cg_rmsd",
    "adk_cg_states",
    "adk_references",
    "closed_open_rmsd",
    "core_transitions",
    "data_path",
    "load_adk_cg",
    "on_path",
]

#: Names of the bundled AdK coarse-grained runs accepted by :func:`load_adk_cg`.
ADK_CG_RUNS: tuple[str, ...] = ("closed_train", "equilibrium", "open_train")

_ADK = "adk"
_CG_TOPOLOGY = "adk_cg_ca.pdb"
_CG_METADATA = "adk_cg_metadata.json"

#: Calpha RMSD to a crystal structure below which a frame is in that state's basin, Angstrom.
BASIN_RMSD_A: float = 3.0
#: Slack over the closed-open RMSD ``d`` allowed on the transition path, Angstrom
#: (``r_closed + r_open <= d + ON_PATH_MARGIN_A``); see the module docstring.
ON_PATH_MARGIN_A: float = 3.5
#: Integer state labels returned by :func:`adk_cg_states`.
STATE_CLOSED: int = 0
STATE_OPEN: int = 1
STATE_INTERMEDIATE: int = 2
#: Names of the state labels, indexed by label.
ADK_STATE_NAMES: tuple[str, ...] = ("closed", "open", "intermediate")


def data_path(*parts: str) -> Path:
    """Path of a file shipped in ``mdllm_kit/data``.

    Parameters
    ----------
    *parts : str
        Path components below the data folder, e.g. ``("adk", "adk_open.pdb")``.

    Returns
    -------
    pathlib.Path
        The path; a :class:`DatasetError` is raised if the file is missing.
    """
    path = Path(str(resources.files("mdllm_kit").joinpath("data", *parts)))
    if not path.exists():
        raise DatasetError(
            f"bundled data file {'/'.join(parts)!r} is missing from {path.parent}; "
            "reinstall mdllm-kit (pip install -e .) or regenerate it with the script in scripts/"
        )
    return path


def adk_references() -> dict[str, md.Trajectory]:
    """The crystal structures of the two AdK states, protein heavy atoms only.

    Returns
    -------
    dict of str to mdtraj.Trajectory
        ``{"closed": ..., "open": ...}``, one frame each, 214 residues,
        coordinates in nm (PDB 1AKE and 4AKE coordinates).
    """
    return {state: md.load_pdb(str(data_path(_ADK, f"adk_{state}.pdb"))) for state in ("closed", "open")}


def adk_cg_metadata() -> dict[str, Any]:
    """Parameters and measured properties of the bundled AdK coarse-grained runs.

    Returns
    -------
    dict
        Parsed ``adk_cg_metadata.json``: the model and simulation parameters
        (seed, temperature, friction, time step, save interval) and, per run
        (``metadata["runs"][name]``), the number of frames, time per frame
        (ps), state populations, closed<->open transition counts, Calpha RMSD
        ranges to both crystals (Angstrom), seed, mixing offset (kJ/mol), the
        acceptance criteria and the command that made it, as measured and
        recorded by the generator.
    """
    return json.loads(data_path(_ADK, _CG_METADATA).read_text())


def load_adk_cg(name: str = "closed_train") -> md.Trajectory:
    """Load a bundled Calpha trajectory of the dual-basin AdK model.

    Parameters
    ----------
    name : {"closed_train", "open_train", "equilibrium"}
        ``"closed_train"``: frames that never leave the closed basin (Calpha
        RMSD to the open crystal >= 3 A in every frame), the training set
        for cross-state discovery (train on closed, look for open).
        ``"open_train"``: the other direction, frames that never leave the
        open basin (Calpha RMSD to the closed crystal >= 3 A in every frame),
        from the same Go model biased towards open, started from the open
        crystal, with a flat-bottom wall on the Calpha RMSD to the closed
        crystal at 4 A (the bias alone let the run reach the closed basin;
        closed_train needs no wall), recorded as ``rmsd_wall`` in its
        metadata entry; train on open, look for closed. ``"equilibrium"``:
        a long run with repeated closed<->open transitions, the ground truth
        for state populations and kinetics. Frame counts, seeds and measured
        RMSD ranges are in :func:`adk_cg_metadata`.

    Returns
    -------
    mdtraj.Trajectory
        214 Calpha atoms (named ``CA``, real residue names), coordinates in
        nm, ``traj.time`` in ps.
    """
    if name not in ADK_CG_RUNS:
        raise DatasetError(f"unknown AdK CG run {name!r}; choose one of {', '.join(ADK_CG_RUNS)}")
    top = data_path(_ADK, _CG_TOPOLOGY)
    return md.load(str(data_path(_ADK, f"adk_cg_{name}.xtc")), top=str(top))


def adk_cg_rmsd(traj: md.Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Calpha RMSD of every frame to the closed and the open crystal structure.

    Parameters
    ----------
    traj : mdtraj.Trajectory
        AdK frames with 214 Calpha atoms named ``CA`` (other atoms are
        ignored), coordinates in nm.

    Returns
    -------
    r_closed, r_open : numpy.ndarray
        ``(n_frames,)`` RMSD after optimal superposition, Angstrom.
    """
    ca = traj.topology.select("name CA")
    if ca.size != 214:
        raise DatasetError(f"expected 214 Calpha atoms (AdK), found {ca.size}; pass an AdK trajectory")
    rmsd = rmsd_to_references(traj, adk_references())
    return NM_TO_A * rmsd["closed"], NM_TO_A * rmsd["open"]


def closed_open_rmsd() -> float:
    """Calpha RMSD between the closed and open crystal structures, Angstrom (about 6.9)."""
    refs = adk_references()
    return float(NM_TO_A * rmsd_to_references(refs["open"], {"closed": refs["closed"]})["closed"][0])


def on_path(r_closed: np.ndarray, r_open: np.ndarray, d: float | None = None,
            margin: float = ON_PATH_MARGIN_A) -> np.ndarray:
    """Whether frames lie on a path between the two crystal structures.

    Parameters
    ----------
    r_closed, r_open : numpy.ndarray
        Calpha RMSD to the closed and the open structure, Angstrom.
    d : float, optional
        Closed-open RMSD, Angstrom; defaults to :func:`closed_open_rmsd`.
    margin : float
        Allowed excess ``r_closed + r_open - d``, Angstrom.

    Returns
    -------
    numpy.ndarray of bool
        ``r_closed + r_open <= d + margin``.
    """
    d = closed_open_rmsd() if d is None else d
    return np.asarray(r_closed) + np.asarray(r_open) <= d + margin


def adk_cg_states(traj: md.Trajectory) -> np.ndarray:
    """Ground-truth state of every frame of an AdK Calpha trajectory.

    Parameters
    ----------
    traj : mdtraj.Trajectory
        AdK frames with 214 Calpha atoms named ``CA``, e.g. from
        :func:`load_adk_cg`.

    Returns
    -------
    numpy.ndarray of int8
        ``(n_frames,)`` labels: :data:`STATE_CLOSED` (0) if the Calpha RMSD to
        the closed crystal is below :data:`BASIN_RMSD_A`, :data:`STATE_OPEN`
        (1) if the RMSD to the open crystal is, else
        :data:`STATE_INTERMEDIATE` (2). Names in :data:`ADK_STATE_NAMES`.
    """
    r_closed, r_open = adk_cg_rmsd(traj)
    states = np.full(r_closed.shape, STATE_INTERMEDIATE, dtype=np.int8)
    states[r_open < BASIN_RMSD_A] = STATE_OPEN
    states[r_closed < BASIN_RMSD_A] = STATE_CLOSED
    return states


def core_transitions(states: np.ndarray, time_per_frame: float = 1.0) -> dict[str, Any]:
    """Core-to-core transitions and dwell times of a state sequence.

    Parameters
    ----------
    states : numpy.ndarray
        Labels from :func:`adk_cg_states`.
    time_per_frame : float
        Time between frames, ps.

    Returns
    -------
    dict
        ``n_transitions`` (closed->open plus open->closed),
        ``n_closed_to_open``, ``n_open_to_closed``, and per core state
        ``mean_dwell_ps`` / ``n_dwells``: the mean time from entering a core to
        first reaching the other core, over complete dwells only (the first
        and the last, censored, visits are left out; ``None`` if there is none).
    """
    states = np.asarray(states)
    core = np.flatnonzero(states != STATE_INTERMEDIATE)
    labels = states[core]
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1  # index into core of each arrival
    arrivals = core[change]
    to_open = int(np.sum(labels[change] == STATE_OPEN))
    dwell: dict[str, list[float]] = {"closed": [], "open": []}
    for k in range(len(arrivals) - 1):
        name = ADK_STATE_NAMES[int(states[arrivals[k]])]
        dwell[name].append(float(arrivals[k + 1] - arrivals[k]) * time_per_frame)
    return {
        "n_transitions": int(len(arrivals)),
        "n_closed_to_open": to_open,
        "n_open_to_closed": int(len(arrivals)) - to_open,
        "mean_dwell_ps": {k: (float(np.mean(v)) if v else None) for k, v in dwell.items()},
        "n_dwells": {k: len(v) for k, v in dwell.items()},
    }


def export_adk(out_dir: str | os.PathLike) -> list[Path]:
    """Write the bundled AdK data to ordinary files, for the command line.

    Parameters
    ----------
    out_dir : path-like
        Destination folder (created if missing).

    Returns
    -------
    list of pathlib.Path
        The written files: ``adk_cg_ca.pdb`` (Calpha topology),
        ``adk_cg_closed_train.xtc``, ``adk_cg_open_train.xtc``,
        ``adk_cg_equilibrium.xtc``, ``adk_cg_metadata.json``,
        ``adk_closed.pdb`` and ``adk_open.pdb``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"the output {out} is a file, not a folder; pass a folder to export the AdK data into")
    out.mkdir(parents=True, exist_ok=True)
    names = [_CG_TOPOLOGY, *(f"adk_cg_{run}.xtc" for run in ADK_CG_RUNS), _CG_METADATA,
             "adk_closed.pdb", "adk_open.pdb"]
    written = []
    for name in names:
        written.append(atomic_write_bytes(out / name, data_path(_ADK, name).read_bytes()))
    return written
