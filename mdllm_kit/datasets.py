"""Bundled demo data: adenylate kinase (AdK, E. coli, 214 residues).

AdK switches between a closed (PDB 1AKE) and an open (PDB 4AKE) state; their
Calpha RMSD is 6.9 A. The package ships

* protein-only heavy-atom reference structures of both states
  (made by ``scripts/make_adk_references.py``), and
* Calpha trajectories of a dual-basin structure-based (Go) model of AdK
  simulated with OpenMM (made by ``scripts/make_adk_cg.py``): a training run
  that never leaves the closed basin and a long equilibrium run that switches
  between the two states, the ground truth for populations and kinetics.

Everything here reads files inside the installed package; nothing is
downloaded.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import mdtraj as md

from .errors import DatasetError

__all__ = ["ADK_CG_RUNS", "adk_cg_metadata", "adk_references", "data_path", "load_adk_cg"]

#: Names of the bundled AdK coarse-grained runs accepted by :func:`load_adk_cg`.
ADK_CG_RUNS: tuple[str, ...] = ("closed_train", "equilibrium")

_ADK = "adk"
_CG_TOPOLOGY = "adk_cg_ca.pdb"
_CG_METADATA = "adk_cg_metadata.json"


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
        (seed, temperature, friction, time step, save interval) and, per run,
        the number of frames, time per frame (ps), state populations and
        closed<->open transition counts measured by the generator.
    """
    return json.loads(data_path(_ADK, _CG_METADATA).read_text())


def load_adk_cg(name: str = "closed_train") -> md.Trajectory:
    """Load a bundled Calpha trajectory of the dual-basin AdK model.

    Parameters
    ----------
    name : {"closed_train", "equilibrium"}
        ``"closed_train"``: frames that never leave the closed basin (Calpha
        RMSD to the open crystal >= 3 A in every frame), the training set
        for cross-state discovery. ``"equilibrium"``: a long run with
        repeated closed<->open transitions, the ground truth for state
        populations and kinetics.

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
