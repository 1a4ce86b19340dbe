"""``restart``: adaptive restarts in rounds from the least visited cells (least counts, FAST-like)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import SamplingError
from .strategy import Archive, ExplorationStrategy, Restart, register_strategy

__all__ = ["LeastCountsRestart", "cell_labels"]


def cell_labels(cv: np.ndarray, cell_width: float) -> np.ndarray:
    """Grid cell of each point: ``floor(cv / cell_width)`` per dimension.

    Parameters
    ----------
    cv : numpy.ndarray, shape (n, d)
        Points in collective-variable units (standardised on the training frames).
    cell_width : float
        Edge of a cell, same units.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        One label per point; equal labels mean the same cell.
    """
    cells = np.floor(np.asarray(cv, dtype=np.float64) / cell_width).astype(np.int64)
    if cells.shape[1] == 0:
        return np.zeros(len(cells), dtype=np.int64)
    _, labels = np.unique(cells, axis=0, return_inverse=True)
    return labels.reshape(-1).astype(np.int64)


@register_strategy
@dataclass
class LeastCountsRestart(ExplorationStrategy):
    """Every ``round_frames`` steps, restart all walkers from the least visited cells of the map.

    The map is a grid of cells ``cell_width`` wide over the collective
    variables (by default the first two principal components of the training
    frames, in units of their standard deviation). Every frame generated so
    far counts in its cell; the seeds of the next round are valid frames (no
    Calpha clash or break) from the cells with the fewest counts, one cell
    per walker (ties broken at random; when there are fewer such cells than
    walkers, cells repeat in order of their counts), a random valid frame of
    each cell. A walker restarted from a frame continues from that frame's
    own context, so its next frame follows the dynamics the model learnt.

    Parameters
    ----------
    round_frames : int
        Steps per round (frames each walker adds before the next restart).
    cell_width : float
        Cell edge in standardised collective-variable units.
    """

    round_frames: int = 20
    cell_width: float = 0.5
    name = "restart"
    needs_cv = True
    unbiased = False

    def __post_init__(self) -> None:
        if self.round_frames < 1:
            raise SamplingError(f"round_frames must be >= 1, got {self.round_frames}")
        if not self.cell_width > 0:
            raise SamplingError(f"cell_width must be > 0, got {self.cell_width}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def restarts(self, step: int, archive: Archive, rng: np.random.Generator) -> list[Restart]:
        if step % self.round_frames or archive.n_steps == 0:
            return []
        cv, valid = archive.cv, archive.valid
        n_steps, k = valid.shape
        labels = cell_labels(cv.reshape(n_steps * k, -1), self.cell_width)
        counts = np.bincount(labels)
        ok = valid.reshape(-1)
        if not ok.any():
            return []  # nothing valid to restart from: the walkers go on
        cells = np.unique(labels[ok])
        order = cells[np.lexsort((rng.random(len(cells)), counts[cells]))]
        chosen = np.resize(order, k)
        out = []
        for walker, cell in enumerate(chosen):
            members = np.flatnonzero(ok & (labels == cell))
            index = int(members[rng.integers(len(members))])
            out.append(Restart(step, walker, index // k, index % k))
        return out
