"""Linked views: click a generated frame on the state map, see it in 3D."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..contracts import step_and_walker
from ..errors import VisualizationError
from ._common import as_xy
from .state_map import TRACE_GENERATED, clicked_frame, link_clicks, move_ring, state_map
from .structure import _as_trajectory, show_ensemble

__all__ = ["LinkedView", "linked_view"]


class LinkedView:
    """A ``plotly`` state map and an ``nglview`` view of the same frames, linked by clicks.

    Clicking a generated point sets ``view.frame`` to that point's frame (its
    ``customdata``) and rings the point on the map. Build it with
    :func:`linked_view`; display ``.widget`` (or the object itself).

    Attributes
    ----------
    figure : plotly.graph_objects.FigureWidget
        The state map (see :func:`mdllm_kit.viz.state_map`) with a ring marker
        trace for the frame shown in 3D.
    view : nglview.NGLWidget
        The frames (see :func:`mdllm_kit.viz.show_ensemble`).
    xy : numpy.ndarray, shape (n_frames, 2)
        Map coordinates of the frames, display units.
    """

    def __init__(self, figure: Any, view: Any, xy: np.ndarray) -> None:
        self.figure = figure
        self.view = view
        self.xy = xy
        self.selected: int | None = None
        self._box: Any = None
        link_clicks(figure, self._on_click)

    def _on_click(self, trace: Any, points: Any, selector: Any = None) -> None:
        """plotly click callback (several traces get the event; see :func:`~mdllm_kit.viz.state_map.clicked_frame`)."""
        index = clicked_frame(trace, points)
        if index is not None:
            self.show_frame(index)

    def show_frame(self, index: int) -> None:
        """Show frame ``index`` in the 3D view and ring it on the map."""
        if not 0 <= index < len(self.xy):
            raise VisualizationError(f"frame {index} does not exist; there are {len(self.xy)}")
        self.selected = int(index)
        self.view.frame = int(index)
        move_ring(self.figure, self.xy[index, 0], self.xy[index, 1])

    @property
    def widget(self) -> Any:
        """``ipywidgets.HBox`` of the map and the 3D view."""
        if self._box is None:
            import ipywidgets

            self._box = ipywidgets.HBox([self.figure, self.view])
        return self._box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def linked_view(
    traj: Any,
    generated_xy: np.ndarray,
    *,
    train_xy: np.ndarray | None = None,
    reference_xy: Mapping[str, tuple[float, float]] | None = None,
    color_by: Literal["walker", "time"] = "walker",
    walker: np.ndarray | None = None,
    time: np.ndarray | None = None,
    n_walkers: int | None = None,
    labels: tuple[str, str] = ("coordinate 1", "coordinate 2"),
    unit: Literal["nm"] | None = None,
    title: str = "State map (click a frame to show it in 3D)",
    representation: str | None = None,
) -> LinkedView:
    """A state map whose generated points, when clicked, show their frame in an nglview view.

    Parameters
    ----------
    traj : mdtraj.Trajectory or GeneratedEnsemble
        The frames of the points, in the order of ``generated_xy`` (an
        ensemble: its frame-major ``trajectory``).
    generated_xy : numpy.ndarray, shape (n_frames, 2)
        Map coordinates of the frames (e.g. ``projection.transform(traj)[:, :2]``).
    train_xy, reference_xy, color_by, walker, time, labels, unit, title
        As for :func:`mdllm_kit.viz.state_map`.
    n_walkers : int, optional
        For a frame-major ensemble, sets ``walker`` and ``time`` (frame index)
        of every point when they are not given. Taken from ``traj.n_walkers``
        when ``traj`` is a ``GeneratedEnsemble``.
    representation : str, optional
        NGL representation (default by topology).

    Returns
    -------
    LinkedView
    """
    import plotly.graph_objects as go

    n_walkers = n_walkers or getattr(traj, "n_walkers", None)
    frames = _as_trajectory(traj)
    xy = as_xy(generated_xy, "generated_xy")
    if len(xy) != frames.n_frames:
        raise VisualizationError(f"generated_xy has {len(xy)} points but the trajectory {frames.n_frames} frames; "
                                 "project the same frames that are shown")
    if n_walkers:
        step, walker_of = step_and_walker(np.arange(len(xy)), n_walkers)  # frame-major
        walker = walker_of if walker is None else walker
        time = step if time is None else time
    fig = state_map(train_xy, xy, reference_xy, color_by=color_by, walker=walker, time=time, labels=labels,
                    unit=unit, title=title)
    shown_xy = np.empty_like(xy)
    for trace in fig.data:  # display units, as the map shows them
        if trace.meta == TRACE_GENERATED:
            shown_xy[np.asarray(trace.customdata)] = np.column_stack([trace.x, trace.y])
    view = show_ensemble(frames, representation=representation)
    return LinkedView(go.FigureWidget(fig), view, shown_xy)
