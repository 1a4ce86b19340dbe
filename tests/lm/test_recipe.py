"""Training recipe options (issue #10): noisy-context training and ordinal soft targets."""
import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mdllm_kit.contracts import jitter_frame_tokens
from mdllm_kit.errors import ModelError
from mdllm_kit.lm import cli as lm_cli
from mdllm_kit.lm.bundle import load_bundle
from mdllm_kit.lm.codec import FrameCodec
from mdllm_kit.lm.config import TrainSettings
from mdllm_kit.lm.data import ContextNoise, NoisyContextDataset, make_datasets
from mdllm_kit.lm.losses import OrdinalSoftTargetLoss, ordinal_soft_targets
from mdllm_kit.lm.train import RUN_RECORD, _check_same_run, _run_record, train

W = 2  # context frames of the windows built here


@pytest.fixture
def codec(toy_tok):
    return FrameCodec.for_tokenizer(toy_tok)


@pytest.fixture
def tokens(toy_traj, toy_tok):
    return toy_tok.encode(toy_traj)


def _noisy_datasets(tokens, codec, tok, bins=2.0, fraction=1.0, seed=0):
    return make_datasets([tokens], codec, W, 1, 0.2, "all", ContextNoise.for_tokenizer(tok, bins, fraction, seed))


# ---------------------------------------------------------------- the noise rule
def test_jitter_stays_in_range_and_wraps_periodic_kinds():
    ranges = np.array([[0, 5], [5, 10]])
    tokens = np.array([[0, 9]] * 4000)
    rng = np.random.default_rng(0)
    out = jitter_frame_tokens(tokens, ranges, ["line", "ring"], {"ring"}, 1.0, rng)
    assert ((out >= ranges[:, 0]) & (out < ranges[:, 1])).all()
    # clipped at the low end: a non-periodic token never goes "below" 0, so it piles up there
    assert (out[:, 0] == 0).mean() > 0.55
    # periodic: from the top bin 9 a +1 step wraps to 5, as often as a -1 step reaches 8
    up, down = (out[:, 1] == 5).mean(), (out[:, 1] == 8).mean()
    assert up > 0.15 and abs(up - down) < 0.05
    assert np.array_equal(jitter_frame_tokens(tokens, ranges, ["line", "ring"], {"ring"}, 0.0, rng), tokens)
    assert np.array_equal(jitter_frame_tokens(tokens, ranges, ["line", "ring"], {"ring"}, 3.0, rng, fraction=0.0),
                          tokens)
    only = jitter_frame_tokens(tokens, ranges, ["line", "ring"], {"ring"}, 3.0, rng, moved_kinds={"ring"})
    assert np.array_equal(only[:, 0], tokens[:, 0]) and not np.array_equal(only[:, 1], tokens[:, 1])


def test_jitter_fraction_moves_that_share():
    tokens = np.full((20000, 1), 50)
    out = jitter_frame_tokens(tokens, [[0, 100]], ["x"], (), 5.0, np.random.default_rng(1), fraction=0.3)
    # a move by N(0, 5) rounds to 0 with probability ~0.08
    assert 0.3 * 0.85 < (out != 50).mean() < 0.3


# ---------------------------------------------------------------- noisy-context windows
def test_noise_changes_only_context_input_ids(tokens, codec, toy_tok):
    train_ds, _, _ = _noisy_datasets(tokens, codec, toy_tok)
    clean_ds = train_ds.base
    context = np.zeros(clean_ds.seq_len, dtype=bool)
    context[1: 1 + W * codec.frame_length] = True
    context[codec.frame_length::codec.frame_length] = False  # the delimiters
    changed = np.zeros(clean_ds.seq_len, dtype=bool)
    for i in range(len(train_ds)):
        noisy, clean = train_ds[i], clean_ds[i]
        torch.testing.assert_close(noisy["labels"], clean["labels"])  # the targets stay the true window
        diff = (noisy["input_ids"] != clean["input_ids"]).numpy()
        assert not diff[~context].any()  # <bos>, delimiters and the last frame are untouched
        changed |= diff
        # every noisy id is a valid token of its position
        codec.decode_frames(noisy["input_ids"].numpy())
    assert changed[context].mean() > 0.5


def test_noise_is_seeded_and_fresh_for_every_draw(tokens, codec, toy_tok):
    a, _, _ = _noisy_datasets(tokens, codec, toy_tok, seed=3)
    b, _, _ = _noisy_datasets(tokens, codec, toy_tok, seed=3)
    c, _, _ = _noisy_datasets(tokens, codec, toy_tok, seed=4)
    first_a, first_b, first_c = (d[5]["input_ids"] for d in (a, b, c))
    torch.testing.assert_close(first_a, first_b)  # same seed, same noise
    assert not torch.equal(first_a, first_c)  # another seed, other noise
    second_a, second_b = a[5]["input_ids"], b[5]["input_ids"]
    assert not torch.equal(second_a, first_a)  # the same window drawn again (next step/epoch): new noise
    torch.testing.assert_close(second_a, second_b)  # ... and again the same for the same seed


def test_each_loader_worker_and_rank_has_its_own_stream(tokens, codec, toy_tok, monkeypatch):
    ds, _, _ = _noisy_datasets(tokens, codec, toy_tok)

    class _Worker:
        def __init__(self, wid, seed):
            self.id, self.seed = wid, seed

    draws = {}
    for wid in (0, 1):
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda wid=wid: _Worker(wid, 1000 + wid))
        draws[wid] = ds[0]["input_ids"]
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    monkeypatch.setenv("RANK", "1")
    draws["rank1"] = ds[0]["input_ids"]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws["rank1"])


def test_validation_windows_are_never_noisy(tokens, codec, toy_tok):
    noisy_train, noisy_val, info = _noisy_datasets(tokens, codec, toy_tok, bins=4.0)
    clean_train, clean_val, clean_info = make_datasets([tokens], codec, W, 1, 0.2, "all")
    assert isinstance(noisy_train, NoisyContextDataset) and len(noisy_train) == len(clean_train)
    assert info == clean_info and type(noisy_val) is type(clean_val)
    for i in range(len(clean_val)):
        for key in ("input_ids", "labels"):
            torch.testing.assert_close(noisy_val[i][key], clean_val[i][key])


# ---------------------------------------------------------------- ordinal soft targets
def test_soft_targets_stay_in_the_block_and_wrap():
    lo, hi = torch.tensor([2, 10]), torch.tensor([8, 16])
    periodic = torch.tensor([False, True])
    t = torch.tensor([[2, 10]])  # the first bin of each block
    q = ordinal_soft_targets(t, lo, hi, periodic, 20, 1.5)[0]
    assert q.shape == (2, 20)
    torch.testing.assert_close(q.sum(-1), torch.ones(2))
    assert (q[0, :2] == 0).all() and (q[0, 8:] == 0).all() and (q[1, :10] == 0).all() and (q[1, 16:] == 0).all()
    assert q[0, 2] > q[0, 3] > q[0, 4] > 0  # ordinal: mass falls off with the bin distance
    torch.testing.assert_close(q[1, 15], q[1, 11])  # periodic: the last bin is one step from the first
    assert q[0, 7] < q[0, 3]  # non-periodic: the far end of the block is far
    sharp = ordinal_soft_targets(t, lo, hi, periodic, 20, 1e-3)[0]
    torch.testing.assert_close(sharp, F.one_hot(torch.tensor([2, 10]), 20).float())


def _window_labels(codec, tokens, n=3):
    _, val, _ = make_datasets([tokens], codec, W, 1, 0.3, "all")
    train, _, _ = make_datasets([tokens], codec, W, 1, 0.3, "last")
    return torch.stack([val[0]["labels"], val[1]["labels"], train[0]["labels"]][:n])


def test_soft_loss_is_cross_entropy_as_sigma_goes_to_zero(codec, tokens, toy_tok):
    labels = _window_labels(codec, tokens)
    logits = torch.randn(len(labels), labels.shape[1], codec.lm_vocab_size, generator=torch.Generator().manual_seed(0))
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
    loss = OrdinalSoftTargetLoss(codec, toy_tok.position_kinds(), toy_tok.periodic_kinds, 1e-3)
    torch.testing.assert_close(loss({"logits": logits}, labels), ce)
    n = int((labels[:, 1:] != -100).sum())
    torch.testing.assert_close(loss({"logits": logits}, labels, num_items_in_batch=torch.tensor(2 * n)), ce / 2)
    # a different objective once sigma is a few bins: a model sure of the exact true bin is penalised
    confident = torch.zeros_like(logits)
    target = labels[:, 1:]
    confident[:, :-1].scatter_(-1, target.clamp_min(0).unsqueeze(-1), 20.0)
    sharp = loss({"logits": confident}, labels)
    wide = OrdinalSoftTargetLoss(codec, toy_tok.position_kinds(), toy_tok.periodic_kinds, 2.0)
    assert sharp < 1e-3 < 1.0 < wide({"logits": confident}, labels)


def test_soft_loss_is_minimal_at_the_soft_targets_and_ignores_other_blocks(codec, tokens):
    kinds = ["x", "y", "z"] * (codec.tokens_per_frame // 3)  # the toy's kinds, with z declared periodic below
    labels = _window_labels(codec, tokens, n=1)
    T = labels.shape[1]
    loss = OrdinalSoftTargetLoss(codec, kinds, {"z"}, 1.5)
    # logits equal to the log of the soft targets (plus the delimiter one-hot) reach the minimum: the entropy
    ranges = codec.ranges_array()
    pos = (torch.arange(1, T) - 1) % codec.frame_length
    target = labels[0, 1:]
    logits = torch.full((1, T, codec.lm_vocab_size), -1e4)
    hard = torch.full((1, T, codec.lm_vocab_size), -1e4)
    entropies = []
    for q in range(T - 1):
        if target[q] == -100:
            continue
        p_q = int(pos[q])
        if p_q == codec.tokens_per_frame:  # the delimiter: a one-hot target
            logits[0, q, target[q]] = hard[0, q, target[q]] = 0.0
            entropies.append(0.0)
            continue
        lo, hi = (torch.tensor([int(v)]) for v in ranges[p_q])
        p = ordinal_soft_targets(target[q: q + 1] - codec.structure_offset, lo, hi,
                                 torch.tensor([kinds[p_q] == "z"]), codec.n_structure_tokens, 1.5)[0]
        block = logits[0, q, codec.structure_offset: codec.structure_offset + codec.n_structure_tokens]
        block[p > 0] = p[p > 0].log()
        hard[0, q, target[q]] = 0.0
        entropies.append(float(-(p[p > 0] * p[p > 0].log()).sum()))
    best = loss({"logits": logits}, labels)
    # the minimum of a cross-entropy is the entropy of its targets, reached when the model predicts them
    torch.testing.assert_close(best, torch.tensor(np.mean(entropies), dtype=best.dtype), rtol=1e-4, atol=1e-5)
    assert loss({"logits": hard}, labels) > best + 0.5  # the one-hot optimum of plain cross-entropy is not it
    # moving mass to a token outside the position's block only costs
    worse = logits.clone()
    q0 = int(torch.nonzero(target != -100)[0])
    lo0 = int(ranges[int(pos[q0]), 0])
    worse[0, q0, codec.structure_offset + (lo0 + 20) % codec.n_structure_tokens] = 5.0
    assert loss({"logits": worse}, labels) > best


# ---------------------------------------------------------------- settings, CLI, resume
def test_settings_validate_and_round_trip(tmp_path):
    s = TrainSettings()
    assert (s.context_noise_bins, s.ordinal_label_sigma) == (0.0, 0.0)  # off until measured
    on = s.replace(context_noise_bins=1.5, context_noise_fraction=0.5, ordinal_label_sigma=1.0)
    assert TrainSettings.load(on.save(tmp_path / "t.json")) == on
    for bad in ({"context_noise_bins": -1.0}, {"context_noise_bins": float("nan")},
                {"context_noise_fraction": 0.0}, {"context_noise_fraction": 1.5},
                {"ordinal_label_sigma": -0.5}, {"ordinal_label_sigma": float("inf")}):
        with pytest.raises(ModelError, match=next(iter(bad))):
            TrainSettings(**bad)


def test_cli_passes_the_recipe_options(monkeypatch):
    parser = argparse.ArgumentParser(prog="mdllm")
    lm_cli.add_lm_commands(parser.add_subparsers(dest="command"))
    base = ["train", "t.xtc", "--tokenizer", "tok", "--out", "o"]
    args = parser.parse_args(base)
    assert (args.context_noise_bins, args.context_noise_fraction, args.ordinal_label_sigma) == (0.0, 1.0, 0.0)
    args = parser.parse_args(base + ["--context-noise-bins", "1.5", "--context-noise-fraction", "0.5",
                                     "--ordinal-label-sigma", "2"])
    seen = {}
    monkeypatch.setattr(lm_cli, "train_command", lambda *a, **kw: seen.update(kw) or 0)
    assert lm_cli._cmd_train(args) == 0
    s = seen["train_settings"]
    assert (s.context_noise_bins, s.context_noise_fraction, s.ordinal_label_sigma) == (1.5, 0.5, 2.0)


def test_resume_checks_the_recipe_and_accepts_older_run_records(tmp_path, toy_traj, toy_tok, tiny_model_settings):
    tokens = [toy_tok.encode(toy_traj)]
    s = TrainSettings(window_frames=2)
    run = _run_record(tokens, toy_tok, tiny_model_settings, s)
    older = json.loads(json.dumps(run))
    for key in ("context_noise_bins", "context_noise_fraction", "ordinal_label_sigma"):
        del older["train_settings"][key]  # a run recorded before these options existed
    (tmp_path / RUN_RECORD).write_text(json.dumps(older))
    _check_same_run(tmp_path, run)  # same recipe (off): resumable
    for change in ({"context_noise_bins": 1.0}, {"ordinal_label_sigma": 1.0}):
        with pytest.raises(ModelError, match=f"changed settings \\({next(iter(change))}"):
            _check_same_run(tmp_path, _run_record(tokens, toy_tok, tiny_model_settings, s.replace(**change)))


# ---------------------------------------------------------------- training with the options
@pytest.mark.parametrize("recipe", [{"context_noise_bins": 1.5}, {"ordinal_label_sigma": 1.0},
                                    {"context_noise_bins": 1.0, "context_noise_fraction": 0.5,
                                     "ordinal_label_sigma": 1.0}])
def test_training_with_the_recipe_learns(recipe, tmp_path, toy_traj, toy_tok, tiny_model_settings):
    s = TrainSettings(window_frames=2, max_steps=16, batch_size=4, eval_steps=16, save_steps=16, logging_steps=4,
                      eval_max_windows=4, rmsd_max_frames=2, val_fraction=0.2, learning_rate=1e-2, precision="fp32",
                      **recipe)
    bundle = train(toy_traj, toy_tok, tmp_path / "b", tiny_model_settings, s, progress=False, device="cpu")
    losses = [e["loss"] for e in bundle.metrics["log_history"] if "loss" in e]
    assert losses[-1] < 0.8 * losses[0]
    saved = load_bundle(tmp_path / "b", device="cpu")
    assert all(getattr(saved.train_settings, k) == v for k, v in recipe.items())  # recorded in the bundle
    # the evaluation loss is the plain cross-entropy, whatever the training loss
    _, val, _ = make_datasets([toy_tok.encode(toy_traj)], saved.codec, 2, 1, 0.2, "all")
    batch = val.subset(4)
    ids = torch.stack([batch[i]["input_ids"] for i in range(len(batch))])
    labels = torch.stack([batch[i]["labels"] for i in range(len(batch))])
    with torch.no_grad():
        ce = saved.model(input_ids=ids, labels=labels).loss
    assert bundle.metrics["final_eval"]["eval_loss"] == pytest.approx(float(ce), rel=1e-3)
