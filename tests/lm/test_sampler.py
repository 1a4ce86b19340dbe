import json

import mdtraj as md
import numpy as np
import pytest
import torch

import mdllm_kit as mk
from mdllm_kit.errors import SamplingError
from mdllm_kit.ensemble import GeneratedEnsemble
from mdllm_kit.lm.sampler import Sampler, sample_from_logits


def _valid(tokens, tok):
    ranges = tok.valid_token_ranges()
    return ((tokens >= ranges[:, 0]) & (tokens < ranges[:, 1])).all()


def test_sample_from_logits_mask_and_truncation():
    logits = torch.tensor([[5.0, 4.0, 3.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    allowed = torch.tensor([True, True, True, False])
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = sample_from_logits(logits, allowed, 100.0, 0, 1.0, gen)
        assert (out != 3).all()
    assert sample_from_logits(logits, allowed, 1.0, 1, 1.0, gen)[0] == 0  # top-1 among allowed
    assert sample_from_logits(logits, allowed, 0.0, 0, 1.0, gen)[0] == 0  # greedy
    assert sample_from_logits(logits, allowed, 1.0, 0, 1e-6, gen)[0] == 0  # nucleus keeps the best


@pytest.mark.parametrize("temperature", [0.0, 1.0, 50.0])
def test_constraint_every_frame_decodes(trained_bundle, toy_tok, temperature):
    ens = Sampler(trained_bundle).sample(n_frames=4, n_walkers=3, seed=1, temperature=temperature, top_k=0, top_p=1.0)
    assert ens.tokens.shape == (3, 4, toy_tok.tokens_per_frame)
    assert _valid(ens.tokens.reshape(-1, toy_tok.tokens_per_frame), toy_tok)
    assert ens.trajectory.n_frames == 12 and ens.walker(2).n_frames == 4
    assert np.isfinite(ens.log_likelihood).all() and (ens.log_likelihood < 0).all()
    np.testing.assert_allclose(ens.walker(1).xyz, toy_tok.decode(ens.tokens[1]).xyz)


def test_seed_reproducibility(trained_bundle):
    sampler = mk.Sampler(trained_bundle)
    a = sampler.sample(n_frames=3, n_walkers=2, seed=7)
    b = sampler.sample(n_frames=3, n_walkers=2, seed=7)
    c = sampler.sample(n_frames=3, n_walkers=2, seed=8)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)
    assert not np.array_equal(a.tokens, c.tokens)
    assert not np.array_equal(a.tokens[0], a.tokens[1])  # walkers differ


def test_kv_cache_matches_full_forward(trained_bundle):
    """The log-likelihood from cached decoding equals a full teacher-forced forward pass."""
    sampler = Sampler(trained_bundle)
    ens = sampler.sample(n_frames=1, n_walkers=2, seed=3)
    codec = trained_bundle.codec
    seed = trained_bundle.seed_tokens
    for k in range(2):
        ids = torch.from_numpy(codec.encode_frames(np.concatenate([seed, ens.tokens[k]])))[None]
        with torch.no_grad():
            logp = torch.log_softmax(trained_bundle.model(input_ids=ids).logits.float(), -1)[0]
        start = codec.sequence_length(len(seed))
        targets = ids[0, start: start + codec.tokens_per_frame]
        ll = logp[start - 1: start - 1 + codec.tokens_per_frame].gather(1, targets[:, None]).sum().item()
        assert ll == pytest.approx(ens.log_likelihood[k, 0], rel=1e-4)


def test_seed_structures(trained_bundle, toy_traj, toy_tok):
    ens = Sampler(trained_bundle).sample(n_frames=2, n_walkers=2, seed_frames=toy_traj[:5])
    assert ens.n_frames == 2
    per_walker = np.stack([toy_tok.encode(toy_traj[:2]), toy_tok.encode(toy_traj[2:4])])
    assert Sampler(trained_bundle).sample(n_frames=1, n_walkers=2, seed_frames=per_walker).n_walkers == 2
    with pytest.raises(SamplingError, match="shape"):
        Sampler(trained_bundle).sample(n_frames=1, n_walkers=3, seed_frames=per_walker)


def test_streaming_and_resume(trained_bundle, tmp_path):
    sampler = Sampler(trained_bundle)
    ref = sampler.sample(n_frames=7, n_walkers=2, seed=11)
    out = tmp_path / "run"
    part = sampler.sample(n_frames=3, n_walkers=2, seed=11, flush_every=2, out=out)
    assert {p.name for p in out.iterdir()} >= {"trajectory.xtc", "topology.pdb", "tokens.npz", "params.json"}
    assert part.n_frames == 3
    with pytest.raises(SamplingError, match="resume"):
        sampler.sample(n_frames=7, n_walkers=2, seed=11, out=out)
    with pytest.raises(SamplingError, match="same settings"):
        sampler.sample(n_frames=7, n_walkers=2, seed=12, out=out, resume=True)
    done = sampler.sample(n_frames=7, n_walkers=2, seed=11, flush_every=2, out=out, resume=True)
    np.testing.assert_array_equal(done.tokens, ref.tokens)
    np.testing.assert_allclose(done.log_likelihood, ref.log_likelihood)
    traj = md.load(str(out / "trajectory.xtc"), top=str(out / "topology.pdb"))
    assert traj.n_frames == 14
    np.testing.assert_allclose(traj.xyz, ref.trajectory.xyz, atol=2e-3)  # xtc precision
    loaded = GeneratedEnsemble.load(out)
    np.testing.assert_array_equal(loaded.tokens, ref.tokens)
    assert json.loads((out / "params.json").read_text())["settings"]["seed"] == 11


def test_interrupted_flush_keeps_frames(trained_bundle, tmp_path, monkeypatch):
    """A run killed mid-way keeps the frames flushed so far and continues to the same result."""
    sampler = Sampler(trained_bundle)
    ref = sampler.sample(n_frames=5, n_walkers=1, seed=2)
    calls = {"n": 0}
    original = Sampler.generate_frame

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Sampler, "generate_frame", dying)
    with pytest.raises(KeyboardInterrupt):
        sampler.sample(n_frames=5, n_walkers=1, seed=2, flush_every=1, out=tmp_path / "r")
    monkeypatch.setattr(Sampler, "generate_frame", original)
    assert GeneratedEnsemble.load(tmp_path / "r").n_frames == 3
    done = sampler.sample(n_frames=5, n_walkers=1, seed=2, flush_every=1, out=tmp_path / "r", resume=True)
    np.testing.assert_array_equal(done.tokens, ref.tokens)


def _folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _damage(folder, how):
    xtc = folder / "trajectory.xtc"
    if how == "empty":  # stopped after tokens.npz was written, before any frame was decoded
        xtc.write_bytes(b"")
    elif how == "missing":
        xtc.unlink()
    elif how == "cut":  # killed while appending a chunk
        data = xtc.read_bytes()
        xtc.write_bytes(data[: len(data) // 2 + 7])
    elif how == "short":  # killed after writing tokens.npz, before appending the last chunk
        traj = md.load(str(xtc), top=str(folder / "topology.pdb"))
        traj[:2].save_xtc(str(xtc))
    elif how == "no_topology":
        (folder / "topology.pdb").unlink()


@pytest.mark.parametrize("how", ["empty", "missing", "cut", "short", "no_topology"])
def test_interrupted_run_is_rebuilt_from_its_tokens(trained_bundle, tmp_path, how):
    out = tmp_path / "run"
    done = Sampler(trained_bundle).sample(n_frames=4, n_walkers=2, seed=5, flush_every=2, out=out)
    _damage(out, how)
    before = _folder_bytes(out)
    loaded = GeneratedEnsemble.load(out)
    np.testing.assert_array_equal(loaded.tokens, done.tokens)
    assert loaded.trajectory.n_frames == 8
    np.testing.assert_allclose(loaded.trajectory.xyz, done.trajectory.xyz, atol=2e-3)  # xtc precision
    np.testing.assert_array_equal(loaded.trajectory.time, np.repeat(np.arange(4.0), 2))
    assert _folder_bytes(out) == before  # reading never writes
    # --resume rewrites the trajectory file from the tokens
    again = Sampler(trained_bundle).sample(n_frames=4, n_walkers=2, seed=5, flush_every=2, out=out, resume=True)
    np.testing.assert_array_equal(again.tokens, done.tokens)
    traj = md.load(str(out / "trajectory.xtc"), top=str(out / "topology.pdb"))
    assert traj.n_frames == 8
    np.testing.assert_allclose(traj.xyz, done.trajectory.xyz, atol=2e-3)


def test_rebuild_needs_the_runs_tokenizer(trained_bundle, tmp_path, toy_traj):
    from toy_tokenizer import ToyTokenizer

    out = tmp_path / "run"
    done = Sampler(trained_bundle).sample(n_frames=2, n_walkers=1, seed=1, out=out)
    (out / "trajectory.xtc").write_bytes(b"")
    params = json.loads((out / "params.json").read_text())
    params["bundle"] = str(tmp_path / "moved-away")
    (out / "params.json").write_text(json.dumps(params))
    with pytest.raises(SamplingError, match="--resume") as info:
        GeneratedEnsemble.load(out)
    assert "\n" not in str(info.value)
    with pytest.raises(SamplingError, match="not the one"):
        GeneratedEnsemble.load(out, tokenizer=ToyTokenizer(toy_traj.topology, n_bins=8))
    loaded = GeneratedEnsemble.load(out, tokenizer=trained_bundle.tokenizer)
    np.testing.assert_allclose(loaded.trajectory.xyz, done.trajectory.xyz, atol=2e-3)


def test_mdllm_analyze_reads_an_interrupted_run(trained_bundle, tmp_path, toy_traj, capsys):
    from mdllm_kit.cli import main

    out = tmp_path / "run"
    Sampler(trained_bundle).sample(n_frames=5, n_walkers=2, seed=3, out=out)
    (out / "trajectory.xtc").write_bytes(b"")  # the defect's folder: tokens.npz with frames, an empty xtc
    toy_traj[:10].save_xtc(str(tmp_path / "train.xtc"))  # 10 frames: no TICA (too few atoms for its features)
    toy_traj[0].save_pdb(str(tmp_path / "top.pdb"))
    assert main(["analyze", str(out), "--train", str(tmp_path / "train.xtc"), "--train-top", str(tmp_path / "top.pdb"),
                 "--ref", f"start={tmp_path / 'top.pdb'}", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_frames"] == 10 and metrics["n_walkers"] == 2


def test_bf16_sampling_is_valid_and_deterministic(trained_bundle, toy_tok):
    sampler = Sampler(trained_bundle, precision="bf16")
    assert sampler.precision == "bf16"
    a = sampler.sample(n_frames=3, n_walkers=2, seed=4)
    b = Sampler(trained_bundle, precision="bf16").sample(n_frames=3, n_walkers=2, seed=4)
    assert _valid(a.tokens.reshape(-1, toy_tok.tokens_per_frame), toy_tok)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)
    assert a.log_likelihood.dtype == np.float64 and np.isfinite(a.log_likelihood).all()
    # the bundle's model is untouched: bf16 runs a copy, and an fp32 sampler afterwards still matches the HF path
    assert next(trained_bundle.model.parameters()).dtype == torch.float32
    slow = Sampler(trained_bundle, precision="bf16", fast=False).sample(n_frames=3, n_walkers=2, seed=4)
    assert _valid(slow.tokens.reshape(-1, toy_tok.tokens_per_frame), toy_tok)


def test_continuation_in_another_precision_is_warned_about(trained_bundle, tmp_path, caplog):
    import logging

    Sampler(trained_bundle, precision="fp32").sample(n_frames=1, n_walkers=2, seed=4, out=tmp_path / "run")
    assert json.loads((tmp_path / "run" / "params.json").read_text())["precision"] == "fp32"
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.lm.sampler"):
        ens = Sampler(trained_bundle, precision="bf16").sample(n_frames=2, n_walkers=2, seed=4, out=tmp_path / "run",
                                                               resume=True)
    assert ens.n_frames == 2
    assert "sampled in fp32" in caplog.text


def _entropy(logits):
    p = torch.softmax(logits, -1)
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


def test_entropy_cap_cools_only_the_uncertain_rows():
    from mdllm_kit.lm.sampler import capped_temperature

    logits = torch.stack([torch.tensor([8.0, 0.0, 0.0, 0.0, 0.0, 0.0]),   # confident: entropy ~0.03 nats
                          torch.zeros(6),                                    # uniform: log 6 = 1.79 nats
                          torch.tensor([1.0, 0.9, 0.8, 0.7, -1.0, float("-inf")])])
    t = capped_temperature(logits, 1.0, 0.5)
    assert t.shape == (3, 1) and t[0, 0] == 1.0
    # a uniform row has entropy log 6 at every temperature: the search ends at its floor, still a distribution
    assert 0 < float(t[1, 0]) < 1.0 and torch.allclose(torch.softmax(logits[1] / t[1], -1), torch.full((6,), 1 / 6))
    cooled = _entropy(logits[2:] / t[2:])
    assert t[2, 0] < 1.0 and abs(float(cooled[0]) - 0.5) < 0.01


def test_entropy_cap_in_sampling_is_deterministic_and_tighter(trained_bundle):
    s = mk.SamplingSettings(n_frames=3, n_walkers=4, seed=1)
    free = Sampler(trained_bundle).sample(s)
    capped = Sampler(trained_bundle).sample(s.replace(entropy_cap=0.05))
    again = Sampler(trained_bundle).sample(s.replace(entropy_cap=0.05))
    greedy = Sampler(trained_bundle).sample(s.replace(temperature=0.0))
    np.testing.assert_array_equal(capped.tokens, again.tokens)
    # a tiny cap draws almost every token from a near-point distribution: close to the arg-max frames
    assert (capped.tokens == greedy.tokens).mean() > (free.tokens == greedy.tokens).mean()
    with pytest.raises(mk.errors.ModelError, match="entropy_cap must be > 0"):
        mk.SamplingSettings(entropy_cap=0.0)


def test_bf16_sampling_of_a_model_with_hook_handles(trained_bundle):
    """Hook handles left on a model by training are not copied into the bf16 inference copy.

    (Deep-copying them failed for a LoRA model trained with gradient checkpointing in ``bench_lm.py gpu --tiny``:
    "cannot create weak reference to 'NoneType' object".)
    """
    import copy

    bundle = copy.deepcopy(trained_bundle)
    bundle.model.enable_input_require_grads()  # stores a RemovableHandle on the model, as gradient checkpointing does
    sampler = Sampler(bundle, precision="bf16")
    ens = sampler.sample(n_frames=2, n_walkers=2, seed=0)
    assert ens.tokens.shape[:2] == (2, 2)
    if sampler._compute_model is not None:  # the bf16 copy of the lean decoder's prefill
        assert next(sampler._compute_model.parameters()).dtype == torch.bfloat16
        assert sampler._compute_model._require_grads_hook is None
        assert bundle.model._require_grads_hook is not None


def test_bf16_sampler_follows_a_model_changed_after_its_first_frame(trained_bundle):
    """The bf16 copy (prefill) is made again when the model's weights change, e.g. after more training."""
    import copy

    bundle = copy.deepcopy(trained_bundle)
    s = mk.SamplingSettings(seed=2, entropy_cap=None)
    sampler = Sampler(bundle, precision="bf16", processes=1)
    hist = sampler.seed_tokens(None, 3, bundle.window_frames)
    sampler.generate_frame(hist, s, 0)
    with torch.no_grad():
        for p in bundle.model.parameters():
            p.mul_(1.5)
    changed = sampler.generate_frame(hist, s, 0)
    fresh = Sampler(bundle, precision="bf16", processes=1).generate_frame(hist, s, 0)
    np.testing.assert_array_equal(changed[0], fresh[0])
    np.testing.assert_array_equal(changed[1], fresh[1])


def test_continuation_of_a_run_from_before_per_walker_random_numbers_is_warned_about(trained_bundle, tmp_path,
                                                                                     caplog):
    import logging

    out = tmp_path / "run"
    Sampler(trained_bundle, processes=1).sample(n_frames=1, n_walkers=2, seed=4, out=out)
    params = json.loads((out / "params.json").read_text())
    del params["processes"]  # what a run sampled by an earlier mdllm-kit records
    (out / "params.json").write_text(json.dumps(params))
    with caplog.at_level(logging.WARNING, logger="mdllm_kit.ensemble"):
        ens = Sampler(trained_bundle, processes=1).sample(n_frames=2, n_walkers=2, seed=4, out=out, resume=True)
    assert ens.n_frames == 2
    assert "earlier mdllm-kit" in caplog.text
