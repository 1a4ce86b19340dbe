"""Tests of the bundled AdK data (mdllm_kit.datasets) and its ground-truth states."""
from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from mdllm_kit import DatasetError, datasets


@pytest.fixture(scope="module")
def ca_refs() -> dict[str, md.Trajectory]:
    refs = datasets.adk_references()
    return {k: t.atom_slice(t.topology.select("name CA")) for k, t in refs.items()}


@pytest.fixture(scope="module")
def metadata() -> dict:
    return datasets.adk_cg_metadata()


@pytest.fixture(scope="module")
def runs() -> dict[str, md.Trajectory]:
    return {name: datasets.load_adk_cg(name) for name in datasets.ADK_CG_RUNS}


def test_references(ca_refs):
    refs = datasets.adk_references()
    assert set(refs) == {"closed", "open"}
    for traj in refs.values():
        assert traj.n_frames == 1 and traj.n_residues == 214
    assert 10 * md.rmsd(ca_refs["open"], ca_refs["closed"])[0] == pytest.approx(6.9, abs=0.05)
    assert datasets.closed_open_rmsd() == pytest.approx(6.9, abs=0.05)


def test_states_of_references(ca_refs):
    closed, open_ = ca_refs["closed"], ca_refs["open"]
    open_ = open_.superpose(closed)
    mid = md.Trajectory(0.5 * (closed.xyz + open_.xyz), closed.topology)
    both = md.join([closed, open_, mid])
    np.testing.assert_array_equal(datasets.adk_cg_states(both),
                                  [datasets.STATE_CLOSED, datasets.STATE_OPEN, datasets.STATE_INTERMEDIATE])
    r_c, r_o = datasets.adk_cg_rmsd(both)
    assert datasets.on_path(r_c, r_o).all()  # the straight interpolation is on the path
    # A heavy-atom trajectory gives the same answer as its Calpha atoms.
    np.testing.assert_array_equal(datasets.adk_cg_states(datasets.adk_references()["open"]), [datasets.STATE_OPEN])


def test_states_reject_wrong_protein(ca_refs):
    with pytest.raises(DatasetError, match="214"):
        datasets.adk_cg_states(ca_refs["closed"].atom_slice(np.arange(100)))


def test_on_path_definition():
    d = 6.9
    assert datasets.on_path(np.array([3.5]), np.array([3.4 + datasets.ON_PATH_MARGIN_A]), d=d)[0]
    assert not datasets.on_path(np.array([3.5]), np.array([3.5 + datasets.ON_PATH_MARGIN_A]), d=d)[0]


def test_core_transitions():
    c, o, i = datasets.STATE_CLOSED, datasets.STATE_OPEN, datasets.STATE_INTERMEDIATE
    states = np.array([c, c, i, o, o, i, o, i, c, c, c, i, c, o, o])
    kin = datasets.core_transitions(states, time_per_frame=2.0)
    assert kin["n_transitions"] == 3
    assert kin["n_closed_to_open"] == 2 and kin["n_open_to_closed"] == 1
    # Complete dwells: open from frame 3 to 8, closed from 8 to 13.
    assert kin["mean_dwell_ps"] == {"closed": 10.0, "open": 10.0}
    assert kin["n_dwells"] == {"closed": 1, "open": 1}
    assert datasets.core_transitions(np.array([c, i, c]))["n_transitions"] == 0


def test_unknown_run():
    with pytest.raises(DatasetError, match="unknown.*open_train"):
        datasets.load_adk_cg("nope")


def test_every_run_is_shipped_and_described(metadata):
    assert set(datasets.ADK_CG_RUNS) == {"closed_train", "open_train", "equilibrium"}
    assert set(metadata["runs"]) == set(datasets.ADK_CG_RUNS) == set(metadata["seeds"])
    for name in datasets.ADK_CG_RUNS:
        assert datasets.data_path("adk", f"adk_cg_{name}.xtc").stat().st_size > 0


def test_topology(runs, ca_refs):
    top = md.load_pdb(str(datasets.data_path("adk", "adk_cg_ca.pdb"))).topology
    for topology in [top] + [t.topology for t in runs.values()]:
        assert topology.n_atoms == topology.n_residues == 214 and topology.n_chains == 1
        assert {a.name for a in topology.atoms} == {"CA"}
        assert [r.name for r in topology.residues] == [r.name for r in ca_refs["closed"].topology.residues]


def test_time_per_frame(runs, metadata):
    dt = metadata["time_per_frame_ps"]
    assert 1.0 <= dt <= 50.0
    assert dt == pytest.approx(metadata["save_every_steps"] * metadata["simulation"]["timestep"])
    for name, traj in runs.items():
        np.testing.assert_allclose(np.diff(traj.time), dt, rtol=1e-4)
        assert traj.time[0] == pytest.approx(dt)
        assert metadata["runs"][name]["n_frames"] == traj.n_frames
        assert metadata["runs"][name]["time_per_frame_ps"] == dt


def test_closed_train(runs, metadata):
    traj = runs["closed_train"]
    assert traj.n_frames >= 2000
    r_c, r_o = datasets.adk_cg_rmsd(traj)
    assert r_o.min() >= datasets.BASIN_RMSD_A  # never leaves the closed basin
    states = datasets.adk_cg_states(traj)
    assert not (states == datasets.STATE_OPEN).any()
    # Mostly within 3 A of the closed crystal; the rest are hinge fluctuations
    # (NMP/LID partly opening) that stay far from the open state.
    assert np.mean(states == datasets.STATE_CLOSED) > 0.9
    assert metadata["runs"]["closed_train"]["rmsd_open_A"]["min"] == pytest.approx(r_o.min(), abs=1e-3)


def test_open_train(runs, metadata):
    traj = runs["open_train"]
    meta = metadata["runs"]["open_train"]
    assert traj.n_frames == meta["n_frames"] == runs["closed_train"].n_frames == 2400
    r_c, r_o = datasets.adk_cg_rmsd(traj)
    assert r_c.min() >= datasets.BASIN_RMSD_A  # never leaves the open basin
    states = datasets.adk_cg_states(traj)
    assert not (states == datasets.STATE_CLOSED).any()
    # Mostly within 3 A of the open crystal (89.5 %; the open basin is flatter than
    # the closed one, closed_train is 97 % closed, and partial closures stop at the wall).
    assert np.mean(states == datasets.STATE_OPEN) > 0.85
    # Not unfolded: every frame is in the open basin or on the path, except one
    # 20 ps over-opening (4 frames just beyond 3 A from open and further from
    # closed than the open crystal is), also in the run without the wall.
    off = ~(datasets.on_path(r_c, r_o) | (states == datasets.STATE_OPEN))
    assert off.sum() <= 4 and meta["fraction_admissible"] == pytest.approx(1 - off.mean())
    assert (r_c[off] > datasets.closed_open_rmsd()).all() and (r_o[off] < 3.5).all()
    # The wall at 4 A from closed (only this run has one) is barely entered.
    wall = meta["rmsd_wall"]
    assert wall["reference"].startswith("closed crystal") and wall["r0_nm"] == 0.4 and wall["k_kj_mol_nm2"] > 0
    assert r_c.min() > 10 * wall["r0_nm"] - 0.5
    assert wall["fraction_frames_inside_r0"] == pytest.approx(np.mean(r_c < 10 * wall["r0_nm"]))
    assert all("rmsd_wall" not in metadata["runs"][name] for name in ("closed_train", "equilibrium"))
    for i, name in enumerate(datasets.ADK_STATE_NAMES):
        assert meta["populations"][name] == pytest.approx(np.mean(states == i), abs=1e-6)
    assert meta["rmsd_closed_A"]["min"] == pytest.approx(r_c.min(), abs=1e-3)
    assert meta["rmsd_open_A"]["mean"] == pytest.approx(r_o.mean(), abs=1e-3)
    assert meta["criteria"] == {"rmsd_closed_min_A >= 3": True}
    assert meta["n_transitions"] == 0


def test_open_train_mirrors_closed_train(metadata):
    closed, open_ = metadata["runs"]["closed_train"], metadata["runs"]["open_train"]
    # Same model with the mixing offset mirrored (it is added to the open state's energy);
    # open_train also has an RMSD wall (test_open_train), which the offset alone needed.
    assert closed["mixing_offset_kj_mol"] > 0
    assert open_["mixing_offset_kj_mol"] == -closed["mixing_offset_kj_mol"] == metadata["open_train_mixing_offset"]
    assert open_["start"].startswith("open crystal") and closed["start"].startswith("closed crystal")
    assert metadata["seeds"] == {"equilibrium": metadata["seed"] + 1, "closed_train": metadata["seed"],
                                 "open_train": metadata["seed"] + 2}
    assert open_["seed"] == metadata["seeds"]["open_train"]
    for meta in metadata["runs"].values():
        assert meta["command"].startswith("python scripts/make_adk_cg.py")


def test_equilibrium(runs, metadata):
    traj = runs["equilibrium"]
    meta = metadata["runs"]["equilibrium"]
    r_c, r_o = datasets.adk_cg_rmsd(traj)
    in_basin = np.minimum(r_c, r_o) < datasets.BASIN_RMSD_A
    assert (in_basin | datasets.on_path(r_c, r_o)).all()  # no unfolding, no over-extension
    states = datasets.adk_cg_states(traj)
    kin = datasets.core_transitions(states, metadata["time_per_frame_ps"])
    assert kin["n_transitions"] >= 5
    assert kin["n_transitions"] == meta["n_transitions"]
    for i, name in enumerate(datasets.ADK_STATE_NAMES):
        assert np.mean(states == i) == pytest.approx(meta["populations"][name], abs=1e-6)
    assert min(meta["populations"]["closed"], meta["populations"]["open"]) > 0.05  # both states sampled
    for name in ("closed", "open"):
        assert meta["mean_dwell_ps"][name] == pytest.approx(kin["mean_dwell_ps"][name])


def test_metadata_records_parameters(metadata):
    for key in ("model", "simulation", "seed", "seeds", "time_per_frame_ps", "state_definition"):
        assert key in metadata
    assert metadata["state_definition"]["on_path_margin_A"] == datasets.ON_PATH_MARGIN_A
    assert metadata["state_definition"]["basin_rmsd_A"] == datasets.BASIN_RMSD_A


def test_shipped_size():
    data = Path(datasets.data_path("adk")).parent
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert total < 20e6
