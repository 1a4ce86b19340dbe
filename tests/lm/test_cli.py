import argparse
import json

import numpy as np
import pytest

from mdllm_kit.contracts import FrameTokenizer
from mdllm_kit.lm import cli as lm_cli
from mdllm_kit.lm.config import SamplingSettings
from mdllm_kit.lm.walker_pool import fork_available
from mdllm_kit.ensemble import GeneratedEnsemble
from toy_tokenizer import ToyTokenizer


def _parser():
    parser = argparse.ArgumentParser(prog="mdllm")
    lm_cli.add_lm_commands(parser.add_subparsers(dest="command"))
    return parser


@pytest.mark.parametrize("command", ["train", "sample", "export"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_train_then_sample(tmp_path, toy_traj, toy_tok, monkeypatch, capsys):
    toy_traj.save_xtc(str(tmp_path / "traj.xtc"))
    toy_traj[0].save_pdb(str(tmp_path / "top.pdb"))
    toy_tok.save_pretrained(tmp_path / "tok")
    # no patching: the toy registers its saved format, so the command line loads it like any FrameTokenizer
    assert isinstance(lm_cli.load_tokenizer(tmp_path / "tok"), ToyTokenizer)
    assert isinstance(toy_tok, FrameTokenizer)
    parser = _parser()
    args = parser.parse_args([
        "train", str(tmp_path / "traj.xtc"), "--top", str(tmp_path / "top.pdb"), "--tokenizer", str(tmp_path / "tok"),
        "--out", str(tmp_path / "bundle"), "--max-steps", "2", "--window", "2", "--hidden-size", "32",
        "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate-size", "32", "--eval-steps", "2",
        "--save-steps", "2", "--no-progress", "--device", "cpu", "--precision", "fp32"])
    assert args.func(args) == 0
    assert (tmp_path / "bundle" / "bundle.json").exists()
    assert json.loads((tmp_path / "bundle" / "metrics.json").read_text())["precision"] == "fp32"
    args = parser.parse_args([
        "sample", str(tmp_path / "bundle"), "--n-frames", "3", "--walkers", "2", "--seed", "4", "--temperature",
        "1.0", "--top-k", "20", "--top-p", "0.9", "--out", str(tmp_path / "gen"), "--no-progress", "--device", "cpu",
        "--precision", "bf16", "--processes", "2" if fork_available() else "1"])
    assert args.func(args) == 0
    ens = GeneratedEnsemble.load(tmp_path / "gen")
    assert ens.tokens.shape == (2, 3, toy_tok.tokens_per_frame)
    assert ens.trajectory.n_frames == 6
    assert "trajectory.xtc" in capsys.readouterr().out
    assert np.isfinite(ens.log_likelihood).all()
    assert ens.params["processes"] == (2 if fork_available() else 1)


def test_entropy_cap_flag_defaults_to_the_settings_and_accepts_off(capsys):
    parser = _parser()
    assert parser.parse_args(["sample", "b", "--out", "o"]).entropy_cap == SamplingSettings().entropy_cap
    assert parser.parse_args(["sample", "b", "--out", "o", "--entropy-cap", "off"]).entropy_cap is None
    assert parser.parse_args(["sample", "b", "--out", "o", "--entropy-cap", "2.5"]).entropy_cap == 2.5
    for bad in ("-1", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args(["sample", "b", "--out", "o", "--entropy-cap", bad])
        err = capsys.readouterr().err
        assert "--entropy-cap" in err and "'off'" in err


@pytest.mark.parametrize("command", [["sample", "b", "--out", "o"], ["explore", "b", "--out", "o", "--budget-frames", "4"]])
def test_processes_flag_takes_a_number_or_auto(command, capsys):
    from mdllm_kit.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(command).processes is None
    assert parser.parse_args([*command, "--processes", "auto"]).processes is None
    assert parser.parse_args([*command, "--processes", "3"]).processes == 3
    for bad in ("0", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--processes", bad])
        assert "--processes" in capsys.readouterr().err
