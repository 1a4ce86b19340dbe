"""Comparison of a generated ensemble with a reference ensemble (e.g. a ground-truth MD run).

* :func:`js_distances` -- Jensen-Shannon distance (scipy, base 2: 0 for
  identical, 1 for disjoint) between histograms of two projected ensembles,
  per component (1D) and of the first two components (2D), on shared bins
  spanning the union of both ranges (:data:`JS_BINS` per axis).
* :func:`rmsf_correlation` -- Pearson correlation over residues of the
  Calpha RMSF (mdtraj ``md.rmsf``) of the two ensembles, both superposed on
  the same structure (the reference ensemble's mean, see :func:`fit_pca`).
* :func:`state_populations` -- populations of states: k-means (scikit-learn,
  :data:`N_STATES` clusters) fitted on the reference ensemble's projection,
  or ground-truth labels when given (e.g. :func:`mdllm_kit.datasets.adk_cg_states`).
* :func:`msm_comparison` -- deeptime Markov state models of the generated
  walkers (each walker a separate discrete trajectory) and of the reference
  run on shared k-means cluster centres (:data:`MSM_N_CLUSTERS`, fitted on
  the reference's projection): implied timescales and stationary
  populations.

Projections come from :mod:`.projection` (fitted on the training ensemble).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import mdtraj as md
import numpy as np

from ..errors import MdllmError
from .projection import FittedProjection, _superposed, mean_structure
from .rmsd import matched_trajectories
from .units import NM_TO_A

__all__ = [
    "JS_BINS",
    "KMEANS_N_INIT",
    "MSM_LAGTIME_FRAMES",
    "MSM_N_CLUSTERS",
    "MSM_N_TIMESCALES",
    "N_STATES",
    "check_label_count",
    "compare_ensembles",
    "js_distances",
    "msm_comparison",
    "rmsf_correlation",
    "state_populations",
]

logger = logging.getLogger(__name__)

#: Histogram bins per projection axis for Jensen-Shannon distances.
JS_BINS = 30
#: k-means states for population comparison when no ground-truth labels are given.
N_STATES = 4
#: scikit-learn k-means restarts (different initial centres, lowest inertia kept) for the
#: population states: 10, scikit-learn's classic default, so a few states are found reproducibly.
KMEANS_N_INIT = 10
#: k-means cluster centres of the Markov state models.
MSM_N_CLUSTERS = 20
#: MSM lag time in frames: one frame, the language model's own step.
MSM_LAGTIME_FRAMES = 1
#: Implied timescales reported per MSM.
MSM_N_TIMESCALES = 3


def _histogram(x: np.ndarray, edges: Sequence[np.ndarray]) -> np.ndarray:
    hist, _ = np.histogramdd(x, bins=list(edges))
    return hist.ravel()


def _js(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    if p.sum() == 0 or q.sum() == 0:
        raise MdllmError("cannot compare an empty histogram; both ensembles need frames")
    return float(jensenshannon(p, q, base=2))


def check_label_count(labels: np.ndarray, n_frames: int, name: str) -> np.ndarray:
    """Integer labels, one per frame; :class:`MdllmError` otherwise.

    Parameters
    ----------
    labels : numpy.ndarray, shape (n_frames,)
        State labels in the trajectory's own frame order (frame-major over
        walkers for a generated ensemble).
    n_frames : int
        Frames of the trajectory the labels belong to.
    name : str
        Which ensemble, for the message (``"generated"`` or ``"reference"``).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_frames:
        raise MdllmError(
            f"{name} labels have shape {labels.shape}, expected ({n_frames},): one label per {name} frame, in the "
            "trajectory's frame order (frame-major over walkers: frame i of walker k at index i * n_walkers + k); "
            f"label the same trajectory you pass, e.g. mk.datasets.adk_cg_states(traj)"
        )
    return labels


def js_distances(
    a: np.ndarray, b: np.ndarray, labels: Sequence[str] | None = None, bins: int = JS_BINS
) -> dict[str, float]:
    """Jensen-Shannon distances between two projected ensembles.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n_frames, n_components)
        Projections of the two ensembles into the same space.
    labels : sequence of str, optional
        Component names (default ``"0", "1", ...``).
    bins : int
        Bins per axis, spanning the union of both ranges.

    Returns
    -------
    dict of str to float
        Per component label (1D histograms) and, with two or more
        components, ``"<label1>-<label2>"`` for the 2D histogram of the first
        two. Base-2 distances in [0, 1].
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise MdllmError(f"projections have {a.shape[1]} and {b.shape[1]} components; project both the same way")
    labels = list(labels) if labels is not None else [str(i) for i in range(a.shape[1])]
    both = np.concatenate([a, b])
    lo, hi = both.min(0), both.max(0)
    hi = np.where(hi > lo, hi, lo + 1.0)  # a constant axis still gets one finite bin range
    edges = [np.linspace(lo[c], hi[c], bins + 1) for c in range(a.shape[1])]
    out = {labels[c]: _js(_histogram(a[:, [c]], [edges[c]]), _histogram(b[:, [c]], [edges[c]]))
           for c in range(a.shape[1])}
    if a.shape[1] >= 2:
        out[f"{labels[0]}-{labels[1]}"] = _js(_histogram(a[:, :2], edges[:2]), _histogram(b[:, :2], edges[:2]))
    return out


def rmsf_correlation(
    generated: md.Trajectory, reference: md.Trajectory, atom_names: Sequence[str] = ("CA",)
) -> dict[str, Any]:
    """Pearson correlation of per-atom RMSF between two ensembles.

    Both ensembles are superposed on the reference ensemble's mean structure
    (:func:`~mdllm_kit.analysis.projection.mean_structure`, as for :func:`fit_pca`), then ``md.rmsf`` is taken around each
    ensemble's own mean.

    Parameters
    ----------
    generated, reference : mdtraj.Trajectory
        Ensembles of the same protein (atoms matched by residue and name), nm.
    atom_names : sequence of str
        Atoms compared (default Calpha).

    Returns
    -------
    dict
        ``pearson_r`` (float), ``rmsf_generated_nm`` and ``rmsf_reference_nm``
        (lists, one value per matched atom), ``mean_rmsf_generated_A`` and
        ``mean_rmsf_reference_A``.
    """
    from scipy.stats import pearsonr

    gen, ref = matched_trajectories(generated, reference, atom_names)
    mean = mean_structure(ref.xyz, ref.topology)
    common = md.Trajectory(mean[None], ref.topology)
    rmsf = {}
    for name, traj in (("generated", gen), ("reference", ref)):
        aligned = md.Trajectory(_superposed(traj.xyz, mean, ref.topology), ref.topology)
        rmsf[name] = md.rmsf(aligned, common, 0, precentered=False)
    if rmsf["generated"].std() == 0 or rmsf["reference"].std() == 0:
        r = float("nan")
    else:
        r = float(pearsonr(rmsf["generated"], rmsf["reference"])[0])
    return {
        "pearson_r": r,
        "mean_rmsf_generated_A": float(rmsf["generated"].mean() * NM_TO_A),
        "mean_rmsf_reference_A": float(rmsf["reference"].mean() * NM_TO_A),
        "rmsf_generated_nm": [float(v) for v in rmsf["generated"]],
        "rmsf_reference_nm": [float(v) for v in rmsf["reference"]],
    }


def state_populations(
    generated: np.ndarray,
    reference: np.ndarray,
    n_states: int = N_STATES,
    seed: int = 0,
    state_names: Sequence[str] | None = None,
    labelled: bool = False,
) -> dict[str, Any]:
    """Populations of states in two ensembles.

    Parameters
    ----------
    generated, reference : numpy.ndarray
        Either projections, shape (n_frames, n_components) -- states are then
        k-means clusters (scikit-learn) fitted on ``reference`` -- or, with
        ``labelled=True``, integer state labels of shape (n_frames,) in
        ``[0, n_states)``.
    n_states : int
        Number of states (clusters, or label values).
    seed : int
        k-means seed.
    state_names : sequence of str, optional
        Names of the states (default ``"S0", "S1", ...``).
    labelled : bool
        Whether the inputs are labels rather than projections.

    Returns
    -------
    dict
        ``states`` (names), ``generated`` and ``reference`` (population
        lists summing to 1), ``js_distance`` (base 2) between them and
        ``method`` (``"kmeans"`` or ``"labels"``).
    """
    if labelled:
        gen_labels = np.asarray(generated, dtype=int)
        ref_labels = np.asarray(reference, dtype=int)
        method = "labels"
    else:
        from sklearn.cluster import KMeans

        reference = np.asarray(reference, dtype=np.float64)
        if len(reference) < n_states:
            raise MdllmError(f"the reference has {len(reference)} frames, fewer than {n_states} states; "
                             "use fewer states (n_states) or a longer reference ensemble")
        km = KMeans(n_clusters=n_states, n_init=KMEANS_N_INIT, random_state=seed).fit(reference)
        ref_labels = km.labels_
        gen_labels = km.predict(np.asarray(generated, dtype=np.float64))
        method = "kmeans"
    for labels in (gen_labels, ref_labels):
        if labels.size == 0 or labels.min() < 0 or labels.max() >= n_states:
            raise MdllmError(f"state labels must be integers in [0, {n_states}) and not empty")
    gen_pop = np.bincount(gen_labels, minlength=n_states) / gen_labels.size
    ref_pop = np.bincount(ref_labels, minlength=n_states) / ref_labels.size
    names = list(state_names) if state_names is not None else [f"S{i}" for i in range(n_states)]
    return {
        "method": method,
        "states": names,
        "generated": [float(v) for v in gen_pop],
        "reference": [float(v) for v in ref_pop],
        "js_distance": _js(gen_pop, ref_pop),
    }


def compare_ensembles(
    generated: md.Trajectory,
    reference: md.Trajectory,
    projection: FittedProjection,
    n_states: int = N_STATES,
    generated_labels: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    state_names: Sequence[str] | None = None,
    bins: int = JS_BINS,
    seed: int = 0,
) -> dict[str, Any]:
    """Distributional comparison of a generated ensemble with a reference ensemble.

    Parameters
    ----------
    generated, reference : mdtraj.Trajectory
        Ensembles of the same protein, nm.
    projection : FittedProjection
        Space of the histograms and k-means states (e.g. PCA on training).
    n_states : int
        k-means states, or the number of label values when labels are given.
    generated_labels, reference_labels : numpy.ndarray of int, optional
        Ground-truth state labels (both or neither), one per frame of
        ``generated`` / ``reference`` in their frame order; used instead of
        k-means.
    state_names : sequence of str, optional
        Names of the states.
    bins : int
        Histogram bins per axis.
    seed : int
        k-means seed.

    Returns
    -------
    dict
        ``projection`` (kind), ``js_distance`` (see :func:`js_distances`),
        ``rmsf`` (see :func:`rmsf_correlation`, per-atom lists included) and
        ``populations`` (see :func:`state_populations`).
    """
    gen_proj, ref_proj = projection.transform(generated), projection.transform(reference)
    if (generated_labels is None) != (reference_labels is None):
        raise MdllmError("pass ground-truth labels for both ensembles or for neither")
    if generated_labels is not None:
        generated_labels = check_label_count(generated_labels, generated.n_frames, "generated")
        reference_labels = check_label_count(reference_labels, reference.n_frames, "reference")
        populations = state_populations(generated_labels, reference_labels, n_states=n_states,
                                        state_names=state_names, labelled=True)
    else:
        populations = state_populations(gen_proj, ref_proj, n_states=n_states, seed=seed, state_names=state_names)
    return {
        "projection": projection.kind,
        "js_distance": js_distances(gen_proj, ref_proj, projection.labels, bins=bins),
        "rmsf": rmsf_correlation(generated, reference, projection.atom_names),
        "populations": populations,
    }


def _msm(dtrajs: list[np.ndarray], n_clusters: int, lagtime: int, n_timescales: int) -> dict[str, Any]:
    """Reversible maximum-likelihood MSM on the largest strongly connected set of the transition counts."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    usable = [d for d in dtrajs if len(d) > lagtime]
    if not usable:
        return {"error": f"no trajectory is longer than the lag time ({lagtime} frames)"}
    counts = TransitionCountEstimator(lagtime, "sliding", n_states=n_clusters).fit(usable).fetch_model()
    counts = counts.submodel_largest(directed=True)
    if counts.n_states < 2:
        return {"error": "the trajectories never move between clusters: no transitions to build an MSM from"}
    model = MaximumLikelihoodMSM(reversible=True).fit(counts).fetch_model()
    populations = np.zeros(n_clusters)
    active = np.asarray(model.count_model.state_symbols, dtype=int)
    populations[active] = model.stationary_distribution
    k = min(n_timescales, model.n_states - 1)
    timescales = model.timescales(k) if k > 0 else np.array([])
    return {
        "n_active_states": int(model.n_states),
        "active_fraction": float(np.isin(np.concatenate(usable), active).mean()),
        "timescales_frames": [float(t) for t in np.real(timescales)],
        "stationary_populations": [float(p) for p in populations],
    }


def msm_comparison(
    generated_trajs: Sequence[md.Trajectory],
    reference_trajs: Sequence[md.Trajectory] | md.Trajectory,
    projection: FittedProjection,
    n_clusters: int = MSM_N_CLUSTERS,
    lagtime: int = MSM_LAGTIME_FRAMES,
    n_timescales: int = MSM_N_TIMESCALES,
    seed: int = 0,
    generated_dt_ps: float | None = None,
    reference_dt_ps: float | None = None,
    state_labels: tuple[np.ndarray, np.ndarray] | None = None,
    state_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Markov state models of generated walkers and of a reference run, on shared cluster centres.

    Parameters
    ----------
    generated_trajs : sequence of mdtraj.Trajectory
        One trajectory per walker (e.g. ``[ens.walker(k) for k in range(ens.n_walkers)]``).
    reference_trajs : mdtraj.Trajectory or sequence of them
        Ground-truth run(s).
    projection : FittedProjection
        Space of the clustering.
    n_clusters : int
        deeptime k-means centres, fitted on the reference's projection.
    lagtime : int
        MSM lag time, frames (of each ensemble's own frame spacing).
    n_timescales : int
        Implied timescales reported.
    seed : int
        k-means seed.
    generated_dt_ps, reference_dt_ps : float, optional
        Time per frame, ps; timescales are then also given in ps.
    state_labels : (numpy.ndarray, numpy.ndarray), optional
        Ground-truth labels of the pooled generated frames and the pooled
        reference frames (same order as the trajectories); the MSM's
        stationary populations are then also summed per label
        (``state_populations``: label name -> population; each cluster
        counts for the label most of its frames in that ensemble carry).
    state_names : sequence of str, optional
        Names of the label values (default: the values as strings).

    Returns
    -------
    dict
        ``n_clusters``, ``lagtime_frames`` and per ensemble (``generated``,
        ``reference``): ``n_active_states``, ``active_fraction`` (frames in
        the largest connected set), ``timescales_frames`` (and
        ``timescales_ps``), ``stationary_populations`` (per cluster, zero
        outside the active set) and optionally ``state_populations``; or
        ``error`` (str) when no MSM can be estimated (e.g. walkers too short).
        ``population_js_distance``: base-2 Jensen-Shannon distance of the
        cluster populations, when both MSMs exist.
    """
    from deeptime.clustering import KMeans

    refs = [reference_trajs] if isinstance(reference_trajs, md.Trajectory) else list(reference_trajs)
    ref_proj = [projection.transform(t) for t in refs]
    gen_proj = [projection.transform(t) for t in generated_trajs]
    pooled = np.concatenate(ref_proj)
    if len(pooled) < n_clusters:
        raise MdllmError(f"the reference has {len(pooled)} frames, fewer than {n_clusters} clusters; use fewer clusters")
    kmeans = KMeans(n_clusters=n_clusters, fixed_seed=seed, n_jobs=1).fit(pooled).fetch_model()
    out: dict[str, Any] = {"n_clusters": int(n_clusters), "lagtime_frames": int(lagtime),
                           "projection": projection.kind}
    dtrajs_all = {}
    for name, projs, dt in (("generated", gen_proj, generated_dt_ps), ("reference", ref_proj, reference_dt_ps)):
        dtrajs = [kmeans.transform(p).astype(np.int32) for p in projs]
        dtrajs_all[name] = np.concatenate(dtrajs)
        result = _msm(dtrajs, n_clusters, lagtime, n_timescales)
        if "timescales_frames" in result and dt is not None:
            result["timescales_ps"] = [t * dt for t in result["timescales_frames"]]
        out[name] = result
    if state_labels is not None:
        for name, labels in zip(("generated", "reference"), state_labels):
            labels = np.asarray(labels, dtype=int)
            if len(labels) != len(dtrajs_all[name]):
                raise MdllmError(f"{len(labels)} {name} state labels for {len(dtrajs_all[name])} frames")
            pops = out[name].get("stationary_populations")
            if pops is None:
                continue
            # each cluster goes to the label most of its frames in this ensemble carry
            per_label: dict[str, float] = {}
            for cluster, weight in enumerate(pops):
                members = labels[dtrajs_all[name] == cluster]
                if weight > 0 and members.size:
                    value = int(np.bincount(members).argmax())
                    key = state_names[value] if state_names is not None else str(value)
                    per_label[key] = per_label.get(key, 0.0) + float(weight)
            out[name]["state_populations"] = per_label
    if "stationary_populations" in out["generated"] and "stationary_populations" in out["reference"]:
        out["population_js_distance"] = _js(np.asarray(out["generated"]["stationary_populations"]),
                                            np.asarray(out["reference"]["stationary_populations"]))
    return out
