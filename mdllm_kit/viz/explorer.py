"""SamplingExplorer: an ipywidgets app that samples from a model and shows frames as they arrive.

Sampling runs in a background thread (``threading.Thread``) through
:func:`mdllm_kit.explore` with the strategy chosen in the app (``rollout``:
plain sampling, the same frames as :meth:`mdllm_kit.Sampler.sample`) and a
per-step ``callback``: each step's decoded frames are projected onto the
state map and appended to the 3D view, and the closest approach to each
reference so far is drawn against frames generated, while the notebook
kernel stays free for other cells. ipywidgets
8 sends updates made from that thread; only one run at a time is allowed
(Generate is disabled while one runs), and Stop ends a run cooperatively after
the frame being generated.

The sampling thread and the kernel's main thread (clicks on the map) both
update the plotly figure and the 3D view; plotly keeps one batch-mode state
per figure, so every such update holds one re-entrant lock (``_ui_lock``).
While a run is going the 3D view follows the newest frame of walker
:data:`FOLLOWED_WALKER` until the user clicks a point on the map; from then
on it stays on the clicked frame until the next run starts.
:meth:`SamplingExplorer.close` stops a run and closes the widgets (call it
before re-running the notebook cell that made the explorer).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import mdtraj as md
import numpy as np

from ..analysis.rmsd import rmsd_to_references
from ..analysis.units import NM_TO_A
from ..contracts import step_and_walker
from ..errors import VisualizationError
from ..lm.config import SamplingSettings
from .state_map import (TRACE_GENERATED, clicked_frame, generated_trace, link_clicks, move_ring, selected_trace,
                        state_map, walker_color)
from .state_map import _scale as display_scale
from .structure import FrameStore, default_representation, show_frame

__all__ = ["SamplingExplorer"]

logger = logging.getLogger(__name__)

#: Upper ends of the sliders (a CPU samples a few frames per second for AdK; a GPU many more).
MAX_FRAMES = 1000
MAX_WALKERS = 32
MAX_TEMPERATURE = 2.0
#: Upper end of the entropy-cap slider, nats per token (about log 256: above it a cap no longer acts); 0 is off.
MAX_ENTROPY_CAP = 5.5
#: Start values of the frames and walkers sliders when no settings are given (a run of about a minute on a CPU).
DEFAULT_FRAMES = 20
DEFAULT_WALKERS = 4
#: The 3D view follows the newest frame of this walker while sampling.
FOLLOWED_WALKER = 0
#: Size of the state map (width) and of the square 3D view, pixels: side by side in a ~1000 px notebook,
#: wrapped below each other in a narrower one.
MAP_WIDTH_PX = 500
VIEW_SIZE_PX = 380
#: Seconds :meth:`SamplingExplorer.close` waits for the sampling thread (it ends after the frame being
#: generated: well under a second for AdK on a CPU); a thread still running then is left to end by itself.
CLOSE_TIMEOUT_S = 30.0


def _seed_structure(bundle: Any, seed_frames: Any) -> md.Trajectory:
    """One frame giving the topology of decoded frames (and the orientation frames are superposed on)."""
    if isinstance(seed_frames, md.Trajectory):
        return seed_frames[-1]
    tokens = seed_frames if seed_frames is not None else bundle.seed_tokens
    if tokens is None:
        raise VisualizationError("the bundle holds no seed frames; pass seed_frames (structures or tokens)")
    tokens = np.asarray(tokens)
    return bundle.tokenizer.decode(tokens.reshape(-1, tokens.shape[-1])[-1:])


class SamplingExplorer:
    """Sample from a trained model with sliders; watch the state map and the 3D view fill in.

    Parameters
    ----------
    bundle : ModelBundle
        Trained model, tokenizer and codec (``mk.load_bundle(dir)``).
    training : mdtraj.Trajectory, optional
        Training frames: their density is drawn on the map, and a PCA is
        fitted on them (:func:`mdllm_kit.analysis.fit_pca`) when no
        ``projection`` is given.
    references : mapping of str to mdtraj.Trajectory, optional
        Reference states shown as labelled stars (e.g.
        ``mk.datasets.adk_references()``; all-atom structures are matched by
        residue and atom name).
    projection : FittedProjection, optional
        Anything with ``transform(trajectory) -> (n_frames, >= 2)``,
        ``labels`` and ``kind`` (``"pca"`` values are nm and shown in
        Angstrom); default a PCA of ``training``.
    seed_frames : mdtraj.Trajectory or numpy.ndarray, optional
        Starting structures or tokens passed to the sampler (default: the
        bundle's seed frames).
    settings : SamplingSettings, optional
        Start values of the controls and the settings not on them
        (``context_frames``, ``flush_every``).
    sampler : Sampler, optional
        Default ``mk.Sampler(bundle)``.

    Attributes
    ----------
    strategy : ipywidgets.Dropdown
        Exploration strategy (:func:`mdllm_kit.exploration.strategy_names`;
        ``restart`` and ``bias`` need ``training`` for their map and keep
        frames that are not Boltzmann-weighted).
    temperature, top_p, entropy_cap : ipywidgets.FloatSlider
        ``entropy_cap`` 0 is off (``SamplingSettings.entropy_cap=None``).
    top_k, n_frames, n_walkers : ipywidgets.IntSlider
    seed : ipywidgets.IntText
    generate_button, stop_button : ipywidgets.Button
    progress : ipywidgets.IntProgress
        Frames per walker done in the current run, out of ``max``.
    status : ipywidgets.HTML
    figure : plotly.graph_objects.FigureWidget
        The state map; one trace per walker of the current run, ``customdata``
        the frame index in ``ensemble.trajectory`` (frame-major).
    view : nglview.NGLWidget
        The frames of the current run; ``view.frame`` is the one shown.
    approach : plotly.graph_objects.FigureWidget or None
        Closest approach (Calpha RMSD, A) to each reference against frames
        generated in the current run; ``None`` without references.
    widget : ipywidgets.VBox
        The whole app (the explorer also displays itself).
    ensemble : GeneratedEnsemble or None
        Result of the last finished (or stopped) run.
    error : BaseException or None
        Why the last run failed, if it did.

    Examples
    --------
    >>> explorer = mk.viz.SamplingExplorer(bundle, training=train, references=mk.datasets.adk_references())
    >>> explorer            # doctest: +SKIP
    >>> explorer.generate_button.click(); explorer.wait().n_frames  # doctest: +SKIP
    """

    def __init__(self, bundle: Any, training: md.Trajectory | None = None,
                 references: Mapping[str, md.Trajectory] | None = None, projection: Any = None, *,
                 seed_frames: Any = None, settings: SamplingSettings | None = None, sampler: Any = None) -> None:
        import ipywidgets as w
        import nglview
        import plotly.graph_objects as go

        from ..lm.sampler import Sampler

        from ..exploration import strategy_names

        self.bundle = bundle
        self.sampler = sampler if sampler is not None else Sampler(bundle)
        self.training = training
        self.references = dict(references or {})
        self._cv: Any = None  # collective variables of restart / bias, fitted on training when first needed
        self.seed_frames = seed_frames
        self.base_settings = settings or SamplingSettings(n_frames=DEFAULT_FRAMES, n_walkers=DEFAULT_WALKERS)
        if projection is None:
            if training is None:
                raise VisualizationError("the state map needs coordinates: pass training frames (a PCA is fitted "
                                         "on them) or a fitted projection (mk.analysis.fit_pca(train))")
            from ..analysis.projection import fit_pca

            projection = fit_pca(training)
        if not callable(getattr(projection, "transform", None)):
            raise VisualizationError(f"projection must have a transform(trajectory) method; got "
                                     f"{type(projection).__name__}")
        self.projection = projection
        self.unit = "nm" if getattr(projection, "kind", None) == "pca" else None
        self._scale = display_scale(self.unit)  # NM_TO_A for nm
        labels = tuple(getattr(projection, "labels", ("coordinate 1", "coordinate 2"))[:2])
        train_xy = None if training is None else self._project(training)
        ref_xy = {name: tuple(self._project(ref[0])[0]) for name, ref in (references or {}).items()}

        s = self.base_settings
        style = {"description_width": "90px"}
        self.temperature = w.FloatSlider(value=s.temperature, min=0.0, max=max(MAX_TEMPERATURE, s.temperature),
                                         step=0.05, description="temperature", style=style)
        self.top_k = w.IntSlider(value=s.top_k, min=0, max=max(int(bundle.codec.n_structure_tokens), s.top_k),
                                 description="top-k", style=style)
        self.top_p = w.FloatSlider(value=s.top_p, min=0.01, max=1.0, step=0.01, description="top-p", style=style)
        self.entropy_cap = w.FloatSlider(value=s.entropy_cap or 0.0, min=0.0,
                                         max=max(MAX_ENTROPY_CAP, s.entropy_cap or 0.0), step=0.1,
                                         description="entropy cap", style=style)
        self.n_frames = w.IntSlider(value=s.n_frames, min=1, max=max(MAX_FRAMES, s.n_frames), description="frames",
                                    style=style)
        self.n_walkers = w.IntSlider(value=s.n_walkers, min=1, max=max(MAX_WALKERS, s.n_walkers),
                                     description="walkers", style=style)
        self.seed = w.IntText(value=s.seed, description="seed", style=style)
        self.strategy = w.Dropdown(options=strategy_names(), value="rollout", description="strategy", style=style)
        self.generate_button = w.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=s.n_frames, description="frames", style=style)
        self.status = w.HTML("Set the sliders and press Generate.")
        self._controls = [self.temperature, self.top_k, self.top_p, self.entropy_cap, self.n_frames, self.n_walkers,
                          self.seed, self.strategy]
        self.generate_button.on_click(self._on_generate)
        self.stop_button.on_click(self._on_stop)

        fig = state_map(train_xy, None, ref_xy, labels=labels, unit=None,  # already in display units
                        title="Generated frames as they arrive (click one)")
        if self.unit == "nm":
            fig.update_layout(xaxis_title=f"{labels[0]} (A)", yaxis_title=f"{labels[1]} (A)")
        fig.add_trace(selected_trace())
        fig.update_layout(width=MAP_WIDTH_PX, height=VIEW_SIZE_PX)
        self.figure = go.FigureWidget(fig)

        self._topology_frame = _seed_structure(bundle, seed_frames)
        self._align_atoms = self._topology_frame.topology.select("name CA")
        self.store = FrameStore(self._topology_frame)
        self.view = nglview.NGLWidget()
        self.view.add_trajectory(self.store, default=False)
        self.view.add_representation(default_representation(self._topology_frame.topology), selection="all",
                                     color_scheme="residueindex")
        self.view.layout.width = f"{VIEW_SIZE_PX}px"
        self.view.layout.height = f"{VIEW_SIZE_PX}px"
        self.view.center()

        self.approach = self._approach_figure() if self.references else None
        self._closest: dict[str, list[tuple[int, float]]] = {}

        self.ensemble: Any = None
        self.error: BaseException | None = None
        self.selected: int | None = None
        self.last_settings: SamplingSettings | None = None
        self._n_walkers_run = 0
        self._points = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # Generate vs the end of a run: one run at a time
        self._ui_lock = threading.RLock()  # figure and view updates (sampling thread vs clicks)
        self._busy = False  # a run is going: set by Generate, cleared by the run's thread as its last step
        self._follow_newest = True  # the view follows the newest frame until a click during the run
        self._closed = False
        self.widget = w.VBox([
            w.HBox([w.VBox(self._controls[:4]), w.VBox(self._controls[4:7]), w.VBox(self._controls[7:])]),
            w.HBox([self.generate_button, self.stop_button, self.progress]),
            self.status,
            w.HBox([self.figure, self.view], layout=w.Layout(flex_flow="row wrap", align_items="center")),
            *([self.approach] if self.approach is not None else []),
        ])

    # ------------------------------------------------------------------ helpers
    def _approach_figure(self) -> Any:
        """Closest approach to each reference against frames generated: one line per reference."""
        import plotly.graph_objects as go

        fig = go.FigureWidget()
        for name in self.references:
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=name, marker={"size": 4}))
        fig.update_layout(title="Closest approach to each reference", xaxis_title="frames generated",
                          yaxis_title="closest Calpha RMSD so far (A)", width=MAP_WIDTH_PX + VIEW_SIZE_PX,
                          height=280, margin={"t": 40, "b": 40})
        return fig

    def _collective_variables(self) -> Any:
        if self._cv is None:
            if self.training is None:
                raise VisualizationError("this strategy works on a map of the training frames; pass training= to "
                                         "the explorer")
            from ..exploration import CollectiveVariables

            self._cv = CollectiveVariables.pca(self.training)
        return self._cv

    def _project(self, traj: md.Trajectory) -> np.ndarray:
        """Map coordinates in display units, shape (n_frames, 2)."""
        xy = np.asarray(self.projection.transform(traj), dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] < 2:
            raise VisualizationError(f"the projection gives shape {xy.shape}; the map needs >= 2 components")
        return xy[:, :2] * self._scale

    def closest_approach(self) -> dict[str, list[tuple[int, float]]]:
        """``{reference: [(frames generated, closest Calpha RMSD so far in A), ...]}`` of the current run."""
        with self._ui_lock:
            return {name: list(points) for name, points in self._closest.items()}

    def settings_from_controls(self) -> SamplingSettings:
        """The sampling settings the controls show (other fields from ``settings``)."""
        return self.base_settings.replace(
            temperature=float(self.temperature.value), top_k=int(self.top_k.value), top_p=float(self.top_p.value),
            entropy_cap=float(self.entropy_cap.value) or None,
            n_frames=int(self.n_frames.value), n_walkers=int(self.n_walkers.value), seed=int(self.seed.value))

    @property
    def running(self) -> bool:
        """True while a run is in progress (until its thread re-enables the controls)."""
        return self._busy

    def _generated_traces(self) -> list[Any]:
        return [t for t in self.figure.data if t.meta == TRACE_GENERATED]

    def _set_busy(self, busy: bool) -> None:
        self.generate_button.disabled = busy
        self.stop_button.disabled = not busy
        for control in self._controls:
            control.disabled = busy

    # ------------------------------------------------------------------ events
    def _on_generate(self, _button: Any = None) -> None:
        with self._lock:
            if self._closed:
                logger.info("the explorer is closed; Generate ignored")
                return
            if self._busy:
                logger.info("a sampling run is in progress; Generate ignored")
                self.status.value = ("<b>A run is in progress:</b> Generate ignored; press Stop and wait for it "
                                     "to end first.")
                return
            try:
                settings = self.settings_from_controls()
            except ValueError as exc:  # SamplingSettings validation names the bad value
                self.status.value = f"<b>Cannot sample:</b> {exc}"
                return
            self.last_settings = settings
            self.error = None
            self._stop.clear()
            self._busy = True
            self._follow_newest = True
            self._reset(settings.n_walkers)
            self.progress.max, self.progress.value = settings.n_frames, 0
            strategy = str(self.strategy.value)
            self.status.value = (f"Sampling {settings.n_frames} frames x {settings.n_walkers} walkers "
                                 f"({strategy}; T={settings.temperature:g}, top-k={settings.top_k}, "
                                 f"top-p={settings.top_p:g}, seed {settings.seed})...")
            self._set_busy(True)
            self._thread = threading.Thread(target=self._run, args=(settings, strategy), name="mdllm-explorer",
                                            daemon=True)
            self._thread.start()

    def _on_stop(self, _button: Any = None) -> None:
        if self.running:
            self._stop.set()
            self.status.value = "Stopping after the current frame..."

    def _reset(self, n_walkers: int) -> None:
        """Drop the previous run's points and frames; one empty trace per walker."""
        with self._ui_lock:
            self._reset_locked(n_walkers)

    def _reset_locked(self, n_walkers: int) -> None:
        self._n_walkers_run = n_walkers
        self._points: list[list[tuple[float, float, int]]] = [[] for _ in range(n_walkers)]
        self._closest = {name: [] for name in self.references}
        if self.approach is not None:
            with self.approach.batch_update():
                for trace in self.approach.data:
                    trace.x, trace.y = [], []
        self.store.clear()
        self.selected = None
        empty = np.empty((0, 2))
        with self.figure.batch_update():
            self.figure.data = tuple(t for t in self.figure.data if t.meta != TRACE_GENERATED)
            for k in range(n_walkers):
                self.figure.add_trace(generated_trace(empty, np.empty(0, np.int64), f"walker {k}",
                                                      color=walker_color(k)))
            move_ring(self.figure)
        link_clicks(self.figure, self._on_click)  # the ring stays on top of the new points

    def _run(self, settings: SamplingSettings, strategy: str) -> None:
        from ..exploration import ModelProposal, explore, make_strategy

        try:
            strat = make_strategy(strategy)
            cv = self._collective_variables() if strat.needs_cv else None
            ens = explore(self.bundle, strat, budget_frames=settings.n_frames * settings.n_walkers,
                          n_walkers=settings.n_walkers, seed=settings.seed, settings=settings, cv=cv,
                          proposal=ModelProposal(self.sampler, settings), seed_frames=self.seed_frames,
                          flush_every=settings.flush_every, callback=self._on_step)
            self.ensemble = ens
            done = "stopped" if ens.n_frames < settings.n_frames else "done"
            note = "" if strat.unbiased else (" These frames are biased by the strategy: use <i>rollout</i> runs for "
                                              "populations.")
            self.status.value = (f"{done.capitalize()}: {ens.n_frames} frames x {ens.n_walkers} walkers "
                                 f"({strategy}). Click a point to show its frame; <code>explorer.ensemble</code> "
                                 f"holds them.{note}")
        except Exception as exc:  # shown in the app; wait() re-raises it
            logger.exception("sampling failed")
            self.error = exc
            self.status.value = f"<b>Sampling failed:</b> {type(exc).__name__}: {exc}"
        finally:
            with self._lock:  # a Generate click waits until the controls are re-enabled, then may start a run
                self._busy = False
                if not self._closed:
                    self._set_busy(False)

    def _on_step(self, step: Any) -> bool:
        """Exploration callback: superpose, project and show the frames of step ``step.step`` of every walker."""
        if self._closed:
            return False
        i = int(step.step)
        frames = md.Trajectory(step.frames.xyz.copy(), step.frames.topology)
        if self.references:
            rmsd = rmsd_to_references(frames, self.references)
        if self._align_atoms.size >= 3:
            frames.superpose(self._topology_frame, 0, atom_indices=self._align_atoms)
        xy = self._project(frames)
        k = len(xy)
        with self._ui_lock:
            for walker in range(k):
                self._points[walker].append((xy[walker, 0], xy[walker, 1], i * k + walker))
            with self.figure.batch_update():
                for walker, trace in enumerate(self._generated_traces()[:k]):
                    x, y, index = (np.array(v) for v in zip(*self._points[walker]))
                    trace.x, trace.y, trace.customdata = x, y, index
            self.store.extend(frames)
            if self.references:
                self._update_approach(rmsd, (i + 1) * k)
            if self._follow_newest:
                show_frame(self.view, self.store, i * k + FOLLOWED_WALKER)
            else:  # stay on the clicked frame; only the player's range grows
                self.view.max_frame = max(self.store.n_frames - 1, 0)
            self.progress.value = i + 1
        return not self._stop.is_set()

    def _update_approach(self, rmsd_nm: Mapping[str, np.ndarray], n_generated: int) -> None:
        for name, values in rmsd_nm.items():
            best = float(values.min()) * NM_TO_A
            points = self._closest[name]
            points.append((n_generated, min(best, points[-1][1]) if points else best))
        if self.approach is not None:
            with self.approach.batch_update():
                for trace, name in zip(self.approach.data, self.references):
                    trace.x, trace.y = (list(v) for v in zip(*self._closest[name]))

    def _on_click(self, trace: Any, points: Any, selector: Any = None) -> None:
        index = clicked_frame(trace, points)
        if index is not None:
            with self._ui_lock:
                if self._busy:
                    self._follow_newest = False  # the user chose a frame: stop following the newest one
                self.show_frame(index)

    # ------------------------------------------------------------------ public
    def show_frame(self, index: int) -> None:
        """Show frame ``index`` of the current run (frame-major) in 3D and ring it on the map."""
        with self._ui_lock:
            n = self.store.n_frames
            if not 0 <= index < n:
                raise VisualizationError(f"frame {index} has not been generated; there are {n} so far")
            self.selected = int(index)
            show_frame(self.view, self.store, int(index))
            step, walker = step_and_walker(int(index), self._n_walkers_run)
            x, y, _ = self._points[walker][step]
            move_ring(self.figure, x, y)

    def generate(self) -> None:
        """Start a run with the current control values (as the Generate button does)."""
        self.generate_button.click()

    def stop(self) -> None:
        """Stop the current run after the frame being generated (as the Stop button does)."""
        self.stop_button.click()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the current run ends; return :attr:`ensemble` (re-raise the run's error, if any).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; a :class:`TimeoutError` if the run is still going.
        """
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"sampling still running after {timeout} s; call wait() again or stop()")
        if self.error is not None:
            raise self.error
        return self.ensemble

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the current run, wait for its thread and close every widget of the app.

        Safe to call more than once; the explorer cannot start runs afterwards
        (:attr:`ensemble` keeps the last result).

        Parameters
        ----------
        timeout : float
            Seconds to wait for the sampling thread (it ends after the frame
            being generated); a thread still running then ends by itself.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("the sampling thread is still running after %.0f s; it stops after its frame",
                               timeout)
        with self._ui_lock:
            _close_tree(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _close_tree(widget: Any) -> None:
    """Close ``widget`` and, first, every widget below it (``children``)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
