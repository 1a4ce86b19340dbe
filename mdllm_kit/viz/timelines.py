"""RMSD-to-reference timelines of generated walkers."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..contracts import per_walker
from ..errors import VisualizationError
from ._common import NM_TO_A
from .state_map import walker_color

__all__ = ["rmsd_timeline", "rmsd_timelines"]

# a subplot per reference: this much vertical room each keeps the lines readable
ROW_HEIGHT_PX = 220


def _per_walker(values: np.ndarray, n_walkers: int | None, name: str) -> np.ndarray:
    """RMSD of one reference as (n_walkers, n_frames)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 1:
        raise VisualizationError(f"RMSD to {name!r} must have shape (n_walkers, n_frames) or (n,); got {arr.shape}")
    if n_walkers is None:
        return arr[None]
    if arr.size % n_walkers:
        raise VisualizationError(f"RMSD to {name!r} has {arr.size} values, not a multiple of n_walkers={n_walkers}; "
                                 "pass the frame-major values of a whole ensemble (ens.trajectory)")
    return per_walker(arr, n_walkers)


def rmsd_timelines(
    rmsd_nm: Mapping[str, np.ndarray],
    *,
    n_walkers: int | None = None,
    time_ps: np.ndarray | None = None,
    threshold_nm: float | Mapping[str, float] | None = None,
    title: str = "RMSD to references per walker",
) -> go.Figure:
    """RMSD to each reference over time, one line per walker and one panel per reference.

    Parameters
    ----------
    rmsd_nm : mapping of str to numpy.ndarray
        RMSD in nm per reference name, each of shape ``(n_walkers, n_frames)``,
        or ``(n_walkers * n_frames,)`` frame-major (as
        :func:`mdllm_kit.analysis.rmsd_to_references` returns for
        ``ens.trajectory``; then give ``n_walkers``), or ``(n_frames,)`` for a
        single trajectory.
    n_walkers : int, optional
        Walkers of frame-major 1-D input.
    time_ps : numpy.ndarray, shape (n_frames,), optional
        Time of each frame in ps (shown in ns); frame index when omitted.
    threshold_nm : float or mapping of str to float, optional
        RMSD (nm) below which a frame counts as in the reference state, for all
        references or per reference name; drawn as a dashed line.
    title : str
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Panels share the time axis; RMSD in Angstrom.
    """
    if not rmsd_nm:
        raise VisualizationError("rmsd_nm is empty; pass at least one reference, e.g. {'open': rmsd}")
    names = list(rmsd_nm)
    series = {name: _per_walker(rmsd_nm[name], n_walkers, name) for name in names}
    shapes = {s.shape for s in series.values()}
    if len(shapes) != 1:
        raise VisualizationError(f"all references need the same (n_walkers, n_frames); got {sorted(shapes)}")
    k, n = shapes.pop()
    if time_ps is None:
        x, xlabel = np.arange(n), "frame"
    else:
        x, xlabel = np.asarray(time_ps, dtype=np.float64) / 1000.0, "time (ns)"
        if x.shape != (n,):
            raise VisualizationError(f"time_ps must have one value per frame, shape ({n},); got {x.shape}")
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"RMSD to {name}" for name in names])
    for row, name in enumerate(names, start=1):
        for w in range(k):
            fig.add_trace(go.Scatter(
                x=x, y=series[name][w] * NM_TO_A, mode="lines", name=f"walker {w}", legendgroup=f"walker {w}",
                showlegend=row == 1, line={"color": walker_color(w), "width": 1.5}, meta=name,
            ), row=row, col=1)
        thr = threshold_nm.get(name) if isinstance(threshold_nm, Mapping) else threshold_nm
        if thr is not None:
            fig.add_hline(y=float(thr) * NM_TO_A, line_dash="dash", line_color="black", row=row, col=1,
                          annotation_text=f"{float(thr) * NM_TO_A:.1f} A", annotation_position="top left")
        fig.update_yaxes(title_text="Calpha RMSD (A)", rangemode="tozero", row=row, col=1)
    fig.update_xaxes(title_text=xlabel, row=len(names), col=1)
    fig.update_layout(title=title, template="plotly_white", height=ROW_HEIGHT_PX * len(names) + 120)
    return fig


def rmsd_timeline(rmsd_nm: Mapping[str, np.ndarray], time_ps: np.ndarray | None = None,
                  title: str = "RMSD to references") -> go.Figure:
    """RMSD of one trajectory to each reference over time: :func:`rmsd_timelines` with one walker.

    Parameters
    ----------
    rmsd_nm : mapping of str to numpy.ndarray, shape (n_frames,)
        RMSD per reference in nm (as from :func:`mdllm_kit.analysis.rmsd_to_references`).
    time_ps : numpy.ndarray, shape (n_frames,), optional
        Time of each frame in ps (shown in ns); frame index when omitted.
    title : str
        Figure title.
    """
    return rmsd_timelines(rmsd_nm, time_ps=time_ps, title=title)
