"""Dual-basin Calpha structure-based (Go) models, simulated with OpenMM.

A dual-basin Go model has two native structures, A and B, of the same
protein (for adenylate kinase: closed 1AKE and open 4AKE). Every residue is
one bead at its Calpha position. The potential is split into

* **shared terms**, identical for both states and added directly: bonds at
  the mean of the two structures' lengths, the bond angles and dihedrals that
  barely differ between the structures (at their mean value), the Gaussian
  contacts present in both structures at almost the same distance, and a
  soft-core repulsion between all beads more than
  ``repulsion_min_separation - 1`` residues apart;
* **state-specific terms** ``V_A`` and ``V_B``: the angles, dihedrals and
  contacts that differ between the structures, each at the value of its own
  structure and at ``specific_*_scale`` times the shared strength. They are
  mixed with the two-state formula of Okazaki et al. (PNAS 2006)::

      V_mix = (V_A + V_B + dV) / 2 - sqrt(((V_A - V_B - dV) / 2)**2 + D**2)

  which is ~min(V_A, V_B + dV) away from the crossing region and smooth
  there. ``dV`` (``mixing_offset``) shifts the B basin relative to A
  (negative favours B) and ``D`` (``mixing_coupling``) lowers the barrier.

The mixing is implemented with an :class:`openmm.CustomCVForce` whose six
collective variables are the state-specific angle, dihedral and contact
energies (``angA, dihA, conA, angB, dihB, conB``; ``V_A`` and ``V_B`` are
their per-state sums), so the forces are exact derivatives of ``V_mix``.
The shared terms sit in force group ``SHARED_GROUP`` (0) and the mixing force
in ``MIXING_GROUP`` (1).

Optionally (``wall=RMSDWall(...)``) a flat-bottom **wall on the Calpha RMSD**
to one of the two structures is added, as metadynamics-style walls are: a
lower wall ``E = k (r0 - rmsd)^2`` for ``rmsd < r0``, else 0 (the RMSD after
optimal superposition, :class:`openmm.RMSDForce` inside an
:class:`openmm.CustomCVForce`, force group ``WALL_GROUP``, 2). It keeps a run
out of one basin when the mixing offset alone cannot (see
:class:`RMSDWall`); it is not part of the Go model itself.

For adenylate kinase the tuned parameters are in ``scripts/make_adk_cg.py``
(the defaults here are a generic starting point).

Units follow OpenMM: lengths in nm, time in ps, energies in kJ/mol, angles in
rad, masses in amu (g/mol), temperature in K.

Only numpy and openmm are needed; importing this module has no side effects.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import openmm
import openmm.unit as u

from .jsonconfig import JsonConfig

__all__ = [
    "DualBasinModel",
    "DualBasinParams",
    "RMSDWall",
    "SimulationParams",
    "build_dual_basin_system",
    "make_context",
    "potential_energy",
    "rmsd_wall_force",
    "simulate",
    "state_energies",
]

logger = logging.getLogger(__name__)

#: Force group of the terms shared by both states.
SHARED_GROUP = 0
#: Force group of the Okazaki mixing force (the state-specific terms).
MIXING_GROUP = 1
#: Force group of the optional RMSD wall (:class:`RMSDWall`).
WALL_GROUP = 2

ProgressCallback = Callable[[int, int], None]


def _check_positive(obj: Any, names: tuple[str, ...], allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{type(obj).__name__}.{name} must be a finite number, got {value!r}")
        if value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{type(obj).__name__}.{name} must be {bound}, got {value!r}")


class _JsonMixin(JsonConfig):
    """JSON round trip of the parameter classes (:class:`~mdllm_kit.jsonconfig.JsonConfig`; errors are ValueErrors)."""


@dataclass(frozen=True)
class DualBasinParams(_JsonMixin):
    """Parameters of a dual-basin Calpha Go model.

    Attributes
    ----------
    bead_mass : float
        Mass of every Calpha bead, amu.
    bond_k : float
        Harmonic bond constant, kJ/mol/nm^2 (``E = k/2 (r - r0)^2``, ``r0`` the
        mean of the two structures' bond lengths).
    angle_k : float
        Harmonic angle constant of shared angles, kJ/mol/rad^2.
    angle_tolerance : float
        Angles differing by less than this between the structures are shared
        (at their mean), rad; the others are state-specific.
    dihedral_k1, dihedral_k3 : float
        Clementi dihedral constants of shared dihedrals, kJ/mol:
        ``E = k1 (1 - cos(phi - phi0)) + k3 (1 - cos(3 (phi - phi0)))``.
    dihedral_tolerance : float
        Dihedrals differing by less than this (on the circle) are shared, rad.
    contact_cutoff : float
        Calpha-Calpha distance below which a pair is a native contact of a
        structure, nm.
    contact_min_separation : int
        Minimum sequence separation ``|i - j|`` of a contact.
    contact_tolerance : float
        A pair native in at least one structure whose distance differs by less
        than this between the structures is a shared contact (at the mean
        distance), nm; other native pairs are state-specific.
    contact_epsilon : float
        Depth of a shared Gaussian contact, kJ/mol
        (``E = -eps exp(-(r - r0)^2 / (2 w^2))``).
    contact_width : float
        Gaussian width ``w``, nm.
    specific_contact_scale : float
        Depth of state-specific contacts relative to ``contact_epsilon``
        (dimensionless).
    specific_backbone_scale : float
        Strength of state-specific angles and dihedrals relative to the shared
        ones (dimensionless). These hinge terms set the shape of each basin;
        if they are weak the open state (held by few specific contacts) is
        floppy and over-extends.
    repulsion_sigma : float
        Excluded-volume radius, nm: ``E = (sigma/r)^12 - (sigma/r_c)^12``.
    repulsion_cutoff : float
        Cutoff ``r_c`` of the repulsion, nm.
    repulsion_min_separation : int
        Repulsion acts between beads with ``|i - j| >=`` this.
    mixing_coupling : float
        Okazaki coupling ``D``, kJ/mol (larger = lower barrier).
    mixing_offset : float
        ``dV`` added to the state-B energy, kJ/mol (negative favours B).
    """

    bead_mass: float = 110.0
    bond_k: float = 20000.0
    angle_k: float = 40.0
    angle_tolerance: float = 0.15
    dihedral_k1: float = 1.0
    dihedral_k3: float = 0.5
    dihedral_tolerance: float = 0.3
    contact_cutoff: float = 0.8
    contact_min_separation: int = 4
    contact_tolerance: float = 0.1
    contact_epsilon: float = 1.5
    contact_width: float = 0.05
    specific_contact_scale: float = 0.5
    specific_backbone_scale: float = 0.5
    repulsion_sigma: float = 0.38
    repulsion_cutoff: float = 0.8
    repulsion_min_separation: int = 4
    mixing_coupling: float = 20.0
    mixing_offset: float = -2.0

    def __post_init__(self) -> None:
        _check_positive(self, ("bead_mass", "bond_k", "contact_cutoff", "contact_width",
                               "repulsion_sigma", "repulsion_cutoff", "mixing_coupling"))
        _check_positive(self, ("angle_k", "angle_tolerance", "dihedral_k1", "dihedral_k3",
                               "dihedral_tolerance", "contact_tolerance", "contact_epsilon",
                               "specific_contact_scale", "specific_backbone_scale"), allow_zero=True)
        if not isinstance(self.mixing_offset, (int, float)) or not math.isfinite(self.mixing_offset):
            raise ValueError(f"DualBasinParams.mixing_offset must be a finite number, got {self.mixing_offset!r}")
        for name in ("contact_min_separation", "repulsion_min_separation"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ValueError(f"DualBasinParams.{name} must be an integer >= 2, got {value!r}")
        if self.repulsion_sigma >= self.repulsion_cutoff:
            raise ValueError("DualBasinParams.repulsion_sigma must be smaller than repulsion_cutoff "
                             f"({self.repulsion_sigma} >= {self.repulsion_cutoff} nm)")


@dataclass(frozen=True)
class SimulationParams(_JsonMixin):
    """Langevin dynamics settings.

    Attributes
    ----------
    temperature : float
        Bath temperature, K.
    friction : float
        Langevin friction coefficient, 1/ps.
    timestep : float
        Integration time step, ps.
    """

    temperature: float = 75.0
    friction: float = 0.1
    timestep: float = 0.02

    def __post_init__(self) -> None:
        _check_positive(self, ("temperature", "friction", "timestep"))


@dataclass(frozen=True)
class RMSDWall(_JsonMixin):
    """A flat-bottom lower wall on the Calpha RMSD to structure A or B.

    ``E = k (r0 - rmsd)^2`` if ``rmsd < r0``, else 0, where ``rmsd`` is the
    RMSD over all beads to the reference structure after optimal
    superposition (:class:`openmm.RMSDForce`), in nm. Beyond ``r0`` the
    dynamics is that of the model alone; inside, a harmonic restoring force
    pushes back. It keeps a simulation away from one basin, e.g. an open-only
    training run away from the closed structure, when lowering the other
    basin with the mixing offset does not (the mixing is about
    ``min(V_A, V_B + dV)``, so structures already on the B surface gain
    nothing relative to each other from a lower ``dV``).

    Attributes
    ----------
    reference : {"A", "B"}
        The structure the RMSD is measured to: ``ca_a`` or ``ca_b`` of
        :func:`build_dual_basin_system`.
    r0 : float
        Wall position, nm (the RMSD below which the wall acts).
    k : float
        Wall constant, kJ/mol/nm^2. Its curvature per bead is about
        ``2 k / n_particles`` (the RMSD averages over the beads), so even a
        stiff wall does not limit the time step.
    """

    reference: str = "A"
    r0: float = 0.4
    k: float = 10000.0

    def __post_init__(self) -> None:
        if self.reference not in ("A", "B"):
            raise ValueError(f"RMSDWall.reference must be 'A' or 'B', got {self.reference!r}")
        _check_positive(self, ("r0", "k"))

    def energy(self, rmsd: float | np.ndarray) -> float | np.ndarray:
        """The wall energy, kJ/mol, at an RMSD (nm) to the reference."""
        return self.k * np.maximum(0.0, self.r0 - np.asarray(rmsd, dtype=np.float64)) ** 2


def rmsd_wall_force(reference: np.ndarray, r0: float, k: float) -> openmm.CustomCVForce:
    """A flat-bottom lower wall on the RMSD to ``reference``, as an OpenMM force.

    Parameters
    ----------
    reference : numpy.ndarray
        ``(n_particles, 3)`` reference coordinates, nm; every particle of the
        system enters the RMSD (after optimal superposition).
    r0 : float
        Wall position, nm.
    k : float
        Wall constant, kJ/mol/nm^2.

    Returns
    -------
    openmm.CustomCVForce
        Energy ``k (r0 - rmsd)^2`` for ``rmsd < r0``, else 0; its one
        collective variable ``rmsd`` (nm) is an :class:`openmm.RMSDForce`.
        Global parameters ``wall_k`` and ``wall_r0``, so a system holds at
        most one such wall.
    """
    x = _as_coords(reference, "reference")
    wall = openmm.CustomCVForce("wall_k*max(0, wall_r0 - rmsd)^2")
    wall.addGlobalParameter("wall_k", float(k))
    wall.addGlobalParameter("wall_r0", float(r0))
    wall.addCollectiveVariable("rmsd", openmm.RMSDForce([openmm.Vec3(*map(float, row)) for row in x]))
    return wall


@dataclass(frozen=True)
class DualBasinModel:
    """What :func:`build_dual_basin_system` put into the system.

    Attributes
    ----------
    n_particles : int
        Number of beads.
    n_bonds, n_shared_angles, n_shared_dihedrals, n_shared_contacts : int
        Counts of the shared terms.
    n_specific_angles, n_specific_dihedrals, n_specific_contacts : tuple of int
        Counts of the state-specific terms, ``(state A, state B)``.
    shared_contacts : numpy.ndarray
        ``(n, 2)`` bead index pairs of the shared contacts.
    specific_contacts : tuple of numpy.ndarray
        ``(n, 2)`` index pairs of the contacts specific to A and to B.
    mixing_force_index : int
        Index of the :class:`openmm.CustomCVForce` in the system; its
        collective variables are ``angA, dihA, conA, angB, dihB, conB``
        (kJ/mol), see :func:`state_energies`.
    wall_force_index : int or None
        Index of the RMSD wall (:func:`rmsd_wall_force`) in the system, or
        None if it has none.
    """

    n_particles: int
    n_bonds: int
    n_shared_angles: int
    n_shared_dihedrals: int
    n_shared_contacts: int
    n_specific_angles: tuple[int, int]
    n_specific_dihedrals: tuple[int, int]
    n_specific_contacts: tuple[int, int]
    shared_contacts: np.ndarray
    specific_contacts: tuple[np.ndarray, np.ndarray]
    mixing_force_index: int
    wall_force_index: int | None = None

    def summary(self) -> dict[str, Any]:
        """Counts of every term, JSON-serialisable."""
        return {
            "n_particles": self.n_particles,
            "n_bonds": self.n_bonds,
            "n_shared_angles": self.n_shared_angles,
            "n_shared_dihedrals": self.n_shared_dihedrals,
            "n_shared_contacts": self.n_shared_contacts,
            "n_specific_angles": list(self.n_specific_angles),
            "n_specific_dihedrals": list(self.n_specific_dihedrals),
            "n_specific_contacts": list(self.n_specific_contacts),
        }


# --------------------------------------------------------------------------- geometry


def _as_coords(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n_residues, 3) in nm, got {arr.shape}")
    if arr.shape[0] < 4:
        raise ValueError(f"{name} needs at least 4 Calpha atoms, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return arr


def _angles(x: np.ndarray) -> np.ndarray:
    a = x[:-2] - x[1:-1]
    b = x[2:] - x[1:-1]
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _dihedrals(x: np.ndarray) -> np.ndarray:
    b0 = x[1:-2] - x[:-3]
    b1 = x[2:-1] - x[1:-2]
    b2 = x[3:] - x[2:-1]
    n1 = np.cross(b0, b1)
    n2 = np.cross(b1, b2)
    m1 = np.cross(n1, b1 / np.linalg.norm(b1, axis=1)[:, None])
    # IUPAC sign convention (the one of OpenMM and mdtraj).
    return np.arctan2(-np.sum(m1 * n2, axis=1), np.sum(n1 * n2, axis=1))


def _distances(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


# --------------------------------------------------------------------------- forces


def _angle_force(indices: np.ndarray, theta0: np.ndarray, k: float) -> openmm.HarmonicAngleForce:
    force = openmm.HarmonicAngleForce()
    for i, t0 in zip(indices, theta0):
        force.addAngle(int(i), int(i) + 1, int(i) + 2, float(t0), k)
    return force


def _dihedral_force(indices: np.ndarray, phi0: np.ndarray, k1: float, k3: float) -> openmm.PeriodicTorsionForce:
    # k (1 + cos(n phi - (n phi0 + pi))) == k (1 - cos(n (phi - phi0))): zero at phi0.
    force = openmm.PeriodicTorsionForce()
    for i, p0 in zip(indices, phi0):
        idx = (int(i), int(i) + 1, int(i) + 2, int(i) + 3)
        if k1 > 0:
            force.addTorsion(*idx, 1, float(_wrap(np.array(p0 + np.pi))), k1)
        if k3 > 0:
            force.addTorsion(*idx, 3, float(_wrap(np.array(3 * p0 + np.pi))), k3)
    return force


def _contact_force(pairs: np.ndarray, r0: np.ndarray, epsilon: float, width: float) -> openmm.CustomBondForce:
    force = openmm.CustomBondForce("-eps*exp(-(r-r0)^2/(2*w^2))")
    for name in ("eps", "r0", "w"):
        force.addPerBondParameter(name)
    for (i, j), d in zip(pairs, r0):
        force.addBond(int(i), int(j), [epsilon, float(d), width])
    return force


def build_dual_basin_system(
    ca_a: np.ndarray, ca_b: np.ndarray, params: DualBasinParams | None = None, wall: RMSDWall | None = None
) -> tuple[openmm.System, DualBasinModel]:
    """Build an OpenMM system of the dual-basin Calpha Go model.

    Parameters
    ----------
    ca_a, ca_b : numpy.ndarray
        ``(n_residues, 3)`` Calpha coordinates of structure A and B in nm, one
        bead per residue in chain order (a single chain without gaps).
        A leading frame axis of length 1 is accepted.
    params : DualBasinParams, optional
        Model parameters; defaults to ``DualBasinParams()``.
    wall : RMSDWall, optional
        A flat-bottom wall on the RMSD to ``ca_a`` or ``ca_b``, added last in
        force group ``WALL_GROUP`` (2). Without it (the default) the system
        is the Go model alone.

    Returns
    -------
    system : openmm.System
        Non-periodic system: shared terms in force group ``SHARED_GROUP`` (0),
        the Okazaki mixing :class:`openmm.CustomCVForce` in ``MIXING_GROUP`` (1)
        and, if given, the wall in ``WALL_GROUP`` (2).
    model : DualBasinModel
        Term counts and contact lists.

    Raises
    ------
    ValueError
        If the coordinates have different or invalid shapes.
    """
    p = params if params is not None else DualBasinParams()
    xa = _as_coords(ca_a, "ca_a")
    xb = _as_coords(ca_b, "ca_b")
    if xa.shape != xb.shape:
        raise ValueError(f"ca_a and ca_b must have the same shape, got {xa.shape} and {xb.shape}")
    n = xa.shape[0]
    system = openmm.System()
    for _ in range(n):
        system.addParticle(p.bead_mass)

    # Bonds: mean length of both structures.
    bonds = openmm.HarmonicBondForce()
    r_a = np.linalg.norm(np.diff(xa, axis=0), axis=1)
    r_b = np.linalg.norm(np.diff(xb, axis=0), axis=1)
    for i, r0 in enumerate(0.5 * (r_a + r_b)):
        bonds.addBond(i, i + 1, float(r0), p.bond_k)

    # Angles.
    th_a, th_b = _angles(xa), _angles(xb)
    ang_idx = np.arange(n - 2)
    same_ang = np.abs(th_a - th_b) < p.angle_tolerance
    shared_angles = _angle_force(ang_idx[same_ang], 0.5 * (th_a + th_b)[same_ang], p.angle_k)

    # Dihedrals (circular mean / difference).
    ph_a, ph_b = _dihedrals(xa), _dihedrals(xb)
    dih_idx = np.arange(n - 3)
    dphi = _wrap(ph_b - ph_a)
    same_dih = np.abs(dphi) < p.dihedral_tolerance
    shared_dih = _dihedral_force(dih_idx[same_dih], _wrap(ph_a + 0.5 * dphi)[same_dih],
                                 p.dihedral_k1, p.dihedral_k3)

    # Contacts.
    d_a, d_b = _distances(xa), _distances(xb)
    iu, ju = np.triu_indices(n, k=p.contact_min_separation)
    da, db = d_a[iu, ju], d_b[iu, ju]
    native_a, native_b = da < p.contact_cutoff, db < p.contact_cutoff
    shared = (native_a | native_b) & (np.abs(da - db) < p.contact_tolerance)
    only_a = native_a & ~shared
    only_b = native_b & ~shared
    pairs = np.stack([iu, ju], axis=1)
    shared_contacts = _contact_force(pairs[shared], 0.5 * (da + db)[shared], p.contact_epsilon, p.contact_width)

    # Excluded volume between beads >= repulsion_min_separation apart.
    rep = openmm.CustomNonbondedForce("(sig_r/r)^12 - (sig_r/rc_r)^12")
    rep.addGlobalParameter("sig_r", p.repulsion_sigma)
    rep.addGlobalParameter("rc_r", p.repulsion_cutoff)
    rep.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    rep.setCutoffDistance(p.repulsion_cutoff)
    for _ in range(n):
        rep.addParticle([])
    rep.createExclusionsFromBonds([(i, i + 1) for i in range(n - 1)], p.repulsion_min_separation - 1)

    for force in (bonds, shared_angles, shared_dih, shared_contacts, rep):
        force.setForceGroup(SHARED_GROUP)
        system.addForce(force)

    # State-specific terms, mixed.
    s, sc = p.specific_backbone_scale, p.specific_contact_scale
    mix = openmm.CustomCVForce(
        "(VA + VB + dV)/2 - sqrt(((VA - VB - dV)/2)^2 + D^2);"
        " VA = angA + dihA + conA; VB = angB + dihB + conB"
    )
    mix.addGlobalParameter("dV", p.mixing_offset)
    mix.addGlobalParameter("D", p.mixing_coupling)
    counts_ang, counts_dih, counts_con, spec_pairs = [], [], [], []
    for label, th, ph, dist, only in (("A", th_a, ph_a, da, only_a), ("B", th_b, ph_b, db, only_b)):
        fa = _angle_force(ang_idx[~same_ang], th[~same_ang], s * p.angle_k)
        fd = _dihedral_force(dih_idx[~same_dih], ph[~same_dih], s * p.dihedral_k1, s * p.dihedral_k3)
        fc = _contact_force(pairs[only], dist[only], sc * p.contact_epsilon, p.contact_width)
        # A CustomCVForce takes one Force per CV; VA and VB sum them.
        names = [f"{kind}{label}" for kind in ("ang", "dih", "con")]
        for name, force in zip(names, (fa, fd, fc)):
            mix.addCollectiveVariable(name, force)
        counts_ang.append(int((~same_ang).sum()))
        counts_dih.append(int((~same_dih).sum()))
        counts_con.append(int(only.sum()))
        spec_pairs.append(pairs[only])
    mix.setForceGroup(MIXING_GROUP)
    mixing_index = system.addForce(mix)

    wall_index = None
    if wall is not None:
        force = rmsd_wall_force(xa if wall.reference == "A" else xb, wall.r0, wall.k)
        force.setForceGroup(WALL_GROUP)
        wall_index = system.addForce(force)

    model = DualBasinModel(
        n_particles=n,
        n_bonds=n - 1,
        n_shared_angles=int(same_ang.sum()),
        n_shared_dihedrals=int(same_dih.sum()),
        n_shared_contacts=int(shared.sum()),
        n_specific_angles=(counts_ang[0], counts_ang[1]),
        n_specific_dihedrals=(counts_dih[0], counts_dih[1]),
        n_specific_contacts=(counts_con[0], counts_con[1]),
        shared_contacts=pairs[shared],
        specific_contacts=(spec_pairs[0], spec_pairs[1]),
        mixing_force_index=mixing_index,
        wall_force_index=wall_index,
    )
    logger.info("dual-basin Go model: %s%s", model.summary(), "" if wall is None else f", wall {wall.to_dict()}")
    return system, model


# --------------------------------------------------------------------------- running


def make_context(
    system: openmm.System,
    positions: np.ndarray,
    sim: SimulationParams | None = None,
    seed: int = 1,
    threads: int = 1,
) -> openmm.Context:
    """Create a deterministic CPU-platform context with a Langevin integrator.

    Parameters
    ----------
    system : openmm.System
        From :func:`build_dual_basin_system`.
    positions : numpy.ndarray
        ``(n_particles, 3)`` starting coordinates, nm.
    sim : SimulationParams, optional
        Temperature (K), friction (1/ps) and time step (ps).
    seed : int
        Seed (>= 1) of the integrator's random numbers and the initial
        Maxwell-Boltzmann velocities. OpenMM treats 0 as "random", so 0 is
        rejected.
    threads : int
        CPU threads. Results are bitwise reproducible for a fixed seed and
        thread count (``DeterministicForces`` is on).

    Returns
    -------
    openmm.Context
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 1 <= seed < 2**31:
        raise ValueError(f"seed must be an integer in [1, 2**31), got {seed!r}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    sim = sim if sim is not None else SimulationParams()
    x = _as_coords(positions, "positions")
    if x.shape[0] != system.getNumParticles():
        raise ValueError(f"positions has {x.shape[0]} atoms but the system has {system.getNumParticles()}")
    integrator = openmm.LangevinMiddleIntegrator(
        sim.temperature * u.kelvin, sim.friction / u.picosecond, sim.timestep * u.picosecond
    )
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform,
                             {"Threads": str(threads), "DeterministicForces": "true"})
    context.setPositions(x)
    context.setVelocitiesToTemperature(sim.temperature * u.kelvin, seed)
    return context


def potential_energy(context: openmm.Context, positions: np.ndarray | None = None) -> float:
    """Total potential energy in kJ/mol (optionally at new positions, nm)."""
    if positions is not None:
        context.setPositions(_as_coords(positions, "positions"))
    state = context.getState(getEnergy=True)
    return state.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)


def state_energies(context: openmm.Context, model: DualBasinModel) -> tuple[float, float]:
    """The state-specific energies ``(V_A, V_B)`` at the context's positions, kJ/mol."""
    force = context.getSystem().getForce(model.mixing_force_index)
    cv = force.getCollectiveVariableValues(context)
    return float(cv[0] + cv[1] + cv[2]), float(cv[3] + cv[4] + cv[5])


def simulate(
    system: openmm.System,
    positions: np.ndarray,
    n_frames: int,
    save_every: int,
    sim: SimulationParams | None = None,
    seed: int = 1,
    threads: int = 1,
    progress: ProgressCallback | None = None,
    center: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Run Langevin dynamics and return saved frames.

    Parameters
    ----------
    system : openmm.System
        From :func:`build_dual_basin_system`.
    positions : numpy.ndarray
        ``(n_particles, 3)`` starting coordinates, nm.
    n_frames : int
        Number of frames to save; the starting structure is not saved.
    save_every : int
        Integration steps between saved frames; time per frame is
        ``save_every * sim.timestep`` ps.
    sim : SimulationParams, optional
        Temperature (K), friction (1/ps) and time step (ps).
    seed : int
        Random seed (>= 1), see :func:`make_context`.
    threads : int
        CPU threads of the OpenMM CPU platform.
    progress : callable, optional
        Called as ``progress(frames_done, n_frames)`` after every saved frame.
    center : bool
        Subtract the centroid from every saved frame (removes the free
        diffusion of the molecule; the dynamics is unaffected).

    Returns
    -------
    xyz : numpy.ndarray
        ``(n_frames, n_particles, 3)`` float32 coordinates, nm.
    time : numpy.ndarray
        ``(n_frames,)`` simulation time of each frame, ps.

    Raises
    ------
    FloatingPointError
        If the coordinates become non-finite (the simulation blew up).
    """
    if not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
    sim = sim if sim is not None else SimulationParams()
    context = make_context(system, positions, sim, seed=seed, threads=threads)
    integrator = context.getIntegrator()
    xyz = np.empty((n_frames, system.getNumParticles(), 3), dtype=np.float32)
    for frame in range(n_frames):
        integrator.step(save_every)
        pos = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
        if not np.all(np.isfinite(pos)):
            raise FloatingPointError(f"non-finite coordinates at frame {frame}; reduce the time step")
        if center:
            pos = pos - pos.mean(axis=0)
        xyz[frame] = pos
        if progress is not None:
            progress(frame + 1, n_frames)
    time = (np.arange(1, n_frames + 1) * save_every * sim.timestep).astype(np.float64)
    return xyz, time
