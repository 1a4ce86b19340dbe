import numpy as np
import pytest
import torch

from mdllm_kit.errors import ModelError
from mdllm_kit.lm.evaluate import _bin_error, next_frame_quality, predict_next_frames


def test_copy_baseline_and_model_on_held_out_frames(trained_bundle, toy_tok, toy_traj):
    tokens = toy_tok.encode(toy_traj[40:])
    q = next_frame_quality(trained_bundle, tokens, max_windows=8)
    W = trained_bundle.window_frames
    assert q["context_frames"] == W and q["n_windows"] == 8
    starts = np.unique(np.linspace(0, len(tokens) - W - 1, 8).round().astype(int))
    truth, last = tokens[starts + W], tokens[starts + W - 1]
    assert q["copy_previous"]["token_accuracy"] == pytest.approx((truth == last).mean())
    assert q["copy_previous"]["mean_bin_error"] == pytest.approx(np.abs(truth - last).mean())
    for name in ("model", "copy_previous"):
        assert 0 <= q[name]["token_accuracy"] <= 1 and q[name]["rmsd_A"] >= 0
        assert set(q[name]["mean_bin_error_by_kind"]) == {"x", "y", "z"}  # the toy tokenizer's position kinds


def test_a_frozen_trajectory_is_copied_exactly(trained_bundle, toy_tok, toy_traj):
    tokens = np.repeat(toy_tok.encode(toy_traj[:1]), 6, axis=0)
    q = next_frame_quality(trained_bundle, tokens)
    assert q["copy_previous"] == {"token_accuracy": 1.0, "rmsd_A": pytest.approx(0.0, abs=1e-3),
                                  "mean_bin_error": 0.0,
                                  "mean_bin_error_by_kind": {"x": 0.0, "y": 0.0, "z": 0.0}}


def test_predictions_are_valid_tokens(trained_bundle, toy_tok, toy_traj):
    tokens = toy_tok.encode(toy_traj[:12])
    windows = np.stack([tokens[i: i + 4] for i in range(5)])
    pred = predict_next_frames(trained_bundle, windows, batch_size=2)
    assert pred.shape == (5, toy_tok.tokens_per_frame)
    trained_bundle.codec.check_tokens(pred)
    np.testing.assert_array_equal(pred, predict_next_frames(trained_bundle, windows, batch_size=5))


def test_predictions_are_the_constrained_argmax_of_the_causal_prefix(trained_bundle, toy_tok, toy_traj):
    """Token j of the target frame is the valid-range argmax of the logits after the first + j tokens before it."""
    bundle, codec = trained_bundle, trained_bundle.codec
    tokens = toy_tok.encode(toy_traj[:10])
    windows = np.stack([tokens[i: i + 4] for i in range(0, 6, 2)])  # C = 3 context frames + the target
    pred = predict_next_frames(bundle, windows)
    first = codec.sequence_length(3)  # LM index of the target frame's first token
    ranges = codec.ranges_array()
    L = codec.tokens_per_frame
    for w, window in enumerate(windows):
        ids = torch.from_numpy(codec.encode_frames(window))[None]
        assert ids[0, first] == window[-1, 0] + codec.structure_offset
        for j in range(L):  # every position: an off-by-one slice reads the true token itself (a leak)
            with torch.no_grad():
                last = bundle.model(input_ids=ids[:, : first + j]).logits[0, -1].double()
            lo, hi = codec.structure_offset + ranges[j, 0], codec.structure_offset + ranges[j, 1]
            assert pred[w, j] == ranges[j, 0] + int(last[lo:hi].argmax())


def test_too_few_frames_are_refused(trained_bundle, toy_tok, toy_traj):
    with pytest.raises(ModelError, match="too few"):
        next_frame_quality(trained_bundle, toy_tok.encode(toy_traj[:2]))


def test_bin_error_wraps_periodic_kinds():
    ranges = np.array([[0, 256], [256, 512]])
    kinds = np.array(["angle", "dihedral"])
    pred, truth = np.array([[0, 256]]), np.array([[255, 511]])
    np.testing.assert_array_equal(_bin_error(pred, truth, ranges, kinds, frozenset({"dihedral"})), [[255, 1]])
    np.testing.assert_array_equal(_bin_error(pred, truth, ranges, kinds, frozenset()), [[255, 255]])
