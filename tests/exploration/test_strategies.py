"""Strategy bookkeeping: least-counts restarts, the history bias, the model-free control, the registry."""
from __future__ import annotations

import numpy as np
import pytest

from mdllm_kit.errors import SamplingError
from mdllm_kit.exploration import (Archive, HistoryBias, LeastCountsRestart, Rollout, TokenNoiseProposal,
                                   bias_potential, cell_labels, make_strategy, strategy_names)


def _archive(cv: np.ndarray, valid: np.ndarray) -> Archive:
    """Archive of (n_steps, n_walkers, d) values."""
    archive = Archive(cv.shape[1], cv.shape[2])
    for c, v in zip(cv, valid):
        archive.add(c, v)
    return archive


def test_cell_labels_group_points_of_the_same_cell():
    labels = cell_labels(np.array([[0.1, 0.1], [0.4, 0.2], [0.6, 0.1], [-0.1, 0.1]]), 0.5)
    assert labels[0] == labels[1] and len(set(labels.tolist())) == 3


def test_restart_seeds_walkers_in_the_least_visited_valid_cells():
    # 3 steps x 2 walkers in 1-D: cell 0 visited 4 times, cell 4 twice, of which one frame invalid; cell 9 once
    cv = np.array([[[0.1], [0.2]], [[0.3], [2.1]], [[0.4], [4.6]], ])
    cv = np.concatenate([cv, [[[2.2], [0.45]]]])  # step 3: cell 4 (valid? no), cell 0
    valid = np.array([[True, True], [True, True], [True, True], [False, True]])
    strategy = LeastCountsRestart(round_frames=4, cell_width=0.5)
    archive = _archive(cv, valid)
    assert strategy.restarts(3, archive, np.random.default_rng(0)) == []  # not a round boundary
    out = strategy.restarts(4, archive, np.random.default_rng(0))
    assert [r.walker for r in out] == [0, 1] and all(r.step == 4 for r in out)
    sources = {(r.source_step, r.source_walker) for r in out}
    # least counts first: the cell at 4.6 (1 frame, step 2 walker 1), then the cell at 2.1-2.2 (2 frames, only the
    # valid one at step 1 walker 1 can seed)
    assert sources == {(2, 1), (1, 1)}


def test_restart_without_any_valid_frame_restarts_nobody():
    archive = _archive(np.zeros((2, 2, 1)), np.zeros((2, 2), bool))
    assert LeastCountsRestart(round_frames=1).restarts(2, archive, np.random.default_rng(0)) == []


def test_bias_potential_is_a_sum_of_unit_hills():
    v = bias_potential(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), 1.0)
    np.testing.assert_allclose(v, [2 + np.exp(-0.5), 0.0], atol=1e-12)
    assert bias_potential(np.zeros((3, 2)), np.empty((0, 2)), 1.0).tolist() == [0, 0, 0]


def test_bias_prefers_unvisited_candidates_and_never_picks_invalid_ones():
    archive = _archive(np.zeros((5, 2, 1)), np.ones((5, 2), bool))  # everything so far sat at 0
    cv = np.array([[[0.0], [3.0], [0.1]],    # walker 0: candidate 1 is far from the visited region
                   [[3.0], [0.0], [0.0]]])   # walker 1: candidate 0 is, but it is invalid
    valid = np.array([[True, True, True], [False, True, True]])
    strong = HistoryBias(n_candidates=3, hill_width=0.3, strength=50.0)
    picks = np.array([strong.select(0, cv, valid, archive, np.random.default_rng(s)) for s in range(50)])
    assert (picks[:, 0] == 1).all()
    assert (picks[:, 1] != 0).all()
    # strength 0: uniform among valid candidates
    uniform = HistoryBias(n_candidates=3, strength=0.0)
    picks = np.array([uniform.select(0, cv, valid, archive, np.random.default_rng(s)) for s in range(300)])
    assert set(picks[:, 0].tolist()) == {0, 1, 2} and set(picks[:, 1].tolist()) == {1, 2}
    # all invalid: a candidate is still chosen
    none_valid = np.zeros_like(valid)
    assert strong.select(0, cv, none_valid, archive, np.random.default_rng(0)).shape == (2,)


def test_token_noise_proposal_stays_in_range_and_is_reproducible(ca_tokenizer, ca_traj):
    tokens = ca_tokenizer.encode(ca_traj[:4])
    proposal = TokenNoiseProposal(ca_tokenizer, rate=0.5, bins=3.0, seed=2)
    history = np.stack([tokens[:2], tokens[2:]])  # (2 walkers, 2 frames, L)
    a, ll = proposal.propose(history, 7)
    b, _ = proposal.propose(history, 7)
    c, _ = proposal.propose(history, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and ll.shape == (2,)
    ranges = np.asarray(ca_tokenizer.valid_token_ranges())
    assert ((a >= ranges[:, 0]) & (a < ranges[:, 1])).all()
    moved = (a != history[:, -1]).mean()
    assert 0.3 < moved < 0.7  # about rate of the tokens move
    with pytest.raises(SamplingError, match="0 < rate <= 1"):
        TokenNoiseProposal(ca_tokenizer, rate=0.0)


def test_registry_and_options():
    assert {"rollout", "restart", "bias"} <= set(strategy_names())
    assert isinstance(make_strategy("rollout"), Rollout)
    assert make_strategy("bias", n_candidates=2).candidates == 2
    assert make_strategy("restart", round_frames=5).to_dict() == {"name": "restart", "round_frames": 5,
                                                                 "cell_width": 0.5}
    with pytest.raises(SamplingError, match="set them on the object"):
        make_strategy(Rollout(), round_frames=3)
    with pytest.raises(SamplingError, match="hill_width must be > 0"):
        HistoryBias(hill_width=0)
