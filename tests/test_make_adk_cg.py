"""Tests of scripts/make_adk_cg.py, the generator of the bundled AdK CG runs.

The full runs take minutes; these simulate a few frames of ``open_train``
(2,500 steps, about a second on one core) into a copy of the shipped data
folder, to check that ``--runs`` regenerates only the named run and merges the
metadata instead of replacing it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mdtraj as md
import pytest

from mdllm_kit import cgmodel, datasets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_adk_cg.py"
N_FRAMES = 10
NEW_XTC = "adk_cg_open_train.xtc"


def _generator():
    spec = importlib.util.spec_from_file_location("make_adk_cg", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    out = tmp_path / "adk"
    shutil.copytree(datasets.data_path("adk"), out)
    return out


@pytest.mark.slow
def test_runs_option_regenerates_only_the_named_run(data_copy):
    before = _files(data_copy)
    old_meta = json.loads(before["adk_cg_metadata.json"])
    result = _run_script("--out", str(data_copy), "--runs", "open_train", "--jobs", "1",
                         "--open-train-frames", str(N_FRAMES))
    assert result.returncode == 0, result.stderr[-2000:]
    after = _files(data_copy)
    assert set(after) == set(before) | {NEW_XTC}  # no temporary files left behind
    assert {name for name in after if after[name] != before.get(name)} == {NEW_XTC, "adk_cg_metadata.json"}

    meta = json.loads(after["adk_cg_metadata.json"])
    kept = [name for name in old_meta["runs"] if name != "open_train"]
    assert kept and list(meta["runs"]) == [*kept, "open_train"]
    for name in kept:  # entries kept as they were, plus the command that made them
        old = old_meta["runs"][name]
        assert meta["runs"][name] == {**old, "command": old.get("command", old_meta["command"])}
        assert meta["seeds"][name] == old_meta["seeds"][name]
    assert meta["model"] == old_meta["model"] and meta["simulation"] == old_meta["simulation"]
    new = meta["runs"]["open_train"]
    assert new["n_frames"] == N_FRAMES and new["seed"] == meta["seeds"]["open_train"] == meta["seed"] + 2
    assert new["command"] == meta["command"] and "--runs open_train" in new["command"]
    assert new["start"] == "open crystal (4AKE)" and new["mixing_offset_kj_mol"] == meta["open_train_mixing_offset"]
    assert new["criteria"] == {"rmsd_closed_min_A >= 3": True}
    traj = md.load(str(data_copy / NEW_XTC), top=str(data_copy / "adk_cg_ca.pdb"))
    assert traj.n_frames == N_FRAMES
    r_closed, r_open = datasets.adk_cg_rmsd(traj)
    assert r_closed.min() == pytest.approx(new["rmsd_closed_A"]["min"], abs=1e-3)
    assert r_open.max() < datasets.BASIN_RMSD_A  # 50 ps after leaving the open crystal


@pytest.mark.slow
def test_runs_option_refuses_to_merge_other_settings(data_copy):
    before = _files(data_copy)
    result = _run_script("--out", str(data_copy), "--runs", "open_train", "--jobs", "1",
                         "--open-train-frames", str(N_FRAMES), "--save-every", "100")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "save_every_steps = 250" in message and "--runs equilibrium closed_train open_train" in message
    assert _files(data_copy) == before


@pytest.mark.slow
def test_runs_into_an_empty_folder_writes_a_complete_set(tmp_path):
    result = _run_script("--out", str(tmp_path), "--runs", "open_train", "--jobs", "1",
                         "--open-train-frames", str(N_FRAMES))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adk_cg_ca.pdb", "adk_cg_metadata.json", NEW_XTC]
    meta = json.loads((tmp_path / "adk_cg_metadata.json").read_text())
    assert list(meta["runs"]) == ["open_train"] and list(meta["seeds"]) == ["open_train"]


def test_training_runs_must_stay_out_of_the_other_basin():
    gen = _generator()
    inside = {"rmsd_closed_A": {"min": datasets.BASIN_RMSD_A - 0.5}, "rmsd_open_A": {"min": 6.0}}
    failures = gen._check_run("open_train", inside, min_transitions=5)
    assert inside["criteria"] == {"rmsd_closed_min_A >= 3": False}
    assert failures == ["open_train: min RMSD to closed 2.50 A < 3 A"]
    assert gen._check_run("closed_train", inside, min_transitions=5) == []  # 6 A from open: fine
    assert inside["criteria"] == {"rmsd_open_min_A >= 3": True}


def test_offsets_favour_the_state_of_their_run():
    gen = _generator()
    assert set(gen.DEFAULT_RUNS) == set(datasets.ADK_CG_RUNS)  # the default makes the shipped runs
    refs = datasets.adk_references()
    ca = {k: t.atom_slice(t.topology.select("name CA")).xyz[0] for k, t in refs.items()}
    gap = {}  # E(open crystal) - E(closed crystal), kJ/mol
    for name, offset in (("closed_train", gen.TRAIN_OFFSET), ("open_train", gen.OPEN_TRAIN_OFFSET)):
        system, _ = cgmodel.build_dual_basin_system(ca["closed"], ca["open"],
                                                    replace(gen.MODEL, mixing_offset=offset))
        context = cgmodel.make_context(system, ca["closed"], gen.SIM)
        gap[name] = cgmodel.potential_energy(context, ca["open"]) - cgmodel.potential_energy(context, ca["closed"])
    assert gen.OPEN_TRAIN_OFFSET == -gen.TRAIN_OFFSET
    assert gap["closed_train"] > 40 and gap["open_train"] < -30
    # Not a mirror image in energy: the open basin gains less (see the script's docstring).
    assert -gap["open_train"] < gap["closed_train"] - 10


class _Submitted(Exception):
    pass


def _submitted_jobs(gen, tmp_path: Path) -> dict[str, dict]:
    """The jobs main() submits for every run, captured instead of simulated."""
    jobs = {}

    class Pool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, submitted):
            jobs.update((job["name"], job) for job in submitted)
            raise _Submitted

    gen.ProcessPoolExecutor = Pool
    with pytest.raises(_Submitted):
        gen.main(["--out", str(tmp_path / "out"), "--runs", *gen.RUN_NAMES])
    return jobs


def test_only_open_train_has_the_wall(tmp_path):
    gen = _generator()
    assert gen.OPEN_TRAIN_WALL == cgmodel.RMSDWall(reference="A", r0=0.4, k=gen.OPEN_TRAIN_WALL.k)
    # Crossing to 3 A from closed costs >> kT at the run's temperature (100 kJ/mol vs 0.5).
    kt = 0.0083144626 * gen.SIM.temperature
    assert gen.OPEN_TRAIN_WALL.energy(datasets.BASIN_RMSD_A / 10) > 100 * kt
    jobs = _submitted_jobs(gen, tmp_path)
    assert jobs["open_train"]["wall"] == gen.OPEN_TRAIN_WALL.to_dict()
    assert "wall" not in jobs["closed_train"] and "wall" not in jobs["equilibrium"]
    # The runs without a wall have the cache keys (job specs) they had before walls existed.
    assert gen._job_key(jobs["closed_train"]) == "4b834df767319723"
    assert gen._job_key(jobs["equilibrium"]) == "c31d346846218a83"
