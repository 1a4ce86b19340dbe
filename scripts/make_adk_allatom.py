r"""Make a short all-atom implicit-solvent MD run of AdK (backbone frames for benchmarks).

Starts from the bundled heavy-atom crystal structures of adenylate kinase
(``mdllm_kit/data/adk/adk_closed.pdb``, 1AKE, and ``adk_open.pdb``, 4AKE; 214
residues, heavy atoms only, C-terminal OXT), adds hydrogens at pH 7 with
``openmm.app.Modeller.addHydrogens`` (no pdbfixer needed: the crystals have
no missing heavy atoms), and simulates each state with OpenMM on the CPU:

* force field Amber14 (``amber14-all.xml``) with the OBC2 generalized Born
  implicit solvent of ``implicit/obc2.xml`` (its per-atom charges, radii and
  scale factors, solvent dielectric 78.5, surface-area term 2.25936
  kJ/mol/nm^2), non-periodic cutoff ``--cutoff`` (1.2 nm), bonds to hydrogen
  constrained (HBonds). ``implicit/obc2.xml`` builds a ``CustomGBForce``,
  which took 0.19 s per force evaluation of this 3,341-atom system on one
  core; the script moves its parameters into OpenMM's native
  ``GBSAOBCForce`` (the same OBC2 functional form and surface term: both
  gave -32592.78 kJ/mol on the starting structure), 0.067 s per evaluation
  of the whole system. ``--solvent gbn2`` keeps ``implicit/gbn2.xml``'s
  ``CustomGBForce`` (about 4 times slower);
* energy minimisation (``LocalEnergyMinimizer``, tolerance 10 kJ/mol/nm, at
  most ``--min-iterations`` iterations);
* Langevin dynamics (``LangevinMiddleIntegrator``) at 300 K, friction
  1/ps, 2 fs steps: ``--equil-ps`` of equilibration (not saved), then
  ``--prod-ps`` of production, saving the backbone heavy atoms N, CA, C, O
  every ``--save-ps``.

Outputs, in the folder given by ``--out`` (never the package data):

* ``adk_aa_backbone.pdb``: topology (N, CA, C, O of the 214 residues) at the
  first saved closed frame;
* ``adk_aa_closed.xtc``, ``adk_aa_open.xtc``: the saved frames (nm, time in
  ps from the start of production);
* ``adk_aa_metadata.json``: what was run (force field, solvent, steps,
  timestep, temperature, friction, seeds, platform, OpenMM version, command,
  wall time) and, per run, the backbone and Calpha RMSD of the frames to both
  crystals and the validity report of :func:`mdllm_kit.validity_report`.

Every file is written atomically (:func:`mdllm_kit.atomic.atomic_path`), after
both runs have finished. Reproducibility: hydrogen placement is seeded
(Python's ``random``), velocities and the integrator use ``--seed`` (closed)
and ``--seed + 1`` (open), and the CPU platform runs with
``DeterministicForces`` and a fixed thread count, so the same command on the
same OpenMM build and CPU gives the same frames.

Usage (from the repository root; time a tiny run first)::

    taskset -c 0 python scripts/make_adk_allatom.py --out /tmp/adk_aa_tiny --equil-ps 0.1 --prod-ps 0.2 \
        --min-iterations 20
    taskset -c 0 python scripts/make_adk_allatom.py --out /tmp/adk_aa \
        --equil-ps 0.5 --prod-ps 7 4 --save-ps 0.1 --min-iterations 100   # = the defaults

The run in ``BENCHMARKS.md`` (70 closed + 40 open frames) took 21 min on one
core that three other jobs shared (0.9-1.1 ns/day; about 0.067 s of CPU per
step alone).
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np

from mdllm_kit.analysis.rmsd import rmsd_per_frame
from mdllm_kit.analysis.validity import validity_report
from mdllm_kit.atomic import atomic_path, atomic_write_text
from mdllm_kit.datasets import data_path
from mdllm_kit.testing import protonated_crystal

logger = logging.getLogger("make_adk_allatom")

BACKBONE = ("N", "CA", "C", "O")
SOLVENTS = {"obc2": "implicit/obc2.xml", "gbn2": "implicit/gbn2.xml"}
STATES = ("closed", "open")
TIMESTEP_PS = 0.002
TEMPERATURE_K = 300.0
FRICTION_PER_PS = 1.0


def _crystal(state: str) -> Path:
    return Path(data_path("adk", f"adk_{state}.pdb"))


def _backbone_indices(top: md.Topology) -> np.ndarray:
    """N, CA, C, O of every protein residue, in residue order (OXT excluded)."""
    idx = []
    for res in top.residues:
        atoms = {a.name: a.index for a in res.atoms}
        idx.extend(atoms[name] for name in BACKBONE)
    return np.asarray(idx, dtype=np.int64)


def _native_obc2(system: Any, cutoff_nm: float | None) -> None:
    """Replace the ``CustomGBForce`` of ``implicit/obc2.xml`` by the equivalent native ``GBSAOBCForce``.

    ``implicit/obc2.xml`` stores per atom ``charge``, ``or`` (radius minus the
    0.009 nm dielectric offset) and ``sr`` (scale factor times ``or``);
    ``GBSAOBCForce`` takes the charge, the radius and the scale factor, and
    uses the same OBC2 constants (alpha 1, beta 0.8, gamma 4.85), offset and
    ACE surface term.
    """
    import openmm

    k = next(i for i, f in enumerate(system.getForces()) if isinstance(f, openmm.CustomGBForce))
    custom = system.getForce(k)
    gb = openmm.GBSAOBCForce()
    gb.setSolventDielectric(78.5)
    gb.setSoluteDielectric(1.0)
    if cutoff_nm is None:
        gb.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
    else:
        gb.setNonbondedMethod(openmm.GBSAOBCForce.CutoffNonPeriodic)
        gb.setCutoffDistance(cutoff_nm)
    for i in range(custom.getNumParticles()):
        charge, offset_radius, scaled = custom.getParticleParameters(i)
        gb.addParticle(charge, offset_radius + 0.009, scaled / offset_radius)
    system.removeForce(k)
    system.addForce(gb)


def simulate(state: str, *, seed: int, solvent: str, cutoff_nm: float | None, min_iterations: int,
             equil_steps: int, prod_steps: int, save_every: int, threads: int) -> dict[str, Any]:
    """One run from a crystal: returns backbone frames (nm), their topology and timings."""
    import openmm
    import openmm.app as app
    import openmm.unit as unit

    t0 = time.time()
    ff = app.ForceField("amber14-all.xml", SOLVENTS[solvent])
    modeller = protonated_crystal(state, ff, seed)
    if cutoff_nm is None:
        system = ff.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    else:
        system = ff.createSystem(modeller.topology, nonbondedMethod=app.CutoffNonPeriodic,
                                 nonbondedCutoff=cutoff_nm * unit.nanometer, constraints=app.HBonds)
    if solvent == "obc2":
        _native_obc2(system, cutoff_nm)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K * unit.kelvin, FRICTION_PER_PS / unit.picosecond,
                                                 TIMESTEP_PS * unit.picoseconds)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(threads), "DeterministicForces": "true"})
    context.setPositions(modeller.positions)
    e0 = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, min_iterations)
    e1 = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    t_min = time.time()
    context.setVelocitiesToTemperature(TEMPERATURE_K * unit.kelvin, seed)
    if equil_steps:
        integrator.step(equil_steps)
    t_eq = time.time()
    top = md.Topology.from_openmm(modeller.topology)
    bb = _backbone_indices(top)
    frames = []
    for k in range(prod_steps // save_every):
        integrator.step(save_every)
        pos = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        frames.append(np.asarray(pos, dtype=np.float32)[bb])
        if (k + 1) % 25 == 0:
            logger.info("%s: %d frames, %.0f s", state, k + 1, time.time() - t0)
    t_end = time.time()
    prod_s = t_end - t_eq
    return {
        "xyz": np.stack(frames), "topology": top.subset(bb),
        "n_atoms_simulated": int(system.getNumParticles()),
        "energy_start_kj_mol": float(e0), "energy_minimised_kj_mol": float(e1),
        "wall_s": {"setup_and_minimisation": round(t_min - t0, 1), "equilibration": round(t_eq - t_min, 1),
                   "production": round(prod_s, 1), "total": round(t_end - t0, 1)},
        "production_ns_per_day": round(prod_steps * TIMESTEP_PS / 1000 / (prod_s / 86400), 2) if prod_s > 0 else None,
    }


def _stats(r: np.ndarray) -> dict[str, float]:
    return {"min": round(float(r.min()), 3), "mean": round(float(r.mean()), 3), "max": round(float(r.max()), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (not the package data)")
    ap.add_argument("--seed", type=int, default=2024, help="seed of the closed run; the open run uses seed + 1")
    ap.add_argument("--solvent", choices=sorted(SOLVENTS), default="obc2", help="implicit solvent (default obc2)")
    ap.add_argument("--cutoff", type=float, default=1.2,
                    help="non-periodic nonbonded cutoff, nm (default 1.2; 0: no cutoff, 3 times slower)")
    ap.add_argument("--min-iterations", type=int, default=100, help="minimiser iterations at most (default 100)")
    ap.add_argument("--equil-ps", type=float, default=0.5, help="equilibration, ps, not saved (default 0.5)")
    ap.add_argument("--prod-ps", nargs="+", type=float, default=[7.0, 4.0],
                    help="production, ps: one value for every state, or one per state in --states order "
                         "(default 7 closed, 4 open)")
    ap.add_argument("--save-ps", type=float, default=0.1, help="time between saved frames, ps (default 0.1)")
    ap.add_argument("--states", nargs="+", choices=STATES, default=list(STATES))
    ap.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import openmm

    t_start = time.time()
    command = "python scripts/make_adk_allatom.py " + " ".join(sys.argv[1:] if argv is None else argv)
    save_every = max(1, round(args.save_ps / TIMESTEP_PS))
    equil_steps = round(args.equil_ps / TIMESTEP_PS)
    if len(args.prod_ps) not in (1, len(args.states)):
        ap.error(f"--prod-ps takes 1 or {len(args.states)} values")
    prod_ps = dict(zip(args.states, args.prod_ps * len(args.states) if len(args.prod_ps) == 1 else args.prod_ps))
    prod_steps = {s: save_every * max(1, round(p / TIMESTEP_PS / save_every)) for s, p in prod_ps.items()}
    cutoff = args.cutoff or None
    runs: dict[str, dict[str, Any]] = {}
    crystals = {s: md.load_pdb(str(_crystal(s))) for s in STATES}
    crystal_bb = {s: t.xyz[0][_backbone_indices(t.topology)] for s, t in crystals.items()}
    ca_in_bb = np.arange(1, 4 * crystals["closed"].topology.n_residues, 4)
    results = {}
    for state in args.states:
        seed = args.seed + STATES.index(state)
        logger.info("%s: simulating (seed %d)", state, seed)
        res = simulate(state, seed=seed, solvent=args.solvent, cutoff_nm=cutoff,
                       min_iterations=args.min_iterations, equil_steps=equil_steps, prod_steps=prod_steps[state],
                       save_every=save_every, threads=args.threads)
        xyz = res.pop("xyz")
        xyz = xyz - xyz.mean(axis=1, keepdims=True)
        top = res.pop("topology")
        results[state] = (xyz, top)
        traj = md.Trajectory(xyz, top, time=np.arange(1, len(xyz) + 1) * save_every * TIMESTEP_PS)
        vr = validity_report(traj)
        stats: dict[str, Any] = {"seed": seed, "n_frames": int(len(xyz)), "production_steps": prod_steps[state], **res}
        for ref in STATES:
            stats[f"backbone_rmsd_to_{ref}_A"] = _stats(rmsd_per_frame(xyz, crystal_bb[ref][None]))
            stats[f"ca_rmsd_to_{ref}_A"] = _stats(rmsd_per_frame(xyz[:, ca_in_bb], crystal_bb[ref][None, ca_in_bb]))
        stats["validity"] = {k2: vr[k2] for k2 in ("ca_valid_fraction", "frames_without_ca_clash",
                                                  "frames_without_ca_break", "frames_without_cn_break",
                                                  "ca_bond_length_A", "cn_bond_length_A")}
        runs[state] = stats
        logger.info("%s: %s", state, json.dumps(stats))

    metadata = {
        "description": "all-atom implicit-solvent Langevin MD of E. coli adenylate kinase from the bundled crystal "
                       "structures (closed 1AKE, open 4AKE); saved: backbone heavy atoms N, CA, C, O; frames "
                       "centred on their centroid",
        "generator": "scripts/make_adk_allatom.py",
        "command": command,
        "units": {"length": "nm", "time": "ps", "energy": "kJ/mol", "rmsd": "Angstrom"},
        "force_field": "amber14-all.xml",
        "solvent": SOLVENTS[args.solvent] + (" parameters in openmm.GBSAOBCForce (native OBC2, same energy)"
                                             if args.solvent == "obc2" else " (CustomGBForce)"),
        "nonbonded": "NoCutoff" if cutoff is None else f"CutoffNonPeriodic {cutoff} nm",
        "hydrogens": "openmm.app.Modeller.addHydrogens(forcefield, pH=7.0), Python random seeded with the run's seed",
        "constraints": "HBonds",
        "integrator": "LangevinMiddleIntegrator",
        "temperature_K": TEMPERATURE_K,
        "friction_per_ps": FRICTION_PER_PS,
        "timestep_ps": TIMESTEP_PS,
        "minimisation": {"tolerance_kj_mol_nm": 10.0, "max_iterations": args.min_iterations},
        "equilibration_steps": equil_steps,
        "save_every_steps": save_every,
        "time_per_frame_ps": save_every * TIMESTEP_PS,
        "seed": args.seed,
        "platform": {"name": "CPU", "threads": args.threads, "deterministic_forces": True,
                     "openmm_version": openmm.__version__, "machine": platform.machine()},
        "reproducible": "same frames for the same command, OpenMM build, thread count and CPU",
        "runs": runs,
        "wall_time_s": round(time.time() - t_start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    first = args.states[0]
    xyz0, top0 = results[first]
    with atomic_path(args.out / "adk_aa_backbone.pdb") as tmp:
        md.Trajectory(xyz0[:1], top0).save_pdb(str(tmp))
    for state, (xyz, top) in results.items():
        t = md.Trajectory(xyz, top, time=np.arange(1, len(xyz) + 1) * save_every * TIMESTEP_PS)
        with atomic_path(args.out / f"adk_aa_{state}.xtc") as tmp:
            t.save_xtc(str(tmp))
    atomic_write_text(args.out / "adk_aa_metadata.json", json.dumps(metadata, indent=2, default=_json) + "\n")
    logger.info("wrote %s in %.0f s", args.out, time.time() - t_start)
    return 0


def _json(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v).__name__)


if __name__ == "__main__":
    sys.exit(main())
