"""``mdllm explore``: the folder, the JSON summary, strategy options, the model-free control, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mdllm_kit.cli import main
from mdllm_kit.exploration import read_exploration
from mdllm_kit.exploration.cli import parse_options
from mdllm_kit.ensemble import GeneratedEnsemble


@pytest.fixture(scope="module")
def training_files(tmp_path_factory, ca_traj):
    folder = tmp_path_factory.mktemp("training")
    ca_traj.save_xtc(str(folder / "train.xtc"))
    ca_traj[0].save_pdb(str(folder / "train.pdb"))
    return folder / "train.xtc", folder / "train.pdb"


def test_restart_run_with_options_and_a_json_summary(tiny_bundle, training_files, tmp_path, capsys):
    xtc, pdb = training_files
    out = tmp_path / "run"
    rc = main(["explore", str(tiny_bundle.path), "--out", str(out), "--strategy", "restart", "--budget-frames", "12",
               "--walkers", "3", "--option", "round_frames=2", "--option", "cell_width=0.8", "--train", str(xtc),
               "--train-top", str(pdb), "--entropy-cap", "2.0", "--no-progress", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["strategy"] == {"name": "restart", "round_frames": 2, "cell_width": 0.8}
    assert summary["n_walkers"] == 3 and summary["frames_per_walker"] == 4 and summary["unbiased"] is False
    ens = GeneratedEnsemble.load(out)
    assert ens.trajectory.n_frames == 12
    assert ens.params["settings"]["entropy_cap"] == 2.0
    assert read_exploration(out)["restarts"]  # round boundary at step 2


def test_model_free_control_runs_from_the_bundles_seed(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "control"
    rc = main(["explore", str(tiny_bundle.path), "--out", str(out), "--budget-frames", "6", "--walkers", "2",
               "--proposal", "token-noise", "--noise-rate", "0.2", "--no-progress"])
    assert rc == 0 and "2 walker(s) x 3 frames (rollout)" in capsys.readouterr().out
    record = read_exploration(out)
    assert record["proposal"] == {"kind": "token_noise", "rate": 0.2, "bins": 1.0, "seed": 0}
    ens = GeneratedEnsemble.load(out)
    # each frame is the previous one with a few tokens moved
    moved = (ens.tokens[:, 1:] != ens.tokens[:, :-1]).mean()
    assert 0.05 < moved < 0.4


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "bias"], "pass --train TRAJ"),
    (["--option", "round_frames"], "is not KEY=VALUE"),
    (["--strategy", "restart", "--option", "hills=3"], "does not take these options"),
    (["--budget-frames", "1", "--walkers", "4"], "less than one frame per walker"),
])
def test_bad_input_is_one_line(tiny_bundle, tmp_path, capsys, argv, message):
    args = ["explore", str(tiny_bundle.path), "--out", str(tmp_path / "x"), "--budget-frames", "4", "--no-progress"]
    rc = main(args + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("mdllm: error:") and message in err[0]
    assert not (tmp_path / "x").exists()


def test_parse_options_reads_json_values():
    assert parse_options(["a=1", "b=0.5", "c=true", "d=text", "e-f=[1, 2]"]) == {
        "a": 1, "b": 0.5, "c": True, "d": "text", "e_f": [1, 2]}
    assert np.isnan(parse_options(["x=NaN"])["x"])
