import numpy as np
import pytest

from mdllm_kit.errors import ModelError
from mdllm_kit.lm.codec import FrameCodec


def test_round_trip_and_layout(toy_tok, toy_traj):
    codec = FrameCodec.for_tokenizer(toy_tok)
    tokens = toy_tok.encode(toy_traj[:3])
    ids = codec.encode_frames(tokens)
    L = toy_tok.tokens_per_frame
    assert ids.shape == (codec.sequence_length(3),) == (1 + 3 * (L + 1),)
    assert ids[0] == codec.bos_id
    assert (ids[1:].reshape(3, L + 1)[:, -1] == codec.frame_id).all()
    assert ids[1:].reshape(3, L + 1)[:, :-1].min() >= codec.structure_offset
    np.testing.assert_array_equal(codec.decode_frames(ids), tokens)
    np.testing.assert_array_equal(codec.decode_frames(codec.encode_frames(tokens, bos=False)), tokens)
    assert codec.lm_vocab_size == 3 + toy_tok.vocab_size
    assert FrameCodec.from_dict(codec.to_dict()) == codec


def test_position_mask_matches_ranges(toy_tok):
    codec = FrameCodec.for_tokenizer(toy_tok)
    mask = codec.position_mask()
    ranges = toy_tok.valid_token_ranges()
    assert mask.shape == (toy_tok.tokens_per_frame, toy_tok.vocab_size)
    for row, (lo, hi) in zip(mask, ranges):
        assert row.sum() == hi - lo and row[lo:hi].all()


def test_invalid_tokens_are_refused(toy_tok):
    codec = FrameCodec.for_tokenizer(toy_tok)
    bad = np.zeros((1, toy_tok.tokens_per_frame), dtype=int)  # position 1 needs y-bins >= n_bins
    with pytest.raises(ModelError, match="outside the allowed range"):
        codec.encode_frames(bad)
    with pytest.raises(ModelError, match="shape"):
        codec.encode_frames(np.zeros((2, 3), dtype=int))


def test_pretrained_codec_appends_tokens(toy_tok):
    codec = FrameCodec.for_tokenizer(toy_tok, base_vocab_size=100, bos_id=1, pad_id=None)
    assert codec.structure_offset == 100
    assert codec.frame_id == 100 + toy_tok.vocab_size
    assert codec.lm_vocab_size == 101 + toy_tok.vocab_size
    assert codec.new_token_ids() == list(range(100, 101 + toy_tok.vocab_size))


def test_bad_ranges():
    with pytest.raises(ModelError):
        FrameCodec(2, 4, ((0, 4), (3, 3)))
    with pytest.raises(ModelError):
        FrameCodec(2, 4, ((0, 4),))
