"""The metrics dictionary of a generated ensemble (what ``mdllm analyze`` prints).

:func:`analyze` measures a generated ensemble against named reference
structures, the training ensemble and, optionally, a reference ensemble
(ground-truth MD). Its result is JSON-serialisable (strict JSON: a value
that is not a finite number, e.g. the RMSF correlation of an ensemble whose
RMSF is the same for every residue, is ``None``, JSON ``null``); RMSD values
are given in Angstrom (keys ending ``_A``), times in frames or ps as named.

Layout
------
``n_frames``, ``n_walkers``
    Generated frames (all walkers) and walkers.
``exploration`` (only for frames of a biased exploration strategy)
    ``strategy``, ``unbiased`` (``false``) and ``note``: populations, RMSF
    and MSM kinetics of such frames are not Boltzmann-weighted.
``references.<NAME>``
    Per reference structure (see :func:`reference_coverage`):
    ``min_rmsd_A`` (Calpha, Angstrom), ``reached`` (min < 3 A),
    ``first_step_within`` / ``first_step_within_per_walker`` (generated-frame
    time step of the first frame within 3 A, ``null`` if never),
    ``fraction_within`` and ``covered`` keyed by threshold in Angstrom
    (``"1.5"``, ``"2.0"``, ``"3.0"``, ``"4.0"``), ``argmin_step``,
    ``argmin_walker``.
``novelty``
    ``nearest_training_rmsd_A`` (``min``/``median``/``max`` over generated
    frames), ``cutoff_A`` (99th percentile of the training set's own
    nearest-neighbour RMSD), ``novel_fraction`` (frames beyond it),
    ``training_frames_used``.
``validity``
    Generated frames (see :func:`validity_report`): ``ca_valid_fraction``,
    ``ca_break_rate``, ``ca_clash_rate``, ``frames_without_ca_break``,
    ``frames_without_ca_clash``, ``cn_break_rate`` (``null`` for Calpha-only
    frames), ``ca_bond_length_A`` / ``cn_bond_length_A`` (mean, p99, max),
    ``thresholds_A``; ``validity.training`` holds the same for the training
    frames: the reference that real data pass (the summary prints both).
``projection``
    ``pca`` and ``tica``: the fitted projections' summaries (labels,
    explained variance / timescales); ``references.<NAME>``: each
    reference's position in PCA space; ``generated_mean``.
``comparison`` (only with a reference ensemble)
    ``js_distance`` (PCA components and 2D, base 2), ``js_distance_tica``,
    ``rmsf`` (``pearson_r``, ``null`` when either RMSF profile is constant;
    mean RMSF in A), ``populations`` (states,
    generated / reference populations, ``js_distance``), ``msm`` (see
    :func:`msm_comparison`), ``n_reference_frames``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import mdtraj as md
import numpy as np

from ..contracts import frame_major_frames
from ..errors import MdllmError
from .comparison import (MSM_LAGTIME_FRAMES, MSM_N_CLUSTERS, N_STATES, check_label_count, compare_ensembles,
                         js_distances, msm_comparison)
from .coverage import STATE_REACHED_NM, reference_coverage
from .novelty import (NOVELTY_MAX_TRAINING_FRAMES, nearest_training_rmsd, novel_fraction, subsample_evenly,
                      training_novelty_cutoff)
from .projection import fit_pca, fit_tica
from .rmsd import rmsd_to_references
from .units import NM_TO_A
from .validity import validity_report

__all__ = ["TICA_LAGTIME_FRAMES", "analyze", "summary_lines"]

logger = logging.getLogger(__name__)

#: Lag time (frames) of the TICA fitted on the training ensemble (50 ps at the AdK data's 5 ps spacing).
TICA_LAGTIME_FRAMES = 10
#: Training frames used for the training-set validity baseline (evenly strided).
_VALIDITY_TRAINING_FRAMES = 500


#: What ``analyze`` says of frames kept by a biased exploration strategy (``restart``, ``bias``).
BIASED_NOTE = ("these frames were kept by a biased exploration strategy: coverage and novelty hold, but populations, "
               "RMSF and MSM kinetics are not Boltzmann-weighted; take them from rollout runs")

def _stats_A(values_nm: np.ndarray) -> dict[str, float]:
    v = np.asarray(values_nm) * NM_TO_A
    return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "per_frame"}


def _finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) inside dicts and lists replaced by ``None``."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _calpha_residue_names(traj: md.Trajectory) -> list[str]:
    return [atom.residue.name for atom in traj.topology.atoms if atom.name == "CA"]


#: Names of one residue in different force fields (protonation and disulfide variants; Amber and CHARMM).
_RESIDUE_ALIASES = {name: "HIS" for name in ("HIS", "HID", "HIE", "HIP", "HSD", "HSE", "HSP")} | \
    {name: "CYS" for name in ("CYS", "CYX", "CYM")} | {"ASH": "ASP", "GLH": "GLU", "LYN": "LYS"}


def _same_residue(a: str, b: str) -> bool:
    return _RESIDUE_ALIASES.get(a, a) == _RESIDUE_ALIASES.get(b, b)


def _check_same_protein(generated: md.Trajectory, other: md.Trajectory, what: str) -> None:
    """Refuse a trajectory of another protein than the generated frames (by their Calpha residues)."""
    ours, theirs = _calpha_residue_names(generated), _calpha_residue_names(other)
    if len(ours) != len(theirs):
        raise MdllmError(f"{what} has {len(theirs)} Calpha residues but the generated frames have {len(ours)}: "
                         "it must be the same protein (same residues in the same order); pass a structure of the "
                         "protein the model was trained on, or slice both to the common residues (traj.atom_slice)")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if not _same_residue(a, b):
            raise MdllmError(f"{what} is not the same protein as the generated frames (residue {i} is {b}, not {a}); "
                             "pass frames of the protein the model was trained on (same residues in the same order)")


def _walkers(traj: md.Trajectory, n_walkers: int) -> list[md.Trajectory]:
    return [traj[k::n_walkers] for k in range(n_walkers)]


def analyze(
    generated: Any,
    training: md.Trajectory,
    references: Mapping[str, md.Trajectory],
    reference_ensemble: md.Trajectory | None = None,
    n_walkers: int | None = None,
    generated_labels: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    state_names: Sequence[str] | None = None,
    reached_nm: float = STATE_REACHED_NM,
    n_states: int = N_STATES,
    msm_clusters: int = MSM_N_CLUSTERS,
    msm_lagtime: int = MSM_LAGTIME_FRAMES,
    tica_lagtime: int = TICA_LAGTIME_FRAMES,
    max_training_frames: int = NOVELTY_MAX_TRAINING_FRAMES,
    seed: int = 0,
    generated_dt_ps: float | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Discovery, novelty, validity and ensemble metrics of a generated ensemble.

    Parameters
    ----------
    generated : mdtraj.Trajectory or GeneratedEnsemble
        Generated frames, nm; frame-major over walkers when ``n_walkers`` is
        given (as :attr:`GeneratedEnsemble.trajectory`). A
        :class:`~mdllm_kit.GeneratedEnsemble` (what :class:`~mdllm_kit.Sampler`
        returns) is taken directly, with its own walker count.
    training : mdtraj.Trajectory
        The training ensemble, nm.
    references : mapping of str to mdtraj.Trajectory
        Named reference structures (first frame used; may be all-atom).
    reference_ensemble : mdtraj.Trajectory, optional
        Ground-truth ensemble for the ``comparison`` block.
    n_walkers : int, optional
        Walkers of a frame-major trajectory (default: the ensemble's, else 1).
    generated_labels, reference_labels : numpy.ndarray of int, optional
        Ground-truth state labels, shape (``generated.n_frames``,) and
        (``reference_ensemble.n_frames``,), in the trajectories' own frame
        order (frame-major over walkers for ``generated``), e.g.
        :func:`mdllm_kit.datasets.adk_cg_states`; populations then use them
        instead of k-means. ``n_states`` must cover the label values.
    state_names : sequence of str, optional
        Names of the label values.
    reached_nm : float
        RMSD at which a reference counts as reached, nm (default 3 A).
    n_states, msm_clusters, msm_lagtime : int
        k-means states, MSM cluster centres and MSM lag time (frames).
    tica_lagtime : int
        Lag time of the TICA fitted on the training ensemble, frames.
    max_training_frames : int
        Training frames (evenly spaced) used for novelty.
    seed : int
        Seed of the clusterings.
    generated_dt_ps : float, optional
        Time between generated frames, ps, for MSM timescales in ps. Default:
        the training run's frame spacing (the model predicts the next
        training frame, so one generated step stands for one training step).
    details : dict, optional
        If given, filled with the arrays behind the metrics, for plotting:
        ``rmsd_nm`` (per reference), ``nearest_training_rmsd_nm``,
        ``validity`` and ``validity_training`` (full reports with
        ``per_frame``), ``pca``, ``tica``
        (:class:`FittedProjection`), ``pca_generated``, ``pca_training``,
        ``pca_references``, ``pca_reference_ensemble``.

    Returns
    -------
    dict
        JSON-serialisable metrics (non-finite values as ``None``); layout in
        the module docstring.
    """
    exploration = (getattr(generated, "params", None) or {}).get("exploration")
    generated, n_walkers = frame_major_frames(generated, n_walkers)
    n_walkers = 1 if n_walkers is None else int(n_walkers)
    if n_walkers < 1:
        raise MdllmError(f"walkers must be >= 1, got {n_walkers}; pass the number of walkers the frames interleave")
    if generated.n_frames == 0:
        raise MdllmError("the generated ensemble has no frames; sample some first (mdllm sample)")
    if generated.n_frames % n_walkers:
        raise MdllmError(f"{generated.n_frames} generated frames do not split into {n_walkers} walkers")
    if generated_labels is not None:
        generated_labels = check_label_count(generated_labels, generated.n_frames, "generated")
    if reference_labels is not None and reference_ensemble is not None:
        reference_labels = check_label_count(reference_labels, reference_ensemble.n_frames, "reference")
    _check_same_protein(generated, training, "the training trajectory")
    for name, ref in references.items():
        _check_same_protein(generated, ref, f"reference {name!r}")
    if reference_ensemble is not None:
        _check_same_protein(generated, reference_ensemble, "the reference ensemble")
    details = {} if details is None else details
    metrics: dict[str, Any] = {"n_frames": int(generated.n_frames), "n_walkers": n_walkers}
    if isinstance(exploration, Mapping) and exploration.get("unbiased") is False:
        metrics["exploration"] = {"strategy": exploration.get("strategy"), "unbiased": False,
                                  "note": BIASED_NOTE}

    rmsd_nm = rmsd_to_references(generated, references)
    details["rmsd_nm"] = rmsd_nm
    metrics["references"] = reference_coverage(rmsd_nm, reached_nm=reached_nm, n_walkers=n_walkers)

    nearest = nearest_training_rmsd(generated, training, max_training_frames=max_training_frames)
    cutoff = training_novelty_cutoff(training, max_training_frames=max_training_frames)
    details["nearest_training_rmsd_nm"] = nearest
    metrics["novelty"] = {
        "nearest_training_rmsd_A": _stats_A(nearest),
        "cutoff_A": float(cutoff * NM_TO_A),
        "novel_fraction": novel_fraction(nearest, cutoff),
        "training_frames_used": int(subsample_evenly(training, max_training_frames).n_frames),
    }

    validity = validity_report(generated)
    details["validity"] = validity
    metrics["validity"] = _summary(validity)
    details["validity_training"] = training_validity = validity_report(
        subsample_evenly(training, _VALIDITY_TRAINING_FRAMES))
    metrics["validity"]["training"] = _summary(training_validity)

    pca = fit_pca(training)
    details["pca"] = pca
    details["pca_training"] = pca.transform(training)
    details["pca_generated"] = gen_pc = pca.transform(generated)
    details["pca_references"] = {name: pca.transform(ref)[0] for name, ref in references.items()}
    metrics["projection"] = {
        "pca": pca.summary(),
        "references": {name: [float(v) for v in xy] for name, xy in details["pca_references"].items()},
        "generated_mean": [float(v) for v in gen_pc.mean(0)],
    }
    tica = None
    if training.n_frames > tica_lagtime:
        tica = fit_tica(training, lagtime=tica_lagtime)
        metrics["projection"]["tica"] = tica.summary()
    details["tica"] = tica

    if reference_ensemble is not None:
        comparison = compare_ensembles(
            generated, reference_ensemble, pca, n_states=n_states, generated_labels=generated_labels,
            reference_labels=reference_labels, state_names=state_names, seed=seed,
        )
        details["pca_reference_ensemble"] = pca.transform(reference_ensemble)
        details["rmsf"] = comparison["rmsf"]
        comparison["rmsf"] = {k: v for k, v in comparison["rmsf"].items() if not k.endswith("_nm")}
        if tica is not None:
            comparison["js_distance_tica"] = js_distances(tica.transform(generated), tica.transform(reference_ensemble),
                                                          tica.labels)
        labels = None
        if generated_labels is not None and reference_labels is not None:
            # pooled in walker order, as msm_comparison pools the walker trajectories
            gen_labels = np.asarray(generated_labels)
            labels = (np.concatenate([gen_labels[k::n_walkers] for k in range(n_walkers)]), reference_labels)
        dt_ref = float(reference_ensemble.timestep) if reference_ensemble.n_frames > 1 else None
        if generated_dt_ps is None and training.n_frames > 1:
            generated_dt_ps = float(training.timestep)
        comparison["msm"] = msm_comparison(
            _walkers(generated, n_walkers), reference_ensemble, pca, n_clusters=msm_clusters, lagtime=msm_lagtime,
            seed=seed, generated_dt_ps=generated_dt_ps, reference_dt_ps=dt_ref, state_labels=labels, state_names=state_names,
        )
        comparison["n_reference_frames"] = int(reference_ensemble.n_frames)
        metrics["comparison"] = comparison
    return _finite_or_none(metrics)


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def summary_lines(metrics: Mapping[str, Any]) -> list[str]:
    """A short human-readable summary of :func:`analyze`'s metrics (what ``mdllm analyze`` prints)."""
    lines = [f"generated frames: {metrics['n_frames']} ({metrics['n_walkers']} walker(s))"]
    if "exploration" in metrics:
        lines.append(f"note: {metrics['exploration']['note']}")
    for name, ref in metrics["references"].items():
        first = ref["first_step_within"]
        lines.append(
            f"reference {name}: min Calpha RMSD {ref['min_rmsd_A']:.2f} A -> "
            f"{'reached' if ref['reached'] else 'not reached'} (threshold {ref['reached_threshold_A']:.1f} A"
            + (f", first at step {first}" if first is not None else "") + "); within "
            + ", ".join(f"{k} A: {100 * v:.1f}%" for k, v in ref["fraction_within"].items())
        )
    nov = metrics["novelty"]
    lines.append(
        f"novelty: nearest training frame {nov['nearest_training_rmsd_A']['median']:.2f} A (median); "
        f"{100 * nov['novel_fraction']:.1f}% of frames beyond {nov['cutoff_A']:.2f} A (outside the training ensemble)"
    )
    val = metrics["validity"]
    ref = val.get("training") or {}

    def vs(key: str, digits: int = 1, fn=lambda v: v) -> str:  # generated value, then the training frames' value
        text = f"{100 * fn(val[key]):.{digits}f}%"
        return text + (f" (training {100 * fn(ref[key]):.{digits}f}%)" if ref.get(key) is not None else "")

    line = (f"validity: {vs('ca_valid_fraction')} of frames without Calpha break or clash "
            f"(breaks in {vs('frames_without_ca_break', fn=lambda v: 1 - v)} of frames, clashes in "
            f"{vs('frames_without_ca_clash', fn=lambda v: 1 - v)})")
    if val.get("cn_break_rate") is not None:
        line += f"; peptide C-N breaks: {vs('cn_break_rate', 2)} of bonds"
    lines.append(line)
    comp = metrics.get("comparison")
    if comp:
        js = comp["js_distance"]
        lines.append("comparison with the reference ensemble: JS distance "
                     + ", ".join(f"{k} {_fmt(v)}" for k, v in js.items())
                     + f"; RMSF correlation {_fmt(comp['rmsf']['pearson_r'])}")
        pops = comp["populations"]
        lines.append("populations (generated / reference): " + ", ".join(
            f"{s} {g:.2f}/{r:.2f}" for s, g, r in zip(pops["states"], pops["generated"], pops["reference"])))
        msm = comp["msm"]
        for name in ("generated", "reference"):
            m = msm[name]
            lines.append(f"MSM {name}: " + (m["error"] if "error" in m else
                         "timescales (frames) " + ", ".join(_fmt(t) for t in m["timescales_frames"])))
    return lines
