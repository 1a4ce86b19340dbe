"""A lean incremental forward pass with a preallocated KV cache (Mistral/Llama layout).

The sampler calls the model once per token. Through the HF ``forward`` each
call pays for mask construction, cache bookkeeping and output objects --
about 10 ms per step for the tiny default model on CPU, several times the
arithmetic. :class:`StaticDecoder` runs the same modules (projections, norms,
MLP, rotary embedding of the loaded model, so LoRA-merged or quantised
linear layers work unchanged) with a fixed-size KV buffer and plain SDPA, so
a step is only the model's own operations.

It is used only for architectures whose layer structure it reproduces
exactly (``model_type`` ``mistral``, ``llama`` or the frame-aware
``mdllm_frame_mistral``; any of them made frame-aware by
:func:`~mdllm_kit.lm.frame_model.make_frame_aware` has its input embedding taken
from the model's own ``embed``, see :func:`~mdllm_kit.contracts.is_frame_model`;
no sliding window shorter
than the context, no attention bias or q/k norms); the sampler falls back to
the HF forward otherwise. ``tests/lm/test_fastdecode.py`` checks it against
the HF forward.

For bf16 sampling the model passed in is a bf16 copy (its KV cache is then
bf16 too: half the bytes read per step) and ``head`` is the fp32 output
layer of the original, so the logits that sampling sees are computed in fp32
from the bf16 hidden state.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..contracts import is_frame_model

__all__ = ["StaticDecoder"]

#: ``config.model_type`` values whose decoder layers :class:`StaticDecoder` reproduces exactly.
SUPPORTED_MODEL_TYPES = ("mistral", "llama", "mdllm_frame_mistral")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """Prefill and single-token steps over a preallocated KV cache.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A ``MistralForCausalLM``/``LlamaForCausalLM``-style model in eval mode.
    batch : int
        Sequences decoded together (walkers).
    max_len : int
        Longest sequence (prefill + generated tokens).
    head : torch.nn.Module, optional
        Output layer that turns the final normed hidden state into logits
        (default: ``model.lm_head``); the hidden state is cast to its weight's
        dtype, so an fp32 ``head`` gives fp32 logits from a bf16 ``model``.
    cache_dtype : torch.dtype, optional
        dtype of the KV cache (default: the model's). A bf16 cache under an
        fp32 model halves the bytes each decode step reads; the single-token
        attention then runs in bf16 (query cast, output cast back), the
        prefill attention in the model's dtype.
    prefill_model : transformers.PreTrainedModel, optional
        The same model in another dtype (a bf16 copy) that runs the prefills
        (``start == 0``: thousands of rows per matrix product, where bf16
        matrix units pay), while the single-token steps run ``model``.
    """

    def __init__(self, model: Any, batch: int, max_len: int, head: torch.nn.Module | None = None,
                 cache_dtype: torch.dtype | None = None, prefill_model: Any = None) -> None:
        cfg = model.config
        self.model = model
        self.prefill_model = prefill_model
        self.head = head if head is not None else model.lm_head
        head_dtype = next(self.head.parameters()).dtype
        self._head_dtype = head_dtype if head_dtype.is_floating_point else None  # quantised head: as it is
        self.base = model.model
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        param = next(model.parameters())
        shape = (batch, self.n_kv, max_len, self.head_dim)
        dtype = param.dtype if param.dtype.is_floating_point else torch.bfloat16
        dtype = cache_dtype or dtype
        self.keys = [torch.zeros(shape, dtype=dtype, device=param.device) for _ in self.base.layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=param.device) for _ in self.base.layers]
        self.batch, self.max_len, self.length = batch, max_len, 0

    @staticmethod
    def supports(model: Any, max_len: int) -> bool:
        """Whether this class reproduces ``model``'s forward pass exactly."""
        cfg = getattr(model, "config", None)
        if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_MODEL_TYPES:
            return False
        window = getattr(cfg, "sliding_window", None)
        if window is not None and window < max_len:
            return False
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            return False
        base = getattr(model, "model", None)
        if base is None or not hasattr(base, "layers") or not hasattr(base, "rotary_emb"):
            return False
        attn = base.layers[0].self_attn
        return all(hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj")) and not (
            hasattr(attn, "q_norm") or hasattr(attn, "k_norm"))

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, reset: bool = False,
                previous_frame_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``input_ids`` (B, T) after the cached tokens; return the last position's logits (B, vocab).

        ``reset=True`` empties the cache first (a new prefill).
        ``previous_frame_ids`` (B, T): for a frame-aware model with a
        previous-frame embedding, needed on every call after the prefill
        (see :func:`~mdllm_kit.lm.frame_model.previous_frame_ids`).
        """
        if reset:
            self.length = 0
        b, t = input_ids.shape
        start, end = self.length, self.length + t
        if end > self.max_len or b != self.batch:
            raise ValueError(f"StaticDecoder holds {self.batch} x {self.max_len} tokens; got {b} x {end}")
        positions = torch.arange(start, end, device=input_ids.device)[None].expand(b, t)
        model = self.prefill_model if start == 0 and self.prefill_model is not None else self.model
        base = model.model
        if is_frame_model(model):  # e.g. FrameMistralForCausalLM: token + frame embeddings
            x = model.embed(input_ids, positions, previous_frame_ids)
        else:
            x = base.embed_tokens(input_ids)
        cos, sin = base.rotary_emb(x, positions)
        cos, sin = cos[:, None], sin[:, None]
        groups = self.n_heads // self.n_kv
        for i, layer in enumerate(base.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            self.keys[i][:, :, start:end] = k  # (cast to the cache dtype)
            self.values[i][:, :, start:end] = v
            keys, values = self.keys[i][:, :, :end], self.values[i][:, :, :end]
            if start == 0:  # prefill: causal attention within the new tokens (fused SDPA kernel)
                if groups > 1:
                    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
                o = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
            else:
                if t != 1:
                    raise ValueError("after the prefill, StaticDecoder takes one token at a time")
                # one query per sequence: fold the query heads of each KV head into rows, so the cached
                # keys/values are read in place (no GQA expansion, no copy of the strided cache view)
                qg = q.reshape(b, self.n_kv, groups, self.head_dim).to(keys.dtype)
                o = F.scaled_dot_product_attention(qg, keys, values).to(x.dtype)
                o = o.reshape(b, self.n_heads, 1, self.head_dim)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(b, t, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.length = end
        h = base.norm(x[:, -1])
        return self.head(h if self._head_dtype is None else h.to(self._head_dtype))
