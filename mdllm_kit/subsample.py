"""Evenly spaced subsets: the one rule every stage uses to keep at most ``k`` of ``n`` items."""
from __future__ import annotations

import numpy as np

from .errors import MdllmError

__all__ = ["evenly_spaced_indices"]


def evenly_spaced_indices(n: int, max_count: int) -> np.ndarray:
    """At most ``max_count`` indices of ``range(n)``, evenly spaced, first and last included.

    Parameters
    ----------
    n : int
        Number of items (frames, windows, ...).
    max_count : int
        Most indices to keep (>= 1).

    Returns
    -------
    numpy.ndarray of int64, shape (min(n, max_count),)
        Increasing indices; ``arange(n)`` when ``n <= max_count``.
    """
    n, max_count = int(n), int(max_count)
    if max_count < 1:
        raise MdllmError(f"max_count must be >= 1, got {max_count}")
    if n <= max_count:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max_count).round().astype(np.int64))
