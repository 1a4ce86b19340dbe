"""Tests of mdllm_kit.load_trajectory on real all-atom data (see conftest.allatom)."""
from __future__ import annotations

import logging
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.errors import TrajectoryError
from mdllm_kit.loading import (
    ChainBreak,
    LoadReport,
    TrajectoryFileNotFoundError,
    check_backbone,
    describe_trajectory,
    find_chain_breaks,
    missing_backbone_atoms,
)
from mdllm_kit.testing import AllAtomFixture, wrap_atoms

pytestmark = pytest.mark.filterwarnings("ignore:Warning. The 'netCDF4' Python package:UserWarning")

FORMATS = ("xtc", "dcd", "trr", "nc")
MAX_BOND_NM = 0.2  # longest protein bond (S-C) is 0.18 nm; xtc rounds to 0.001 nm


# --------------------------------------------------------------------------- helpers


def _raw(allatom: AllAtomFixture, ext: str = "dcd") -> md.Trajectory:
    """The full solvated trajectory exactly as written (wrapped)."""
    return md.load(str(allatom.trajectories[ext]), top=str(allatom.topology_pdb))


def _bond_lengths(xyz: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return np.linalg.norm(xyz[:, bonds[:, 0]] - xyz[:, bonds[:, 1]], axis=-1)


def _truth(allatom: AllAtomFixture) -> md.Trajectory:
    """Unwrapped protein coordinates from the simulation, as a trajectory."""
    protein = _raw(allatom).atom_slice(allatom.protein_atoms)
    return md.Trajectory(allatom.protein_xyz, protein.topology)


def _protein_files(allatom: AllAtomFixture, tmp_path: Path, traj: md.Trajectory | None = None) -> tuple[Path, Path]:
    """Write a protein-only trajectory (dcd) and its topology (pdb)."""
    if traj is None:
        traj = _raw(allatom).atom_slice(allatom.protein_atoms)
    top, dcd = tmp_path / "protein.pdb", tmp_path / "protein.dcd"
    traj[0].save_pdb(str(top))
    traj.save_dcd(str(dcd))
    return dcd, top


# --------------------------------------------------------------------------- real all-atom data


@pytest.mark.parametrize("top_kind", ["pdb", "gro"])
@pytest.mark.parametrize("ext", FORMATS)
def test_make_whole_rebuilds_split_protein(allatom: AllAtomFixture, ext: str, top_kind: str) -> None:
    top = allatom.topology_pdb if top_kind == "pdb" else allatom.topology_gro
    raw_protein = _raw(allatom, ext).xyz[:, allatom.protein_atoms]
    # precondition: the file really has the protein split across the cell
    assert _bond_lengths(raw_protein, allatom.protein_bonds).max() > 1.0

    traj = mk.load_trajectory(allatom.trajectories[ext], top=top, superpose=False)

    assert isinstance(traj, md.Trajectory)
    assert traj.n_frames == allatom.n_frames
    assert traj.n_atoms == allatom.protein_atoms.size
    lengths = _bond_lengths(traj.xyz, allatom.protein_bonds)
    assert lengths.max() < MAX_BOND_NM
    # every frame is the simulated (unwrapped) protein moved by one lattice vector
    shift = traj.xyz - allatom.protein_xyz
    assert np.abs(shift - shift[:, :1]).max() < 2e-3  # xtc precision
    cell = traj.unitcell_vectors[0].astype(float)
    frac = shift[:, 0] @ np.linalg.inv(cell)
    np.testing.assert_allclose(frac, np.round(frac), atol=2e-3)


def test_make_whole_everything_with_selection_none(allatom: AllAtomFixture) -> None:
    """With selection=None water and ions are kept, and every molecule is whole too."""
    raw = _raw(allatom)
    traj = mk.load_trajectory(allatom.trajectories["trr"], top=raw, selection=None, superpose=False)
    assert traj.n_atoms == allatom.n_atoms
    bonds = np.array([(a.index, b.index) for a, b in raw.topology.bonds if a.residue.name == "HOH"])
    assert len(bonds) == 2 * allatom.n_water
    assert _bond_lengths(raw.xyz, bonds).max() > 1.0  # split in the file
    assert _bond_lengths(traj.xyz, bonds).max() < 0.11  # O-H 0.096 nm
    assert _bond_lengths(traj.xyz, allatom.protein_bonds).max() < MAX_BOND_NM


def test_superposed_trajectory_is_the_simulated_protein(allatom: AllAtomFixture) -> None:
    traj = mk.load_trajectory(allatom.trajectories["xtc"], top=allatom.topology_pdb)
    truth = _truth(allatom)
    for frame in range(traj.n_frames):
        assert md.rmsd(traj[:], truth, frame=frame)[frame] < 2e-3  # whole protein, all atoms (copy: rmsd centers)
    # fitted on frame 0 by default: frame 0 stays where it was
    unfitted = mk.load_trajectory(allatom.trajectories["xtc"], top=allatom.topology_pdb, superpose=False)
    np.testing.assert_allclose(traj.xyz[0], unfitted.xyz[0], atol=1e-4)


def test_protein_selection_drops_water_and_ions(allatom: AllAtomFixture) -> None:
    traj, report = mk.load_trajectory(
        allatom.trajectories["xtc"], top=allatom.topology_pdb, return_report=True
    )
    names = {r.name for r in traj.topology.residues}
    assert names <= {"MET", "ARG", "ILE", "LEU", "VAL", "GLU", "TYR", "HIS", "GLN"}
    assert isinstance(report, LoadReport)
    assert report.n_atoms_file == allatom.n_atoms
    assert report.n_atoms == allatom.protein_atoms.size
    assert report.dropped_residues["HOH"] == allatom.n_water
    assert report.dropped_residues["NA"] + report.dropped_residues["CL"] == allatom.n_ions
    assert report.made_whole and report.superposed
    assert report.backbone_atoms == ("N", "CA", "C", "O")
    assert report.unknown_residues == ()
    assert report.chain_breaks == ()


def test_several_chains_stay_together(allatom: AllAtomFixture) -> None:
    traj, report = mk.load_trajectory(
        allatom.trajectories["dcd"], top=allatom.topology_pdb, superpose=False, return_report=True
    )
    top = traj.topology
    assert top.n_chains == 2
    assert [[r.resSeq for r in c.residues] for c in top.chains] == [list(range(1, 7)), list(range(168, 174))]
    assert report.chain_breaks == ()  # two chains, no gap inside either
    # the chains touch in the crystal; loading must not leave them a box apart
    a, b = (np.array([at.index for at in c.atoms]) for c in top.chains)
    pairs = np.array([(i, j) for i in a for j in b])
    loaded = md.compute_distances(traj, pairs, periodic=False).min(axis=1)
    expected = md.compute_distances(_truth(allatom), pairs, periodic=False).min(axis=1)
    np.testing.assert_allclose(loaded, expected, atol=1e-3)
    assert loaded.max() < 0.6


def test_gro_topology_reports_chains_as_break(allatom: AllAtomFixture, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.loading"):
        traj, report = mk.load_trajectory(
            allatom.trajectories["xtc"], top=allatom.topology_gro, return_report=True
        )
    assert traj.topology.n_chains == 1  # GRO has no chain IDs
    assert len(report.chain_breaks) == 1
    brk = report.chain_breaks[0]
    assert isinstance(brk, ChainBreak)
    assert (brk.before, brk.after, brk.atoms) == ("LEU6", "LEU168", ("C", "N"))
    assert brk.distance_nm > 0.3
    assert "chain break" in caplog.text and "LEU6-LEU168" in caplog.text and "GRO" in caplog.text


def test_missing_residue_is_a_chain_break(
    allatom: AllAtomFixture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    protein = _raw(allatom).atom_slice(allatom.protein_atoms)
    keep = protein.topology.select("not (chainid 0 and resSeq 3)")
    dcd, top = _protein_files(allatom, tmp_path, protein.atom_slice(keep))
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.loading"):
        traj, report = mk.load_trajectory(dcd, top=top, return_report=True)
    assert [(b.before, b.after) for b in report.chain_breaks] == [("A:ARG2", "A:ILE4")]
    assert "A:ARG2-A:ILE4" in caplog.text
    # the public helper finds the same break on any trajectory
    found = find_chain_breaks(traj)
    assert [(b.before, b.after, b.atoms) for b in found] == [("A:ARG2", "A:ILE4", ("C", "N"))]
    assert found[0].distance_nm == pytest.approx(report.chain_breaks[0].distance_nm, abs=1e-4)
    assert find_chain_breaks(_truth(allatom)) == []
    # residues are still whole, and the gap is as long as in the simulation
    intra = np.array([(a.index, b.index) for a, b in traj.topology.bonds if a.residue == b.residue])
    assert _bond_lengths(traj.xyz, intra).max() < MAX_BOND_NM
    assert report.chain_breaks[0].distance_nm < 1.0


def test_describe_trajectory(allatom: AllAtomFixture) -> None:
    import json

    traj = mk.load_trajectory(allatom.trajectories["xtc"], top=allatom.topology_pdb)
    summary = describe_trajectory(traj)
    json.dumps(summary)  # serializable
    assert summary["n_frames"] == allatom.n_frames
    assert summary["n_residues"] == 12
    assert summary["sequences"] == ["MRIILL", "LVEYHQ"]
    assert summary["calpha_only"] is False
    assert summary["chain_breaks"] == []
    assert summary["timestep_ps"] == pytest.approx(0.05, abs=1e-3)


def test_stride(allatom: AllAtomFixture) -> None:
    traj = mk.load_trajectory(allatom.trajectories["xtc"], top=allatom.topology_pdb, stride=2)
    assert traj.n_frames == len(range(0, allatom.n_frames, 2))
    np.testing.assert_allclose(traj.time, _raw(allatom, "xtc").time[::2])


def test_reference_frame_index_and_structure(allatom: AllAtomFixture, tmp_path: Path) -> None:
    path, top = allatom.trajectories["xtc"], allatom.topology_pdb
    unfitted = mk.load_trajectory(path, top=top, superpose=False)
    last = mk.load_trajectory(path, top=top, reference=-1)
    ca = last.topology.select("name CA")
    np.testing.assert_allclose(last.xyz[-1], unfitted.xyz[-1], atol=1e-4)  # the reference frame stays put
    assert not np.allclose(last.xyz[0], unfitted.xyz[0], atol=1e-2)
    # a structure of the same protein without hydrogens: fitted on its CA atoms
    ref = _truth(allatom)[2]
    heavy = ref.atom_slice(ref.topology.select("not element H"))
    heavy.xyz += 3.0
    ref_file = tmp_path / "ref.pdb"
    heavy.save_pdb(str(ref_file))
    for reference in (heavy, ref_file):
        traj = mk.load_trajectory(path, top=top, reference=reference)
        fitted = traj.xyz[2, ca]
        np.testing.assert_allclose(fitted, heavy.xyz[0, heavy.topology.select("name CA")], atol=3e-3)


def test_no_superpose_no_whole_returns_file_coordinates(allatom: AllAtomFixture) -> None:
    traj = mk.load_trajectory(
        allatom.trajectories["dcd"], top=allatom.topology_pdb, make_whole=False, superpose=False
    )
    np.testing.assert_array_equal(traj.xyz, _raw(allatom).xyz[:, allatom.protein_atoms])


# --------------------------------------------------------------------------- residue names


RENAMES = ["HSD", "HSE", "HSP", "HID", "HIE", "HIP", "CYX", "ASH", "GLH", "LYN", "MSE", "NHIS", "XYZ"]


@pytest.mark.parametrize("source", ["gro", "topology"])
@pytest.mark.parametrize("name", RENAMES)
def test_nonstandard_residue_names(
    allatom: AllAtomFixture, tmp_path: Path, name: str, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    """CHARMM/Amber/PDB names for HIS172: kept, warned about if mdtraj does not know them."""
    from mdtraj.core.residue_names import _PROTEIN_RESIDUES

    gro = md.load(str(allatom.topology_gro))
    (his,) = [r for r in gro.topology.residues if r.resSeq == 172 and r.name == "HIS"]
    his.name = name
    if source == "gro":  # mdtraj's GRO and PDB readers rename HID/HIE/HSP/CYX/... to HIS/CYS
        top: Path | md.Topology = tmp_path / "renamed.gro"
        gro.save_gro(str(top))
    else:  # a topology object (or PSF/PRMTOP reader) keeps the name
        top = gro.topology
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.loading"):
        traj, report = mk.load_trajectory(allatom.trajectories["xtc"], top=top, return_report=True)
    assert traj.n_atoms == allatom.protein_atoms.size  # nothing dropped
    (loaded,) = [r.name for r in traj.topology.residues if r.resSeq == 172]
    assert loaded in {name, "HIS", "CYS"}
    assert _bond_lengths(traj.xyz, allatom.protein_bonds).max() < MAX_BOND_NM
    if loaded in _PROTEIN_RESIDUES:
        assert report.unknown_residues == ()
    else:
        assert report.unknown_residues == (f"{name}172",)
        assert f"{name}172" in caplog.text and "does not know" in caplog.text
    if source == "topology":
        assert loaded == name
        assert report.unknown_residues == (() if name in _PROTEIN_RESIDUES else (f"{name}172",))


@pytest.mark.parametrize("name", ["HSP", "HID", "CYX", "ASH", "XYZ"])
def test_nonstandard_residue_names_in_pdb(allatom: AllAtomFixture, tmp_path: Path, name: str) -> None:
    text = allatom.topology_pdb.read_text().replace("HIS B 172", f"{name} B 172")
    assert text.count(f"{name} B 172") > 10  # every atom of the residue renamed
    top = tmp_path / "renamed.pdb"
    top.write_text(text)
    traj = mk.load_trajectory(allatom.trajectories["xtc"], top=top)
    assert traj.n_atoms == allatom.protein_atoms.size


def test_unbonded_residue_with_backbone_names_is_dropped(
    allatom: AllAtomFixture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    protein = _truth(allatom)
    (gln,) = [r for r in protein.topology.residues if r.resSeq == 173]
    gln.name = "ZZZ"  # a free amino acid-like ligand: not bonded to HIS172
    moved = protein.topology.select("resSeq 173")
    protein.xyz[:, moved] += 2.0
    dcd, top = _protein_files(allatom, tmp_path, protein)
    with caplog.at_level(logging.INFO, logger="mdllm_kit.loading"):
        traj = mk.load_trajectory(dcd, top=top)
    assert "ZZZ" not in {r.name for r in traj.topology.residues}
    assert traj.n_residues == protein.n_residues - 1
    assert "not bonded into a chain" in caplog.text


# --------------------------------------------------------------------------- Calpha-only and heavy-atom data


def test_calpha_only_loads_and_is_made_whole(tmp_path: Path) -> None:
    closed = mk.datasets.adk_references()["closed"]
    ca = closed.atom_slice(closed.topology.select("name CA"))
    ca.xyz -= ca.xyz.mean(axis=1, keepdims=True)
    box = np.eye(3) * 4.0
    frames = md.Trajectory(np.repeat(ca.xyz, 3, axis=0), ca.topology)
    frames.xyz = wrap_atoms(frames.xyz, box)
    frames.unitcell_vectors = np.repeat(box[None], 3, axis=0).astype(np.float32)
    top, xtc = tmp_path / "ca.pdb", tmp_path / "ca.xtc"
    frames[0].save_pdb(str(top))
    frames.save_xtc(str(xtc))

    traj, report = mk.load_trajectory(xtc, top=top, return_report=True)
    assert report.backbone_atoms == ("CA",)
    assert report.made_whole
    steps = np.linalg.norm(np.diff(traj.xyz, axis=1), axis=-1)
    assert steps.max() < 0.42  # consecutive CA: 0.38 nm
    assert md.rmsd(traj, ca)[0] < 1e-3
    assert report.chain_breaks == ()

    with pytest.raises(TrajectoryError, match="missing backbone atoms"):
        mk.load_trajectory(xtc, top=top, require_backbone=("N", "CA", "C", "O"))


@pytest.mark.filterwarnings("ignore:Unlikely unit cell vectors:UserWarning")  # mdtraj, on the PDB
def test_unit_cell_too_small_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    closed = mk.datasets.adk_references()["closed"]
    closed.unitcell_vectors = (np.eye(3) * 1.0)[None].astype(np.float32)  # placeholder cell, 1 nm
    top, xtc = tmp_path / "adk.pdb", tmp_path / "adk.xtc"
    closed.save_pdb(str(top))
    closed.save_xtc(str(xtc))
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.loading"):
        traj, report = mk.load_trajectory(xtc, top=top, return_report=True)
    assert not report.made_whole
    assert "too small to be a simulation cell" in caplog.text
    np.testing.assert_allclose(traj.xyz, closed.xyz, atol=1e-3)  # superposed on itself: unchanged


def test_heavy_atom_reference_structures() -> None:
    refs = mk.datasets.adk_references()
    closed = refs["closed"]
    check_backbone(closed.topology)  # complete
    path = mk.datasets.data_path("adk", "adk_closed.pdb")
    traj = mk.load_trajectory(path, reference=refs["open"])
    assert traj.n_atoms == closed.n_atoms
    ca = traj.topology.select("name CA")
    expected = md.rmsd(closed, refs["open"], atom_indices=ca)[0]
    assert 0.5 < expected < 0.9  # closed vs open AdK: 0.69 nm
    fitted = np.sqrt(((traj.xyz[0, ca] - refs["open"].xyz[0, ca]) ** 2).sum(-1).mean())
    assert fitted == pytest.approx(expected, abs=1e-4)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("ext", FORMATS)
def test_error_coordinate_only_format_needs_topology(allatom: AllAtomFixture, ext: str) -> None:
    with pytest.raises(TrajectoryError, match=rf"{ext} files hold coordinates only.*pass top="):
        mk.load_trajectory(allatom.trajectories[ext])


@pytest.mark.parametrize("ext", ["xtc", "dcd", "trr", "nc"])
def test_error_atom_count_mismatch(allatom: AllAtomFixture, tmp_path: Path, ext: str) -> None:
    protein_top = tmp_path / "protein.pdb"
    _truth(allatom)[0].save_pdb(str(protein_top))
    n_protein = allatom.protein_atoms.size
    with pytest.raises(
        TrajectoryError, match=rf"topology has {n_protein} atoms but trajectory has {allatom.n_atoms}: .*same system"
    ):
        mk.load_trajectory(allatom.trajectories[ext], top=protein_top)


def test_error_atom_count_mismatch_structure_file(allatom: AllAtomFixture, tmp_path: Path) -> None:
    protein_top = tmp_path / "protein.pdb"
    _truth(allatom)[0].save_pdb(str(protein_top))
    with pytest.raises(TrajectoryError, match=r"topology has \d+ atoms but trajectory has"):
        mk.load_trajectory(allatom.topology_pdb, top=protein_top)


def test_error_no_protein_atoms(allatom: AllAtomFixture, tmp_path: Path) -> None:
    raw = _raw(allatom)
    solvent = raw.atom_slice(raw.topology.select("not protein"))
    path = tmp_path / "solvent.pdb"
    solvent[0].save_pdb(str(path))
    with pytest.raises(TrajectoryError, match=r"no protein atoms: selection 'protein' matched none.*HOH"):
        mk.load_trajectory(path)
    with pytest.raises(TrajectoryError, match=r"no atoms selected: selection 'resname XYZ'"):
        mk.load_trajectory(allatom.topology_pdb, selection="resname XYZ")


def test_error_missing_backbone_atoms(tmp_path: Path) -> None:
    closed = mk.datasets.adk_references()["closed"]
    top = closed.topology
    drop = set(top.select("(resSeq 8 and name C) or (resSeq 10 and name N O)"))
    assert [top.residue(7).name, top.residue(9).name] == ["ALA", "GLY"]
    broken = closed.atom_slice([i for i in range(closed.n_atoms) if i not in drop])
    path = tmp_path / "broken.pdb"
    broken.save_pdb(str(path))
    assert missing_backbone_atoms(broken.topology) == {"ALA8": ("C",), "GLY10": ("N", "O")}
    expected = r"residues missing backbone atoms: ALA8 \(C\), GLY10 \(N, O\).*require_backbone=None"
    with pytest.raises(TrajectoryError, match=expected):
        mk.load_trajectory(path)
    assert mk.load_trajectory(path, require_backbone=None).n_atoms == broken.n_atoms


@pytest.mark.parametrize(("ext", "value", "word"), [("dcd", np.nan, "NaN"), ("trr", np.inf, "inf")])
def test_error_nonfinite_coordinates(
    allatom: AllAtomFixture, tmp_path: Path, ext: str, value: float, word: str
) -> None:
    protein = _truth(allatom)
    protein.xyz[3, 5] = value
    top, path = tmp_path / "p.pdb", tmp_path / f"p.{ext}"
    protein[0].save_pdb(str(top))
    protein.save(str(path))
    with pytest.raises(TrajectoryError, match=rf"frame 3 has {word} coordinates.*blew up"):
        mk.load_trajectory(path, top=top)
    with pytest.raises(TrajectoryError, match=rf"frame 3 has {word}"):  # numbered as in the file
        mk.load_trajectory(path, top=top, stride=3)
    assert mk.load_trajectory(path, top=top, stride=2).n_frames == 3  # frame 3 not read


@pytest.mark.parametrize("name", ["empty.xtc", "empty.pdb"])
def test_error_empty_file(allatom: AllAtomFixture, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.touch()
    with pytest.raises(TrajectoryError, match=r"is empty \(0 bytes\)"):
        mk.load_trajectory(path, top=allatom.topology_pdb)


def test_error_truncated_file(allatom: AllAtomFixture, tmp_path: Path) -> None:
    path = tmp_path / "garbage.dcd"
    path.write_bytes(b"\x00not a dcd file" * 10)
    with pytest.raises(TrajectoryError, match="could not read"):
        mk.load_trajectory(path, top=allatom.topology_pdb)


def test_error_header_only_dcd(tmp_path: Path) -> None:
    closed = mk.datasets.adk_references()["closed"]
    path = tmp_path / "zero.dcd"
    closed[:0].save_dcd(str(path))  # a header and no frames
    with pytest.raises(TrajectoryError, match="could not read.*complete"):
        mk.load_trajectory(path, top=mk.datasets.data_path("adk", "adk_closed.pdb"))


def test_error_missing_files(allatom: AllAtomFixture, tmp_path: Path) -> None:
    with pytest.raises(TrajectoryFileNotFoundError, match="does not exist"):
        mk.load_trajectory(tmp_path / "nope.xtc", top=allatom.topology_pdb)
    with pytest.raises(FileNotFoundError, match="topology file"):
        mk.load_trajectory(allatom.trajectories["xtc"], top=tmp_path / "nope.pdb")


def test_error_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "run.abc"
    path.write_text("x")
    with pytest.raises(TrajectoryError, match=r"unknown trajectory format '\.abc'.*xtc"):
        mk.load_trajectory(path)


def test_error_bad_options(allatom: AllAtomFixture) -> None:
    path, top = allatom.trajectories["xtc"], allatom.topology_pdb
    with pytest.raises(TrajectoryError, match="not a valid mdtraj selection"):
        mk.load_trajectory(path, top=top, selection="protein and and")
    with pytest.raises(TrajectoryError, match="superpose_selection='name ZZ' matches no atoms"):
        mk.load_trajectory(path, top=top, superpose_selection="name ZZ")
    with pytest.raises(TrajectoryError, match=r"reference=99 is not a frame"):
        mk.load_trajectory(path, top=top, reference=99)
    with pytest.raises(TrajectoryError, match=r"reference has 214 atoms matching 'name CA' but the trajectory has 12"):
        mk.load_trajectory(path, top=top, reference=mk.datasets.adk_references()["closed"])
    with pytest.raises(TrajectoryError, match="stride must be a positive integer"):
        mk.load_trajectory(path, top=top, stride=0)
    with pytest.raises(TrajectoryError, match="not a topology format"):
        mk.load_trajectory(path, top=allatom.trajectories["dcd"])


def test_errors_are_value_errors() -> None:
    assert issubclass(TrajectoryError, ValueError)
    assert issubclass(TrajectoryFileNotFoundError, TrajectoryError)
