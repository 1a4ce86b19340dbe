import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import validity_report
from synthetic_chains import calpha_topology, helix_trace, trajectory

N_RES = 16


def test_ideal_helix_is_valid():
    rep = validity_report(trajectory(helix_trace(N_RES)[None], calpha_topology(N_RES)))
    assert rep["ca_valid_fraction"] == 1.0
    assert rep["ca_break_rate"] == 0.0 and rep["ca_clash_rate"] == 0.0
    assert rep["cn_break_rate"] is None  # Calpha only
    assert rep["n_ca_bonds"] == N_RES - 1
    assert rep["n_ca_pairs"] == N_RES * (N_RES - 1) // 2 - (N_RES - 1)


def test_stretched_bond_and_clash_are_flagged_in_their_frames():
    base = helix_trace(N_RES)
    stretched = base.copy()
    stretched[8:] += np.array([0.0, 0.0, 0.1])  # bond 7-8 becomes ~4.6 A
    clash = base.copy()
    clash[12] = clash[2] + np.array([0.2, 0.0, 0.0])  # residues 2 and 12 put 2 A apart
    rep = validity_report(trajectory(np.stack([base, stretched, clash]), calpha_topology(N_RES)))
    per = rep["per_frame"]
    # moving residue 12 onto residue 2 also breaks its own two bonds
    np.testing.assert_array_equal(per["ca_breaks"], [0, 1, 2])
    assert per["ca_clashes"][0] == 0 and per["ca_clashes"][1] == 0 and per["ca_clashes"][2] >= 1
    np.testing.assert_array_equal(per["ca_valid"], [True, False, False])
    assert rep["ca_valid_fraction"] == pytest.approx(1 / 3)
    assert rep["frames_without_ca_break"] == pytest.approx(1 / 3)
    assert rep["frames_without_ca_clash"] == pytest.approx(2 / 3)
    assert rep["ca_break_rate"] == pytest.approx(3 / (3 * (N_RES - 1)))


def test_no_bond_is_counted_across_chains():
    base = helix_trace(N_RES)
    two = base.copy()
    two[N_RES // 2:] += np.array([3.0, 0.0, 0.0])  # second chain far away
    rep = validity_report(trajectory(two[None], calpha_topology(N_RES, n_chains=2)))
    assert rep["n_ca_bonds"] == N_RES - 2
    assert rep["ca_valid_fraction"] == 1.0


def test_crystal_structures_are_valid_and_a_broken_peptide_bond_is_found():
    refs = mk.datasets.adk_references()
    for ref in refs.values():
        rep = validity_report(ref)
        assert rep["ca_valid_fraction"] == 1.0  # the cis Phe86-Pro87 (2.98 A) is bonded, not a clash
        assert rep["cn_break_rate"] == 0.0 and rep["n_cn_bonds"] == 213
    closed = refs["closed"]
    xyz = closed.xyz.copy()
    residue = closed.topology.residue(100)
    for atom in residue.atoms:  # pull residue 100 out by 0.1 nm: its C-N bonds to 99 and 101 break
        xyz[0, atom.index] += np.array([0.1, 0.0, 0.0])
    rep = validity_report(md.Trajectory(xyz, closed.topology))
    assert rep["per_frame"]["cn_breaks"][0] == 2
    assert rep["frames_without_cn_break"] == 0.0


def test_chain_without_non_bonded_pairs_has_zero_clash_rate():
    rep = validity_report(trajectory(helix_trace(2)[None], calpha_topology(2)))
    assert rep["n_ca_pairs"] == 0
    assert rep["ca_clash_rate"] == 0.0 and rep["ca_valid_fraction"] == 1.0
