import json

import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.analysis import rmsd_to_references
from mdllm_kit.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bundled AdK data as files, and a small 'generated' ensemble: a sampling folder and a plain xtc."""
    root = tmp_path_factory.mktemp("analyze")
    mk.datasets.export_adk(root / "data")
    eq = mk.datasets.load_adk_cg("equilibrium")
    gen = eq[::200]  # 24 frames: 2 walkers x 12 steps, frame-major
    gen.save_xtc(str(root / "gen.xtc"))
    # shorter training and ground-truth runs keep the test fast
    mk.datasets.load_adk_cg("closed_train")[::6].save_xtc(str(root / "train.xtc"))
    eq[::8].save_xtc(str(root / "truth.xtc"))
    samples = root / "samples"
    samples.mkdir()
    gen.save_xtc(str(samples / "trajectory.xtc"))
    gen[0].save_pdb(str(samples / "topology.pdb"))
    np.savez(samples / "tokens.npz", tokens=np.zeros((2, 12, 4), dtype=np.int64),
             log_likelihood=np.zeros((2, 12)))
    (samples / "params.json").write_text(json.dumps({"n_walkers": 2, "n_frames": 12}))
    return root, gen


def _args(root, gen_args):
    data = root / "data"
    return ["analyze", *gen_args, "--train", str(root / "train.xtc"),
            "--train-top", str(data / "adk_cg_ca.pdb"),
            "--ref", f"closed={data / 'adk_closed.pdb'}", "--ref", f"open={data / 'adk_open.pdb'}"]


def test_analyze_sampling_folder_prints_json_with_min_rmsd(files, capsys):
    root, gen = files
    assert main(_args(root, [str(root / "samples")]) + ["--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    expected = rmsd_to_references(gen, mk.datasets.adk_references())
    for name in ("closed", "open"):
        assert metrics["references"][name]["min_rmsd_A"] == pytest.approx(expected[name].min() * 10, abs=1e-3)
        assert len(metrics["references"][name]["first_step_within_per_walker"]) == 2
    assert metrics["n_walkers"] == 2
    assert {"novelty", "validity", "projection"} <= set(metrics)
    assert "comparison" not in metrics


def test_analyze_trajectory_file_with_reference_ensemble_prints_a_summary(files, capsys):
    root, _ = files
    data = root / "data"
    args = _args(root, [str(root / "gen.xtc"), "--top", str(data / "adk_cg_ca.pdb")])
    args += ["--reference-ensemble", str(root / "truth.xtc"), "--reference-top", str(data / "adk_cg_ca.pdb")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "reference open: min Calpha RMSD" in out
    assert "RMSF correlation" in out and "MSM reference" in out
    validity = next(line for line in out.splitlines() if line.startswith("validity:"))
    assert validity.startswith("validity: ") and "(training 100.0%) of frames without Calpha break" in validity


def test_bad_reference_argument_is_one_clear_error(files, capsys):
    root, _ = files
    args = _args(root, [str(root / "samples")])
    args[args.index("--ref") + 1] = "open-without-name"
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NAME=PDB" in err[0]


def test_json_of_an_ensemble_with_constant_rmsf_has_null_correlation(files, capsys):
    root, gen = files
    data = root / "data"
    gen[0].save_xtc(str(root / "frozen.xtc"))  # a single frame: RMSF exactly 0 everywhere
    args = _args(root, [str(root / "frozen.xtc"), "--top", str(data / "adk_cg_ca.pdb")])
    args += ["--reference-ensemble", str(root / "truth.xtc"), "--reference-top", str(data / "adk_cg_ca.pdb"), "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    metrics = json.loads(out)
    assert metrics["comparison"]["rmsf"]["pearson_r"] is None
    assert metrics["comparison"]["rmsf"]["mean_rmsf_generated_A"] == pytest.approx(0.0, abs=1e-3)


def test_sampling_folder_without_tokens_is_one_clear_error(files, tmp_path, capsys):
    root, _ = files
    started = tmp_path / "started"
    started.mkdir()
    (started / "params.json").write_text(json.dumps({"n_walkers": 2, "n_frames": 12}))
    assert main(_args(root, [str(started)])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tokens.npz" in err[0] and "mdllm sample" in err[0]
