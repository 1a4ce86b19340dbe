"""Walker-parallel sampling: shards of walkers generated in forked worker processes."""
import copy
import json
import logging
import os
import time

import numpy as np
import pytest
import torch

import mdllm_kit as mk
from mdllm_kit.errors import SamplingError
from mdllm_kit.lm import walker_pool
from mdllm_kit.lm.sampler import Sampler, frame_uniforms
from mdllm_kit.lm.walker_pool import WalkerPool, shard_bounds

needs_fork = pytest.mark.skipif(not walker_pool.fork_available(), reason="needs the fork start method (Linux)")


def _uniforms(settings, frame, k, L):
    return frame_uniforms(settings.seed, frame, k, L)


def test_shard_bounds_cover_every_walker_once():
    assert shard_bounds(8, 2) == [(0, 4), (4, 8)]
    assert shard_bounds(5, 2) == [(0, 2), (2, 5)] or shard_bounds(5, 2) == [(0, 3), (3, 5)]
    assert shard_bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]  # never an empty shard
    assert shard_bounds(7, 1) == [(0, 7)]
    for k, n in ((17, 3), (64, 2), (9, 4)):
        bounds = shard_bounds(k, n)
        assert bounds[0][0] == 0 and bounds[-1][1] == k and all(a < b for a, b in bounds)
        assert all(b0 == a1 for (_, b0), (a1, _) in zip(bounds[:-1], bounds[1:]))


def test_a_walkers_draws_do_not_depend_on_its_batch(trained_bundle):
    """Token j of walker k is drawn with its own uniform number: a walker generated alone gets the same tokens."""
    sampler = Sampler(trained_bundle, precision="fp32", processes=1)
    s = mk.SamplingSettings(seed=3, entropy_cap=None)
    hist = sampler.seed_tokens(None, 4, trained_bundle.window_frames)
    u = _uniforms(s, 0, 4, trained_bundle.codec.tokens_per_frame)
    tokens, loglik = sampler._generate(hist, s, u)
    np.testing.assert_array_equal(tokens, sampler.generate_frame(hist, s, 0)[0])
    alone, alone_ll = sampler._generate(hist[2:3], s, u[2:3])
    np.testing.assert_array_equal(alone[0], tokens[2])
    assert alone_ll[0] == pytest.approx(loglik[2], rel=1e-5)


@needs_fork
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_processes_give_each_shard_what_one_process_gives_it(trained_bundle, toy_tok, precision):
    s = mk.SamplingSettings(seed=5)
    L = toy_tok.tokens_per_frame
    with Sampler(trained_bundle, precision=precision, processes=2) as sampler:
        assert sampler.processes_for(5) == 2 and sampler.processes_for(1) == 1
        hist = sampler.seed_tokens(None, 5, trained_bundle.window_frames)
        tokens, loglik = sampler.generate_frame(hist, s, 7)
        workers = {p.pid for p in sampler._pool._executor._processes.values()}
        assert workers and os.getpid() not in workers
    assert sampler._pool is None  # closed by the context manager
    one = Sampler(trained_bundle, precision=precision, processes=1)
    u = _uniforms(s, 7, 5, L)
    for a, b in shard_bounds(5, 2):  # the same batch sizes as the shards: the same numbers, bit for bit
        t, ll = one._generate(hist[a:b], s, u[a:b])
        np.testing.assert_array_equal(tokens[a:b], t)
        np.testing.assert_array_equal(loglik[a:b], ll)
    ranges = toy_tok.valid_token_ranges()
    assert ((tokens >= ranges[:, 0]) & (tokens < ranges[:, 1])).all()


@needs_fork
def test_sample_in_two_processes_records_and_resumes(trained_bundle, tmp_path, caplog):
    out = tmp_path / "run"
    with Sampler(trained_bundle, processes=2) as sampler:
        full = sampler.sample(n_frames=4, n_walkers=4, seed=2)
        first = sampler.sample(n_frames=2, n_walkers=4, seed=2, out=out)
    assert json.loads((out / "params.json").read_text())["processes"] == 2
    np.testing.assert_array_equal(first.tokens, full.tokens[:, :2])
    with Sampler(trained_bundle, processes=2) as sampler:
        resumed = sampler.sample(n_frames=4, n_walkers=4, seed=2, out=out, resume=True)
    np.testing.assert_array_equal(resumed.tokens, full.tokens)
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.ensemble"):
        Sampler(trained_bundle, processes=1).sample(n_frames=5, n_walkers=4, seed=2, out=out, resume=True)
    assert "sampled in 2 process(es)" in caplog.text


@needs_fork
def test_workers_are_forked_again_when_the_model_changes(trained_bundle):
    bundle = copy.deepcopy(trained_bundle)
    s = mk.SamplingSettings(seed=1, entropy_cap=None)
    with Sampler(bundle, precision="fp32", processes=2) as sampler:
        hist = sampler.seed_tokens(None, 4, bundle.window_frames)
        before, _ = sampler.generate_frame(hist, s, 0)
        pids = set(sampler._pool._executor._processes)
        with torch.no_grad():  # every logit 0 now: the workers must see the new weights
            bundle.model.lm_head.weight.mul_(0.0)
        after, _ = sampler.generate_frame(hist, s, 0)
        assert set(sampler._pool._executor._processes).isdisjoint(pids)
    # all logits equal now: the draws are uniform over each position's allowed tokens, in both shards
    reference = Sampler(bundle, precision="fp32", processes=1)
    u = _uniforms(s, 0, 4, bundle.codec.tokens_per_frame)
    np.testing.assert_array_equal(after[2:], reference._generate(hist[2:], s, u[2:])[0])
    assert not np.array_equal(before, after)


@needs_fork
def test_auto_uses_processes_only_with_enough_walkers(trained_bundle, monkeypatch):
    monkeypatch.setattr("mdllm_kit.lm.sampler.usable_cpus", lambda: 2)
    sampler = Sampler(trained_bundle)
    assert sampler.processes == 2
    assert sampler.processes_for(3) == 1 and sampler.processes_for(4) == 2 and sampler.processes_for(64) == 2
    assert Sampler(trained_bundle, processes=3).processes_for(2) == 2  # explicit: up to one walker per process


def test_processes_that_cannot_run_are_refused(trained_bundle, monkeypatch):
    with pytest.raises(SamplingError, match="processes must be >= 1"):
        Sampler(trained_bundle, processes=0)
    monkeypatch.setattr("mdllm_kit.lm.sampler.fork_available", lambda: False)
    with pytest.raises(SamplingError, match="'fork' start method"):
        Sampler(trained_bundle, processes=2)
    assert Sampler(trained_bundle).processes == 1  # auto: this process only


def _echo_or_fail(x):
    """Shard target of the pool tests: returns its argument, fails on "boom"."""
    if x == "boom":
        raise SamplingError("shard failed")
    return x


@needs_fork
@pytest.mark.parametrize("failing", [0, 1], ids=["caller's shard", "worker's shard"])
def test_a_failing_shard_raises_in_the_caller_and_the_pool_stays_usable(failing):
    pool = WalkerPool(_echo_or_fail, torch.nn.Linear(2, 2), 2)
    try:
        assert pool.map([("a",), ("b",)]) == ["a", "b"]
        shards = [("a",), ("b",)]
        shards[failing] = ("boom",)
        with pytest.raises(SamplingError, match="shard failed"):
            pool.map(shards)
        assert pool.map([("c",), ("d",)]) == ["c", "d"]
    finally:
        pool.close()


@needs_fork
def test_ctrl_c_to_the_process_group_leaves_the_workers_running():
    """A notebook's interrupt reaches every process of the group: the workers ignore it, the pool keeps working."""
    import signal

    pool = WalkerPool(lambda x: (x, os.getpid()), torch.nn.Linear(2, 2), 2)
    try:
        _, (_, worker) = pool.map([("a",), ("b",)])
        os.kill(worker, signal.SIGINT)
        time.sleep(0.5)
        assert pool.map([("c",), ("d",)])[1] == ("d", worker)  # the same worker, alive
    finally:
        pool.close()


@needs_fork
def test_workers_stop_when_the_sampler_is_dropped(trained_bundle):
    """No reference cycle keeps a sampler (and its workers) alive: ``mk.explore`` and the explorer just drop theirs."""
    sampler = Sampler(trained_bundle, processes=2)
    hist = sampler.seed_tokens(None, 4, trained_bundle.window_frames)
    sampler.generate_frame(hist, mk.SamplingSettings(), 0)
    workers = [p for p in sampler._pool._executor._processes.values()]
    assert workers
    del sampler
    for p in workers:
        p.join(10)
    assert not any(p.is_alive() for p in workers)


def test_uniform_draws_invert_the_cdf_and_never_hit_forbidden_tokens():
    from mdllm_kit.lm.sampler import sample_from_logits

    inf = float("-inf")
    logits = torch.tensor([[inf, 0.0, 0.0, inf, 0.0, inf]] * 5)  # allowed: 1, 2, 4, equally likely
    allowed = torch.ones(6, dtype=torch.bool)
    u = torch.tensor([0.0, 0.3, 0.5, 0.9, 1.0 - 1e-17], dtype=torch.float64)
    drawn = sample_from_logits(logits, allowed, 1.0, 0, 1.0, None, uniform=u)
    assert drawn.tolist() == [1, 1, 2, 4, 4]
    # top-k sorts: the uniform walks the kept tokens from the most likely one
    ranked = torch.tensor([[0.0, 3.0, 1.0, 2.0]] * 2)
    assert sample_from_logits(ranked, torch.ones(4, dtype=torch.bool), 1.0, 2, 1.0, None,
                              uniform=torch.tensor([0.1, 0.99], dtype=torch.float64)).tolist() == [1, 3]
    # the mask comes first, top-p keeps the most likely token
    assert sample_from_logits(ranked[:1], torch.tensor([True, False, True, True]), 1.0, 0, 1e-6, None,
                              uniform=torch.tensor([0.99], dtype=torch.float64)).tolist() == [3]
    # a frame's numbers: a walker's row does not depend on the walkers after it
    np.testing.assert_array_equal(frame_uniforms(3, 7, 2, 9), frame_uniforms(3, 7, 5, 9)[:2])
    with pytest.raises(SamplingError, match="NaN or infinite logits"):
        sample_from_logits(torch.full((1, 4), float("nan")), torch.ones(4, dtype=torch.bool), 1.0, 0, 1.0, None,
                           uniform=torch.tensor([0.5], dtype=torch.float64))


@needs_fork
def test_a_dead_worker_is_one_line_and_the_next_frame_starts_new_workers(trained_bundle):
    import signal

    s = mk.SamplingSettings(seed=4)
    with Sampler(trained_bundle, processes=2) as sampler:
        hist = sampler.seed_tokens(None, 4, trained_bundle.window_frames)
        first = sampler.generate_frame(hist, s, 0)
        for pid in list(sampler._pool._executor._processes):
            os.kill(pid, signal.SIGKILL)  # e.g. the out-of-memory killer
        time.sleep(0.5)
        with pytest.raises(SamplingError, match="a sampling worker process stopped"):
            sampler.generate_frame(hist, s, 0)
        again = sampler.generate_frame(hist, s, 0)
    np.testing.assert_array_equal(again[0], first[0])


@needs_fork
def test_frames_are_decoded_over_the_processes_in_order(trained_bundle, toy_tok, tmp_path):
    with Sampler(trained_bundle, processes=2) as sampler:
        ens = sampler.sample(n_frames=3, n_walkers=4, seed=6, out=tmp_path / "run")
        tokens = ens.tokens.transpose(1, 0, 2).reshape(-1, toy_tok.tokens_per_frame)
        decoded = sampler.decode_frames(tokens)
        assert sampler._pool is not None  # the frames went through the workers
    np.testing.assert_allclose(decoded.xyz, toy_tok.decode(tokens).xyz, rtol=0, atol=1e-7)
    on_disk = mk.GeneratedEnsemble.load(tmp_path / "run").trajectory  # written through decode_frames
    np.testing.assert_allclose(on_disk.xyz, decoded.xyz, atol=2e-3)  # xtc precision
    np.testing.assert_array_equal(on_disk.time, np.repeat(np.arange(3.0), 4))
