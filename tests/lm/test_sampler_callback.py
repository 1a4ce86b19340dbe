"""``Sampler.sample(callback=...)``: frames as they arrive, and a cooperative stop."""
from __future__ import annotations

import numpy as np
import pytest

from mdllm_kit.ensemble import GeneratedEnsemble
from mdllm_kit.lm.sampler import Sampler


def test_callback_sees_every_frame_in_order(trained_bundle, toy_tok):
    seen: list[tuple[int, np.ndarray]] = []

    def record(i, tokens):
        assert not tokens.flags.writeable  # the sampler's own buffer: read-only for the callback
        seen.append((i, tokens.copy()))

    ens = Sampler(trained_bundle).sample(n_frames=4, n_walkers=3, seed=5, callback=record)
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    assert all(t.shape == (3, toy_tok.tokens_per_frame) for _, t in seen)
    # frame i of walker k as the callback saw it is frame i of walker k of the result
    np.testing.assert_array_equal(np.stack([t for _, t in seen], axis=1), ens.tokens)


def test_callback_does_not_change_the_samples(trained_bundle):
    sampler = Sampler(trained_bundle)
    plain = sampler.sample(n_frames=3, n_walkers=2, seed=9)
    with_cb = sampler.sample(n_frames=3, n_walkers=2, seed=9, callback=lambda i, t: True)
    np.testing.assert_array_equal(plain.tokens, with_cb.tokens)
    np.testing.assert_array_equal(plain.log_likelihood, with_cb.log_likelihood)


@pytest.mark.parametrize("stop_after", [1, 3])
def test_returning_false_stops_after_that_frame(trained_bundle, stop_after):
    calls = []

    def stop(i, tokens):
        calls.append(i)
        return False if i + 1 == stop_after else None

    sampler = Sampler(trained_bundle)
    ens = sampler.sample(n_frames=6, n_walkers=2, seed=4, callback=stop)
    assert calls == list(range(stop_after))
    assert ens.n_frames == stop_after and ens.trajectory.n_frames == 2 * stop_after
    full = sampler.sample(n_frames=6, n_walkers=2, seed=4)
    np.testing.assert_array_equal(ens.tokens, full.tokens[:, :stop_after])


def test_stopped_run_in_a_folder_is_flushed_and_resumable(trained_bundle, tmp_path):
    sampler = Sampler(trained_bundle)
    out = tmp_path / "run"
    # flush_every larger than the frames done: the stop itself must flush them
    part = sampler.sample(n_frames=6, n_walkers=2, seed=2, flush_every=10, out=out,
                          callback=lambda i, t: i < 1)  # False after frame 1 -> 2 frames
    assert part.n_frames == 2
    assert GeneratedEnsemble.load(out).n_frames == 2
    done = sampler.sample(n_frames=6, n_walkers=2, seed=2, flush_every=10, out=out, resume=True)
    full = sampler.sample(n_frames=6, n_walkers=2, seed=2)
    np.testing.assert_array_equal(done.tokens, full.tokens)
