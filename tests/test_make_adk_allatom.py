"""Tests of scripts/make_adk_allatom.py, the short all-atom AdK runs of the backbone-mode decoder benchmark.

The real runs take minutes; this one minimises a few steps and saves two frames per state (about 30 s on one core).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import mdtraj as md
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_adk_allatom.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_adk_allatom", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_runs_write_backbone_frames_of_both_states(tmp_path):
    out = tmp_path / "aa"
    assert _script().main(["--out", str(out), "--equil-ps", "0.02", "--prod-ps", "0.04", "0.04", "--save-ps", "0.02",
                           "--min-iterations", "5"]) == 0
    meta = json.loads((out / "adk_aa_metadata.json").read_text())
    assert meta["force_field"] == "amber14-all.xml" and meta["timestep_ps"] == 0.002
    top = out / "adk_aa_backbone.pdb"
    crystals = {s: md.load_pdb(str(ROOT / "mdllm_kit" / "data" / "adk" / f"adk_{s}.pdb")) for s in ("closed", "open")}
    for state, other in (("closed", "open"), ("open", "closed")):
        traj = md.load(str(out / f"adk_aa_{state}.xtc"), top=str(top))
        assert traj.n_frames == 2 and traj.n_residues == 214
        assert {a.name for a in traj.topology.atoms} == {"N", "CA", "C", "O"}
        ca = traj.atom_slice(traj.topology.select("name CA"))

        def rmsd_A(ref):
            ref_ca = ref.atom_slice(ref.topology.select("name CA"))
            return 10 * md.rmsd(ca, ref_ca)

        # a few femtoseconds of thermal MD stay at their crystal, far from the other state (7 A apart)
        assert np.all(rmsd_A(crystals[state]) < 1.0) and np.all(rmsd_A(crystals[other]) > 5.0)
