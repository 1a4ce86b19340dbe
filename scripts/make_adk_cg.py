"""Make the bundled Calpha trajectories of the dual-basin AdK Go model.

Builds the dual-basin Calpha structure-based model of adenylate kinase from
the shipped closed (1AKE) and open (4AKE) reference structures
(:func:`mdllm_kit.datasets.adk_references`, model in :mod:`mdllm_kit.cgmodel`),
runs three Langevin simulations on the OpenMM CPU platform and writes into
the output folder

* ``adk_cg_ca.pdb``: topology, 214 Calpha beads named CA with real residue
  names, one chain, at the closed crystal coordinates;
* ``adk_cg_closed_train.xtc``: a run with the open basin switched off
  (``dV = TRAIN_OFFSET`` strongly favouring closed), started from the closed
  crystal; every frame must be >= 3 A Calpha RMSD from the open crystal;
* ``adk_cg_open_train.xtc``: the mirror image, a run with the mixing offset
  mirrored (``dV = OPEN_TRAIN_OFFSET = -TRAIN_OFFSET``, favouring open),
  started from the open crystal with seed ``--seed + 2``, **plus a wall on
  the Calpha RMSD to the closed crystal** (``OPEN_TRAIN_WALL``, see below);
  every frame must be >= 3 A Calpha RMSD from the closed crystal;
* ``adk_cg_equilibrium.xtc``: a run with balanced basins started from the
  closed crystal; it must switch closed<->open at least
  ``--min-transitions`` times and every frame must lie within 3 A of a
  crystal structure or on the path between them
  (:func:`mdllm_kit.datasets.on_path`);
* ``adk_cg_metadata.json``: all parameters, seeds, time per frame and the
  measured populations, transitions, dwell times and RMSD checks; per run
  also the command that made it (top-level ``command`` is the latest one).

``--runs NAME [NAME ...]`` simulates and writes only the named runs
(default: ``DEFAULT_RUNS``, all three, the shipped ones). Runs already
recorded in the output folder's ``adk_cg_metadata.json`` that are not named
keep their files and their metadata entries (the file is merged, not
replaced) and
``adk_cg_ca.pdb`` is left untouched; that needs the existing file to have
been made with the same model, simulation, save interval, seed and platform,
otherwise the script stops and asks to regenerate every run in it.

Why open_train has a wall: the mirrored offset alone did not confine it.
``dV`` is added to the state-B (open) energy and the mixing is about
``min(V_A, V_B + dV)``: once a structure is on the B surface, lowering
``dV`` no longer changes its energy relative to the open structures, which
are there too. Closed-basin structures at 60 K mostly are (median
``V_B - V_A`` over every second closed-basin frame of the shipped
equilibrium run: 0.9 kJ/mol), so the offset cannot deepen the open basin
against them. At the crystals, ``E(open) - E(closed)`` is +45.3 kJ/mol at
dV = +60 but only -33.0 at dV = -60, -55.0 at -120 and -64.9 at -240. The
run with dV = -60 and seed 2026 (2,400 frames) reached the closed basin
once (min RMSD to closed 2.62 A, 3 frames below 3 A, 2 transitions) and was
rejected.

So open_train keeps the same model, offset, temperature and seed and adds,
for this run only, a flat-bottom wall on the Calpha RMSD to the closed
crystal (``OPEN_TRAIN_WALL``, a :class:`mdllm_kit.cgmodel.RMSDWall`:
``openmm.RMSDForce`` over all 214 beads with optimal superposition, inside an
``openmm.CustomCVForce``), as metadynamics-style walls do:
``E = k (r0 - rmsd)^2`` for ``rmsd < r0``, else 0. ``r0 = 0.4 nm`` (4 A)
mirrors closed_train, which stays >= 3.85 A from open without a wall.
``k = 10000 kJ/mol/nm^2`` puts 100 kJ/mol (about 200 kT at 60 K) at 3 A, more
than the whole energy difference between the two crystals in this model
(at most 65 kJ/mol for any dV above), so fluctuations cannot carry the run
through it; its curvature per bead (``2 k / 214``, ~90 kJ/mol/nm^2) is
negligible next to the bonds (20000), so the time step is unaffected and the
run costs the same. Beyond 4 A the run follows the unbiased model. The wall is
recorded in the run's metadata entry (``rmsd_wall``, with the fraction of
saved frames inside ``r0``); the other two runs have no wall.

Frames are centred on their centroid; xtc time is in ps. If a check fails
nothing is written and the script exits with status 1. Files are written
atomically (temporary file in the output folder, then ``os.replace``).

Reproducibility: the CPU platform with ``DeterministicForces`` and a fixed
thread count gives bitwise-identical trajectories for the same seed, so with
the defaults the command below regenerates the shipped files exactly (given
the same OpenMM build and CPU instruction set).

Usage (from the repository root; about 20 min for the three runs, two at a
time on two busy CPU cores, ~1800 steps/s each; add ``--cache DIR`` to keep
the raw frames so that re-running with unchanged settings skips the
simulations). The second line regenerates one run only, here open_train
(about 6 min on one core), keeping the other files as they are::

    .venv/bin/python scripts/make_adk_cg.py --out mdllm_kit/data/adk
    .venv/bin/python scripts/make_adk_cg.py --out mdllm_kit/data/adk --runs open_train --jobs 1
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np
import openmm

from mdllm_kit import cgmodel, datasets
from mdllm_kit.atomic import atomic_path

logger = logging.getLogger("make_adk_cg")

#: Model parameters of the equilibrium run (the train runs only change mixing_offset).
MODEL = cgmodel.DualBasinParams(
    specific_contact_scale=0.25, specific_backbone_scale=1.0, mixing_coupling=35.0, mixing_offset=-5.0,
)
#: Langevin settings of all runs.
SIM = cgmodel.SimulationParams(temperature=60.0, friction=0.1, timestep=0.02)
#: dV of the closed-only training run, kJ/mol. dV is added to the energy of
#: state B (open), so a positive dV strongly favours closed.
TRAIN_OFFSET = 60.0
#: dV of the open-only training run, kJ/mol: the mirror image, strongly favours open.
OPEN_TRAIN_OFFSET = -TRAIN_OFFSET
#: Wall of the open-only training run only: lower wall at 0.4 nm Calpha RMSD to the
#: closed crystal (state A), 10000 kJ/mol/nm^2 (100 kJ/mol at 3 A; see the module docstring).
OPEN_TRAIN_WALL = cgmodel.RMSDWall(reference="A", r0=0.4, k=10000.0)
#: The runs this script can make, in the order they are submitted (longest first).
RUN_NAMES: tuple[str, ...] = ("equilibrium", "closed_train", "open_train")
#: The runs made without ``--runs``: all of them, the shipped ones.
DEFAULT_RUNS: tuple[str, ...] = RUN_NAMES


def _atomic_write(path: Path, write) -> None:  # noqa: ANN001 - write(tmp_path)
    with atomic_path(path) as tmp:
        write(str(tmp))


def _job_key(job: dict[str, Any]) -> str:
    spec = {k: v for k, v in job.items() if k not in ("ca_a", "ca_b", "start", "start_name", "cache")}
    blob = json.dumps(spec, sort_keys=True).encode() + b"".join(
        np.ascontiguousarray(job[k], dtype=np.float32).tobytes() for k in ("ca_a", "ca_b", "start"))
    return hashlib.sha256(blob).hexdigest()[:16]


def _run(job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    """Worker: build the system and simulate (runs in its own process).

    With ``job["cache"]`` set, frames of an identical job (same parameters,
    seed and structures) are read from / written to ``<cache>/<name>-<hash>.npz``.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cache_file = None
    if job.get("cache"):
        cache_file = Path(job["cache"]) / f"{job['name']}-{_job_key(job)}.npz"
        if cache_file.exists():
            logger.info("%s: reusing %s", job["name"], cache_file)
            with np.load(cache_file) as z:
                return z["xyz"], z["time"], float(z["wall"])
    params = cgmodel.DualBasinParams.from_dict(job["model"])
    sim = cgmodel.SimulationParams.from_dict(job["sim"])
    # Only jobs with a wall have the key, so the other jobs' cache keys are those of before walls.
    rmsd_wall = cgmodel.RMSDWall.from_dict(job["wall"]) if "wall" in job else None
    system, _ = cgmodel.build_dual_basin_system(job["ca_a"], job["ca_b"], params, wall=rmsd_wall)
    name, n_frames = job["name"], job["n_frames"]
    every = max(1, n_frames // 20)
    t0 = time.time()

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            rate = done * job["save_every"] / (time.time() - t0)
            logger.info("%s: %d/%d frames, %.0f steps/s", name, done, total, rate)

    xyz, tm = cgmodel.simulate(system, job["start"], n_frames, job["save_every"], sim,
                               seed=job["seed"], threads=job["threads"], progress=progress)
    wall = time.time() - t0
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache_file, xyz=xyz, time=tm, wall=wall)
    return xyz, tm, wall


def _analyse(traj: md.Trajectory, time_per_frame: float, d: float) -> dict[str, Any]:
    r_c, r_o = datasets.adk_cg_rmsd(traj)
    states = datasets.adk_cg_states(traj)
    in_basin = np.minimum(r_c, r_o) < datasets.BASIN_RMSD_A
    path = datasets.on_path(r_c, r_o, d)
    kin = datasets.core_transitions(states, time_per_frame)
    return {
        "n_frames": int(traj.n_frames),
        "time_per_frame_ps": time_per_frame,
        "total_time_ps": float(traj.n_frames * time_per_frame),
        "populations": {name: float(np.mean(states == i)) for i, name in enumerate(datasets.ADK_STATE_NAMES)},
        **kin,
        "rmsd_closed_A": {"min": float(r_c.min()), "mean": float(r_c.mean()), "max": float(r_c.max())},
        "rmsd_open_A": {"min": float(r_o.min()), "mean": float(r_o.mean()), "max": float(r_o.max())},
        "max_excess_over_path_A": float((r_c + r_o - d).max()),
        "fraction_in_basin": float(in_basin.mean()),
        "fraction_admissible": float((in_basin | path).mean()),
    }


def _wall_record(wall: dict[str, Any], r_ref_a: np.ndarray) -> dict[str, Any]:
    """The metadata of a run's RMSD wall, with how often the frames were inside it.

    Parameters
    ----------
    wall : dict
        :meth:`mdllm_kit.cgmodel.RMSDWall.to_dict` of the wall.
    r_ref_a : numpy.ndarray
        RMSD of every frame to the wall's reference crystal, Angstrom.
    """
    w = cgmodel.RMSDWall.from_dict(wall)
    names = {"A": "closed crystal (1AKE)", "B": "open crystal (4AKE)"}
    r0_a = w.r0 * 10.0
    return {
        "description": f"a flat-bottom wall keeps this run at about >= r0 from the {names[w.reference]} "
                       "(a soft wall: frames may enter it slightly, see fraction_frames_inside_r0); "
                       "without it the mixing offset alone let the run into that basin",
        "reference": names[w.reference],
        "collective_variable": "Calpha RMSD over all beads after optimal superposition (openmm.RMSDForce), nm",
        "energy": "k (r0 - rmsd)^2 if rmsd < r0, else 0 (openmm.CustomCVForce)",
        "r0_nm": w.r0,
        "k_kj_mol_nm2": w.k,
        "energy_at_3A_kj_mol": float(w.energy(0.3)),
        "fraction_frames_inside_r0": float(np.mean(r_ref_a < r0_a)),
        "max_wall_energy_saved_frames_kj_mol": float(w.energy(r_ref_a.min() / 10.0)),
    }


def _check_run(name: str, stats: dict[str, Any], min_transitions: int) -> list[str]:
    """Record the acceptance criteria of one run in ``stats["criteria"]``.

    Parameters
    ----------
    name : str
        One of :data:`RUN_NAMES`.
    stats : dict
        From :func:`_analyse` (RMSD in Angstrom); gains a ``"criteria"`` entry.
    min_transitions : int
        Closed<->open transitions the equilibrium run must make.

    Returns
    -------
    list of str
        One line per failed criterion (empty if the run is accepted).
    """
    basin = datasets.BASIN_RMSD_A
    failures = []
    if name in ("closed_train", "open_train"):
        # A training run must stay at least `basin` away from the state it must not visit.
        other = "open" if name == "closed_train" else "closed"
        r_min = stats[f"rmsd_{other}_A"]["min"]
        ok = r_min >= basin
        stats["criteria"] = {f"rmsd_{other}_min_A >= {basin:g}": ok}
        if not ok:
            failures.append(f"{name}: min RMSD to {other} {r_min:.2f} A < {basin:g} A")
    else:
        ok_adm = stats["fraction_admissible"] == 1.0
        ok_tr = stats["n_transitions"] >= min_transitions
        stats["criteria"] = {"every frame in a basin or on path": ok_adm,
                             f"n_transitions >= {min_transitions}": ok_tr}
        if not ok_adm:
            failures.append(f"{name}: {1 - stats['fraction_admissible']:.4f} of frames off path")
        if not ok_tr:
            failures.append(f"{name}: {stats['n_transitions']} transitions < {min_transitions}")
    return failures


def _without_offset(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k != "mixing_offset"}


def _check_kept(out: Path, old: dict[str, Any], rerun: str, shared: dict[str, Any],
                topology: md.Trajectory) -> None:
    """Check that the runs kept in ``out`` fit the runs about to be added.

    Parameters
    ----------
    out : pathlib.Path
        Output folder holding ``adk_cg_metadata.json`` and ``adk_cg_ca.pdb``.
    old : dict
        The parsed ``adk_cg_metadata.json`` of ``out``.
    rerun : str
        The ``--runs`` arguments that would regenerate every run, for the message.
    shared : dict
        This invocation's simulation settings, save interval, time per frame,
        seed and platform, which the kept runs must share.
    topology : mdtraj.Trajectory
        The Calpha topology the new runs are written with.

    Raises
    ------
    SystemExit
        With a one-line message if the topology is missing or the kept runs
        were made with other settings (a merge would then describe runs of
        different models with one set of parameters).
    """
    meta_file, pdb_file = out / "adk_cg_metadata.json", out / "adk_cg_ca.pdb"
    full = f"regenerate every run in it (--runs {rerun})"
    if not pdb_file.exists():
        raise SystemExit(f"{meta_file} lists runs to keep but {pdb_file.name} is missing; {full}")
    for key, value in shared.items():
        if old.get(key) != value:
            raise SystemExit(f"{meta_file} has {key} = {old.get(key)!r} but this run uses {value!r}; "
                             f"pass the same settings or {full}")
    if _without_offset(old.get("model", {})) != _without_offset(MODEL.to_dict()):
        raise SystemExit(f"{meta_file} was made with other model parameters than MODEL in this script; {full}")
    kept_top = md.load_pdb(str(pdb_file)).topology
    if [r.name for r in kept_top.residues] != [r.name for r in topology.topology.residues] \
            or kept_top.n_atoms != topology.n_atoms:
        raise SystemExit(f"{pdb_file} is not the Calpha topology of the AdK crystals; {full}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mdllm_kit/data/adk"), help="output folder")
    parser.add_argument("--seed", type=int, default=2024,
                        help="seed of the closed training run; equilibrium uses seed+1, open_train seed+2")
    parser.add_argument("--save-every", type=int, default=250, help="steps between frames (dt = 0.02 ps)")
    parser.add_argument("--train-frames", type=int, default=2400, help="frames of closed_train")
    parser.add_argument("--open-train-frames", type=int, default=None,
                        help="frames of open_train (default: --train-frames)")
    parser.add_argument("--equilibrium-frames", type=int, default=4800)
    parser.add_argument("--equilibrium-offset", type=float, default=MODEL.mixing_offset, help="dV, kJ/mol")
    parser.add_argument("--min-transitions", type=int, default=5)
    parser.add_argument("--runs", nargs="+", choices=RUN_NAMES, default=list(DEFAULT_RUNS), metavar="NAME",
                        help=f"runs to simulate and write, of {', '.join(RUN_NAMES)} "
                             f"(default: {' '.join(DEFAULT_RUNS)}); the files of the others stay as they are "
                             "and their metadata is kept")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2, 3),
                        help="simulations run at once (at most one per run)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads per simulation")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder to keep raw frames of each run and reuse them when rerun with identical settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t_start = time.time()
    command = "python scripts/make_adk_cg.py " + " ".join(sys.argv[1:] if argv is None else argv)
    selected = [name for name in RUN_NAMES if name in args.runs]
    open_frames = args.train_frames if args.open_train_frames is None else args.open_train_frames

    refs = datasets.adk_references()
    ca = {k: t.atom_slice(t.topology.select("name CA")) for k, t in refs.items()}
    d = datasets.closed_open_rmsd()
    topology = ca["closed"]
    topology.unitcell_vectors = None
    eq_model = replace(MODEL, mixing_offset=args.equilibrium_offset)
    time_per_frame = args.save_every * SIM.timestep
    shared = {
        "simulation": SIM.to_dict(),
        "save_every_steps": args.save_every,
        "time_per_frame_ps": time_per_frame,
        "seed": args.seed,
        "platform": {"name": "CPU", "threads": args.threads, "deterministic_forces": True,
                     "openmm_version": openmm.__version__, "machine": platform.machine()},
    }
    meta_file = args.out / "adk_cg_metadata.json"
    kept = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    kept["runs"] = {name: entry for name, entry in kept.get("runs", {}).items() if name not in selected}
    if kept["runs"]:
        every = [name for name in RUN_NAMES if name in selected or name in kept["runs"]]
        _check_kept(args.out, kept, " ".join(every), shared, topology)
    else:
        kept = {}

    common = {"ca_a": ca["closed"].xyz[0], "ca_b": ca["open"].xyz[0],
              "sim": SIM.to_dict(), "save_every": args.save_every, "threads": args.threads,
              "cache": None if args.cache is None else str(args.cache)}
    closed_start = {"start": ca["closed"].xyz[0], "start_name": "closed crystal (1AKE)"}
    open_start = {"start": ca["open"].xyz[0], "start_name": "open crystal (4AKE)"}
    all_jobs = {
        "equilibrium": {**common, **closed_start, "name": "equilibrium", "model": eq_model.to_dict(),
                        "seed": args.seed + 1, "n_frames": args.equilibrium_frames},
        "closed_train": {**common, **closed_start, "name": "closed_train",
                         "model": replace(MODEL, mixing_offset=TRAIN_OFFSET).to_dict(),
                         "seed": args.seed, "n_frames": args.train_frames},
        "open_train": {**common, **open_start, "name": "open_train",
                       "model": replace(MODEL, mixing_offset=OPEN_TRAIN_OFFSET).to_dict(),
                       "wall": OPEN_TRAIN_WALL.to_dict(), "seed": args.seed + 2, "n_frames": open_frames},
    }
    jobs = [all_jobs[name] for name in selected]
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(jobs))) as pool:
        results = dict(zip((j["name"] for j in jobs), pool.map(_run, jobs)))

    runs: dict[str, Any] = {}
    pending: dict[str, str] = {}  # run name -> temporary xtc in the output folder
    failures: list[str] = []
    args.out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        name = job["name"]
        xyz, tm, wall = results[name]
        # Analyse what is shipped: the xtc stores coordinates to 0.001 nm.
        fd, tmp = tempfile.mkstemp(prefix=f".adk_cg_{name}.", suffix=".xtc", dir=args.out)
        os.close(fd)
        pending[name] = tmp
        md.Trajectory(xyz, topology.topology, time=tm).save_xtc(tmp)
        traj = md.load_xtc(tmp, top=topology.topology)
        stats = _analyse(traj, time_per_frame, d)
        stats.update(seed=job["seed"], mixing_offset_kj_mol=job["model"]["mixing_offset"],
                     start=job["start_name"], wall_time_s=round(wall, 1))
        if "wall" in job:
            r_closed, r_open = datasets.adk_cg_rmsd(traj)
            ref = r_closed if job["wall"]["reference"] == "A" else r_open
            stats["rmsd_wall"] = _wall_record(job["wall"], ref)
        failures += _check_run(name, stats, args.min_transitions)
        stats["command"] = command
        runs[name] = stats
        logger.info("%s: %s", name, json.dumps(stats))
    if failures:
        for tmp in pending.values():
            os.unlink(tmp)
        logger.error("checks failed, nothing written: %s", "; ".join(failures))
        return 1

    # Runs not regenerated keep their entries; those from before per-run commands
    # were recorded were all made by the file's top-level command.
    kept_runs = {name: {**entry, "command": entry.get("command", kept.get("command"))}
                 for name, entry in kept.get("runs", {}).items()}
    all_runs = {**kept_runs, **runs}
    order = [name for name in RUN_NAMES if name in all_runs] + sorted(set(all_runs) - set(RUN_NAMES))
    seeds = {**kept.get("seeds", {}), **{job["name"]: job["seed"] for job in jobs}}
    model = eq_model.to_dict() if "equilibrium" in runs or not kept else kept["model"]
    _, model_info = cgmodel.build_dual_basin_system(ca["closed"].xyz[0], ca["open"].xyz[0], eq_model)
    metadata = {
        "description": "Calpha dual-basin structure-based (Go) model of E. coli adenylate kinase "
                       "(state A = closed 1AKE, state B = open 4AKE), Okazaki mixing; "
                       "Langevin dynamics with OpenMM (CPU platform). Frames centred on their centroid.",
        "generator": "scripts/make_adk_cg.py",
        "command": command,
        "units": {"length": "nm", "time": "ps", "energy": "kJ/mol", "rmsd": "Angstrom"},
        "model": model,
        "model_terms": model_info.summary(),
        "closed_train_mixing_offset": TRAIN_OFFSET,
        "open_train_mixing_offset": OPEN_TRAIN_OFFSET,
        "simulation": shared["simulation"],
        "seed": args.seed,
        "seeds": {name: seeds[name] for name in order if name in seeds},
        "save_every_steps": args.save_every,
        "time_per_frame_ps": time_per_frame,
        "platform": shared["platform"],
        "reproducible": "bitwise for the same seed, thread count, OpenMM build and CPU",
        "state_definition": {
            "basin_rmsd_A": datasets.BASIN_RMSD_A,
            "closed": "Calpha RMSD to 1AKE < basin_rmsd_A",
            "open": "Calpha RMSD to 4AKE < basin_rmsd_A",
            "intermediate": "neither",
            "on_path": "rmsd_closed + rmsd_open <= closed_open_rmsd + on_path_margin",
            "on_path_margin_A": datasets.ON_PATH_MARGIN_A,
            "closed_open_rmsd_A": d,
            "transitions": "core to core: changes of the last visited basin (intermediate frames ignored)",
            "dwell": "time from entering a basin to first reaching the other one; complete visits only",
        },
        "runs": {name: all_runs[name] for name in order},
        "generation_wall_time_s": round(time.time() - t_start, 1),
    }
    if not kept:  # with runs kept, their topology file stays (checked in _check_kept)
        _atomic_write(args.out / "adk_cg_ca.pdb", lambda p: topology.save_pdb(p))
    for name, tmp in pending.items():
        _atomic_write(args.out / f"adk_cg_{name}.xtc", lambda p, src=tmp: os.replace(src, p))
    _atomic_write(args.out / "adk_cg_metadata.json",
                  lambda p: Path(p).write_text(json.dumps(metadata, indent=2) + "\n"))
    logger.info("wrote %s (%s) in %.0f s", args.out, ", ".join(selected), time.time() - t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
