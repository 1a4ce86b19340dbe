"""Make the bundled Calpha trajectories of the dual-basin AdK Go model.

Builds the dual-basin Calpha structure-based model of adenylate kinase from
the shipped closed (1AKE) and open (4AKE) reference structures
(:func:`mdllm_kit.datasets.adk_references`, model in :mod:`mdllm_kit.cgmodel`),
runs two Langevin simulations on the OpenMM CPU platform and writes into the
output folder

* ``adk_cg_ca.pdb``: topology, 214 Calpha beads named CA with real residue
  names, one chain, at the closed crystal coordinates;
* ``adk_cg_closed_train.xtc``: a run with the open basin switched off
  (``dV`` strongly favouring closed), started from the closed crystal;
  every frame must be >= 3 A Calpha RMSD from the open crystal;
* ``adk_cg_equilibrium.xtc``: a run with balanced basins started from the
  closed crystal; it must switch closed<->open at least
  ``--min-transitions`` times and every frame must lie within 3 A of a
  crystal structure or on the path between them
  (:func:`mdllm_kit.datasets.on_path`);
* ``adk_cg_metadata.json``: all parameters, seeds, time per frame and the
  measured populations, transitions, dwell times and RMSD checks.

Frames are centred on their centroid; xtc time is in ps. If a check fails
nothing is written and the script exits with status 1. Files are written
atomically (temporary file in the output folder, then ``os.replace``).

Reproducibility: the CPU platform with ``DeterministicForces`` and a fixed
thread count gives bitwise-identical trajectories for the same seed, so with
the defaults the command below regenerates the shipped files exactly (given
the same OpenMM build and CPU instruction set).

Usage (from the repository root; about 12 min with the two runs in parallel on
two busy CPU cores, ~1800 steps/s each; add ``--cache DIR`` to keep the raw
frames so that re-running with unchanged settings skips the simulations)::

    .venv/bin/python scripts/make_adk_cg.py --out mdllm_kit/data/adk
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

#: Model parameters of the equilibrium run (the train run only changes mixing_offset).
MODEL = cgmodel.DualBasinParams(
    specific_contact_scale=0.25, specific_backbone_scale=1.0, mixing_coupling=35.0, mixing_offset=-5.0,
)
#: Langevin settings of both runs.
SIM = cgmodel.SimulationParams(temperature=60.0, friction=0.1, timestep=0.02)
#: dV of the closed-only training run, kJ/mol (strongly favours closed).
TRAIN_OFFSET = 60.0


def _atomic_write(path: Path, write) -> None:  # noqa: ANN001 - write(tmp_path)
    with atomic_path(path) as tmp:
        write(str(tmp))


def _job_key(job: dict[str, Any]) -> str:
    spec = {k: v for k, v in job.items() if k not in ("ca_a", "ca_b", "start", "cache")}
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
    system, _ = cgmodel.build_dual_basin_system(job["ca_a"], job["ca_b"], params)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mdllm_kit/data/adk"), help="output folder")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the training run; the equilibrium run uses seed+1")
    parser.add_argument("--save-every", type=int, default=250, help="steps between frames (dt = 0.02 ps)")
    parser.add_argument("--train-frames", type=int, default=2400)
    parser.add_argument("--equilibrium-frames", type=int, default=4800)
    parser.add_argument("--equilibrium-offset", type=float, default=MODEL.mixing_offset, help="dV, kJ/mol")
    parser.add_argument("--min-transitions", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2), help="simulations run at once")
    parser.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads per simulation")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder to keep raw frames of each run and reuse them when rerun with identical settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t_start = time.time()

    refs = datasets.adk_references()
    ca = {k: t.atom_slice(t.topology.select("name CA")) for k, t in refs.items()}
    d = datasets.closed_open_rmsd()
    topology = ca["closed"]
    topology.unitcell_vectors = None
    eq_model = replace(MODEL, mixing_offset=args.equilibrium_offset)
    train_model = replace(MODEL, mixing_offset=TRAIN_OFFSET)
    time_per_frame = args.save_every * SIM.timestep
    common = {"ca_a": ca["closed"].xyz[0], "ca_b": ca["open"].xyz[0], "start": ca["closed"].xyz[0],
              "sim": SIM.to_dict(), "save_every": args.save_every, "threads": args.threads,
              "cache": None if args.cache is None else str(args.cache)}
    jobs = [
        {**common, "name": "equilibrium", "model": eq_model.to_dict(), "seed": args.seed + 1,
         "n_frames": args.equilibrium_frames},
        {**common, "name": "closed_train", "model": train_model.to_dict(), "seed": args.seed,
         "n_frames": args.train_frames},
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
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
                     start="closed crystal (1AKE)", wall_time_s=round(wall, 1))
        if name == "closed_train":
            ok = stats["rmsd_open_A"]["min"] >= datasets.BASIN_RMSD_A
            stats["criteria"] = {"rmsd_open_min_A >= 3": ok}
            if not ok:
                failures.append(f"closed_train: min RMSD to open {stats['rmsd_open_A']['min']:.2f} A < 3 A")
        else:
            ok_adm = stats["fraction_admissible"] == 1.0
            ok_tr = stats["n_transitions"] >= args.min_transitions
            stats["criteria"] = {"every frame in a basin or on path": ok_adm,
                                 f"n_transitions >= {args.min_transitions}": ok_tr}
            if not ok_adm:
                failures.append(f"equilibrium: {1 - stats['fraction_admissible']:.4f} of frames off path")
            if not ok_tr:
                failures.append(f"equilibrium: {stats['n_transitions']} transitions < {args.min_transitions}")
        runs[name] = stats
        logger.info("%s: %s", name, json.dumps(stats))
    if failures:
        for tmp in pending.values():
            os.unlink(tmp)
        logger.error("checks failed, nothing written: %s", "; ".join(failures))
        return 1

    _, model_info = cgmodel.build_dual_basin_system(ca["closed"].xyz[0], ca["open"].xyz[0], eq_model)
    metadata = {
        "description": "Calpha dual-basin structure-based (Go) model of E. coli adenylate kinase "
                       "(state A = closed 1AKE, state B = open 4AKE), Okazaki mixing; "
                       "Langevin dynamics with OpenMM (CPU platform). Frames centred on their centroid.",
        "generator": "scripts/make_adk_cg.py",
        "command": "python scripts/make_adk_cg.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "units": {"length": "nm", "time": "ps", "energy": "kJ/mol", "rmsd": "Angstrom"},
        "model": eq_model.to_dict(),
        "model_terms": model_info.summary(),
        "closed_train_mixing_offset": TRAIN_OFFSET,
        "simulation": SIM.to_dict(),
        "seed": args.seed,
        "seeds": {name: job["seed"] for name, job in zip((j["name"] for j in jobs), jobs)},
        "save_every_steps": args.save_every,
        "time_per_frame_ps": time_per_frame,
        "platform": {"name": "CPU", "threads": args.threads, "deterministic_forces": True,
                     "openmm_version": openmm.__version__, "machine": platform.machine()},
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
        "runs": runs,
        "generation_wall_time_s": round(time.time() - t_start, 1),
    }
    _atomic_write(args.out / "adk_cg_ca.pdb", lambda p: topology.save_pdb(p))
    for name, tmp in pending.items():
        _atomic_write(args.out / f"adk_cg_{name}.xtc", lambda p, src=tmp: os.replace(src, p))
    _atomic_write(args.out / "adk_cg_metadata.json",
                  lambda p: Path(p).write_text(json.dumps(metadata, indent=2) + "\n"))
    logger.info("wrote %s in %.0f s", args.out, time.time() - t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
