import json
import shutil

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

import mdllm_kit as mk
from mdllm_kit.errors import BundleMismatchError, ModelError
from mdllm_kit.lm.bundle import load_bundle
from mdllm_kit.lm.train import train
from toy_tokenizer import ToyTokenizer


def test_bundle_contents(trained_bundle_dir, trained_bundle, toy_tok):
    names = {p.name for p in trained_bundle_dir.iterdir()}
    assert {"bundle.json", "model", "tokenizer", "codec.json", "model_settings.json", "train_settings.json",
            "metrics.json", "seed_tokens.npz", "checkpoints"} <= names
    assert (trained_bundle_dir / "model" / "model.safetensors").exists()
    metrics = json.loads((trained_bundle_dir / "metrics.json").read_text())
    final = metrics["final_eval"]
    assert {"eval_loss", "eval_next_frame_token_accuracy", "eval_next_frame_rmsd_A"} <= set(final)
    assert 0 <= final["eval_next_frame_token_accuracy"] <= 1 and final["eval_next_frame_rmsd_A"] >= 0
    assert metrics["finetune"] == "full" and metrics["global_step"] == 4
    assert trained_bundle.seed_tokens.shape == (3, toy_tok.tokens_per_frame)
    assert trained_bundle.window_frames == 3
    assert mk.load_bundle is load_bundle


def test_load_checks_tokenizer(trained_bundle_dir, toy_traj):
    other = ToyTokenizer(toy_traj.topology, n_bins=12)
    with pytest.raises(BundleMismatchError, match="fingerprint"):
        load_bundle(trained_bundle_dir, tokenizer=other, device="cpu")
    with pytest.raises(ModelError, match="not a complete model bundle"):
        load_bundle(trained_bundle_dir / "model", device="cpu")


def test_load_checks_codec(trained_bundle_dir, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(trained_bundle_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    codec = json.loads((copy / "codec.json").read_text())
    codec["valid_ranges"][0] = [0, 2]
    (copy / "codec.json").write_text(json.dumps(codec))
    with pytest.raises(BundleMismatchError, match="do not belong together"):
        load_bundle(copy, device="cpu")


def test_existing_checkpoints_need_resume(trained_bundle_dir, toy_traj, toy_tok, tiny_model_settings, tiny_train_settings):
    with pytest.raises(ModelError, match="resume"):
        train(toy_traj, toy_tok, trained_bundle_dir, tiny_model_settings, tiny_train_settings, progress=False)


class _Interrupt(TrainerCallback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.at_step:
            raise KeyboardInterrupt("simulated interruption")


@pytest.mark.slow
def test_resume_after_interruption(tmp_path, toy_traj, toy_tok, tiny_model_settings, tiny_train_settings):
    settings = tiny_train_settings.replace(max_steps=6, save_steps=2, eval_steps=100)
    full = train(toy_traj, toy_tok, tmp_path / "full", tiny_model_settings, settings, progress=False, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train(toy_traj, toy_tok, tmp_path / "cut", tiny_model_settings, settings, progress=False, device="cpu",
              callbacks=[_Interrupt(4)])
    assert not (tmp_path / "cut" / "bundle.json").exists()
    resumed = train(toy_traj, toy_tok, tmp_path / "cut", tiny_model_settings, settings, resume=True,
                    progress=False, device="cpu")
    assert resumed.metrics["global_step"] == 6
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    steps = [e["step"] for e in resumed.metrics["log_history"] if "loss" in e]
    assert steps[-1] == 6 and 5 in steps


def test_several_trajectories_as_tokens(tmp_path, toy_traj, toy_tok, tiny_model_settings, tiny_train_settings):
    tokens = [toy_tok.encode(toy_traj[:30]), toy_tok.encode(toy_traj[30:])]
    bundle = train(tokens, toy_tok, tmp_path, tiny_model_settings,
                   tiny_train_settings.replace(max_steps=2, loss_frames="last"), progress=False, device="cpu")
    assert bundle.metrics["split"]["n_trajectories"] == 2
    np.testing.assert_array_equal(bundle.seed_tokens, tokens[1][:24][-3:])


@pytest.mark.slow
def test_resume_skips_a_half_written_checkpoint_and_stops_at_max_steps(tmp_path, toy_traj, toy_tok,
                                                                       tiny_model_settings, tiny_train_settings):
    settings = tiny_train_settings.replace(max_steps=6, save_steps=2, eval_steps=100)
    full = train(toy_traj, toy_tok, tmp_path / "full", tiny_model_settings, settings, progress=False, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train(toy_traj, toy_tok, tmp_path / "cut", tiny_model_settings, settings, progress=False, device="cpu",
              callbacks=[_Interrupt(4)])
    ckpts = tmp_path / "cut" / "checkpoints"
    # a kill while the Trainer wrote checkpoint-6: its weights cut short, no trainer_state.json yet
    shutil.copytree(ckpts / "checkpoint-4", ckpts / "checkpoint-6")
    (ckpts / "checkpoint-6" / "trainer_state.json").unlink()
    weights = ckpts / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    resumed = train(toy_traj, toy_tok, tmp_path / "cut", tiny_model_settings, settings, resume=True,
                    progress=False, device="cpu")
    assert resumed.metrics["global_step"] == 6
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(value, resumed.model.state_dict()[key], rtol=1e-5, atol=1e-6)
    # a kill while the bundle was saved, after the last checkpoint: resuming trains no step past max_steps
    (tmp_path / "full" / "bundle.json").unlink()
    again = train(toy_traj, toy_tok, tmp_path / "full", tiny_model_settings, settings, resume=True, progress=False,
                  device="cpu")
    assert again.metrics["global_step"] == 6
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(value, again.model.state_dict()[key], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "full" / "bundle.json").exists()


def test_resume_refuses_other_settings_or_data(trained_bundle_dir, toy_traj, toy_tok, tiny_model_settings):
    from mdllm_kit.lm.config import TrainSettings

    same = TrainSettings(window_frames=3, max_steps=4, batch_size=4, eval_steps=2, save_steps=2, logging_steps=1,
                         eval_max_windows=4, rmsd_max_frames=4, val_fraction=0.2)
    with pytest.raises(ModelError, match=r"changed settings \(batch_size: 4 in the run, 2 now\)"):
        train(toy_traj, toy_tok, trained_bundle_dir, tiny_model_settings, same.replace(batch_size=2), resume=True,
              progress=False, device="cpu")
    with pytest.raises(ModelError, match="trajectories differ"):
        train(toy_traj[:50], toy_tok, trained_bundle_dir, tiny_model_settings, same, resume=True, progress=False,
              device="cpu")
