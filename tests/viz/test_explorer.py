"""The SamplingExplorer driven by simulated button clicks and slider changes (no browser)."""
import threading
import time

import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.errors import VisualizationError
from mdllm_kit.lm.sampler import Sampler
from mdllm_kit.viz import SamplingExplorer
from mdllm_kit.viz.state_map import TRACE_GENERATED, TRACE_REFERENCE, TRACE_SELECTED, TRACE_TRAINING

WAIT_S = 120  # generous: the shared CPUs may be loaded


def _generated(explorer):
    return [t for t in explorer.figure.data if t.meta == TRACE_GENERATED]


@pytest.fixture
def explorer(trained_bundle, toy_traj, references):
    # the toy protein is the first 6 Calpha atoms of AdK: the crystals' first 6 residues (all atoms) are its references
    refs = {name: ref.atom_slice(ref.topology.select("resid 0 to 5")) for name, ref in references.items()}
    return SamplingExplorer(trained_bundle, training=toy_traj, references=refs)


def test_layout_before_any_run(explorer, toy_traj):
    fig = explorer.figure
    (density,) = [t for t in fig.data if t.meta == TRACE_TRAINING]
    assert len(density.x) == toy_traj.n_frames
    assert sorted(t.name for t in fig.data if t.meta == TRACE_REFERENCE) == ["closed", "open"]
    assert fig.layout.xaxis.title.text == "PC1 (A)"  # the default projection is a PCA of the training frames
    assert not _generated(explorer) and explorer.ensemble is None
    assert explorer.stop_button.disabled and not explorer.generate_button.disabled
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_entropy_cap_slider_starts_at_the_default_and_zero_turns_it_off(explorer):
    assert explorer.entropy_cap.value == pytest.approx(mk.SamplingSettings().entropy_cap)
    explorer.entropy_cap.value = 0.0
    assert explorer.settings_from_controls().entropy_cap is None


def test_generate_uses_the_sliders_and_fills_map_view_and_progress(explorer, toy_traj):
    explorer.temperature.value = 0.7
    explorer.top_k.value = 5
    explorer.top_p.value = 0.9
    explorer.entropy_cap.value = 1.5
    explorer.n_frames.value = 3
    explorer.n_walkers.value = 2
    explorer.seed.value = 11
    explorer.generate_button.click()
    ens = explorer.wait(WAIT_S)
    assert ens.n_frames == 3 and ens.n_walkers == 2
    used = ens.params["settings"]  # what the sampler ran with
    assert (used["temperature"], used["top_k"], used["top_p"], used["n_frames"], used["n_walkers"], used["seed"]) \
        == (0.7, 5, 0.9, 3, 2, 11)
    assert used["entropy_cap"] == 1.5
    gen = _generated(explorer)
    assert [t.name for t in gen] == ["walker 0", "walker 1"]
    assert sum(len(t.x) for t in gen) == 3 * 2
    np.testing.assert_array_equal(gen[1].customdata, [1, 3, 5])  # frame-major indices of walker 1
    # each point is the projection of its frame
    xy = explorer.projection.transform(ens.trajectory)[:, :2] * 10
    np.testing.assert_allclose(np.column_stack([gen[1].x, gen[1].y]), xy[[1, 3, 5]], atol=1e-3)
    assert explorer.progress.value == explorer.progress.max == 3
    assert explorer.store.n_frames == 6 and explorer.view.max_frame == 5
    assert explorer.view.frame == 2 * 2 + 0  # the newest frame of walker 0
    assert not explorer.generate_button.disabled and explorer.stop_button.disabled
    assert "Done" in explorer.status.value
    # the same run from the sampler directly gives the same frames
    direct = Sampler(explorer.bundle).sample(explorer.last_settings)
    np.testing.assert_array_equal(direct.tokens, ens.tokens)


def test_click_on_a_generated_point_shows_that_frame(explorer):
    explorer.n_frames.value, explorer.n_walkers.value = 2, 3
    explorer.generate_button.click()
    explorer.wait(WAIT_S)
    fig = explorer.figure
    walker2 = next(i for i, t in enumerate(fig.data) if t.meta == TRACE_GENERATED and t.name == "walker 2")
    trace = fig.data[walker2]
    fig._js2py_pointsCallback = {"event_type": "plotly_click", "points": {
        "trace_indexes": [walker2], "point_indexes": [0], "xs": [trace.x[0]], "ys": [trace.y[0]]}}
    assert explorer.view.frame == 2 and explorer.selected == 2
    ring = next(t for t in fig.data if t.meta == TRACE_SELECTED)
    assert (ring.x[0], ring.y[0]) == (trace.x[0], trace.y[0])
    np.testing.assert_allclose(explorer.view._coordinates_dict[0], explorer.store.get_coordinates(2))


class _GatedSampler(Sampler):
    """The real sampler, but each frame waits for the test to let it through (so Stop has a run to stop)."""

    def __init__(self, bundle):
        super().__init__(bundle)
        self.gate = threading.Semaphore(0)
        self.settings_seen = []

    def generate_frame(self, history, settings, frame_index):
        self.settings_seen.append(settings)
        assert self.gate.acquire(timeout=WAIT_S)
        return super().generate_frame(history, settings, frame_index)


def _wait_for_progress(explorer, n_frames):
    """Wait (at most WAIT_S) until ``n_frames`` frames per walker are shown; the run must still be going."""
    deadline = time.monotonic() + WAIT_S
    while explorer.progress.value < n_frames:
        assert explorer._thread.is_alive(), f"the run ended after {explorer.progress.value} frames"
        assert time.monotonic() < deadline, f"only {explorer.progress.value} of {n_frames} frames after {WAIT_S} s"
        explorer._thread.join(0.05)


def test_stop_ends_the_run_and_generate_is_locked_while_running(trained_bundle, toy_traj):
    sampler = _GatedSampler(trained_bundle)
    explorer = SamplingExplorer(trained_bundle, training=toy_traj, sampler=sampler)
    explorer.n_frames.value, explorer.n_walkers.value = 50, 2
    explorer.generate_button.click()
    assert explorer.running and explorer.generate_button.disabled and not explorer.stop_button.disabled
    assert explorer.temperature.disabled
    explorer.generate_button.click()  # a second click while running starts nothing
    assert "in progress" in explorer.status.value  # ... and says so
    sampler.gate.release(2)  # frames 0 and 1
    _wait_for_progress(explorer, 2)
    explorer.stop_button.click()
    sampler.gate.release(1)  # frame 2 finishes, then the run stops
    ens = explorer.wait(WAIT_S)
    assert ens.n_frames == 3 and explorer.progress.value == 3 and explorer.progress.max == 50
    assert len(sampler.settings_seen) == 3  # one run only
    assert sum(len(t.x) for t in _generated(explorer)) == 6
    assert "Stopped" in explorer.status.value and not explorer.generate_button.disabled


def test_a_click_during_a_run_keeps_the_view_on_the_clicked_frame(trained_bundle, toy_traj):
    sampler = _GatedSampler(trained_bundle)
    explorer = SamplingExplorer(trained_bundle, training=toy_traj, sampler=sampler)
    explorer.n_frames.value, explorer.n_walkers.value = 5, 2
    explorer.generate_button.click()
    sampler.gate.release(2)
    _wait_for_progress(explorer, 2)
    assert explorer.view.frame == 1 * 2 + 0  # following walker 0's newest frame
    fig = explorer.figure
    walker1 = next(i for i, t in enumerate(fig.data) if t.meta == TRACE_GENERATED and t.name == "walker 1")
    trace = fig.data[walker1]
    fig._js2py_pointsCallback = {"event_type": "plotly_click", "points": {
        "trace_indexes": [walker1], "point_indexes": [0], "xs": [trace.x[0]], "ys": [trace.y[0]]}}
    assert explorer.view.frame == 1 and explorer.selected == 1  # frame 0 of walker 1
    sampler.gate.release(3)
    ens = explorer.wait(WAIT_S)
    assert ens.n_frames == 5 and explorer.store.n_frames == 10
    assert explorer.view.frame == 1 and explorer.selected == 1  # new frames did not move the view
    assert explorer.view.max_frame == 9  # but the player can reach them
    # the next run follows the newest frame again
    explorer.n_frames.value = 1
    explorer.generate_button.click()
    sampler.gate.release(1)
    explorer.wait(WAIT_S)
    assert explorer.view.frame == 0 and explorer.selected is None


def test_close_stops_a_running_explorer_and_closes_its_widgets(trained_bundle, toy_traj):
    sampler = _GatedSampler(trained_bundle)
    explorer = SamplingExplorer(trained_bundle, training=toy_traj, sampler=sampler)
    explorer.n_frames.value, explorer.n_walkers.value = 50, 1
    explorer.generate_button.click()
    sampler.gate.release(1)
    _wait_for_progress(explorer, 1)
    thread = explorer._thread
    # the frame being generated when close() sets the stop event finishes, then the run ends: let two through
    # (frame 1, and frame 2 should frame 1 have finished before close() got there)
    sampler.gate.release(2)
    explorer.close()
    assert not thread.is_alive() and not explorer.running
    assert explorer.progress.value <= 3 and len(sampler.settings_seen) <= 3  # stopped, not 50 frames
    for widget in (explorer.widget, explorer.generate_button, explorer.temperature, explorer.figure,
                   explorer.view, explorer.status):
        assert widget.comm is None  # closed
    explorer.close()  # a second close is harmless
    explorer.generate_button.click()  # and a closed explorer starts nothing
    assert explorer._thread is thread


def test_second_generate_replaces_the_first_run(explorer):
    explorer.n_frames.value, explorer.n_walkers.value = 2, 3
    explorer.generate_button.click()
    first = explorer.wait(WAIT_S)
    explorer.n_frames.value, explorer.n_walkers.value, explorer.seed.value = 3, 1, 5
    explorer.generate_button.click()
    second = explorer.wait(WAIT_S)
    assert second is not first and (second.n_walkers, second.n_frames) == (1, 3)
    gen = _generated(explorer)
    assert [t.name for t in gen] == ["walker 0"] and len(gen[0].x) == 3
    assert explorer.store.n_frames == 3 and explorer.progress.value == explorer.progress.max == 3
    assert explorer.figure.data[-1].meta == TRACE_SELECTED  # the ring stays on top


def test_failures_are_shown_and_raised(trained_bundle, toy_traj):
    class Broken(Sampler):
        def generate_frame(self, *args):
            raise RuntimeError("out of memory")

    explorer = SamplingExplorer(trained_bundle, training=toy_traj, sampler=Broken(trained_bundle))
    explorer.generate_button.click()
    with pytest.raises(RuntimeError, match="out of memory"):
        explorer.wait(WAIT_S)
    assert "out of memory" in explorer.status.value and not explorer.generate_button.disabled


def test_an_explicit_projection_and_missing_coordinates(trained_bundle, toy_traj):
    tica = mk.analysis.fit_tica(toy_traj, lagtime=1, stride=1)  # 6 atoms: every one of them
    explorer = SamplingExplorer(trained_bundle, projection=tica)
    assert explorer.unit is None and explorer.figure.layout.xaxis.title.text == tica.labels[0]  # dimensionless
    assert not [t for t in explorer.figure.data if t.meta == TRACE_TRAINING]
    explorer.n_frames.value, explorer.n_walkers.value = 2, 1
    explorer.generate_button.click()
    ens = explorer.wait(WAIT_S)
    (trace,) = _generated(explorer)
    np.testing.assert_allclose(np.column_stack([trace.x, trace.y]), tica.transform(ens.trajectory)[:, :2],
                               atol=1e-4)
    with pytest.raises(VisualizationError, match="training frames"):
        SamplingExplorer(trained_bundle)


def test_strategy_selector_runs_an_exploration_and_draws_the_closest_approach(explorer):
    from mdllm_kit.analysis import rmsd_to_references

    assert explorer.strategy.options == tuple(mk.exploration.strategy_names())
    explorer.strategy.value = "restart"
    explorer.n_frames.value, explorer.n_walkers.value = 4, 2
    explorer.generate_button.click()
    ens = explorer.wait(WAIT_S)
    assert ens.params["exploration"]["strategy"]["name"] == "restart"
    assert ens.trajectory.n_frames == 8 and "biased by the strategy" in explorer.status.value
    closest = explorer.closest_approach()
    assert sorted(closest) == ["closed", "open"]
    for name, points in closest.items():
        frames_generated, best = (np.array(v) for v in zip(*points))
        assert frames_generated.tolist() == [2, 4, 6, 8]
        assert (np.diff(best) <= 1e-9).all()  # the closest approach so far never grows
        truth = rmsd_to_references(ens.trajectory, {name: explorer.references[name]})[name] * 10
        assert abs(best[-1] - truth.min()) < 0.01
    (closed_line, open_line) = explorer.approach.data
    assert list(closed_line.x) == [2, 4, 6, 8] and len(open_line.y) == 4


def test_a_map_strategy_without_training_frames_is_explained(trained_bundle, toy_traj):
    from mdllm_kit.analysis import fit_pca

    explorer = SamplingExplorer(trained_bundle, projection=fit_pca(toy_traj))
    assert explorer.approach is None  # no references, no approach plot
    explorer.strategy.value = "bias"
    explorer.generate_button.click()
    with pytest.raises(VisualizationError, match="pass training= to the explorer"):
        explorer.wait(WAIT_S)
    assert "pass training=" in explorer.status.value and not explorer.generate_button.disabled
