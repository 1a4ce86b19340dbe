"""Tests of the dual-basin Calpha Go model builder (mdllm_kit.cgmodel), on AdK."""
from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import openmm
import pytest

from mdllm_kit import cgmodel as cg
from mdllm_kit import datasets


@pytest.fixture(scope="module")
def ca() -> dict[str, np.ndarray]:
    """Calpha coordinates (nm) of closed and open AdK, open superposed onto closed."""
    refs = datasets.adk_references()
    sub = {k: t.atom_slice(t.topology.select("name CA")) for k, t in refs.items()}
    sub["open"].superpose(sub["closed"])
    return {k: t.xyz[0].astype(np.float64) for k, t in sub.items()}


@pytest.fixture(scope="module")
def built(ca):
    return cg.build_dual_basin_system(ca["closed"], ca["open"], cg.DualBasinParams(mixing_offset=0.0))


def _group_energy(ctx: openmm.Context, x: np.ndarray, groups: set[int] | None = None) -> float:
    ctx.setPositions(x)
    kwargs = {} if groups is None else {"groups": groups}
    return ctx.getState(getEnergy=True, **kwargs).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)


def test_params_roundtrip_json():
    p = cg.DualBasinParams(mixing_offset=-3.5, contact_cutoff=0.9)
    assert cg.DualBasinParams.from_json(p.to_json()) == p
    s = cg.SimulationParams(temperature=80.0)
    assert cg.SimulationParams.from_dict(json.loads(s.to_json())) == s


@pytest.mark.parametrize("bad", [{"bond_k": -1.0}, {"contact_width": 0.0}, {"mixing_coupling": float("nan")},
                                 {"contact_min_separation": 1}, {"repulsion_sigma": 1.0, "repulsion_cutoff": 0.8}])
def test_params_validation(bad):
    with pytest.raises(ValueError):
        cg.DualBasinParams(**bad)


def test_unknown_field_rejected():
    with pytest.raises(ValueError, match="unknown"):
        cg.DualBasinParams.from_dict({"no_such": 1})


def test_simulation_params_validation():
    with pytest.raises(ValueError):
        cg.SimulationParams(timestep=0.0)


def test_system_counts(built):
    system, model = built
    n = 214
    assert system.getNumParticles() == n == model.n_particles
    assert system.getNumForces() == 6
    assert model.n_bonds == n - 1
    assert model.n_shared_angles + model.n_specific_angles[0] == n - 2
    assert model.n_shared_dihedrals + model.n_specific_dihedrals[0] == n - 3
    assert model.n_specific_angles[0] == model.n_specific_angles[1] > 0
    assert model.n_shared_contacts > 200 and min(model.n_specific_contacts) > 10
    mix = system.getForce(model.mixing_force_index)
    assert isinstance(mix, openmm.CustomCVForce) and mix.getNumCollectiveVariables() == 6
    assert mix.getForceGroup() == cg.MIXING_GROUP
    assert all(system.getParticleMass(i).value_in_unit(openmm.unit.dalton) == 110.0 for i in range(n))


def test_shape_mismatch_rejected(ca):
    with pytest.raises(ValueError, match="same shape"):
        cg.build_dual_basin_system(ca["closed"], ca["open"][:-1])


def test_crystals_are_minima_and_mixing_formula(ca, built):
    system, model = built
    ctx = cg.make_context(system, ca["closed"], seed=3)
    e_closed = cg.potential_energy(ctx, ca["closed"])
    va_c, vb_c = cg.state_energies(ctx, model)
    e_open = cg.potential_energy(ctx, ca["open"])
    va_o, vb_o = cg.state_energies(ctx, model)
    mid = 0.5 * (ca["closed"] + ca["open"])
    e_mid = cg.potential_energy(ctx, mid)
    assert np.isfinite([e_closed, e_open, e_mid]).all()
    assert e_mid > max(e_closed, e_open) + 10.0
    # Each crystal sits in its own state's basin.
    assert va_c < vb_c and vb_o < va_o
    # The mixing group reproduces the Okazaki formula (dV = 0 here, D = 20 kJ/mol).
    coupling = cg.DualBasinParams().mixing_coupling
    for x, va, vb in ((ca["closed"], va_c, vb_c), (ca["open"], va_o, vb_o)):
        expect = (va + vb) / 2 - np.sqrt(((va - vb) / 2) ** 2 + coupling**2)
        assert _group_energy(ctx, x, {cg.MIXING_GROUP}) == pytest.approx(expect, abs=1e-3)


def test_forces_are_gradient_of_energy(ca, built):
    """Finite-difference check in the crossing region, where the mixing matters."""
    system, model = built
    ctx = cg.make_context(system, ca["closed"], seed=3)
    x = 0.5 * (ca["closed"] + ca["open"])
    ctx.setPositions(x)
    f = ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=x.shape)
    direction /= np.linalg.norm(direction)
    h = 1e-4
    de = (_group_energy(ctx, x + h * direction) - _group_energy(ctx, x - h * direction)) / (2 * h)
    assert de == pytest.approx(-np.sum(f * direction), rel=1e-3, abs=1e-2)


def test_offset_shifts_basins(ca):
    """dV < 0 lowers the open basin relative to the closed one."""
    energies = {}
    for dv in (-10.0, 10.0):
        system, _ = cg.build_dual_basin_system(ca["closed"], ca["open"], cg.DualBasinParams(mixing_offset=dv))
        ctx = cg.make_context(system, ca["closed"], seed=1)
        energies[dv] = cg.potential_energy(ctx, ca["open"]) - cg.potential_energy(ctx, ca["closed"])
    assert energies[-10.0] < energies[10.0] - 15.0


def test_simulate_reproducible(ca, built):
    system, _ = built
    a, t = cg.simulate(system, ca["closed"], 3, 50, seed=11)
    b, _ = cg.simulate(system, ca["closed"], 3, 50, seed=11)
    c, _ = cg.simulate(system, ca["closed"], 3, 50, seed=12)
    assert a.shape == (3, 214, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(t, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(a.mean(axis=1), 0.0, atol=1e-5)  # centred
    # Stays folded and close to the start over this short run.
    start = md.Trajectory(ca["closed"][None].astype(np.float32), None)
    assert np.all(md.rmsd(md.Trajectory(a, None), start) < 0.1)


def test_simulate_progress_and_validation(ca, built):
    system, _ = built
    calls = []
    cg.simulate(system, ca["closed"], 2, 10, seed=1, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]
    with pytest.raises(ValueError, match="seed"):
        cg.simulate(system, ca["closed"], 1, 10, seed=0)
    with pytest.raises(ValueError, match="atoms"):
        cg.simulate(system, ca["closed"][:-1], 1, 10, seed=1)


def _kabsch_rmsd(x: np.ndarray, ref: np.ndarray) -> float:
    a, b = x - x.mean(axis=0), ref - ref.mean(axis=0)
    u_, s, vt = np.linalg.svd(a.T @ b)
    s[-1] *= np.sign(np.linalg.det(u_ @ vt))
    return float(np.sqrt(max(0.0, (np.sum(a**2) + np.sum(b**2) - 2 * s.sum()) / len(x))))


def test_rmsd_wall_is_flat_bottom_and_superposes(ca):
    """E = k (r0 - rmsd)^2 inside r0, 0 beyond, for rotated and shifted displaced copies of the reference."""
    wall = cg.RMSDWall(reference="A", r0=0.4, k=10000.0)
    system, model = cg.build_dual_basin_system(ca["closed"], ca["open"], cg.DualBasinParams(), wall=wall)
    assert system.getNumForces() == 7 and model.wall_force_index == 6
    force = system.getForce(model.wall_force_index)
    assert isinstance(force, openmm.CustomCVForce) and force.getForceGroup() == cg.WALL_GROUP
    assert isinstance(force.getCollectiveVariable(0), openmm.RMSDForce)
    ctx = cg.make_context(system, ca["closed"], seed=1)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=ca["closed"].shape)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta), 0.0], [np.sin(theta), np.cos(theta), 0.0], [0.0, 0.0, 1.0]])
    for scale in (0.0, 0.1, 0.3, 0.39, 0.45, 0.8):
        x = ca["closed"] + scale * noise / np.sqrt(np.mean(np.sum(noise**2, axis=1)))
        x = x @ rot.T + np.array([1.0, -2.0, 0.5])  # the RMSD is after optimal superposition
        rmsd = _kabsch_rmsd(x, ca["closed"])
        energy = _group_energy(ctx, x, {cg.WALL_GROUP})
        (cv,) = force.getCollectiveVariableValues(ctx)
        assert cv == pytest.approx(rmsd, abs=1e-6)
        expect = wall.k * (wall.r0 - rmsd) ** 2 if rmsd < wall.r0 else 0.0
        assert energy == pytest.approx(expect, rel=1e-6, abs=1e-9)
        assert float(wall.energy(rmsd)) == pytest.approx(expect, rel=1e-9, abs=1e-12)
    # Its forces are the gradient of its energy (here inside the wall, RMSD ~ 0.3 nm).
    x = ca["closed"] + 0.3 * noise / np.sqrt(np.mean(np.sum(noise**2, axis=1)))
    ctx.setPositions(x)
    f = ctx.getState(getForces=True, groups={cg.WALL_GROUP}).getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    direction = rng.normal(size=x.shape)
    direction /= np.linalg.norm(direction)
    h = 1e-4
    de = (_group_energy(ctx, x + h * direction, {cg.WALL_GROUP})
          - _group_energy(ctx, x - h * direction, {cg.WALL_GROUP})) / (2 * h)
    assert abs(de) > 1.0 and de == pytest.approx(-np.sum(f * direction), rel=1e-3)
    # The open crystal (6.9 A from closed) is beyond the wall; the Go model is unchanged by it.
    assert _group_energy(ctx, ca["open"], {cg.WALL_GROUP}) == 0.0
    plain, _ = cg.build_dual_basin_system(ca["closed"], ca["open"], cg.DualBasinParams())
    plain_ctx = cg.make_context(plain, ca["closed"], seed=1)
    x = ca["closed"] + 0.01 * noise
    assert _group_energy(ctx, x, {cg.SHARED_GROUP, cg.MIXING_GROUP}) == pytest.approx(_group_energy(plain_ctx, x))
    # Reference B measures the RMSD to the open structure.
    _, model_b = cg.build_dual_basin_system(ca["closed"], ca["open"], wall=cg.RMSDWall(reference="B"))
    assert model_b.wall_force_index == 6


def test_rmsd_wall_params():
    wall = cg.RMSDWall(r0=0.35, k=5000.0)
    assert cg.RMSDWall.from_dict(wall.to_dict()) == wall
    assert wall.to_dict() == {"reference": "A", "r0": 0.35, "k": 5000.0}
    for bad in ({"reference": "closed"}, {"r0": 0.0}, {"k": -1.0}):
        with pytest.raises(ValueError):
            cg.RMSDWall(**bad)
