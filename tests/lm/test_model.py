import numpy as np
import pytest
import torch

from tiny_models import save_tiny_pretrained
from mdllm_kit.contracts import is_frame_model
from mdllm_kit.lm.bundle import load_bundle
from mdllm_kit.lm.codec import FrameCodec
from mdllm_kit.lm.config import LoraSettings, ModelSettings
from mdllm_kit.lm.model import build_default_model, count_parameters, prepare_model
from mdllm_kit.lm.train import train


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory):
    """A tiny 'pretrained' Mistral saved to disk by the test itself (untied embeddings, vocab 40)."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False,
                           bos_token_id=1, eos_token_id=2, sliding_window=None)
    path = tmp_path_factory.mktemp("base")
    MistralForCausalLM(config).save_pretrained(path)
    return path


def test_default_model_shape(toy_tok):
    codec = FrameCodec.for_tokenizer(toy_tok)
    settings = ModelSettings()
    model = build_default_model(codec, settings, max_positions=2000)
    cfg = model.config
    assert cfg.vocab_size == codec.lm_vocab_size
    assert cfg.intermediate_size == settings.intermediate_size == 384 and cfg.sliding_window is None
    trainable, total = count_parameters(model)
    assert trainable == total < 2_000_000


def test_pretrained_lora_setup(base_model_dir, toy_tok):
    settings = ModelSettings(base_model=str(base_model_dir), lora=LoraSettings(r=4, dropout=0.0))
    assert settings.use_lora
    model, codec = prepare_model(toy_tok, settings, max_positions=512)
    assert codec.structure_offset == 40 and codec.lm_vocab_size == 40 + toy_tok.vocab_size + 1
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    # the pretrained base is made frame-aware: its new frame-position table trains fully, like the default model's
    assert names and all(("lora_" in n) or ("trainable_tokens" in n) or ("frame_position_embeddings" in n)
                         for n in names)
    assert any("frame_position_embeddings" in n for n in names)
    assert any("embed_tokens" in n and "trainable_tokens" in n for n in names)
    assert any("lm_head" in n and "trainable_tokens" in n for n in names)
    for module in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(module in n and "lora_A" in n for n in names)


@pytest.mark.slow
def test_pretrained_train_and_reload(base_model_dir, tmp_path, toy_traj, toy_tok, tiny_train_settings):
    settings = ModelSettings(base_model=str(base_model_dir), lora=LoraSettings(r=4, dropout=0.0))
    bundle = train(toy_traj, toy_tok, tmp_path, settings, tiny_train_settings.replace(max_steps=3, learning_rate=1e-2),
                   progress=False, device="cpu")
    assert (tmp_path / "adapter").is_dir() and not (tmp_path / "model").exists()
    assert bundle.metrics["finetune"] == "lora"
    reloaded = load_bundle(tmp_path, device="cpu")
    assert is_frame_model(reloaded.model) and type(reloaded.model).__name__ == "FrameAwareMistralForCausalLM"
    ids = torch.from_numpy(bundle.codec.encode_frames(toy_tok.encode(toy_traj[:2])))[None]
    with torch.no_grad():
        trained = bundle.model.eval()(input_ids=ids).logits
        again = reloaded.model(input_ids=ids).logits
    torch.testing.assert_close(trained, again, rtol=1e-4, atol=1e-4)
    # old vocabulary rows untouched, new rows trained
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model_dir)
    emb_new = reloaded.model.get_input_embeddings().weight.detach()
    emb_old = base.get_input_embeddings().weight.detach()
    torch.testing.assert_close(emb_new[:40], emb_old)
    head_new = reloaded.model.get_output_embeddings().weight.detach()
    torch.testing.assert_close(head_new[:40], base.get_output_embeddings().weight.detach())
    assert not np.allclose(emb_new[40:].numpy(), emb_new[40:].mean(0).numpy())


@pytest.mark.slow
@pytest.mark.parametrize("family,finetune", [("llama", "lora"), ("qwen2", "lora"), ("llama", "full")])
def test_pretrained_families_train_frame_aware_reload_and_sample(family, finetune, tmp_path, toy_traj, toy_tok,
                                                                 tiny_train_settings):
    from mdllm_kit.lm.fastdecode import StaticDecoder
    from mdllm_kit.lm.sampler import Sampler

    base = save_tiny_pretrained(family, tmp_path / "base")
    settings = ModelSettings(base_model=str(base), finetune=finetune, lora=LoraSettings(r=4, dropout=0.0))
    bundle = train(toy_traj, toy_tok, tmp_path / "bundle", settings,
                   tiny_train_settings.replace(max_steps=3, learning_rate=1e-2), progress=False, device="cpu")
    assert (tmp_path / "bundle" / ("adapter" if finetune == "lora" else "model")).is_dir()
    reloaded = load_bundle(tmp_path / "bundle", device="cpu")
    assert is_frame_model(reloaded.model) and reloaded.model.uses_previous_frame
    ids = torch.from_numpy(bundle.codec.encode_frames(toy_tok.encode(toy_traj[:2])))[None]
    with torch.no_grad():
        trained = bundle.model.eval()(input_ids=ids).logits
        again = reloaded.model(input_ids=ids).logits
    torch.testing.assert_close(trained, again, rtol=1e-4, atol=1e-4)  # frame tables saved and read back
    assert StaticDecoder.supports(reloaded.model, 256) == (family == "llama")  # Qwen2: HF forward fallback
    # token-for-token equality of the lean decoder and the HF forward holds in fp32 (bf16 rounds differently)
    fast = Sampler(reloaded, precision="fp32").sample(n_frames=2, n_walkers=2, seed=3)
    slow = Sampler(reloaded, fast=False, precision="fp32").sample(n_frames=2, n_walkers=2, seed=3)
    np.testing.assert_array_equal(fast.tokens, slow.tokens)
    assert fast.trajectory.n_frames == 4


@pytest.mark.slow
def test_adapter_bundles_of_plain_pretrained_models_still_load(base_model_dir, tmp_path, toy_traj, toy_tok,
                                                              tiny_train_settings):
    """A bundle written before pretrained bases were made frame-aware (no "frame_aware" in bundle.json) is plain."""
    import json

    settings = ModelSettings(base_model=str(base_model_dir), frame_embeddings=False, previous_frame_embedding=False,
                             lora=LoraSettings(r=4, dropout=0.0))
    bundle = train(toy_traj, toy_tok, tmp_path, settings, tiny_train_settings.replace(max_steps=2),
                   progress=False, device="cpu")
    assert not is_frame_model(bundle.model)
    meta = json.loads((tmp_path / "bundle.json").read_text())
    assert meta.pop("frame_aware") is False
    (tmp_path / "bundle.json").write_text(json.dumps(meta))
    raw = json.loads((tmp_path / "model_settings.json").read_text())
    raw["frame_embeddings"] = raw["previous_frame_embedding"] = True  # the old default, ignored for base models
    (tmp_path / "model_settings.json").write_text(json.dumps(raw))
    reloaded = load_bundle(tmp_path, device="cpu")
    assert not is_frame_model(reloaded.model)
