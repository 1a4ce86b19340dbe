"""The exploration engine: rollouts equal sampling, restart lineage, resume, determinism, the folder."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.errors import SamplingError
from mdllm_kit.exploration import (EXPLORATION_FILE, CollectiveVariables, ExplorationStrategy, Restart,
                                   TokenNoiseProposal, lineage, read_exploration, register_strategy)
from mdllm_kit.ensemble import GeneratedEnsemble
from mdllm_kit.lm.walker_pool import fork_available


class RecordingProposal(TokenNoiseProposal):
    """The model-free control, remembering every context it was given."""

    def __init__(self, tokenizer, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.contexts: dict[int, np.ndarray] = {}

    def propose(self, history, frame_index):
        self.contexts[frame_index] = np.array(history)
        return super().propose(history, frame_index)


class EveryOtherStepFromWalkerZero(ExplorationStrategy):
    """Test strategy: at every even step, the last walker restarts from walker 0's frame two steps back."""

    name = "test-every-other"

    def restarts(self, step, archive, rng):
        if step % 2 or step < 2:
            return []
        return [Restart(step, archive.n_walkers - 1, step - 2, 0)]


def test_rollout_strategy_gives_the_samplers_frames(tiny_bundle):
    """Plain rollouts through the engine are exactly Sampler.sample with the same seed and settings."""
    sampled = mk.Sampler(tiny_bundle).sample(n_frames=4, n_walkers=3, seed=5)
    explored = mk.explore(tiny_bundle, "rollout", budget_frames=12, n_walkers=3, seed=5)
    np.testing.assert_array_equal(explored.tokens, sampled.tokens)
    np.testing.assert_allclose(explored.log_likelihood, sampled.log_likelihood)
    np.testing.assert_allclose(explored.trajectory.xyz, sampled.trajectory.xyz, atol=1e-6)
    assert explored.params["exploration"]["strategy"] == {"name": "rollout"}
    assert explored.params["exploration"]["unbiased"] is True


@pytest.mark.skipif(not fork_available(), reason="needs the fork start method (Linux)")
def test_walker_parallel_exploration_gives_the_one_process_frames(tiny_bundle, ca_traj):
    """The bias strategy's candidates (walkers x candidates rows) split over two processes: the same frames."""
    runs = {n: mk.explore(tiny_bundle, "bias", budget_frames=6, n_walkers=2, seed=1, training=ca_traj,
                          n_candidates=3, processes=n, precision="fp32") for n in (1, 2)}
    assert runs[2].params["processes"] == 2 and runs[1].params["processes"] == 1
    np.testing.assert_array_equal(runs[2].tokens, runs[1].tokens)


def test_folder_is_a_sampling_folder_with_an_exploration_record(tiny_bundle, ca_traj, tmp_path):
    out = tmp_path / "run"
    ens = mk.explore(tiny_bundle, "restart", budget_frames=16, n_walkers=4, seed=0, training=ca_traj, out=out,
                     round_frames=2, flush_every=3)
    assert {p.name for p in out.iterdir()} == {"params.json", "tokens.npz", "trajectory.xtc", "topology.pdb",
                                              EXPLORATION_FILE}
    loaded = GeneratedEnsemble.load(out)
    np.testing.assert_array_equal(loaded.tokens, ens.tokens)
    assert loaded.trajectory.n_frames == 16 and loaded.n_walkers == 4
    record = read_exploration(out)
    assert record["strategy"] == {"name": "restart", "round_frames": 2, "cell_width": 0.5}
    assert record["steps_done"] == 4 and record["frames_drawn"] == 16 and record["unbiased"] is False
    assert len(record["cv"]["labels"]) == 2 and len(record["cv"]["mean"]) == 2
    # restarts happen at step 2 (every round_frames steps), one per walker, from valid earlier frames
    restarts = record["restarts"]
    assert sorted(r["walker"] for r in restarts) == [0, 1, 2, 3]
    for r in restarts:
        assert r["step"] == 2 and r["source_step"] < 2
    # mdllm analyze takes the folder as it takes a sampling run
    metrics = mk.analyze(loaded, ca_traj, {"start": ca_traj[:1]})
    assert metrics["n_frames"] == 16 and metrics["n_walkers"] == 4
    # ... and says that populations of a biased run mean nothing
    assert metrics["exploration"]["unbiased"] is False and "not Boltzmann-weighted" in metrics["exploration"]["note"]
    assert any("biased exploration strategy" in line for line in mk.analysis.summary_lines(metrics))
    rollout = mk.explore(tiny_bundle, "rollout", budget_frames=4, n_walkers=2)
    assert "exploration" not in mk.analyze(rollout, ca_traj, {"start": ca_traj[:1]})


def test_a_restarted_walker_continues_from_its_source_frames_context(ca_tokenizer, ca_traj):
    register_strategy(EveryOtherStepFromWalkerZero)
    proposal = RecordingProposal(ca_tokenizer, rate=0.3, bins=1.0, seed=1, context_frames=2)
    ens = mk.explore(None, "test-every-other", budget_frames=18, n_walkers=3, seed=0, proposal=proposal,
                     seed_frames=ca_traj[:2])
    restarts = ens.params["exploration"]["restarts"]
    assert [r["step"] for r in restarts] == [2, 4]
    tokens = ens.tokens  # (walkers, steps, L)
    for r in restarts:
        ctx = proposal.contexts[r["step"]][2]  # walker 2 (one candidate per walker)
        # the context ends with walker 0's frame at step - 2, preceded by its own predecessor
        np.testing.assert_array_equal(ctx[-1], tokens[0, r["step"] - 2])
        np.testing.assert_array_equal(ctx[-2], tokens[0, r["step"] - 3] if r["step"] >= 3
                                      else ca_tokenizer.encode(ca_traj[:2])[-1 + r["step"] - 2])
    # the walkers that were not restarted continue their own trajectory
    np.testing.assert_array_equal(proposal.contexts[4][1][-1], tokens[1, 3])


def test_restart_into_a_short_seed_uses_the_common_context_length(ca_tokenizer, ca_traj):
    """One seed frame, context 3: a walker restarted from step 0 has a 2-frame lineage, the others 3."""
    register_strategy(EveryOtherStepFromWalkerZero)
    proposal = RecordingProposal(ca_tokenizer, rate=0.3, seed=1, context_frames=3)
    ens = mk.explore(None, "test-every-other", budget_frames=9, n_walkers=3, seed=0, proposal=proposal,
                     seed_frames=ca_traj[:1])
    assert ens.n_frames == 3
    assert proposal.contexts[1].shape[1] == 2 and proposal.contexts[2].shape[1] == 2  # common length at step 2
    np.testing.assert_array_equal(proposal.contexts[2][2][-1], ens.tokens[0, 0])  # walker 2 restarted from (0, 0)


def test_lineage_walks_back_through_restarts_into_the_seed():
    parents = np.empty((4, 2, 2), dtype=np.int64)
    parents[:, :, 0] = np.arange(4)[:, None] - 1
    parents[:, :, 1] = np.arange(2)[None]
    parents[3, 1] = (1, 0)  # walker 1 restarted at step 3 from walker 0's step 1
    assert lineage(parents, 3, 1, 4) == [(-1, 0), (0, 0), (1, 0), (3, 1)]
    assert lineage(parents, 1, 1, 4) == [(-3, 1), (-2, 1), (-1, 1), (0, 1), (1, 1)][-4:]


@pytest.mark.parametrize("strategy, options", [("restart", {"round_frames": 2}), ("bias", {"n_candidates": 3})])
def test_an_interrupted_run_resumes_to_the_uninterrupted_frames(tiny_bundle, ca_traj, tmp_path, strategy, options):
    cv = CollectiveVariables.pca(ca_traj)
    full = mk.explore(tiny_bundle, strategy, budget_frames=15, n_walkers=3, seed=3, cv=cv, **options)
    out = tmp_path / "run"
    part = mk.explore(tiny_bundle, strategy, budget_frames=15, n_walkers=3, seed=3, cv=cv, out=out, flush_every=2,
                      callback=lambda step: step.step < 2, **options)
    assert part.n_frames == 3
    resumed = mk.explore(tiny_bundle, strategy, budget_frames=15, n_walkers=3, seed=3, cv=cv, out=out,
                         resume=True, **options)
    np.testing.assert_array_equal(resumed.tokens, full.tokens)
    assert read_exploration(out)["restarts"] == full.params["exploration"]["restarts"]
    assert read_exploration(out)["frames_drawn"] == full.params["exploration"]["frames_drawn"]


def test_same_seed_same_frames_other_seed_other_frames(ca_tokenizer, ca_traj):
    def run(seed):
        proposal = TokenNoiseProposal(ca_tokenizer, rate=0.2, seed=seed)
        return mk.explore(None, "bias", budget_frames=8, n_walkers=2, seed=seed, proposal=proposal,
                          seed_frames=ca_traj[:1], training=ca_traj, n_candidates=2).tokens

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_a_crash_between_record_and_tokens_does_not_over_count(ca_tokenizer, ca_traj, tmp_path):
    def run(out, **kw):
        proposal = TokenNoiseProposal(ca_tokenizer, rate=0.3, seed=0)
        return mk.explore(None, "bias", budget_frames=15, n_walkers=3, seed=0, proposal=proposal,
                          seed_frames=ca_traj[:1], training=ca_traj, n_candidates=2, out=out, flush_every=1, **kw)

    full = run(tmp_path / "full").params["exploration"]
    part = tmp_path / "part"
    run(part, callback=lambda step: step.step < 2)  # 3 steps saved
    # the crash window: exploration.json of a later flush was written, its tokens.npz was not
    (part / "exploration.json").write_text(json.dumps(full))
    resumed = run(part, resume=True).params["exploration"]
    for key in ("frames_drawn", "invalid_drawn", "invalid_chosen", "counts_by_step"):
        assert resumed[key] == full[key], key
    assert resumed["frames_drawn"] == sum(c[0] for c in full["counts_by_step"]) == 5 * 3 * 2


def test_bias_draws_candidates_and_counts_them(ca_tokenizer, ca_traj, tmp_path):
    proposal = TokenNoiseProposal(ca_tokenizer, rate=0.2, seed=0)
    ens = mk.explore(None, "bias", budget_frames=9, n_walkers=3, seed=0, proposal=proposal, seed_frames=ca_traj[:1],
                     training=ca_traj, out=tmp_path / "b", n_candidates=4)
    record = ens.params["exploration"]
    assert record["frames_drawn"] == 3 * 3 * 4 and record["candidates"] == 4
    assert 0 <= record["invalid_chosen"] <= record["invalid_drawn"] <= record["frames_drawn"]
    assert json.loads((tmp_path / "b" / "params.json").read_text())["exploration"]["proposal"]["kind"] == "token_noise"


def test_bad_requests_are_one_line_errors(tiny_bundle, ca_traj, tmp_path):
    with pytest.raises(SamplingError, match="unknown exploration strategy 'nope'; choose one of"):
        mk.explore(tiny_bundle, "nope", budget_frames=4)
    with pytest.raises(SamplingError, match="does not take these options"):
        mk.explore(tiny_bundle, "restart", budget_frames=4, n_walkers=2, training=ca_traj, hills=3)
    with pytest.raises(SamplingError, match="less than one frame per walker"):
        mk.explore(tiny_bundle, "rollout", budget_frames=3, n_walkers=4)
    with pytest.raises(SamplingError, match="pass cv= .* or training="):
        mk.explore(tiny_bundle, "bias", budget_frames=4, n_walkers=2)
    with pytest.raises(SamplingError, match="round_frames must be >= 1"):
        mk.explore(tiny_bundle, "restart", budget_frames=4, n_walkers=2, training=ca_traj, round_frames=0)
    out = tmp_path / "run"
    mk.explore(tiny_bundle, "rollout", budget_frames=4, n_walkers=2, out=out)
    with pytest.raises(SamplingError, match="already holds a run; pass resume=True"):
        mk.explore(tiny_bundle, "rollout", budget_frames=4, n_walkers=2, out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SamplingError, match="--resume with another strategy"):
        mk.explore(tiny_bundle, "restart", budget_frames=8, n_walkers=2, out=out, resume=True, training=ca_traj)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_seed_tokens_of_a_model_free_run_are_checked(ca_tokenizer, ca_traj):
    bad = ca_tokenizer.encode(ca_traj[:1]).copy()
    bad[0, 0] = 10**6
    with pytest.raises(SamplingError):
        mk.explore(None, "rollout", budget_frames=2, n_walkers=2, proposal=TokenNoiseProposal(ca_tokenizer),
                   seed_frames=bad)
