"""Train -> sample -> decode with the real StructureTokenizer, through the Python API and the CLI."""
import argparse

import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.lm import cli as lm_cli


@pytest.mark.slow
def test_python_api(tmp_path, small_adk_traj, real_tokenizer):
    tok = real_tokenizer
    bundle = mk.train(small_adk_traj, tok, tmp_path / "bundle",
                      mk.ModelSettings(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                      mk.TrainSettings(window_frames=2, max_steps=3, batch_size=2, eval_steps=3, save_steps=3,
                                       eval_max_windows=2, rmsd_max_frames=2),
                      progress=False, device="cpu")
    assert "eval_next_frame_rmsd_A" in bundle.metrics["final_eval"]
    loaded = mk.load_bundle(tmp_path / "bundle", device="cpu")
    assert type(loaded.tokenizer) is type(tok) and loaded.tokenizer.fingerprint == tok.fingerprint
    ens = mk.Sampler(loaded).sample(n_frames=2, n_walkers=2, seed=0, temperature=3.0, out=tmp_path / "gen")
    ranges = tok.valid_token_ranges()
    flat = ens.tokens.reshape(-1, tok.tokens_per_frame)
    assert ((flat >= ranges[:, 0]) & (flat < ranges[:, 1])).all()
    assert ens.trajectory.n_frames == 4 and ens.trajectory.n_atoms == small_adk_traj.n_atoms
    assert np.isfinite(ens.trajectory.xyz).all()
    traj = md.load(str(tmp_path / "gen" / "trajectory.xtc"), top=str(tmp_path / "gen" / "topology.pdb"))
    assert traj.n_frames == 4


@pytest.mark.slow
def test_cli(tmp_path, small_adk_traj, real_tokenizer):
    small_adk_traj.save_xtc(str(tmp_path / "traj.xtc"))
    small_adk_traj[0].save_pdb(str(tmp_path / "top.pdb"))
    real_tokenizer.save_pretrained(tmp_path / "tok")
    parser = argparse.ArgumentParser(prog="mdllm")
    lm_cli.add_lm_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "train", str(tmp_path / "traj.xtc"), "--top", str(tmp_path / "top.pdb"), "--tokenizer", str(tmp_path / "tok"),
        "--out", str(tmp_path / "bundle"), "--max-steps", "2", "--window", "2", "--hidden-size", "32", "--layers", "1",
        "--heads", "2", "--kv-heads", "1", "--intermediate-size", "32", "--batch-size", "2", "--eval-steps", "2",
        "--save-steps", "2", "--no-progress", "--device", "cpu"])
    assert args.func(args) == 0
    args = parser.parse_args(["sample", str(tmp_path / "bundle"), "--n-frames", "2", "--walkers", "2", "--seed", "1",
                              "--out", str(tmp_path / "gen"), "--no-progress", "--device", "cpu"])
    assert args.func(args) == 0
    ens = mk.GeneratedEnsemble.load(tmp_path / "gen")
    assert ens.tokens.shape == (2, 2, real_tokenizer.tokens_per_frame)
    assert ens.trajectory.n_frames == 4
