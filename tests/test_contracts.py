"""The stage contracts (mdllm_kit.contracts): frame-major order, tokenizer formats, frame-model predicate."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit import contracts
from mdllm_kit.errors import MdllmError, TokenizerError


def test_frame_major_helpers_agree():
    n_frames, n_walkers = 4, 3
    step, walker = contracts.frame_major_labels(n_frames, n_walkers)
    index = np.arange(n_frames * n_walkers)
    np.testing.assert_array_equal(contracts.frame_major_index(step, walker, n_walkers), index)
    assert contracts.step_and_walker(7, n_walkers) == (2, 1)
    grid = contracts.per_walker(index, n_walkers)
    assert grid.shape == (n_walkers, n_frames)
    for k in range(n_walkers):  # walker k holds elements k, k + n_walkers, ...
        np.testing.assert_array_equal(grid[k], index[k::n_walkers])
    assert contracts.per_walker(np.zeros((6, 5, 3)), 2).shape == (2, 3, 5, 3)


def test_frame_major_helpers_refuse_bad_walker_counts():
    with pytest.raises(MdllmError, match="do not split into 4 walkers"):
        contracts.per_walker(np.arange(6), 4)
    with pytest.raises(MdllmError, match="n_walkers must be >= 1"):
        contracts.step_and_walker(3, 0)


class _Listed:
    """A minimal FrameTokenizer saved with its own format string."""

    periodic_kinds = frozenset({"a"})
    tokens_per_frame, vocab_size, fingerprint = 2, 4, "x"

    def position_kinds(self):
        return ["a", "b"]

    def valid_token_ranges(self):
        return np.array([[0, 2], [2, 4]])

    def encode(self, traj):
        return np.zeros((traj.n_frames, 2), np.int64)

    def decode(self, tokens):
        raise NotImplementedError

    def save_pretrained(self, directory):
        (directory / contracts.TOKENIZER_CONFIG_FILE).write_text(json.dumps({"format": "test-listed"}))

    @classmethod
    def from_pretrained(cls, directory):
        return cls()


def test_load_tokenizer_dispatches_on_the_saved_format(tmp_path):
    assert isinstance(_Listed(), contracts.FrameTokenizer)
    _Listed().save_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="'test-listed', which is not registered"):
        contracts.load_tokenizer(tmp_path)
    contracts.register_tokenizer_format("test-listed", _Listed)
    try:
        assert isinstance(contracts.load_tokenizer(tmp_path), _Listed)
        assert "test-listed" in contracts.registered_tokenizer_formats()
    finally:
        contracts._TOKENIZER_FORMATS.pop("test-listed")


def test_load_tokenizer_reads_a_structure_tokenizer(tmp_path):
    tok = mk.StructureTokenizer(device="cpu").fit(mk.datasets.adk_references()["closed"])
    tok.save_pretrained(tmp_path)
    assert contracts.tokenizer_format(tmp_path) == contracts.DEFAULT_TOKENIZER_FORMAT
    loaded = contracts.load_tokenizer(tmp_path)
    assert isinstance(loaded, mk.StructureTokenizer) and loaded.fingerprint == tok.fingerprint
    assert isinstance(loaded, contracts.FrameTokenizer)


def test_a_folder_without_a_config_gets_the_default_loader_s_message(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer_config.json is missing"):
        contracts.load_tokenizer(tmp_path)


def test_is_frame_model():
    import torch

    class Plain(torch.nn.Module):
        pass

    class Frame(Plain):
        def __init__(self):
            super().__init__()
            self.frame_position_embeddings = torch.nn.Embedding(3, 2)

        def embed(self, input_ids, positions, previous_ids=None):
            return self.frame_position_embeddings(positions)

    assert not contracts.is_frame_model(Plain()) and contracts.is_frame_model(Frame())



def test_check_frame_tokens():
    import torch

    ranges = np.array([[0, 4], [4, 6]])
    np.testing.assert_array_equal(contracts.check_frame_tokens([3.0, 5.0], ranges), [[3, 5]])
    np.testing.assert_array_equal(contracts.check_frame_tokens(torch.tensor([[0, 4]]), ranges), [[0, 4]])
    with pytest.raises(TokenizerError, match=r"1 token id\(s\) are out of range.*position 1: id 6.*\[4, 6\) of a b pos"):
        contracts.check_frame_tokens([[0, 4], [1, 6]], ranges, kinds=["a", "b"], error=TokenizerError)
    with pytest.raises(MdllmError, match=r"must have shape \(n_frames, 2\)"):
        contracts.check_frame_tokens([3, 5], ranges, one_frame_ok=False)
    with pytest.raises(MdllmError, match="must be integers"):
        contracts.check_frame_tokens([[0.5, 4]], ranges)
