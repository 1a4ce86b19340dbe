"""nglview 3D views: ensembles with a frame player, and frames that grow while shown.

nglview is imported when a view is built, never at import of this module.
Only nglview's documented Python API is used (``show_mdtraj``,
``NGLWidget.add_structure``/``add_representation``/``frame``/``max_frame``,
``TextStructure``, and its Trajectory/Structure adaptor interface), which is
the same in nglview 3.1 and 4.0.

Representation of Calpha-only traces: NGL treats residues that hold only a
CA atom as a coarse-grained protein backbone and bonds consecutive Calpha
atoms itself (213 bonds for the 214-residue AdK trace, PDB without CONECT
records). Checked by rendering the bundled AdK Calpha trace with NGL 2.2.2
(nglview 3.1's) and 2.4.0 in headless Chromium (SwiftShader WebGL),
2026-12-01: every representation draws, but ``cartoon`` (NGL's default)
becomes a thin spline through the Calpha atoms that smooths away the
geometry of the chain, while ``backbone`` draws a cylinder per Calpha-Calpha
bond and a sphere per Calpha -- the chain as it is, which is what a
generated trace must be judged on. Structures with backbone atoms get
``cartoon``.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import uuid
from typing import Any

import mdtraj as md
import numpy as np

from ..errors import VisualizationError
from ._common import NM_TO_A

__all__ = ["ALL_ATOM_REPRESENTATION", "CALPHA_REPRESENTATION", "FrameStore", "default_representation",
           "pdb_text", "show_ensemble"]

logger = logging.getLogger(__name__)

#: Representation of Calpha-only (coarse-grained) traces: spheres and cylinders along the chain.
CALPHA_REPRESENTATION = "backbone"
#: Representation of structures with backbone atoms.
ALL_ATOM_REPRESENTATION = "cartoon"
#: Default colouring of ensembles: blue (N terminus) to red (C terminus), shows the fold's topology.
ENSEMBLE_COLOR_SCHEME = "residueindex"


def is_calpha_only(topology: md.Topology) -> bool:
    """True when every residue holds just one atom, named CA."""
    return topology.n_atoms == topology.n_residues and all(a.name == "CA" for a in topology.atoms)


def default_representation(topology: md.Topology) -> str:
    """:data:`CALPHA_REPRESENTATION` for Calpha-only traces, else :data:`ALL_ATOM_REPRESENTATION`."""
    return CALPHA_REPRESENTATION if is_calpha_only(topology) else ALL_ATOM_REPRESENTATION


def pdb_text(frame: md.Trajectory, bfactors: np.ndarray | None = None) -> str:
    """PDB text of the first frame of ``frame`` (mdtraj writer), optionally with B-factors.

    Parameters
    ----------
    frame : mdtraj.Trajectory
        Coordinates in nm (written in Angstrom, as PDB requires).
    bfactors : numpy.ndarray, shape (n_atoms,), optional
        Values for the B-factor column; mdtraj accepts -10 < b < 100.
    """
    with tempfile.TemporaryDirectory(prefix="mdllm_viz_") as tmp:
        path = os.path.join(tmp, "frame.pdb")
        frame[0].save_pdb(path, bfactors=bfactors)
        with open(path) as handle:
            return handle.read()


def _superposed_on_first(traj: md.Trajectory) -> md.Trajectory:
    """A copy of ``traj`` with every frame superposed on frame 0 (Calpha atoms when present)."""
    ca = traj.topology.select("name CA")
    out = traj[:]
    out.superpose(traj, 0, atom_indices=ca if ca.size >= 3 else None)
    return out


def _as_trajectory(traj: Any) -> md.Trajectory:
    inner = getattr(traj, "trajectory", None)  # a GeneratedEnsemble
    if isinstance(inner, md.Trajectory):
        traj = inner
    if not isinstance(traj, md.Trajectory):
        raise VisualizationError(f"expected an mdtraj.Trajectory (or a GeneratedEnsemble); got {type(traj).__name__}")
    if traj.n_frames == 0:
        raise VisualizationError("the trajectory has no frames; there is nothing to show")
    return traj


def show_ensemble(
    traj: Any,
    *,
    representation: str | None = None,
    color_scheme: str = ENSEMBLE_COLOR_SCHEME,
    superpose: bool = True,
    **view_kwargs: Any,
) -> Any:
    """An nglview widget that plays the frames of a trajectory.

    Parameters
    ----------
    traj : mdtraj.Trajectory or GeneratedEnsemble
        Frames in nm (for an ensemble, its frame-major ``trajectory``: frame
        ``i * n_walkers + k`` is frame ``i`` of walker ``k``; pass
        ``ens.walker(k)`` to play one walker).
    representation : str, optional
        NGL representation; default :func:`default_representation` (``backbone``
        for Calpha-only traces, ``cartoon`` otherwise).
    color_scheme : str
        NGL colour scheme (default ``residueindex``).
    superpose : bool
        Superpose every frame on the first (on Calpha atoms) so the player
        shows internal motion, not tumbling. The input is not changed.
    **view_kwargs
        Passed to ``nglview.show_mdtraj`` (e.g. ``gui=True``).

    Returns
    -------
    nglview.NGLWidget
        ``view.max_frame == n_frames - 1``; its player (play button and frame
        slider) is shown under the view; ``view.frame = i`` shows frame ``i``.
    """
    import nglview

    traj = _as_trajectory(traj)
    shown = _superposed_on_first(traj) if superpose and traj.n_frames > 1 else traj
    view = nglview.show_mdtraj(shown, default=False, **view_kwargs)
    view.add_representation(representation or default_representation(traj.topology), selection="all",
                            color_scheme=color_scheme)
    view.center()
    return view


class FrameStore:
    """Frames of one topology for an nglview view, which may grow while the view is shown.

    Implements nglview's Trajectory/Structure adaptor interface
    (``get_structure_string``, ``get_coordinates``, ``n_frames``, ``id``), so
    ``view.add_trajectory(store)`` shows it and ``view.frame = i`` shows frame
    ``i``. Appending is thread-safe.

    Parameters
    ----------
    topology_frame : mdtraj.Trajectory
        A frame that gives the topology (its coordinates are not a frame of the store).
    """

    def __init__(self, topology_frame: md.Trajectory) -> None:
        self.id = str(uuid.uuid4())
        self.shown = True
        self.ext = "pdb"
        self.params: dict[str, Any] = {}
        self.topology = topology_frame.topology
        self._pdb = pdb_text(topology_frame)
        self._first_xyz_A = topology_frame.xyz[0] * NM_TO_A
        self._frames_A: list[np.ndarray] = []
        self._lock = threading.Lock()

    def get_structure_string(self) -> str:
        return self._pdb

    @property
    def n_frames(self) -> int:
        with self._lock:
            return len(self._frames_A)

    def get_coordinates(self, index: int) -> np.ndarray:
        """Coordinates of frame ``index`` in Angstrom, shape (n_atoms, 3); the topology frame while empty."""
        with self._lock:
            if not self._frames_A:
                return self._first_xyz_A
            return self._frames_A[index]

    def extend(self, traj: md.Trajectory) -> int:
        """Append the frames of ``traj`` (nm, same topology); returns the new number of frames."""
        if traj.n_atoms != self.topology.n_atoms:
            raise VisualizationError(f"frames with {traj.n_atoms} atoms cannot join a view of "
                                     f"{self.topology.n_atoms} atoms")
        with self._lock:
            self._frames_A.extend(np.asarray(traj.xyz, dtype=np.float32) * NM_TO_A)
            return len(self._frames_A)

    def clear(self) -> None:
        """Drop all frames (the view keeps showing the last coordinates it got until told otherwise)."""
        with self._lock:
            self._frames_A.clear()


def show_frame(view: Any, store: FrameStore, index: int) -> None:
    """Show frame ``index`` of ``store`` (component 0 of ``view``) and keep the player's range up to date."""
    view.max_frame = max(store.n_frames - 1, 0)
    if view.frame == index:
        # traitlets only reports changes: send the coordinates ourselves (nglview's public set_coordinates)
        view.set_coordinates({0: store.get_coordinates(index)})
    else:
        view.frame = index
