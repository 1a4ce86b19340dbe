"""Fixtures of the exploration tests: 30 Calpha atoms of AdK, the real tokenizer and a tiny trained model."""
from __future__ import annotations

import os

import mdtraj as md
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ca_traj() -> md.Trajectory:
    """60 frames of the first 30 Calpha atoms of the closed AdK crystal, with 0.06 A noise (physically valid frames) (nm)."""
    import mdllm_kit as mk

    ref = mk.datasets.adk_references()["closed"]
    ca = ref.atom_slice(ref.topology.select("name CA and resid 0 to 29"))
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.006, size=(60, ca.n_atoms, 3)).astype(np.float32)
    return md.Trajectory(ca.xyz[0][None] + noise, ca.topology)


@pytest.fixture(scope="session")
def ca_tokenizer(ca_traj):
    import mdllm_kit as mk

    return mk.StructureTokenizer(codebook_size=32, device="cpu").fit(ca_traj)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, ca_traj, ca_tokenizer):
    """A tiny frame-aware model trained for 4 steps on ``ca_traj`` (what it generates does not matter here)."""
    import mdllm_kit as mk
    from mdllm_kit.lm.config import ModelSettings, TrainSettings

    out = tmp_path_factory.mktemp("bundle")
    return mk.train(ca_traj, ca_tokenizer, out,
                    ModelSettings(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                    TrainSettings(window_frames=3, max_steps=4, batch_size=4, eval_steps=4, save_steps=4,
                                  logging_steps=2, eval_max_windows=2, rmsd_max_frames=2, val_fraction=0.2),
                    progress=False, device="cpu")
