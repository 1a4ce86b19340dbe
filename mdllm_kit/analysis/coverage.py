"""Where generated frames come close to named reference structures.

Per reference: the minimum RMSD, the first generated frame within a
threshold (in generated-frame time, overall and per walker) and the
fraction of frames within each of several thresholds. A reference state
counts as *covered* at a threshold when at least :data:`COVERED_MIN_FRACTION`
of the frames are within it -- the "0.1% coverage" of the BioEmu benchmarks
(microsoft/bioemu-benchmarks, multiconf evaluation).

Generated ensembles are frame-major (:class:`mdllm_kit.GeneratedEnsemble`):
frame ``i`` of walker ``k`` is element ``i * n_walkers + k``, so the
generated-frame time of element ``g`` is ``g // n_walkers``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..contracts import per_walker, step_and_walker
from ..errors import MdllmError
from .units import NM_TO_A

__all__ = [
    "COVERAGE_THRESHOLDS_NM",
    "COVERED_MIN_FRACTION",
    "STATE_REACHED_NM",
    "reference_coverage",
    "threshold_key",
]

#: A frame within this Calpha RMSD of a reference reaches that state (MD-LLM's criterion: 3 A).
STATE_REACHED_NM = 0.3
#: Thresholds (nm) at which the fraction of frames near each reference is reported: 1.5, 2, 3 and 4 A.
COVERAGE_THRESHOLDS_NM: tuple[float, ...] = (0.15, 0.2, 0.3, 0.4)
#: A reference is covered at a threshold when at least this fraction of frames
#: is within it (BioEmu's "0.1% coverage").
COVERED_MIN_FRACTION = 0.001


def threshold_key(threshold_nm: float) -> str:
    """Dictionary key of a threshold: Angstrom with one decimal, e.g. ``"3.0"`` for 0.3 nm."""
    return f"{threshold_nm * NM_TO_A:.1f}"


def _first_within(within: np.ndarray, n_walkers: int) -> tuple[int | None, list[int | None]]:
    """First generated-frame time step with a frame within the threshold; and per walker."""
    n_steps = len(within) // n_walkers
    grid = per_walker(within[: n_steps * n_walkers], n_walkers)  # (n_walkers, n_steps)
    first: list[int | None] = []
    for hits in map(np.flatnonzero, grid):
        first.append(int(hits[0]) if hits.size else None)
    found = [s for s in first if s is not None]
    return (min(found) if found else None), first


def reference_coverage(
    rmsd_nm: Mapping[str, np.ndarray],
    thresholds_nm: Sequence[float] = COVERAGE_THRESHOLDS_NM,
    reached_nm: float = STATE_REACHED_NM,
    n_walkers: int | None = None,
    covered_min_fraction: float = COVERED_MIN_FRACTION,
) -> dict[str, dict[str, Any]]:
    """Minimum RMSD, first arrival and coverage of each reference.

    Parameters
    ----------
    rmsd_nm : mapping of str to numpy.ndarray, shape (n_frames,)
        RMSD of every generated frame to each reference, nm (e.g. from
        :func:`rmsd_to_references`), frame-major when ``n_walkers`` is given.
    thresholds_nm : sequence of float
        Thresholds at which the fraction of frames within is reported, nm.
    reached_nm : float
        Threshold of "reached" and of the first arrival, nm (default 3 A).
    n_walkers : int, optional
        Number of walkers of a frame-major ensemble; first arrivals are then
        given in generated-frame time steps (overall and per walker).
        Without it, frames are one trajectory (``n_walkers=1``).
    covered_min_fraction : float
        Fraction of frames that must lie within a threshold for the
        reference to count as covered at it.

    Returns
    -------
    dict of str to dict
        Per reference name: ``min_rmsd_nm``, ``min_rmsd_A``, ``argmin_frame``
        (index into the frames), ``argmin_step`` and ``argmin_walker``,
        ``reached`` (min RMSD < ``reached_nm``), ``reached_threshold_A``,
        ``first_step_within`` (generated-frame time step of the first frame
        within ``reached_nm``, ``None`` if none), ``first_step_within_per_walker``
        (list), ``fraction_within`` and ``covered`` (dicts keyed by
        :func:`threshold_key`, e.g. ``"3.0"``), ``n_frames``.
    """
    n_walkers = 1 if n_walkers is None else int(n_walkers)
    if n_walkers < 1:
        raise MdllmError(f"n_walkers must be >= 1, got {n_walkers}")
    out: dict[str, dict[str, Any]] = {}
    for name, values in rmsd_nm.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
            raise MdllmError(f"RMSD to {name!r} must be a non-empty 1D array of finite values (nm)")
        if values.size % n_walkers:
            raise MdllmError(
                f"{values.size} frames do not split into {n_walkers} walkers; pass the ensemble's "
                "n_walkers (frame-major order) or leave it out"
            )
        argmin = int(np.argmin(values))
        argmin_step, argmin_walker = step_and_walker(argmin, n_walkers)
        first, per_walker = _first_within(values < reached_nm, n_walkers)
        fractions = {threshold_key(t): float(np.mean(values < t)) for t in thresholds_nm}
        out[name] = {
            "n_frames": int(values.size),
            "min_rmsd_nm": float(values[argmin]),
            "min_rmsd_A": float(values[argmin] * NM_TO_A),
            "argmin_frame": argmin,
            "argmin_step": argmin_step,
            "argmin_walker": argmin_walker,
            "reached": bool(values[argmin] < reached_nm),
            "reached_threshold_A": float(reached_nm * NM_TO_A),
            "first_step_within": first,
            "first_step_within_per_walker": per_walker,
            "fraction_within": fractions,
            "covered": {k: bool(v >= covered_min_fraction and v > 0) for k, v in fractions.items()},
        }
    return out
