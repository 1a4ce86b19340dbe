"""Shared constants and input checks of the visualisation modules (no heavy imports)."""
from __future__ import annotations

import numpy as np

from ..analysis.units import NM_TO_A  # nm (inside the toolkit) to Angstrom (shown to people)
from ..errors import VisualizationError

__all__ = ["NM_TO_A", "as_xy", "as_per_point"]



def as_xy(values: object, what: str) -> np.ndarray:
    """``values`` as a float array of shape (n, 2), or a :class:`VisualizationError` naming ``what``."""
    xy = np.asarray(values, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise VisualizationError(
            f"{what} must have shape (n_points, 2) (two projection coordinates per frame); got shape {xy.shape}. "
            "Pass the first two columns, e.g. projection.transform(traj)[:, :2]"
        )
    if not np.isfinite(xy).all():
        raise VisualizationError(f"{what} holds NaN or infinite values; drop those frames before plotting")
    return xy


def as_per_point(values: object, n: int, what: str, dtype: type = np.float64) -> np.ndarray:
    """``values`` as a 1-D array of length ``n``, or a :class:`VisualizationError` naming ``what``."""
    arr = np.asarray(values, dtype=dtype)
    if arr.shape != (n,):
        raise VisualizationError(f"{what} must have one value per generated frame, shape ({n},); got {arr.shape}")
    return arr
