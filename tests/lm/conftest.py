"""Fixtures of the language-model tests: a tiny tokenizer, tiny trajectories, tiny settings."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from toy_tokenizer import ToyTokenizer, toy_trajectory  # noqa: E402


@pytest.fixture(scope="session")
def toy_traj():
    return toy_trajectory(n_frames=60, n_atoms=6, seed=0)


@pytest.fixture(scope="session")
def toy_tok(toy_traj):
    return ToyTokenizer(toy_traj.topology, n_bins=16)


@pytest.fixture
def tiny_model_settings():
    from mdllm_kit.lm.config import ModelSettings

    return ModelSettings(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)


@pytest.fixture
def tiny_train_settings():
    from mdllm_kit.lm.config import TrainSettings

    return TrainSettings(window_frames=3, max_steps=6, batch_size=4, eval_steps=3, save_steps=3,
                         logging_steps=1, eval_max_windows=4, rmsd_max_frames=4, val_fraction=0.2)


@pytest.fixture(scope="session")
def trained_bundle_dir(tmp_path_factory, toy_traj, toy_tok):
    """A tiny model trained for a few steps on the toy trajectory (shared by the tests)."""
    from mdllm_kit.lm.config import ModelSettings, TrainSettings
    from mdllm_kit.lm.train import train

    out = tmp_path_factory.mktemp("bundle")
    train(toy_traj, toy_tok, out,
          ModelSettings(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
          TrainSettings(window_frames=3, max_steps=4, batch_size=4, eval_steps=2, save_steps=2, logging_steps=1,
                        eval_max_windows=4, rmsd_max_frames=4, val_fraction=0.2),
          progress=False, device="cpu")
    return out


@pytest.fixture(scope="session")
def trained_bundle(trained_bundle_dir):
    from mdllm_kit.lm.bundle import load_bundle

    return load_bundle(trained_bundle_dir, device="cpu")


@pytest.fixture(scope="session")
def small_adk_traj():
    """40 noisy frames of the first 30 Calpha atoms of closed AdK (nm)."""
    import mdtraj as md
    import numpy as np

    import mdllm_kit as mk

    ref = mk.datasets.adk_references()["closed"]
    ca = ref.atom_slice(ref.topology.select("name CA and resid 0 to 29"))
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.02, size=(40, ca.n_atoms, 3)).astype(np.float32)
    return md.Trajectory(ca.xyz[0][None] + noise, ca.topology)


@pytest.fixture(scope="session")
def real_tokenizer(small_adk_traj):
    """The project's StructureTokenizer fitted on ``small_adk_traj`` (skips if it is not installed)."""
    module = pytest.importorskip("mdllm_kit.tokenizer")
    return module.StructureTokenizer(codebook_size=32).fit(small_adk_traj)

