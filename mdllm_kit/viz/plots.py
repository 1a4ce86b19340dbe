"""plotly scatter of ensembles in RMSD space (timelines: :mod:`mdllm_kit.viz.timelines`)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from ..analysis.units import NM_TO_A

__all__ = ["rmsd_pair_map"]


def rmsd_pair_map(
    ensembles: Mapping[str, tuple[np.ndarray, np.ndarray]],
    axis_names: tuple[str, str] = ("closed", "open"),
    markers: Mapping[str, tuple[float, float]] | None = None,
    title: str = "Ensembles in RMSD space",
) -> go.Figure:
    """Scatter of ensembles on two RMSD coordinates (e.g. to closed and open).

    Parameters
    ----------
    ensembles : mapping of str to (numpy.ndarray, numpy.ndarray)
        Per ensemble name, RMSD (nm) to the first and second reference, each
        of shape (n_frames,).
    axis_names : (str, str)
        Names of the two references, used for the axis labels.
    markers : mapping of str to (float, float), optional
        Labelled points (nm), e.g. the reference structures themselves.
    title : str
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Axes in Angstrom.
    """
    fig = go.Figure()
    for name, (a, b) in ensembles.items():
        fig.add_trace(
            go.Scattergl(
                x=np.asarray(a) * NM_TO_A, y=np.asarray(b) * NM_TO_A, mode="markers",
                marker={"size": 3, "opacity": 0.5}, name=name,
            )
        )
    for label, (a, b) in (markers or {}).items():
        fig.add_trace(
            go.Scatter(
                x=[a * NM_TO_A], y=[b * NM_TO_A], mode="markers+text", text=[label], textposition="top right",
                marker={"size": 14, "symbol": "star", "line": {"width": 1, "color": "black"}}, name=label,
            )
        )
    fig.update_layout(
        title=title, template="plotly_white",
        xaxis_title=f"Calpha RMSD to {axis_names[0]} (A)", yaxis_title=f"Calpha RMSD to {axis_names[1]} (A)",
    )
    return fig
