"""Collective variables for exploration: a map of conformations fitted on the training frames."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mdtraj as md
import numpy as np

from ..errors import SamplingError

__all__ = ["CollectiveVariables"]


class CollectiveVariables:
    """Frames -> a few numbers per frame, standardised on the training frames.

    Wraps any featurisation ``transform(traj) -> (n_frames, d)`` (a fitted
    PCA or TICA of :mod:`mdllm_kit.analysis`, or the user's own, e.g. a
    distance between two domains). The values handed to strategies are
    z-scores, ``(transform(x) - mean) / std`` with the mean and standard
    deviation of the training frames, so cell widths and hill widths mean
    the same in any collective variables: a unit is one standard deviation
    of the training ensemble.

    Parameters
    ----------
    transform : callable
        ``transform(traj: mdtraj.Trajectory) -> array (n_frames, d)``.
    training : mdtraj.Trajectory
        Frames that set the mean and scale (the model's training data).
    labels : list of str, optional
        Axis names (default ``cv1, cv2, ...``).
    description : dict, optional
        JSON-ready description recorded with a run.
    """

    def __init__(self, transform: Callable[[md.Trajectory], Any], training: md.Trajectory,
                 labels: list[str] | None = None, description: dict[str, Any] | None = None) -> None:
        self._transform = transform
        raw = self._raw(training)
        if len(raw) < 2:
            raise SamplingError("collective variables need at least 2 training frames to set their scale; pass "
                                "the model's training trajectory")
        self.mean = raw.mean(0)
        std = raw.std(0)
        self.std = np.where(std > 0, std, 1.0)
        self.training = (raw - self.mean) / self.std
        self.labels = list(labels) if labels is not None else [f"cv{i + 1}" for i in range(raw.shape[1])]
        self.description = dict(description or {"kind": "custom"})

    def _raw(self, traj: md.Trajectory) -> np.ndarray:
        out = np.asarray(self._transform(traj), dtype=np.float64)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or len(out) != traj.n_frames:
            raise SamplingError(f"the collective-variable function returned shape {out.shape} for {traj.n_frames} "
                                "frame(s); it must return (n_frames, d)")
        return out

    @property
    def n_components(self) -> int:
        return int(self.training.shape[1])

    def __call__(self, traj: md.Trajectory) -> np.ndarray:
        """Standardised collective variables, shape (n_frames, d)."""
        if traj.n_frames == 0:
            return np.empty((0, self.n_components))
        out = (self._raw(traj) - self.mean) / self.std
        if out.shape[1] != self.n_components:
            raise SamplingError(f"the collective-variable function returned {out.shape[1]} values per frame, "
                                f"{self.n_components} for the training frames")
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (recorded in ``params.json``)."""
        return {**self.description, "labels": self.labels, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def pca(cls, training: md.Trajectory, n_components: int = 2, atom_names: tuple[str, ...] = ("CA",)
            ) -> CollectiveVariables:
        """The first principal components of the training frames (:func:`mdllm_kit.analysis.fit_pca`)."""
        from ..analysis.projection import fit_pca

        projection = fit_pca(training, n_components=n_components, atom_names=atom_names)
        return cls(projection.transform, training, projection.labels, projection.summary())

    @classmethod
    def tica(cls, training: md.Trajectory, lagtime: int = 10, n_components: int = 2,
             atom_names: tuple[str, ...] = ("CA",)) -> CollectiveVariables:
        """The slowest time-lagged independent components of the training run (:func:`mdllm_kit.analysis.fit_tica`)."""
        from ..analysis.projection import fit_tica

        projection = fit_tica(training, lagtime=lagtime, n_components=n_components, atom_names=atom_names)
        return cls(projection.transform, training, projection.labels, projection.summary())
