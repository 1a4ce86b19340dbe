"""A frame superposed on a reference structure, coloured by per-residue deviation.

The deviation of each residue (Angstrom) is written into the B-factor column
of the frame's PDB text and drawn with NGL's built-in ``bfactor`` colour
scheme over a fixed colour domain, so the colours mean the same numbers in
every view and need no custom JavaScript colour scheme (which must be
registered in the browser before the view loads, and behaves differently
between nglview front ends). Residues with none of the compared atoms (e.g.
glycines when comparing Cbeta atoms) have no deviation: they are drawn in
:data:`UNMATCHED_COLOR` by a separate representation, and their B-factor is
:data:`UNMATCHED_BFACTOR`, never a deviation of 0 A.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mdtraj as md
import numpy as np

from ..analysis.rmsd import matched_atom_indices
from ..errors import VisualizationError
from ._common import NM_TO_A
from .structure import _as_trajectory, default_representation, pdb_text

__all__ = ["DEVIATION_COLORSCALE", "UNMATCHED_COLOR", "Overlay", "per_residue_deviation", "show_overlay"]

#: Colour scale of the deviation: pale (close to the reference) to dark red (far); NGL and plotly both know it.
DEVIATION_COLORSCALE = "OrRd"
#: Default top of the colour range, Angstrom: deviations below it never look dark red, so a good
#: frame is not stretched over a tiny range to look bad.
DEFAULT_MAX_DEVIATION_A = 3.0
#: The reference drawn under the frame.
REFERENCE_COLOR = "#9e9e9e"
REFERENCE_OPACITY = 0.45
#: mdtraj writes B-factors only in (-10, 100); larger deviations are capped there (colours saturate long before).
_PDB_BFACTOR_MAX = 99.99
#: Residues without matched atoms (no deviation): B-factor written for them (below every deviation) and
#: the colour they are drawn in.
UNMATCHED_BFACTOR = -1.0
UNMATCHED_COLOR = "#bdbdbd"


def per_residue_deviation(
    frame: md.Trajectory, reference: md.Trajectory, atom_names: Sequence[str] = ("CA",)
) -> tuple[np.ndarray, md.Trajectory]:
    """Deviation of each residue of ``frame`` from ``reference`` after optimal superposition.

    Parameters
    ----------
    frame : mdtraj.Trajectory
        The structure to judge; its first frame is used (nm).
    reference : mdtraj.Trajectory
        A structure of the same protein, e.g. an all-atom crystal; first frame (nm).
    atom_names : sequence of str
        Atoms matched by residue position and name, used for the
        superposition and the deviation (default Calpha).

    Returns
    -------
    deviation_A : numpy.ndarray, shape (n_residues,)
        Root-mean-square distance of the residue's matched atoms, Angstrom
        (for Calpha: the Calpha distance). NaN for residues without matched atoms.
    superposed : mdtraj.Trajectory
        One frame: ``frame`` moved onto ``reference`` (all of its atoms).
    """
    frame = _as_trajectory(frame)[0]
    idx_f, idx_r = matched_atom_indices(frame.topology, reference.topology, atom_names)
    if idx_f.size < 3:
        raise VisualizationError(f"only {idx_f.size} atoms named {', '.join(atom_names)} are shared with the "
                                 "reference; superposition needs at least 3")
    superposed = frame[:]
    superposed.superpose(reference, 0, atom_indices=idx_f, ref_atom_indices=idx_r)
    d2 = ((superposed.xyz[0, idx_f] - reference.xyz[0, idx_r]) ** 2).sum(axis=1) * NM_TO_A**2
    residue = np.array([frame.topology.atom(i).residue.index for i in idx_f])
    total = np.bincount(residue, weights=d2, minlength=frame.topology.n_residues)
    count = np.bincount(residue, minlength=frame.topology.n_residues)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.sqrt(total / count)
    return deviation, superposed


def _legend_html(lo: float, hi: float, caption: str) -> str:
    import plotly.colors

    stops = ", ".join(getattr(plotly.colors.sequential, DEVIATION_COLORSCALE))
    return (
        "<div style='font-family:sans-serif;font-size:12px;width:320px'>"
        f"<div>{caption}</div>"
        f"<div style='height:12px;border:1px solid #888;background:linear-gradient(to right, {stops})'></div>"
        f"<div style='display:flex;justify-content:space-between'><span>{lo:.1f} A</span>"
        f"<span>{hi:.1f} A</span></div></div>"
    )


@dataclass
class Overlay:
    """A superposed frame on its reference; shows as the 3D view with a colour legend under it.

    Attributes
    ----------
    view : nglview.NGLWidget
        Component 0 the reference (grey, transparent), component 1 the frame
        coloured by deviation (residues without a deviation in
        ``UNMATCHED_COLOR``).
    legend : ipywidgets.HTML
        Colour bar of the deviation, Angstrom.
    deviation_A : numpy.ndarray, shape (n_residues,)
        Per-residue deviation of the frame, Angstrom (the colours); NaN for
        residues without matched atoms.
    color_range_A : (float, float)
        Deviations mapped to the two ends of the colour scale.
    rmsd_A : float
        RMSD over the matched atoms, Angstrom.
    """

    view: Any
    legend: Any
    deviation_A: np.ndarray
    color_range_A: tuple[float, float]
    rmsd_A: float
    _box: Any = field(default=None, repr=False)

    @property
    def widget(self) -> Any:
        """``ipywidgets.VBox`` of the view and the legend."""
        if self._box is None:
            import ipywidgets

            self._box = ipywidgets.VBox([self.view, self.legend])
        return self._box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def show_overlay(
    frame: md.Trajectory,
    reference: md.Trajectory,
    *,
    atom_names: Sequence[str] = ("CA",),
    color_range_A: tuple[float, float] | None = None,
    representation: str | None = None,
    reference_name: str = "reference",
) -> Overlay:
    """A frame superposed on a reference, coloured by per-residue deviation.

    Parameters
    ----------
    frame : mdtraj.Trajectory
        The structure to judge (first frame; nm), e.g. a generated frame.
    reference : mdtraj.Trajectory
        Reference of the same protein (e.g. ``mk.datasets.adk_references()["open"]``);
        only its atoms matched to ``frame`` are drawn, under the frame.
    atom_names : sequence of str
        Atoms used for superposition and deviation (default Calpha).
    color_range_A : (float, float), optional
        Deviation (Angstrom) at the pale and the dark end of the colour scale;
        default ``(0, max(largest deviation, 3 A))``.
    representation : str, optional
        NGL representation of both structures; default by topology
        (``backbone`` for Calpha traces, ``cartoon`` otherwise).
    reference_name : str
        Name of the reference in the legend.

    Returns
    -------
    Overlay
        Displays as the view with its colour legend; ``.view`` is the
        ``nglview.NGLWidget``, ``.deviation_A`` the per-residue values.
    """
    import ipywidgets
    import nglview

    deviation, superposed = per_residue_deviation(frame, reference, atom_names)
    idx_f, idx_r = matched_atom_indices(superposed.topology, reference.topology, atom_names)
    finite = deviation[np.isfinite(deviation)]
    if color_range_A is None:
        color_range_A = (0.0, max(float(finite.max()) if finite.size else 0.0, DEFAULT_MAX_DEVIATION_A))
    lo, hi = (float(v) for v in color_range_A)
    if not hi > lo:
        raise VisualizationError(f"color_range_A must be (low, high) with high > low; got {color_range_A}")
    per_atom = np.array([deviation[a.residue.index] for a in superposed.topology.atoms])
    unmatched = np.flatnonzero(np.isnan(per_atom))  # atoms of residues with no deviation
    per_atom = np.where(np.isnan(per_atom), UNMATCHED_BFACTOR, np.clip(per_atom, 0.0, _PDB_BFACTOR_MAX))
    shown_ref = reference[0].atom_slice(np.sort(idx_r))

    view = nglview.NGLWidget()
    view.add_structure(nglview.TextStructure(pdb_text(shown_ref)), default=False)
    view.add_structure(nglview.TextStructure(pdb_text(superposed, bfactors=per_atom)), default=False)
    view.add_representation(representation or default_representation(shown_ref.topology), selection="all",
                            color=REFERENCE_COLOR, opacity=REFERENCE_OPACITY, component=0)
    frame_rep = representation or default_representation(superposed.topology)
    if unmatched.size:  # NGL selects atoms by index with "@i,j,..."
        matched = np.setdiff1d(np.arange(superposed.n_atoms), unmatched)
        coloured = "@" + ",".join(map(str, matched))
    else:
        coloured = "all"
    view.add_representation(frame_rep, selection=coloured, color_scheme="bfactor",
                            color_scale=DEVIATION_COLORSCALE, color_domain=[lo, hi], component=1)
    if unmatched.size:
        view.add_representation(frame_rep, selection="@" + ",".join(map(str, unmatched)), color=UNMATCHED_COLOR,
                                component=1)
    view.center()
    diff_nm = superposed.xyz[0, idx_f] - reference.xyz[0, idx_r]
    rmsd = float(np.sqrt((diff_nm**2).sum(axis=1).mean()) * NM_TO_A)
    caption = f"deviation from {reference_name} per residue (RMSD {rmsd:.2f} A)"
    legend = ipywidgets.HTML(_legend_html(lo, hi, caption))
    return Overlay(view=view, legend=legend, deviation_A=deviation, color_range_A=(lo, hi), rmsd_A=rmsd)
