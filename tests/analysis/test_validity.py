import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import CA_BREAK_NM, validity_report
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
    frames = []
    for shift_nm in (0.1, 0.2):  # pull residue 100 out along x: its C-N bonds to 99 and 101 stretch
        xyz = closed.xyz[0].copy()
        for atom in closed.topology.residue(100).atoms:
            xyz[atom.index] += np.array([shift_nm, 0.0, 0.0])
        frames.append(xyz)
    rep = validity_report(md.Trajectory(np.stack(frames), closed.topology))
    # 0.1 nm: one bond stretched to 1.85 A, not broken (still < 2 A); 0.2 nm: both bonds beyond 2 A
    np.testing.assert_array_equal(rep["per_frame"]["cn_breaks"], [0, 2])
    assert rep["frames_without_cn_break"] == 0.5
    assert rep["cn_bond_length_A"]["max"] > 2.5 and rep["cn_bond_length_A"]["p99"] < 1.4
    assert rep["thresholds_A"]["cn_break"] == pytest.approx(2.0)


@pytest.fixture(scope="module")
def all_atom_md():
    """Real all-atom MD of the whole closed AdK (Amber14, 300 K, vacuum): 10 frames, 100 fs apart."""
    from mdllm_kit.testing import simulate_in_vacuum

    return simulate_in_vacuum("closed", n_frames=10, steps_per_frame=50)


@pytest.mark.slow
def test_real_all_atom_md_frames_are_valid(all_atom_md):
    rep = validity_report(all_atom_md)
    assert rep["n_cn_bonds"] == 213 and rep["n_frames"] == 10
    assert rep["ca_valid_fraction"] == 1.0 and rep["ca_break_rate"] == 0.0 and rep["ca_clash_rate"] == 0.0
    assert rep["frames_without_cn_break"] == 1.0 and rep["cn_break_rate"] == 0.0
    # thermal bond lengths: 1.33 A peptide bonds, 3.8 A Calpha steps, far from the break thresholds
    assert 1.32 < rep["cn_bond_length_A"]["mean"] < 1.36 and rep["cn_bond_length_A"]["max"] < 1.6
    assert 3.75 < rep["ca_bond_length_A"]["mean"] < 3.9 and rep["ca_bond_length_A"]["max"] < 4.1
    # the crystal-structure criterion (1.4 A) would call real MD frames broken
    assert validity_report(all_atom_md, cn_break_nm=0.14)["frames_without_cn_break"] < 1.0


def test_bundled_md_runs_are_valid():
    for name in mk.datasets.ADK_CG_RUNS:
        rep = validity_report(mk.datasets.load_adk_cg(name)[::20])
        assert rep["ca_valid_fraction"] == 1.0, name
        assert rep["ca_bond_length_A"]["max"] < CA_BREAK_NM * 10


def test_chain_without_non_bonded_pairs_has_zero_clash_rate():
    rep = validity_report(trajectory(helix_trace(2)[None], calpha_topology(2)))
    assert rep["n_ca_pairs"] == 0
    assert rep["ca_clash_rate"] == 0.0 and rep["ca_valid_fraction"] == 1.0
