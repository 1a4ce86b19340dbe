"""Notebook-first visualisation: plotly figures, nglview 3D views, linked views, the sampling explorer.

Figure builders return ``plotly.graph_objects.Figure`` objects; they show
Angstrom, the unit people read, while taking nm like the rest of the API.
3D views are ``nglview.NGLWidget`` objects; nglview and ipywidgets are
imported only when a view or widget is built, never by ``import mdllm_kit.viz``.

* :func:`state_map` -- training density, generated frames (by walker or time)
  and labelled reference states on two coordinates; :func:`rmsd_timelines`
  -- RMSD to each reference per walker with thresholds; :func:`validity_summary`
  -- bond breaks and clashes per frame; :func:`rmsd_timeline`
  (one trajectory), :func:`rmsd_pair_map` -- the demo report's figures.
* :func:`show_ensemble` -- frames with a player; :func:`show_overlay` -- a
  frame on a reference coloured by per-residue deviation.
* :func:`linked_view` -- click a point of the map, see its frame in 3D.
* :class:`SamplingExplorer` -- sliders, Generate/Stop, progress; the map and
  the 3D view fill in while the model samples in a background thread.
"""
from __future__ import annotations

from .explorer import SamplingExplorer
from .linked import LinkedView, linked_view
from .overlay import Overlay, per_residue_deviation, show_overlay
from .plots import rmsd_pair_map
from .state_map import state_map
from .structure import FrameStore, default_representation, show_ensemble
from .timelines import rmsd_timeline, rmsd_timelines
from .validity import validity_summary

__all__ = [
    "FrameStore",
    "LinkedView",
    "Overlay",
    "SamplingExplorer",
    "default_representation",
    "linked_view",
    "per_residue_deviation",
    "rmsd_pair_map",
    "rmsd_timeline",
    "rmsd_timelines",
    "show_ensemble",
    "show_overlay",
    "state_map",
    "validity_summary",
]
