"""Analysis of trajectories and generated ensembles (pure functions).

Coordinates are in nm as in mdtraj; RMSD values are returned in nm, except
:func:`rmsd_per_frame`, which returns Angstrom for display, and the metrics
dictionary of :func:`analyze`, whose keys ending ``_A`` are Angstrom.

Modules: :mod:`.rmsd` (RMSD to references), :mod:`.coverage` (minimum RMSD,
first arrival and coverage of reference states), :mod:`.novelty` (distance
to the training ensemble), :mod:`.validity` (Calpha breaks and clashes,
peptide bonds), :mod:`.projection` (PCA and TICA fitted on a training
ensemble), :mod:`.comparison` (JS distances, RMSF, populations, MSMs against
a reference ensemble), :mod:`.discovery` (hits: valid, on the real landscape, near an unseen state),
:mod:`.metrics` (:func:`analyze`, the metrics
dictionary and its documented layout), :mod:`.units` (:data:`NM_TO_A`).
"""
from __future__ import annotations

from .comparison import compare_ensembles, js_distances, msm_comparison, rmsf_correlation, state_populations
from .coverage import COVERAGE_THRESHOLDS_NM, COVERED_MIN_FRACTION, STATE_REACHED_NM, reference_coverage, threshold_key
from .discovery import LANDSCAPE_NM, discovery_scores
from .metrics import analyze, summary_lines
from .novelty import nearest_training_rmsd, novel_fraction, training_novelty_cutoff
from .projection import FittedProjection, distance_pairs, fit_pca, fit_tica
from .rmsd import matched_atom_indices, rmsd_per_frame, rmsd_to_references
from .units import NM_TO_A
from .validity import CA_BREAK_NM, CA_CLASH_NM, CN_BREAK_NM, frame_validity, validity_report

__all__ = [
    "CA_BREAK_NM",
    "CA_CLASH_NM",
    "CN_BREAK_NM",
    "COVERAGE_THRESHOLDS_NM",
    "COVERED_MIN_FRACTION",
    "NM_TO_A",
    "STATE_REACHED_NM",
    "FittedProjection",
    "LANDSCAPE_NM",
    "analyze",
    "discovery_scores",
    "compare_ensembles",
    "distance_pairs",
    "fit_pca",
    "fit_tica",
    "frame_validity",
    "js_distances",
    "matched_atom_indices",
    "msm_comparison",
    "nearest_training_rmsd",
    "novel_fraction",
    "reference_coverage",
    "rmsd_per_frame",
    "rmsd_to_references",
    "rmsf_correlation",
    "state_populations",
    "summary_lines",
    "threshold_key",
    "training_novelty_cutoff",
    "validity_report",
]
