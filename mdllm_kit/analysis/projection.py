"""Low-dimensional projections fitted on a training ensemble: PCA and TICA.

Both return a :class:`FittedProjection` that projects any frames of the same
protein (generated frames, other runs, all-atom crystal structures) into the
space fitted on the training frames.

* :func:`fit_pca` -- scikit-learn PCA on superposed Cartesian coordinates of
  the selected atoms (Calpha by default). Every frame is optimally superposed
  (mdtraj, Kabsch) onto the training *mean structure*, which is found by
  superposing on the first frame and then iterating on the mean
  (:data:`PCA_ALIGN_ITERATIONS` times). Cartesian PCA keeps the principal
  components interpretable as collective displacements in nm.
* :func:`fit_tica` -- deeptime TICA on a rotation-invariant feature:
  Calpha-Calpha distances between every :data:`TICA_RESIDUE_STRIDE`-th
  residue (residues 0, s, 2s, ...), leaving out pairs closer than
  :data:`TICA_MIN_SEPARATION` positions in that subset's sequence order
  (their distances hardly change). For AdK (214 residues) this is 36 atoms
  and 595 distances: enough to see domain motions, small enough to fit in
  well under a second.

Coordinates are in nm; lag times and TICA timescales are in frames.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import mdtraj as md
import numpy as np

from ..errors import TrajectoryError
from .rmsd import matched_atom_indices

__all__ = [
    "PCA_ALIGN_ITERATIONS",
    "TICA_MIN_SEPARATION",
    "TICA_RESIDUE_STRIDE",
    "FittedProjection",
    "distance_pairs",
    "fit_pca",
    "fit_tica",
]

logger = logging.getLogger(__name__)

#: Rounds of "superpose on the current mean, recompute the mean" when finding
#: the PCA reference structure (the mean changes by < 0.01 A after two).
PCA_ALIGN_ITERATIONS = 2
#: TICA features use every this-many-th residue's Calpha (AdK: 36 of 214).
TICA_RESIDUE_STRIDE = 6
#: Pairs of the TICA subset closer than this many positions (in subset order)
#: are left out: neighbours along the chain barely move relative to each other.
TICA_MIN_SEPARATION = 2

Frames = Union[md.Trajectory, np.ndarray]


def _as_list(trajectories: md.Trajectory | Sequence[md.Trajectory]) -> list[md.Trajectory]:
    items = [trajectories] if isinstance(trajectories, md.Trajectory) else list(trajectories)
    if not items or not all(isinstance(t, md.Trajectory) for t in items):
        raise TrajectoryError(
            "expected an mdtraj.Trajectory or a non-empty list of them; load files with mk.load_trajectory"
        )
    return items


def _select_atoms(topology: md.Topology, atom_names: Sequence[str]) -> np.ndarray:
    wanted = set(atom_names)
    idx = np.array([a.index for a in topology.atoms if a.name in wanted], dtype=int)
    if idx.size == 0:
        raise TrajectoryError(
            f"the trajectory has no atoms named {', '.join(sorted(wanted))}; "
            "pass atom_names that exist in its topology (e.g. ('CA',))"
        )
    return idx


@dataclass
class FittedProjection:
    """A projection fitted on a training ensemble (see :func:`fit_pca`, :func:`fit_tica`).

    Attributes
    ----------
    kind : {"pca", "tica"}
        Method.
    labels : list of str
        Axis names, ``["PC1", "PC2", ...]`` or ``["IC1", "IC2", ...]``.
    atom_names : tuple of str
        Atom names the projection reads (matched by residue position and
        name, so a Calpha projection also reads all-atom structures).
    topology : mdtraj.Topology
        Topology of the fitted atoms, in feature order.
    estimator : object
        The fitted scikit-learn ``PCA`` or deeptime ``CovarianceKoopmanModel``.
    reference_xyz : numpy.ndarray, shape (n_atoms, 3), optional
        PCA only: the mean training structure every frame is superposed on, nm.
    pairs : numpy.ndarray, shape (n_pairs, 2), optional
        TICA only: atom index pairs (into ``topology``) of the distance features.
    explained_variance_ratio : numpy.ndarray, shape (n_components,), optional
        PCA only: fraction of the training variance along each component.
    lagtime : int, optional
        TICA only: lag time in frames.
    timescales_frames : numpy.ndarray, shape (n_components,), optional
        TICA only: implied timescales of the components, in frames.
    """

    kind: str
    labels: list[str]
    atom_names: tuple[str, ...]
    topology: md.Topology
    estimator: Any
    reference_xyz: np.ndarray | None = None
    pairs: np.ndarray | None = None
    explained_variance_ratio: np.ndarray | None = None
    lagtime: int | None = None
    timescales_frames: np.ndarray | None = None
    n_training_frames: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        """Number of output dimensions."""
        return len(self.labels)

    def coordinates(self, frames: Frames) -> np.ndarray:
        """Coordinates of the fitted atoms, in feature order.

        Parameters
        ----------
        frames : mdtraj.Trajectory or numpy.ndarray, shape (n_frames, n_atoms, 3)
            A trajectory of the same protein (atoms matched by residue position
            and name; other atoms are ignored) or coordinates in nm of exactly
            the fitted atoms, in order.

        Returns
        -------
        numpy.ndarray, shape (n_frames, n_atoms, 3)
            nm.
        """
        n_atoms = self.topology.n_atoms
        if isinstance(frames, md.Trajectory):
            idx_in, idx_fit = matched_atom_indices(frames.topology, self.topology, self.atom_names)
            if len(np.unique(idx_fit)) != n_atoms:
                raise TrajectoryError(
                    f"the frames hold {len(np.unique(idx_fit))} of the {n_atoms} atoms this projection was "
                    f"fitted on ({', '.join(self.atom_names)}); project frames of the same protein with "
                    "those atoms"
                )
            xyz = np.empty((frames.n_frames, n_atoms, 3), dtype=np.float32)
            xyz[:, idx_fit] = frames.xyz[:, idx_in]
            return xyz
        xyz = np.asarray(frames, dtype=np.float32)
        if xyz.ndim == 2:
            xyz = xyz[None]
        if xyz.ndim != 3 or xyz.shape[1:] != (n_atoms, 3):
            raise TrajectoryError(
                f"coordinates of shape {xyz.shape} do not fit this projection, which needs "
                f"(n_frames, {n_atoms}, 3) in nm; pass an mdtraj.Trajectory to match atoms by name"
            )
        return xyz

    def features(self, frames: Frames) -> np.ndarray:
        """The input features of the estimator.

        Returns
        -------
        numpy.ndarray, shape (n_frames, n_features)
            PCA: superposed Cartesian coordinates, flattened (nm). TICA:
            pair distances (nm).
        """
        xyz = self.coordinates(frames)
        if self.kind == "pca":
            return _superposed(xyz, self.reference_xyz, self.topology).reshape(len(xyz), -1)
        return md.compute_distances(md.Trajectory(xyz, self.topology), self.pairs, periodic=False)

    def transform(self, frames: Frames) -> np.ndarray:
        """Project frames into the fitted space.

        Parameters
        ----------
        frames : mdtraj.Trajectory or numpy.ndarray, shape (n_frames, n_atoms, 3)
            See :meth:`coordinates`.

        Returns
        -------
        numpy.ndarray, shape (n_frames, n_components)
            PCA: nm along each unit component. TICA: dimensionless
            (unit variance on the training data).
        """
        return np.asarray(self.estimator.transform(self.features(frames)), dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description: kind, labels, variance or timescales."""
        out: dict[str, Any] = {"kind": self.kind, "labels": list(self.labels),
                               "atom_names": list(self.atom_names), "n_atoms": int(self.topology.n_atoms),
                               "n_training_frames": int(self.n_training_frames)}
        if self.explained_variance_ratio is not None:
            out["explained_variance_ratio"] = [float(v) for v in self.explained_variance_ratio]
        if self.lagtime is not None:
            out["lagtime_frames"] = int(self.lagtime)
            out["timescales_frames"] = [float(v) for v in self.timescales_frames]
            out["n_features"] = int(len(self.pairs))
        return out


def _superposed(xyz: np.ndarray, reference: np.ndarray, topology: md.Topology) -> np.ndarray:
    """``xyz`` (n_frames, n_atoms, 3) optimally superposed onto ``reference`` (n_atoms, 3), nm."""
    moving = md.Trajectory(np.array(xyz, dtype=np.float32, copy=True), topology)
    moving.superpose(md.Trajectory(np.asarray(reference, dtype=np.float32)[None], topology))
    return moving.xyz


def mean_structure(xyz: np.ndarray, topology: md.Topology) -> np.ndarray:
    """Mean structure of superposed frames, found iteratively (:data:`PCA_ALIGN_ITERATIONS` rounds).

    Parameters
    ----------
    xyz : numpy.ndarray, shape (n_frames, n_atoms, 3)
        Coordinates, nm.
    topology : mdtraj.Topology
        Topology of those ``n_atoms`` atoms.

    Returns
    -------
    numpy.ndarray, shape (n_atoms, 3)
        Starting from the first frame, each round superposes every frame on
        the current estimate and takes the mean, nm.
    """
    reference = xyz[0]
    for _ in range(PCA_ALIGN_ITERATIONS):
        reference = _superposed(xyz, reference, topology).mean(0)
    return reference


def _training_coordinates(
    trajectories: md.Trajectory | Sequence[md.Trajectory], atom_names: Sequence[str]
) -> tuple[list[np.ndarray], md.Topology]:
    items = _as_list(trajectories)
    first = items[0]
    idx = _select_atoms(first.topology, atom_names)
    topology = first.topology.subset(idx)
    probe = FittedProjection("pca", [], tuple(atom_names), topology, None)
    return [probe.coordinates(t) for t in items], topology


def fit_pca(
    trajectory: md.Trajectory | Sequence[md.Trajectory],
    n_components: int = 2,
    atom_names: Sequence[str] = ("CA",),
    random_state: int = 0,
) -> FittedProjection:
    """Principal components of the superposed Cartesian coordinates of a training ensemble.

    Parameters
    ----------
    trajectory : mdtraj.Trajectory or list of them
        Training frames (lists are pooled), coordinates in nm.
    n_components : int
        Number of principal components kept.
    atom_names : sequence of str
        Atoms used (default Calpha). Frames projected later are matched by
        residue position and these names.
    random_state : int
        Seed of scikit-learn's randomized SVD (used for large inputs).

    Returns
    -------
    FittedProjection
        ``kind="pca"``, labels ``PC1..``, ``explained_variance_ratio``;
        ``transform`` gives nm along each component.
    """
    from sklearn.decomposition import PCA

    coords, topology = _training_coordinates(trajectory, atom_names)
    xyz = np.concatenate(coords)
    n_features = topology.n_atoms * 3
    if not 1 <= n_components <= min(len(xyz), n_features):
        raise TrajectoryError(
            f"cannot keep {n_components} principal components of {len(xyz)} frames x {n_features} "
            f"coordinates; choose 1 <= n_components <= {min(len(xyz), n_features)}"
        )
    reference = mean_structure(xyz, topology)
    aligned = _superposed(xyz, reference, topology).reshape(len(xyz), -1)
    pca = PCA(n_components=n_components, random_state=random_state).fit(aligned)
    logger.debug("PCA on %d frames x %d coordinates: explained variance %s", len(xyz), n_features,
                 pca.explained_variance_ratio_)
    return FittedProjection(
        kind="pca", labels=[f"PC{i + 1}" for i in range(n_components)], atom_names=tuple(atom_names),
        topology=topology, estimator=pca, reference_xyz=reference,
        explained_variance_ratio=np.asarray(pca.explained_variance_ratio_), n_training_frames=len(xyz),
    )


def distance_pairs(n_atoms: int, stride: int = TICA_RESIDUE_STRIDE,
                   min_separation: int = TICA_MIN_SEPARATION) -> np.ndarray:
    """Atom pairs of the TICA distance feature.

    Parameters
    ----------
    n_atoms : int
        Number of (Calpha) atoms, one per residue.
    stride : int
        Keep atoms ``0, stride, 2*stride, ...``.
    min_separation : int
        Leave out pairs fewer than this many positions apart in the kept subset.

    Returns
    -------
    numpy.ndarray of int, shape (n_pairs, 2)
    """
    if stride < 1 or min_separation < 1:
        raise TrajectoryError(f"stride and min_separation must be >= 1, got {stride} and {min_separation}")
    kept = np.arange(0, n_atoms, stride)
    i, j = np.triu_indices(len(kept), k=min_separation)
    if len(i) == 0:
        raise TrajectoryError(
            f"{n_atoms} atoms with stride {stride} leave no pairs {min_separation} positions apart; "
            "use a smaller stride"
        )
    return np.stack([kept[i], kept[j]], axis=1)


def fit_tica(
    trajectories: md.Trajectory | Sequence[md.Trajectory],
    lagtime: int,
    n_components: int = 2,
    atom_names: Sequence[str] = ("CA",),
    stride: int = TICA_RESIDUE_STRIDE,
    min_separation: int = TICA_MIN_SEPARATION,
) -> FittedProjection:
    """Time-lagged independent components (deeptime TICA) of a training ensemble.

    Parameters
    ----------
    trajectories : mdtraj.Trajectory or list of them
        Training trajectories; time-lagged pairs never cross from one to the
        next. Coordinates in nm.
    lagtime : int
        Lag time in frames (every trajectory needs more frames than this).
    n_components : int
        Number of independent components kept.
    atom_names : sequence of str
        Atoms whose pair distances are the features (default Calpha).
    stride, min_separation : int
        Feature subset, see :func:`distance_pairs`.

    Returns
    -------
    FittedProjection
        ``kind="tica"``, labels ``IC1..``, ``lagtime`` and
        ``timescales_frames`` (implied timescales in frames).
    """
    from deeptime.decomposition import TICA

    coords, topology = _training_coordinates(trajectories, atom_names)
    if lagtime < 1 or all(len(c) <= lagtime for c in coords):
        raise TrajectoryError(
            f"TICA needs lagtime >= 1 frame and a trajectory longer than it; got lagtime {lagtime} and "
            f"{max(len(c) for c in coords)} frames at most: choose a shorter lag time"
        )
    pairs = distance_pairs(topology.n_atoms, stride, min_separation)
    if not 1 <= n_components <= len(pairs):
        raise TrajectoryError(f"n_components must be between 1 and {len(pairs)} (the features), got {n_components}")
    feats = [md.compute_distances(md.Trajectory(c, topology), pairs, periodic=False).astype(np.float64)
             for c in coords if len(c) > lagtime]
    model = TICA(lagtime=lagtime, dim=n_components).fit(feats).fetch_model()
    timescales = np.asarray(model.timescales(k=n_components), dtype=np.float64)
    return FittedProjection(
        kind="tica", labels=[f"IC{i + 1}" for i in range(n_components)], atom_names=tuple(atom_names),
        topology=topology, estimator=model, pairs=pairs, lagtime=int(lagtime), timescales_frames=timescales,
        n_training_frames=int(sum(len(c) for c in coords)),
    )
