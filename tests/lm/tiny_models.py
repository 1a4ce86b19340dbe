"""Tiny random pretrained models of the supported families, saved by the tests themselves (no downloads)."""
from __future__ import annotations


def save_tiny_pretrained(family: str, folder) -> str:
    """Save a tiny random "pretrained" model of ``family`` (mistral, llama, qwen2) to ``folder``; return it.

    Untied input/output embeddings (as Mistral-7B), vocabulary 40, 2 layers; nothing is downloaded.
    """
    import torch
    import transformers

    config_cls, model_cls = {"mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
                             "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
                             "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[family]
    extra = {"sliding_window": None} if family == "mistral" else {}
    torch.manual_seed(0)
    model_cls(config_cls(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False, bos_token_id=1,
                         eos_token_id=2, pad_token_id=0, **extra)).save_pretrained(folder)
    return str(folder)
