"""A small stand-in for ``mk.StructureTokenizer`` used by the language-model tests.

It bins the centred Cartesian coordinates of each atom: position ``3 i + d``
of a frame is coordinate ``d`` (x, y, z) of atom ``i``, with its own alphabet
``[d * n_bins, (d + 1) * n_bins)``, so positions have different valid ranges
just as the real tokenizer's may.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mdtraj as md
import numpy as np

from mdllm_kit.contracts import TOKENIZER_CONFIG_FILE, register_tokenizer_format

#: format string of a saved toy tokenizer (registered below, so ``mdllm_kit.contracts.load_tokenizer`` reads it)
TOY_FORMAT = "mdllm-test-toy-tokenizer"

class ToyTokenizer:
    """Coordinate binner implementing :class:`mdllm_kit.contracts.FrameTokenizer`."""

    def __init__(self, topology: md.Topology, n_bins: int = 16, half_width_nm: float = 1.5) -> None:
        self.topology = topology
        self.n_bins = int(n_bins)
        self.half_width_nm = float(half_width_nm)

    @property
    def tokens_per_frame(self) -> int:
        return 3 * self.topology.n_atoms

    @property
    def vocab_size(self) -> int:
        return 3 * self.n_bins

    @property
    def fingerprint(self) -> str:
        text = json.dumps([self.n_bins, self.half_width_nm, self.topology.n_atoms,
                           [a.name for a in self.topology.atoms]])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    #: no coordinate bin wraps around
    periodic_kinds: frozenset[str] = frozenset()

    def position_kinds(self) -> list[str]:
        return ["x", "y", "z"] * self.topology.n_atoms

    def valid_token_ranges(self) -> np.ndarray:
        d = np.tile(np.arange(3), self.topology.n_atoms)
        return np.stack([d * self.n_bins, (d + 1) * self.n_bins], axis=1)

    def encode(self, traj: md.Trajectory) -> np.ndarray:
        xyz = traj.xyz - traj.xyz.mean(axis=1, keepdims=True)
        b = np.floor((xyz + self.half_width_nm) / (2 * self.half_width_nm) * self.n_bins).astype(np.int64)
        b = np.clip(b, 0, self.n_bins - 1) + np.arange(3) * self.n_bins
        return b.reshape(traj.n_frames, -1)

    def decode(self, tokens: np.ndarray) -> md.Trajectory:
        tokens = np.asarray(tokens).reshape(len(tokens), -1, 3) - np.arange(3) * self.n_bins
        if (tokens < 0).any() or (tokens >= self.n_bins).any():
            raise ValueError("invalid token")
        xyz = (tokens + 0.5) / self.n_bins * 2 * self.half_width_nm - self.half_width_nm
        return md.Trajectory(xyz.astype(np.float32), self.topology)

    def save_pretrained(self, directory) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        md.Trajectory(np.zeros((1, self.topology.n_atoms, 3), np.float32), self.topology).save_pdb(
            str(directory / "toy_topology.pdb"))
        (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(
            {"format": TOY_FORMAT, "n_bins": self.n_bins, "half_width_nm": self.half_width_nm}))

    @classmethod
    def from_pretrained(cls, directory) -> "ToyTokenizer":
        directory = Path(directory)
        params = json.loads((directory / TOKENIZER_CONFIG_FILE).read_text())
        params.pop("format")
        return cls(md.load_pdb(str(directory / "toy_topology.pdb")).topology, **params)


register_tokenizer_format(TOY_FORMAT, ToyTokenizer)


def toy_trajectory(n_frames: int = 60, n_atoms: int = 6, seed: int = 0) -> md.Trajectory:
    """A smooth random walk of the first ``n_atoms`` Calpha atoms of closed AdK (nm)."""
    import mdllm_kit as mk

    ref = mk.datasets.adk_references()["closed"]
    ca = ref.atom_slice(ref.topology.select("name CA")[:n_atoms])
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.02, size=(n_frames, n_atoms, 3)).cumsum(axis=0)
    steps -= steps.mean(axis=0)
    xyz = ca.xyz[0] - ca.xyz[0].mean(axis=0) + 0.5 * np.tanh(steps)
    return md.Trajectory(xyz.astype(np.float32), ca.topology)
