import json

import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import analyze, msm_comparison, summary_lines
from mdllm_kit.analysis.novelty import NOVELTY_MAX_TRAINING_FRAMES
from mdllm_kit.subsample import evenly_spaced_indices


@pytest.fixture(scope="module")
def adk():
    return {"train": mk.datasets.load_adk_cg("closed_train"), "truth": mk.datasets.load_adk_cg("equilibrium")[::4],
            "refs": mk.datasets.adk_references()}


def test_training_frames_are_not_novel_and_crystals_sit_where_rmsd_says(adk):
    train = adk["train"]
    # 16 frames that are in the novelty subsample (evenly spaced training frames): nearest RMSD 0
    pick = evenly_spaced_indices(train.n_frames, NOVELTY_MAX_TRAINING_FRAMES)[::64][:16]
    gen = train[pick]
    details = {}
    metrics = analyze(gen, train, adk["refs"], n_walkers=4, details=details)
    json.dumps(metrics, allow_nan=False)
    assert metrics["n_frames"] == 16 and metrics["n_walkers"] == 4
    assert metrics["novelty"]["nearest_training_rmsd_A"]["max"] == pytest.approx(0.0, abs=0.02)  # float32 RMSD
    assert metrics["novelty"]["novel_fraction"] == 0.0
    # closed_train never comes within 3 A of the open crystal
    assert not metrics["references"]["open"]["reached"]
    assert metrics["references"]["open"]["min_rmsd_A"] >= 3.0
    assert metrics["references"]["closed"]["reached"]
    assert set(metrics) == {"n_frames", "n_walkers", "references", "novelty", "validity", "projection"}
    assert metrics["projection"]["pca"]["labels"] == ["PC1", "PC2"]
    assert metrics["projection"]["tica"]["lagtime_frames"] == 10
    np.testing.assert_allclose(details["pca_generated"], details["pca_training"][pick], atol=1e-4)
    assert len(details["validity"]["per_frame"]["ca_valid"]) == 16


def test_ground_truth_compared_with_itself(adk):
    truth = adk["truth"]
    labels = mk.datasets.adk_cg_states(truth)
    metrics = analyze(truth, adk["train"], adk["refs"], reference_ensemble=truth, generated_labels=labels,
                      reference_labels=labels, state_names=mk.datasets.ADK_STATE_NAMES, n_states=3,
                      generated_dt_ps=float(truth.timestep))
    comp = metrics["comparison"]
    assert comp["js_distance"]["PC1-PC2"] == pytest.approx(0.0, abs=1e-7)
    assert comp["rmsf"]["pearson_r"] == pytest.approx(1.0, abs=1e-6)
    assert comp["populations"]["generated"] == comp["populations"]["reference"]
    gt = mk.datasets.adk_cg_metadata()["runs"]["equilibrium"]["populations"]
    assert comp["populations"]["reference"][1] == pytest.approx(gt["open"], abs=0.02)
    assert comp["msm"]["generated"]["timescales_frames"] == pytest.approx(comp["msm"]["reference"]["timescales_frames"])
    assert comp["msm"]["generated"]["timescales_ps"] == pytest.approx(comp["msm"]["reference"]["timescales_ps"], rel=0.01)
    assert metrics["references"]["open"]["reached"]
    text = "\n".join(summary_lines(metrics))
    assert "reference open" in text and "reached" in text and "MSM generated" in text


def test_walkers_must_divide_the_frames(adk):
    with pytest.raises(mk.MdllmError, match="walkers"):
        analyze(adk["train"][:5], adk["train"], adk["refs"], n_walkers=2)


def _frame_major(w0, w1):
    """Two equally long walkers interleaved frame-major: frame i of walker k is frame i * 2 + k."""
    xyz = np.empty((2 * w0.n_frames, w0.n_atoms, 3), dtype=np.float32)
    xyz[0::2], xyz[1::2] = w0.xyz, w1.xyz
    return md.Trajectory(xyz, w0.topology, time=np.arange(len(xyz)) * 5.0)


def test_walker_labels_are_reordered_like_the_walker_trajectories(adk):
    truth = adk["truth"]
    labels = mk.datasets.adk_cg_states(truth)
    names = mk.datasets.ADK_STATE_NAMES
    # walker 0 visits only closed frames, walker 1 only open ones, so pairing labels with the wrong walker shows
    idx0, idx1 = np.flatnonzero(labels == 0)[:60], np.flatnonzero(labels == 1)[:60]
    w0, w1 = truth[idx0], truth[idx1]
    gen = _frame_major(w0, w1)
    gen_labels = np.empty(120, dtype=int)
    gen_labels[0::2], gen_labels[1::2] = labels[idx0], labels[idx1]
    details = {}
    metrics = analyze(gen, adk["train"], adk["refs"], reference_ensemble=truth, n_walkers=2,
                      generated_labels=gen_labels, reference_labels=labels, state_names=names, n_states=3,
                      generated_dt_ps=5.0, details=details)
    expected = msm_comparison([w0, w1], truth, details["pca"], generated_dt_ps=5.0,
                              reference_dt_ps=float(truth.timestep),
                              state_labels=(np.r_[labels[idx0], labels[idx1]], labels), state_names=names)
    assert metrics["comparison"]["msm"] == expected
    # every cluster the generated MSM populates is labelled by the walker whose frames fill it
    assert set(expected["generated"]["state_populations"]) <= {"closed", "open"}
    assert metrics["comparison"]["populations"]["generated"] == [0.5, 0.5, 0.0]


def test_label_arrays_must_have_one_label_per_frame(adk):
    truth = adk["truth"][:40]
    labels = mk.datasets.adk_cg_states(truth)
    with pytest.raises(mk.MdllmError, match=r"generated labels have shape \(39,\), expected \(40,\).*frame-major"):
        analyze(truth, adk["train"], adk["refs"], reference_ensemble=truth, generated_labels=labels[:-1],
                reference_labels=labels, n_states=3)
    with pytest.raises(mk.MdllmError, match=r"reference labels have shape \(80,\), expected \(40,\)"):
        analyze(truth, adk["train"], adk["refs"], reference_ensemble=truth, generated_labels=labels,
                reference_labels=np.r_[labels, labels], n_states=3)


def test_other_protein_is_refused_but_force_field_residue_names_are_not():
    from mdllm_kit.analysis.metrics import _check_same_protein
    from mdllm_kit.errors import MdllmError

    closed = mk.datasets.adk_references()["closed"]
    ca = closed.atom_slice(closed.topology.select("name CA"))
    renamed = md.Trajectory(ca.xyz, ca.topology.copy())
    his = [r for r in renamed.topology.residues if r.name == "HIS"]
    assert his
    for residue in his:
        residue.name = "HSD"  # CHARMM's name for the same histidine
    _check_same_protein(ca, renamed, "the training trajectory")
    # as many residues, shifted by one: another sequence
    with pytest.raises(MdllmError, match="not the same protein"):
        _check_same_protein(ca.atom_slice(np.arange(0, 200)), ca.atom_slice(np.arange(1, 201)), "the training trajectory")


def test_analyze_takes_a_generated_ensemble(adk):
    """The sampler's output goes in as it is: its frames and its walker count."""
    from mdllm_kit.lm import GeneratedEnsemble

    frames = adk["train"][::300]  # 8 frames = 2 steps x 4 walkers, frame-major
    ens = GeneratedEnsemble(np.zeros((4, 2, 1), np.int64), np.zeros((4, 2)), frames)
    direct = analyze(frames, adk["train"], adk["refs"], n_walkers=4)
    assert analyze(ens, adk["train"], adk["refs"]) == direct
    assert direct["n_walkers"] == 4 and direct["n_frames"] == 8
    with pytest.raises(mk.MdllmError, match="the ensemble has 4 walkers, not n_walkers=2"):
        analyze(ens, adk["train"], adk["refs"], n_walkers=2)
