"""Validity summaries: how many frames have how many bond breaks and clashes."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import VisualizationError
from .state_map import walker_color

__all__ = ["validity_summary"]

# counts of 0, 1, ..., MAX_COUNT_BIN - 1 get their own bar; MAX_COUNT_BIN or more share the last one
MAX_COUNT_BIN = 3
# names of the per-frame counts of mdllm_kit.analysis.validity_report, as shown on the panels
METRIC_TITLES = {"ca_breaks": "Calpha bond breaks", "ca_clashes": "Calpha clashes",
                 "cn_breaks": "peptide-bond breaks"}


def _per_frame(counts: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Integer count arrays of one ensemble (a validity report, its ``per_frame`` or plain arrays)."""
    if "per_frame" in counts:
        counts = counts["per_frame"]
    out = {}
    for name, values in counts.items():
        if values is None:
            continue  # e.g. cn_breaks of Calpha-only frames
        arr = np.asarray(values)
        if arr.dtype == bool:
            continue  # frame flags (ca_valid) are not counts
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
            raise VisualizationError(f"{name!r} must be non-negative integer counts per frame, shape (n_frames,); "
                                     f"got dtype {arr.dtype}, shape {arr.shape}")
        out[name] = arr
    return out


def validity_summary(
    counts: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "Validity of the frames",
) -> go.Figure:
    """Bars of the share of frames with 0, 1, 2 and 3 or more problems of each kind.

    Parameters
    ----------
    counts : mapping of str to mapping
        Per ensemble name (e.g. ``"training"``, ``"generated"``), the
        per-frame problem counts: a report of
        :func:`mdllm_kit.analysis.validity_report` (its ``per_frame`` counts
        are used), or a mapping of problem name to integer counts of shape
        ``(n_frames,)``. ``None`` entries and boolean flags are skipped.
    title : str
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One panel per kind of problem, one bar colour per ensemble; bar
        heights in percent of that ensemble's frames. Legend entries give
        the ensemble's share of frames with no problem at all.
    """
    ensembles = {name: _per_frame(c) for name, c in counts.items()}
    metrics: list[str] = []
    for per in ensembles.values():
        metrics += [m for m in per if m not in metrics]
    if not metrics:
        raise VisualizationError("no per-frame counts to show; pass e.g. {'generated': validity_report(traj)}")
    bins = [str(i) for i in range(MAX_COUNT_BIN)] + [f">={MAX_COUNT_BIN}"]
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True,
                        subplot_titles=[METRIC_TITLES.get(m, m) for m in metrics])
    for e, (name, per) in enumerate(ensembles.items()):
        clean = np.logical_and.reduce([per[m] == 0 for m in per]) if per else np.zeros(0, bool)
        label = f"{name} ({100 * clean.mean():.0f}% clean)" if clean.size else name
        for col, metric in enumerate(metrics, start=1):
            if metric not in per:
                continue
            binned = np.minimum(per[metric], MAX_COUNT_BIN)
            share = 100.0 * np.bincount(binned, minlength=MAX_COUNT_BIN + 1) / len(binned)
            fig.add_trace(go.Bar(x=bins, y=share, name=label, legendgroup=name, showlegend=col == 1,
                                 marker_color=walker_color(e), meta=metric,
                                 hovertemplate="%{x}: %{y:.1f}% of frames<extra>" + name + "</extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="problems per frame", type="category")
    fig.update_yaxes(title_text="frames (%)", range=[0, 100], row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", barmode="group")
    return fig
