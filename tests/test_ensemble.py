"""The one ensemble type: lazy decoding, the walker axis, construction checks."""
from __future__ import annotations

import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.ensemble import GeneratedEnsemble, decode_frame_major
from mdllm_kit.errors import SamplingError


class CountingTokenizer:
    """Wraps a tokenizer and counts decode calls."""

    def __init__(self, tokenizer):
        self.inner, self.calls = tokenizer, 0

    def decode(self, tokens):
        self.calls += 1
        return self.inner.decode(tokens)


@pytest.fixture(scope="module")
def tokenizer_and_tokens():
    ref = mk.datasets.adk_references()["closed"]
    ca = ref.atom_slice(ref.topology.select("name CA and resid 0 to 24"))
    tok = mk.StructureTokenizer(codebook_size=32, device="cpu").fit(ca)
    frames = np.repeat(tok.encode(ca), 6, axis=0)
    tokens = tok.jitter(frames, 1.0, seed=0).reshape(2, 3, -1)
    return tok, tokens  # 2 walkers x 3 frames


def test_frames_are_decoded_once_on_first_access(tokenizer_and_tokens):
    tok, tokens = tokenizer_and_tokens
    counting = CountingTokenizer(tok)
    ens = GeneratedEnsemble(tokens, np.zeros(tokens.shape[:2]), tokenizer=counting)
    assert not ens.decoded and counting.calls == 0 and "decoded=False" in repr(ens)
    traj = ens.trajectory
    assert ens.decoded and counting.calls == 1 and ens.trajectory is traj
    np.testing.assert_allclose(traj.xyz, decode_frame_major(tok, tokens).xyz)
    # frame-major: walker 1's frame 2 is trajectory frame 2 * 2 + 1
    np.testing.assert_allclose(ens.walker(1).xyz[2], traj.xyz[5])
    assert traj.time.tolist() == [0, 0, 1, 1, 2, 2]


def test_construction_is_checked(tokenizer_and_tokens):
    tok, tokens = tokenizer_and_tokens
    with pytest.raises(SamplingError, match="needs the tokenizer"):
        GeneratedEnsemble(tokens, np.zeros(tokens.shape[:2]))
    with pytest.raises(SamplingError, match="log-likelihoods"):
        GeneratedEnsemble(tokens, np.zeros(3), tokenizer=tok)
    with pytest.raises(SamplingError, match="walker 2 does not exist"):
        GeneratedEnsemble(tokens, np.zeros(tokens.shape[:2]), tokenizer=tok).walker(2)
