"""``bias``: a history-dependent bias against visited regions (metadynamics-like candidate selection)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import SamplingError
from .strategy import Archive, ExplorationStrategy, register_strategy

__all__ = ["HistoryBias", "bias_potential"]


def bias_potential(points: np.ndarray, visited: np.ndarray, hill_width: float) -> np.ndarray:
    """Sum of unit Gaussian hills centred on visited points.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, d)
        Where to evaluate, collective-variable units.
    visited : numpy.ndarray, shape (m, d)
        Hill centres.
    hill_width : float
        Standard deviation of each hill, same units.

    Returns
    -------
    numpy.ndarray, shape (n,)
        ``sum_j exp(-|x - c_j|^2 / (2 w^2))`` (in hills).
    """
    points = np.asarray(points, dtype=np.float64)
    visited = np.asarray(visited, dtype=np.float64)
    if len(visited) == 0 or len(points) == 0:
        return np.zeros(len(points))
    d2 = ((points[:, None, :] - visited[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * hill_width**2)).sum(1)


@register_strategy
@dataclass
class HistoryBias(ExplorationStrategy):
    """Draw several next frames per walker and prefer those in regions visited least.

    Every chosen frame deposits a Gaussian hill (width ``hill_width``) at its
    collective variables, as in metadynamics. At each step every walker
    draws ``n_candidates`` next frames from the model (each a sample of the
    learnt dynamics) and picks one with probability proportional to
    ``exp(-strength * V(x))``, ``V`` the sum of the hills (in hills);
    physically invalid candidates are never picked unless all are. The
    frames are therefore biased away from where the run has been and do not
    follow the Boltzmann distribution: use them to find states, and unbiased
    ``rollout`` runs for populations and kinetics.

    Parameters
    ----------
    n_candidates : int
        Candidates per walker and step (the cost of a step grows with it).
    hill_width : float
        Hill standard deviation in standardised collective-variable units.
    strength : float
        Selection weight ``exp(-strength * V)``; 0 picks candidates uniformly.
    """

    n_candidates: int = 4
    hill_width: float = 0.3
    strength: float = 1.0
    name = "bias"
    needs_cv = True
    unbiased = False

    def __post_init__(self) -> None:
        if self.n_candidates < 1:
            raise SamplingError(f"n_candidates must be >= 1, got {self.n_candidates}")
        if not self.hill_width > 0:
            raise SamplingError(f"hill_width must be > 0, got {self.hill_width}")
        if not self.strength >= 0:
            raise SamplingError(f"strength must be >= 0, got {self.strength}")

    @property
    def candidates(self) -> int:
        return self.n_candidates

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def select(self, step: int, cv: np.ndarray, valid: np.ndarray, archive: Archive,
               rng: np.random.Generator) -> np.ndarray:
        k, m, d = cv.shape
        visited = archive.cv.reshape(-1, d)
        v = bias_potential(cv.reshape(k * m, d), visited, self.hill_width).reshape(k, m)
        logw = -self.strength * (v - v.min(1, keepdims=True))
        logw = np.where(valid | ~valid.any(1, keepdims=True), logw, -np.inf)
        w = np.exp(logw)
        w /= w.sum(1, keepdims=True)
        u = rng.random((k, 1))
        return np.minimum((w.cumsum(1) < u).sum(1), m - 1)
