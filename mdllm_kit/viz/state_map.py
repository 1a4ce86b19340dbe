"""The state map: training density, generated frames and reference states on two coordinates.

Every trace carries a ``meta`` tag -- ``"training"``, ``"generated"``,
``"reference"`` or ``"selected"`` -- so that linked views and the sampling
explorer find their traces without relying on names or order. The
``customdata`` of a generated point is its row in ``generated_xy``; for an
ensemble projected frame-major (``ens.trajectory``) that is the frame index
in ``ens.trajectory``, which a linked 3D view shows when the point is clicked.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from ..errors import VisualizationError
from ._common import NM_TO_A, as_per_point, as_xy

__all__ = ["TRACE_GENERATED", "TRACE_REFERENCE", "TRACE_SELECTED", "TRACE_TRAINING", "clicked_frame", "generated_trace",
           "link_clicks", "move_ring", "reference_trace", "selected_trace", "state_map", "training_trace",
           "walker_color"]

TRACE_TRAINING = "training"
TRACE_GENERATED = "generated"
TRACE_REFERENCE = "reference"
TRACE_SELECTED = "selected"

# training density: contour levels enough to show basins and their rim without banding
TRAINING_CONTOURS = 12
TRAINING_COLORSCALE = "Greys"
# generated frames drawn over the density: small, slightly transparent markers
GENERATED_MARKER_SIZE = 6
GENERATED_OPACITY = 0.8
TIME_COLORSCALE = "Viridis"
# reference states: large stars with a black rim, labelled to their right (labels above them were clipped)
REFERENCE_MARKER_SIZE = 16
# the frame shown in a linked 3D view: an open ring around its point
SELECTED_MARKER_SIZE = 18
WALKER_PALETTE = plotly.colors.qualitative.Plotly


def walker_color(k: int) -> str:
    """Colour of walker ``k`` (the plotly palette, cycled)."""
    return WALKER_PALETTE[int(k) % len(WALKER_PALETTE)]


def _scale(unit: str | None) -> float:
    if unit is None:
        return 1.0
    if unit == "nm":
        return NM_TO_A
    raise VisualizationError(f"unit must be 'nm' (shown in Angstrom) or None (shown as given); got {unit!r}")


def _axis_title(label: str, unit: str | None) -> str:
    return f"{label} (A)" if unit == "nm" else label


def training_trace(xy: np.ndarray, scale: float = 1.0) -> go.Histogram2dContour:
    """Filled density contours of the training frames (``xy`` shape (n, 2), display units after ``scale``)."""
    return go.Histogram2dContour(
        x=xy[:, 0] * scale, y=xy[:, 1] * scale, name="training", meta=TRACE_TRAINING, showlegend=True,
        histnorm="probability density", ncontours=TRAINING_CONTOURS, colorscale=TRAINING_COLORSCALE,
        reversescale=False, showscale=False, contours={"coloring": "fill", "showlines": False}, opacity=0.6,
        hoverinfo="skip",
    )


def generated_trace(xy: np.ndarray, index: np.ndarray, name: str, scale: float = 1.0, color: object = None,
                    colorscale: str | None = None, colorbar_title: str | None = None,
                    hover: Sequence[str] | None = None) -> go.Scatter:
    """Scatter of generated frames; ``customdata`` holds each point's frame index ``index`` (shape (n,))."""
    marker: dict[str, object] = {"size": GENERATED_MARKER_SIZE, "opacity": GENERATED_OPACITY}
    if color is not None:
        marker["color"] = color
    if colorscale is not None:
        marker.update(colorscale=colorscale, showscale=True, colorbar={"title": {"text": colorbar_title or ""}})
    return go.Scatter(
        x=xy[:, 0] * scale, y=xy[:, 1] * scale, mode="markers", name=name, meta=TRACE_GENERATED,
        customdata=np.asarray(index, dtype=np.int64), marker=marker,
        text=None if hover is None else list(hover), hovertemplate="%{text}<extra></extra>" if hover else None,
    )


def reference_trace(name: str, x: float, y: float) -> go.Scatter:
    """A labelled star at a reference state (display units)."""
    return go.Scatter(
        x=[x], y=[y], mode="markers+text", text=[name], textposition="middle right", name=name,
        meta=TRACE_REFERENCE, cliponaxis=False,
        marker={"size": REFERENCE_MARKER_SIZE, "symbol": "star", "line": {"width": 1, "color": "black"}},
    )


def selected_trace() -> go.Scatter:
    """An empty ring marker that linked views move to the frame they show."""
    return go.Scatter(
        x=[], y=[], mode="markers", name="shown in 3D", meta=TRACE_SELECTED, hoverinfo="skip",
        marker={"size": SELECTED_MARKER_SIZE, "symbol": "circle-open", "line": {"width": 3}, "color": "black"},
    )


def clicked_frame(trace: Any, points: Any) -> int | None:
    """Frame index (``customdata``) of the point a plotly click callback reports, or ``None`` for no point.

    plotly calls every trace's callback on a click; ``points.point_inds``
    is empty for the traces that were not hit.
    """
    if not points.point_inds:
        return None
    return int(trace.customdata[points.point_inds[0]])


def link_clicks(figure: Any, callback: Any) -> None:
    """Call ``callback(trace, points, selector)`` on clicks of the generated traces; keep the ring trace on top.

    Adds the :func:`selected_trace` ring when ``figure`` (a
    ``plotly.graph_objects.FigureWidget``) has none.
    """
    if not any(t.meta == TRACE_SELECTED for t in figure.data):
        figure.add_trace(selected_trace())
    figure.data = tuple([t for t in figure.data if t.meta != TRACE_SELECTED] +
                        [t for t in figure.data if t.meta == TRACE_SELECTED])
    for trace in figure.data:
        if trace.meta == TRACE_GENERATED:
            trace.on_click(callback)


def move_ring(figure: Any, x: float | None = None, y: float | None = None) -> None:
    """Put the ring marker of ``figure`` on ``(x, y)`` (display units), or hide it when ``x`` is ``None``."""
    ring = next(t for t in figure.data if t.meta == TRACE_SELECTED)
    with figure.batch_update():
        ring.x, ring.y = ([], []) if x is None else ([x], [y])


def state_map(
    train_xy: np.ndarray | None = None,
    generated_xy: np.ndarray | None = None,
    reference_xy: Mapping[str, tuple[float, float]] | None = None,
    *,
    color_by: Literal["walker", "time"] = "walker",
    walker: np.ndarray | None = None,
    time: np.ndarray | None = None,
    labels: tuple[str, str] = ("coordinate 1", "coordinate 2"),
    unit: Literal["nm"] | None = None,
    time_label: str = "frame",
    title: str = "State map",
) -> go.Figure:
    """Training density, generated frames and reference states on two coordinates.

    Parameters
    ----------
    train_xy : numpy.ndarray, shape (n_train, 2), optional
        Training frames on the two coordinates; drawn as filled density contours.
    generated_xy : numpy.ndarray, shape (n_generated, 2), optional
        Generated frames; drawn as markers whose ``customdata`` is their row
        index (the frame index in a frame-major ``GeneratedEnsemble.trajectory``).
    reference_xy : mapping of str to (float, float), optional
        Reference states (e.g. the closed and open crystals), labelled stars.
    color_by : {"walker", "time"}
        ``"walker"``: one trace (colour, legend entry) per walker, from
        ``walker``; ``"time"``: one trace coloured by ``time`` with a colour bar.
    walker : numpy.ndarray of int, shape (n_generated,), optional
        Walker of each generated frame (frame-major ensembles:
        ``np.tile(np.arange(n_walkers), n_frames)``). Default: all one walker.
    time : numpy.ndarray, shape (n_generated,), optional
        Time of each generated frame (frame index or ps; say which in
        ``time_label``). Default: the row index.
    labels : (str, str)
        Axis names, e.g. ``projection.labels``.
    unit : {"nm", None}
        ``"nm"``: the coordinates are lengths in nm (a PCA of nm coordinates,
        RMSD in nm) and are shown in Angstrom; ``None``: shown as given
        (dimensionless coordinates such as TICA).
    time_label : str
        Title of the colour bar for ``color_by="time"`` and of the hover text.
    title : str
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Wrap it in ``plotly.graph_objects.FigureWidget`` for click callbacks
        (see :func:`mdllm_kit.viz.linked_view`).
    """
    scale = _scale(unit)
    fig = go.Figure()
    if train_xy is not None:
        fig.add_trace(training_trace(as_xy(train_xy, "train_xy"), scale))
    if generated_xy is not None:
        xy = as_xy(generated_xy, "generated_xy")
        n = len(xy)
        w = np.zeros(n, dtype=np.int64) if walker is None else as_per_point(walker, n, "walker", np.int64)
        t = np.arange(n, dtype=np.float64) if time is None else as_per_point(time, n, "time")
        index = np.arange(n)
        hover = [f"frame {i}<br>walker {wk}<br>{time_label} {tk:g}" for i, wk, tk in zip(index, w, t)]
        if color_by == "walker":
            for k in np.unique(w):
                sel = w == k
                fig.add_trace(generated_trace(xy[sel], index[sel], f"walker {k}", scale, color=walker_color(k),
                                              hover=[h for h, s in zip(hover, sel) if s]))
        elif color_by == "time":
            fig.add_trace(generated_trace(xy, index, "generated", scale, color=t, colorscale=TIME_COLORSCALE,
                                          colorbar_title=time_label, hover=hover))
        else:
            raise VisualizationError(f"color_by must be 'walker' or 'time'; got {color_by!r}")
    for name, (x, y) in (reference_xy or {}).items():
        fig.add_trace(reference_trace(name, float(x) * scale, float(y) * scale))
    fig.update_layout(
        title=title, template="plotly_white", hovermode="closest",
        xaxis_title=_axis_title(labels[0], unit), yaxis_title=_axis_title(labels[1], unit),
        legend={"itemsizing": "constant"},
    )
    return fig
