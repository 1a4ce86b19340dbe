import numpy as np
import pytest
import torch

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
    assert names and all(("lora_" in n) or ("trainable_tokens" in n) for n in names)
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
