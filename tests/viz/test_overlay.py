import re

import mdtraj as md
import numpy as np
import pytest

from mdllm_kit.errors import VisualizationError
from mdllm_kit.viz import per_residue_deviation, show_overlay
from mdllm_kit.viz.overlay import UNMATCHED_BFACTOR, UNMATCHED_COLOR


@pytest.fixture(scope="module")
def displaced(closed_ca):
    """The closed Calpha trace, rotated and moved, with residues 10-19 pushed 0.5 nm (5 A) along z."""
    xyz = closed_ca.xyz[0].copy()
    xyz[10:20, 2] += 0.5
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return md.Trajectory((xyz @ rot.T + 1.0)[None].astype(np.float32), closed_ca.topology)


def test_deviation_is_high_only_where_residues_moved(displaced, references):
    dev, superposed = per_residue_deviation(displaced, references["closed"])  # all-atom reference, CA matched
    assert dev.shape == (214,)
    assert (dev[10:20] > 3.5).all()
    rest = np.r_[0:10, 20:214]
    assert dev[rest].max() < 0.5
    assert superposed.n_frames == 1


def _bfactors(pdb):
    return np.array([float(line[60:66]) for line in pdb.splitlines() if line.startswith("ATOM")])


def test_overlay_colours_are_the_deviation(displaced, references):
    ov = show_overlay(displaced, references["closed"], reference_name="closed")
    loads = [m for m in ov.view._ngl_msg_archive if m["methodName"] == "loadFile"]
    assert len(loads) == 2
    ref_pdb, frame_pdb = (m["args"][0]["data"] for m in loads)
    assert len(_bfactors(ref_pdb)) == 214  # only the reference's Calpha atoms are drawn
    np.testing.assert_allclose(_bfactors(frame_pdb), ov.deviation_A, atol=0.01)  # PDB keeps 2 decimals
    reps = [m for m in ov.view._ngl_msg_archive if m["methodName"] == "addRepresentation"]
    assert [r["component_index"] for r in reps] == [0, 1]
    frame_rep = reps[1]["kwargs"]
    assert frame_rep["colorScheme"] == "bfactor" and frame_rep["colorScale"] == "OrRd"
    lo, hi = frame_rep["colorDomain"]
    assert (lo, hi) == ov.color_range_A and lo == 0.0 and hi == pytest.approx(ov.deviation_A.max())
    assert reps[0]["kwargs"]["opacity"] < 1
    text = ov.legend.value
    assert "0.0 A" in text and f"{hi:.1f} A" in text and "closed" in text
    # RMSD over 214 Calpha atoms, 10 of them 5 A off: about sqrt(10 * 25 / 214) = 1.08 A
    assert ov.rmsd_A == pytest.approx(np.sqrt((ov.deviation_A**2).mean()), rel=1e-4)
    assert 0.9 < ov.rmsd_A < 1.2
    assert ov.widget.children == (ov.view, ov.legend)
    assert "application/vnd.jupyter.widget-view+json" in ov._repr_mimebundle_()


def test_small_deviations_keep_the_default_range(closed_ca):
    ov = show_overlay(closed_ca, closed_ca)
    assert ov.deviation_A.max() < 1e-3
    assert ov.color_range_A == (0.0, 3.0)


def test_residues_without_matched_atoms_are_grey_not_perfect(references):
    # glycines have no Cbeta: compared by Cbeta, they have no deviation
    frame = references["open"]
    glycines = [r.index for r in frame.topology.residues if r.name == "GLY"]
    assert glycines
    ov = show_overlay(frame, references["closed"], atom_names=("CB",))
    assert np.isnan(ov.deviation_A[glycines]).all() and np.isfinite(np.delete(ov.deviation_A, glycines)).all()
    frame_pdb = [m for m in ov.view._ngl_msg_archive if m["methodName"] == "loadFile"][1]["args"][0]["data"]
    b = _bfactors(frame_pdb)
    gly_atoms = frame.topology.select("resname GLY")
    np.testing.assert_allclose(b[gly_atoms], UNMATCHED_BFACTOR)  # a sentinel below every deviation, not 0 A
    assert (np.delete(b, gly_atoms) >= 0).all()
    reps = [m for m in ov.view._ngl_msg_archive if m["methodName"] == "addRepresentation"]
    assert [r["component_index"] for r in reps] == [0, 1, 1]
    coloured, grey = reps[1]["kwargs"], reps[2]["kwargs"]
    assert coloured["colorScheme"] == "bfactor" and grey["color"] == UNMATCHED_COLOR
    assert sorted(int(i) for i in grey["sele"][1:].split(",")) == list(gly_atoms)
    assert sorted(int(i) for i in coloured["sele"][1:].split(",")) == list(np.setdiff1d(range(frame.n_atoms),
                                                                                        gly_atoms))


def test_explicit_range_and_all_atom_frames(references):
    ov = show_overlay(references["open"], references["closed"], color_range_A=(0.0, 10.0))
    reps = [m for m in ov.view._ngl_msg_archive if m["methodName"] == "addRepresentation"]
    assert reps[1]["args"] == ["cartoon"] and reps[1]["kwargs"]["colorDomain"] == [0.0, 10.0]
    frame_pdb = [m for m in ov.view._ngl_msg_archive if m["methodName"] == "loadFile"][1]["args"][0]["data"]
    b = _bfactors(frame_pdb)
    assert len(b) == references["open"].n_atoms  # every atom carries its residue's deviation
    assert len(set(np.round(b, 2))) > 50 and re.search("RMSD [0-9.]+ A", ov.legend.value)
    with pytest.raises(VisualizationError, match="high > low"):
        show_overlay(references["open"], references["closed"], color_range_A=(2.0, 1.0))
