"""Small AdK frames for the tokenizer tests (made from the bundled crystal structures)."""
from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest
import torch

import mdllm_kit as mk


@pytest.fixture(scope="session")
def refs() -> dict[str, md.Trajectory]:
    """Heavy-atom crystal structures of closed and open AdK."""
    return mk.datasets.adk_references()


def _jitter(traj: md.Trajectory, n: int, sigma_nm: float, seed: int) -> md.Trajectory:
    rng = np.random.default_rng(seed)
    xyz = traj.xyz[0][None] + rng.normal(0.0, sigma_nm, (n, traj.n_atoms, 3)).astype(np.float32)
    return md.Trajectory(xyz, traj.topology)


@pytest.fixture(scope="session")
def closed_ca(refs) -> md.Trajectory:
    """40 thermally jittered Calpha frames of closed AdK (0.2 A per coordinate)."""
    c = refs["closed"]
    return _jitter(c.atom_slice(c.topology.select("name CA")), 40, 0.02, 0)


@pytest.fixture(scope="session")
def open_ca(refs) -> md.Trajectory:
    """10 jittered Calpha frames of open AdK, never used in fitting."""
    o = refs["open"]
    return _jitter(o.atom_slice(o.topology.select("name CA")), 10, 0.02, 1)


@pytest.fixture(scope="session")
def ca_tok(closed_ca):
    """Calpha tokenizer fitted on the jittered closed frames."""
    return mk.StructureTokenizer(device="cpu").fit(closed_ca)


@pytest.fixture(scope="session")
def bb_tok(refs):
    """Backbone tokenizer fitted on the closed crystal (all-atom input)."""
    return mk.StructureTokenizer(device="cpu").fit(refs["closed"])


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the test machine is small and shared (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
