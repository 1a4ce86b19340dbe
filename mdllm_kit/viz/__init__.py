"""Notebook-first visualisation: plotly figures (and, later, nglview views).

Figure builders return ``plotly.graph_objects.Figure`` objects; they show
Angstrom, the unit people read, while taking nm like the rest of the API.
"""
from __future__ import annotations

from .plots import rmsd_pair_map, rmsd_timeline

__all__ = ["rmsd_pair_map", "rmsd_timeline"]
