"""The frame-aware default model: frame positions, previous-frame ids, caching, generate, save/load, learning."""
import json
import shutil

import numpy as np
import pytest
import torch

from mdllm_kit.errors import ModelError
from mdllm_kit.lm.bundle import load_bundle
from mdllm_kit.lm.codec import FrameCodec
from mdllm_kit.lm.config import ModelSettings
from mdllm_kit.lm.data import WindowDataset
from mdllm_kit.lm.frame_model import (FrameMistralConfig, FrameMistralForCausalLM, frame_position_ids,
                                      ordinal_embedding_init, previous_frame_ids, register_frame_model)
from mdllm_kit.contracts import FrameModel, is_frame_model
from mdllm_kit.lm.model import build_default_model, prepare_model


def tiny_frame_model(frame_length=4, vocab=20, previous=True, seed=0, tie=False):
    torch.manual_seed(seed)
    config = FrameMistralConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=1, sliding_window=None,
                                tie_word_embeddings=True, frame_length=frame_length, pad_token_id=0,
                                previous_frame_embedding=previous, tie_previous_frame_embedding=tie)
    return FrameMistralForCausalLM(config).eval()


def test_frame_position_ids_known_values():
    # <bos> then frames of F = 4 (3 tokens + delimiter): bos -> F, tokens 0, 1, 2, delimiter 3
    got = frame_position_ids(torch.arange(10), 4)
    assert got.tolist() == [4, 0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_previous_frame_ids_known_values():
    ids = torch.arange(10, 20)[None]  # position q holds 10 + q
    got = previous_frame_ids(ids, 4, none_id=99)[0].tolist()
    # position q (predicting q + 1) reads q + 1 - 4; none while that is <bos> or before it
    assert got == [99, 99, 99, 99, 11, 12, 13, 14, 15, 16]


def test_frame_ids_of_training_windows(toy_tok, toy_traj):
    codec = FrameCodec.for_tokenizer(toy_tok)
    tokens = toy_tok.encode(toy_traj)
    ds = WindowDataset([tokens], codec, window_frames=3)
    L, F = codec.tokens_per_frame, codec.frame_length
    for i in (0, 7, len(ds) - 1):
        ids = ds[i]["input_ids"][None]
        pos = frame_position_ids(torch.arange(ids.shape[1]), F)
        # structure tokens carry 0..L-1, delimiters L, <bos> F, in every frame of every window
        assert pos[0] == F
        assert (pos[1:].reshape(-1, F) == torch.arange(F)).all()
        assert (ids[0, 1:].reshape(-1, F)[:, -1] == codec.frame_id).all()
        # the input that predicts token j of frame f (f >= 1) sees token j of frame f - 1
        prev = previous_frame_ids(ids, F, none_id=codec.lm_vocab_size)[0]
        window = ds.window(i) + codec.structure_offset
        for f in range(1, window.shape[0]):
            for j in (0, L // 2, L - 1):
                q = codec.sequence_length(f) + j - 1  # the position whose next token is token j of frame f
                assert ids[0, q + 1] == window[f, j]
                assert prev[q] == window[f - 1, j]
        assert (prev[: F] == codec.lm_vocab_size).all()  # the first frame has no previous frame


@pytest.mark.parametrize("previous,tie", [(True, False), (True, True), (False, False)])
def test_cached_decoding_equals_full_forward(previous, tie):
    model = tiny_frame_model(previous=previous, tie=tie)
    assert model.uses_previous_frame == previous
    assert (model.previous_frame_embeddings is not None) == (previous and not tie)
    ids = torch.randint(3, 20, (2, 14))
    prev = previous_frame_ids(ids, 4, model.none_id)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        out = model(input_ids=ids[:, :6], use_cache=True)
        torch.testing.assert_close(out.logits, full[:, :6], rtol=1e-4, atol=1e-5)
        cache = out.cache
        for t in range(6, 14):
            extra = {"previous_frame_ids": prev[:, t: t + 1]} if previous else {}
            out = model(input_ids=ids[:, t: t + 1], cache=cache, use_cache=True, **extra)
            cache = out.cache
            torch.testing.assert_close(out.logits[:, -1], full[:, t], rtol=1e-4, atol=1e-5)


def test_cached_step_without_previous_ids_is_refused():
    model = tiny_frame_model()
    ids = torch.randint(3, 20, (1, 8))
    with torch.no_grad():
        cache = model(input_ids=ids[:, :6], use_cache=True).cache
        with pytest.raises(ModelError, match="previous_frame_ids"):
            model(input_ids=ids[:, 6:7], cache=cache, use_cache=True)


def test_generate_matches_step_by_step_greedy():
    model = tiny_frame_model(seed=1)
    prompt = torch.randint(3, 20, (2, 7))
    with torch.no_grad():
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6,
                             do_sample=False, pad_token_id=0, eos_token_id=None)
        seq = prompt
        for _ in range(6):  # greedy by full re-encoding, no cache
            seq = torch.cat([seq, model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    torch.testing.assert_close(out, seq)


def test_save_and_load_round_trip(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_frame_model(frame_length=5)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mdllm_frame_mistral"
    register_frame_model()
    again = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True, trust_remote_code=False)
    assert type(again) is FrameMistralForCausalLM and again.config.frame_length == 5
    ids = torch.randint(3, 20, (2, 13))
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_config_is_validated():
    with pytest.raises(ModelError, match="frame_length"):
        FrameMistralConfig(frame_length=1)
    with pytest.raises(ModelError, match="frame_embeddings"):
        ModelSettings(frame_embeddings=False, previous_frame_embedding=True)


def test_default_model_is_frame_aware(toy_tok):
    codec = FrameCodec.for_tokenizer(toy_tok)
    model = build_default_model(codec, ModelSettings(hidden_size=32, num_heads=2, intermediate_size=32), 512)
    assert isinstance(model, FrameMistralForCausalLM)
    assert is_frame_model(model) and isinstance(model, FrameModel)
    assert model.config.frame_length == codec.frame_length
    # the previous-frame token is looked up in the (tied) token table, whose structure rows start smooth in bin order
    assert model.uses_previous_frame and model.previous_frame_embeddings is None
    assert model.config.tie_previous_frame_embedding and model.none_id == codec.pad_id
    emb = model.get_input_embeddings().weight.detach()
    lo, hi = codec.structure_offset, codec.structure_offset + 16  # the toy tokenizer's x-coordinate bins
    sim = emb[lo:hi] @ emb[lo:hi].T
    assert sim[0, 1] > sim[0, 2:9].max()  # neighbours most alike
    # ordinal rows all have the same norm and a similarity that depends only on the bin distance
    torch.testing.assert_close(sim.diagonal(), sim[0, 0].expand(16), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(sim[1, 2:10], sim[0, 1:9], rtol=1e-3, atol=1e-7)
    separate = build_default_model(codec, ModelSettings(hidden_size=32, num_heads=2, intermediate_size=32,
                                                        tie_previous_frame_embedding=False), 512)
    assert separate.previous_frame_embeddings.num_embeddings == codec.lm_vocab_size + 1
    plain = build_default_model(codec, ModelSettings(hidden_size=32, num_heads=2, intermediate_size=32,
                                                     frame_embeddings=False, previous_frame_embedding=False), 512)
    assert type(plain).__name__ == "MistralForCausalLM" and not is_frame_model(plain)


def test_lora_on_the_default_model_trains_the_frame_embeddings(toy_tok):
    settings = ModelSettings(hidden_size=32, num_heads=2, intermediate_size=32, finetune="lora",
                             tie_previous_frame_embedding=False)
    model, _ = prepare_model(toy_tok, settings, max_positions=512)
    assert is_frame_model(model)  # seen through the peft wrapper
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("frame_position_embeddings" in n for n in names)
    assert any("previous_frame_embeddings" in n for n in names)
    assert not any("embed_tokens" in n for n in names)


def test_learns_to_copy_the_previous_frame():
    """Frames that repeat the previous one: the previous-frame input makes the copy learnable in a few steps."""
    L, F, vocab = 6, 7, 24  # ids 3..23 are "structure" tokens, 2 the delimiter, 1 <bos>
    torch.manual_seed(0)
    model = tiny_frame_model(frame_length=F, vocab=vocab).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def batch(n):
        frame = torch.randint(3, vocab, (n, 1, L))
        body = torch.cat([frame.expand(n, 3, L), torch.full((n, 3, 1), 2)], dim=2).reshape(n, -1)
        return torch.cat([torch.ones(n, 1, dtype=torch.long), body], dim=1)

    for _ in range(80):
        ids = batch(16)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    ids = batch(64)
    with torch.no_grad():
        pred = model(input_ids=ids).logits.argmax(-1)
    # tokens of frames 2 and 3 (positions F + 1 .. end, predicted from position - 1)
    target = ids[:, F + 1:]
    hit = (pred[:, F: -1] == target).float().mean().item()
    assert hit > 0.95


def test_old_bundles_are_refused(trained_bundle_dir, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(trained_bundle_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    meta = json.loads((copy / "bundle.json").read_text())
    meta["version"] = 1
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="retrain"):
        load_bundle(copy, device="cpu")


def test_sampler_log_likelihood_matches_full_forward(trained_bundle):
    """The sampler's KV-cache steps (positions, previous-frame ids) give the full forward's numbers."""
    from mdllm_kit.lm.sampler import Sampler

    bundle = trained_bundle
    codec = bundle.codec
    ens = Sampler(bundle).sample(n_frames=2, n_walkers=2, seed=3)
    seed = bundle.seed_tokens
    for k in range(2):
        history = np.concatenate([seed, ens.tokens[k, :1]])[-bundle.window_frames:]
        ids = torch.from_numpy(np.concatenate([codec.encode_frames(history), codec.encode_frames(ens.tokens[k, 1:2],
                                                                                                  bos=False)]))
        with torch.no_grad():
            logp = torch.log_softmax(bundle.model(input_ids=ids[None]).logits[0].double(), -1)
        first = codec.sequence_length(len(history))
        new = ids[first: first + codec.tokens_per_frame]
        ll = logp[first - 1: first - 1 + codec.tokens_per_frame].gather(1, new[:, None]).sum().item()
        assert ll == pytest.approx(ens.log_likelihood[k, 1], rel=1e-4)


def _extra_input_embedding(model, ids):
    """The model's input embedding minus the token and frame-position embeddings, shape (B, T, hidden)."""
    positions = torch.arange(ids.shape[1])[None]
    base = model.model.embed_tokens(ids) + model.frame_position_embeddings(
        frame_position_ids(positions, model.config.frame_length))
    return model.embed(ids, positions) - base


def test_tied_previous_frame_embedding_reads_the_token_table():
    F = 4
    ids = torch.randint(3, 20, (2, 11))
    tied = tiny_frame_model(frame_length=F, tie=True)
    assert tied.none_id == 0 and tied.previous_frame_embeddings is None
    with torch.no_grad():
        extra = _extra_input_embedding(tied, ids)
        expected = tied.model.embed_tokens(previous_frame_ids(ids, F, tied.none_id))
    torch.testing.assert_close(extra, expected)
    # position 4 predicts the token after the first frame's first one, and reads the token at position 1
    torch.testing.assert_close(extra[:, 4], tied.model.embed_tokens.weight[ids[:, 1]])
    # negative control: without the feature the same identity does not hold (nothing is added)
    plain = tiny_frame_model(frame_length=F, previous=False)
    with torch.no_grad():
        extra = _extra_input_embedding(plain, ids)
        expected = plain.model.embed_tokens(previous_frame_ids(ids, F, 0))
    assert not torch.allclose(extra, expected)
    torch.testing.assert_close(extra, torch.zeros_like(extra))


def test_ordinal_init_makes_neighbouring_bins_alike():
    weight = torch.zeros(10 + 2 * 256, 128)
    ordinal_embedding_init(weight, [(10, 266), (266, 522)], std=0.02, generator=torch.Generator().manual_seed(0))
    assert (weight[:10] == 0).all()  # rows outside the blocks are untouched
    for lo in (10, 266):
        block = weight[lo: lo + 256]
        sim = block @ block.T
        i = torch.arange(256)
        # similarity falls off smoothly with the bin distance (periodically) and is the same for every bin
        profile = torch.stack([sim[i, (i + d) % 256] for d in range(0, 129)])
        torch.testing.assert_close(profile, profile[:, :1].expand(-1, 256), rtol=1e-4, atol=1e-6)
        p = profile[:, 0]
        assert (p[:20].diff() < 0).all() and p[1] > 0.9 * p[0] and p[64:].abs().max() < 0.1 * p[0]
        torch.testing.assert_close(block.norm(dim=1), torch.full((256,), 0.02 * 128 ** 0.5), rtol=1e-4, atol=1e-6)
    assert (weight[10:266] @ weight[266:].T).abs().max() < 0.5 * 0.02 ** 2 * 128  # blocks are not alike


def _tiny_pretrained(family: str, folder):
    """A tiny random model of ``family`` saved to ``folder`` and loaded back as a local pretrained model."""
    import transformers

    from tiny_models import save_tiny_pretrained

    return transformers.AutoModelForCausalLM.from_pretrained(save_tiny_pretrained(family, folder),
                                                             local_files_only=True).eval()


@pytest.mark.parametrize("family", ["mistral", "llama", "qwen2"])
@pytest.mark.parametrize("tie", [True, False])
def test_any_family_made_frame_aware_caches_like_a_full_forward(family, tie, tmp_path):
    """make_frame_aware: one mechanism for every family; cached steps with previous_frame_ids equal a full pass."""
    from mdllm_kit.contracts import is_frame_model
    from mdllm_kit.lm.fastdecode import StaticDecoder
    from mdllm_kit.lm.frame_model import FrameEmbeddingMixin, make_frame_aware

    model = _tiny_pretrained(family, tmp_path / family)
    family_cls = type(model)
    assert make_frame_aware(model, 5, tie_previous_frame_embedding=tie) is model
    assert isinstance(model, FrameEmbeddingMixin) and isinstance(model, family_cls) and is_frame_model(model)
    assert model.uses_previous_frame and model.config.frame_length == 5
    assert (model.previous_frame_embeddings is None) == tie
    ids = torch.randint(3, 40, (2, 17))
    prev = previous_frame_ids(ids, 5, model.none_id)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        out = model(input_ids=ids[:, :9], use_cache=True)
        cache = out.past_key_values
        torch.testing.assert_close(out.logits[:, -1], full[:, 8], rtol=1e-4, atol=1e-5)
        for t in range(9, 17):
            out = model(input_ids=ids[:, t:t + 1], cache=cache, use_cache=True, previous_frame_ids=prev[:, t:t + 1])
            cache = out.past_key_values
            torch.testing.assert_close(out.logits[:, -1], full[:, t], rtol=1e-4, atol=1e-5)
        if StaticDecoder.supports(model, 20):  # the lean decoder (Mistral, Llama layouts) uses the model's embed
            dec = StaticDecoder(model, batch=2, max_len=20)
            torch.testing.assert_close(dec.forward(ids[:, :9], reset=True), full[:, 8], rtol=1e-4, atol=1e-5)
            for t in range(9, 17):
                torch.testing.assert_close(dec.forward(ids[:, t:t + 1], previous_frame_ids=prev[:, t:t + 1]),
                                           full[:, t], rtol=1e-4, atol=1e-5)
    assert StaticDecoder.supports(model, 20) == (family != "qwen2")  # Qwen2's attention bias: HF forward
    # the frame embeddings matter: another frame position table changes the logits
    with torch.no_grad():
        model.frame_position_embeddings.weight.add_(1.0)
        assert not torch.allclose(model(input_ids=ids).logits, full)
    with pytest.raises(ModelError, match="already frame-aware"):
        make_frame_aware(model, 5)


def test_frame_aware_pretrained_model_trains_its_frame_embeddings_with_lora(tmp_path):
    from peft import LoraConfig, get_peft_model

    from mdllm_kit.contracts import FRAME_EMBEDDING_MODULES, is_frame_model
    from mdllm_kit.lm.frame_model import make_frame_aware

    model = make_frame_aware(_tiny_pretrained("llama", tmp_path / "llama"), 5, tie_previous_frame_embedding=False)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                                  modules_to_save=list(FRAME_EMBEDDING_MODULES)))
    assert is_frame_model(peft_model)
    ids = torch.randint(3, 40, (2, 12))
    loss = peft_model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n for n, p in peft_model.named_parameters() if p.requires_grad and p.grad is not None}
    assert any("frame_position_embeddings" in n for n in grads)
    assert any("previous_frame_embeddings" in n for n in grads)
    assert any("lora_" in n for n in grads)
