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

Single-token steps of a model whose projections are plain ``nn.Linear``
layers (the default model, a LoRA-merged one) take a leaner path
(:meth:`StaticDecoder._step`): the q/k/v and the gate/up weights
concatenated (one matrix product each instead of three and two), RoPE from
a table made once (the same numbers the model's rotary embedding gives),
q and k rotated together, and no module calls but the frame-aware
model's own input embedding -- about half the operator launches of a step, where a
step of the small default model is launch- and Python-bound. The
concatenated weights are rebuilt at the next prefill if the model's
parameters change. Other models (quantised or adapter-wrapped linear
layers) take the generic path.

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
from .model import parameters_key

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
        self._lean: dict | None = None  # see _lean_weights
        self._lean_key: tuple | None = None
        self._lean_ok = self._lean_supported(model)

    @staticmethod
    def _lean_supported(model: Any) -> bool:
        """Whether the single-token steps can take the lean path (plain linear layers, RMSNorm-style norms)."""
        from .frame_model import FrameEmbeddingMixin

        if is_frame_model(model) and not isinstance(model, FrameEmbeddingMixin):
            return False
        base = model.model
        norms = [base.norm] + [n for layer in base.layers for n in (layer.input_layernorm,
                                                                    layer.post_attention_layernorm)]
        if not all(hasattr(n, "weight") and hasattr(n, "variance_epsilon") and
                   type(n).__name__.endswith("RMSNorm") for n in norms):
            return False
        for layer in base.layers:
            attn, mlp = layer.self_attn, layer.mlp
            linears = [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, getattr(mlp, "gate_proj", None),
                       getattr(mlp, "up_proj", None), getattr(mlp, "down_proj", None)]
            if not all(type(m) is torch.nn.Linear and m.bias is None and m.weight.dtype.is_floating_point
                       for m in linears) or not hasattr(mlp, "act_fn"):
                return False
        return True

    def _lean_weights(self) -> dict:
        """Concatenated q/k/v and gate/up weights and the RoPE table of ``self.model`` (rebuilt if it changed)."""
        model = self.model
        params = list(model.parameters())
        key = parameters_key(model)
        if self._lean is not None and key == self._lean_key:
            return self._lean
        base = model.model
        layers = []
        with torch.no_grad():
            for layer in base.layers:
                attn, mlp = layer.self_attn, layer.mlp
                layers.append((layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                               torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]),
                               attn.o_proj.weight,
                               layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                               torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), mlp.down_proj.weight,
                               mlp.act_fn))
            dtype = params[0].dtype
            x = torch.zeros(1, dtype=dtype, device=params[0].device)
            cos, sin = base.rotary_emb(x, torch.arange(self.max_len, device=x.device)[None])
            half = self.head_dim // 2
            # rotate_half(q) * sin == q[..., perm] * signed_sin, exactly (a sign flip is exact)
            perm = torch.cat([torch.arange(half, self.head_dim), torch.arange(half)]).to(x.device)
            sign = torch.cat([-torch.ones(half), torch.ones(half)]).to(device=x.device, dtype=dtype)
        self._lean = {"layers": layers, "cos": cos[0], "signed_sin": sin[0] * sign, "perm": perm,
                      "norm": (base.norm.weight, base.norm.variance_epsilon)}
        self._lean_key = key
        return self._lean

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
        if start > 0 and t == 1 and self._lean_ok and self._lean is not None:
            return self._step(input_ids, previous_frame_ids)
        if start == 0 and self._lean_ok:
            self._lean_weights()  # (re)built here, outside the token loop
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

    def _step(self, input_ids: torch.Tensor, previous_frame_ids: torch.Tensor | None) -> torch.Tensor:
        """One token per sequence after the prefill, lean path (see the module docs); same numbers as the
        generic path: the same operations on the same values, fewer of them."""
        lean = self._lean
        model, b, pos = self.model, self.batch, self.length
        nh, nkv, d = self.n_heads, self.n_kv, self.head_dim
        if is_frame_model(model):  # the model's own frame-position and previous-frame rule
            x = model.embed(input_ids, torch.full((1, 1), pos, device=input_ids.device), previous_frame_ids)
        else:
            x = self.base.embed_tokens(input_ids)
        cos, ssin = lean["cos"][pos], lean["signed_sin"][pos]
        perm = lean["perm"]
        groups = nh // nkv
        end = pos + 1
        for i, (w1, eps1, wqkv, wo, w2, eps2, wgu, wdown, act) in enumerate(lean["layers"]):
            h = _rms_norm(x, w1, eps1)
            qkv = F.linear(h, wqkv).view(b, nh + 2 * nkv, d)
            qk = qkv[:, : nh + nkv]
            qk = qk * cos + qk[..., perm] * ssin
            self.keys[i][:, :, pos] = qk[:, nh:]  # (cast to the cache dtype)
            self.values[i][:, :, pos] = qkv[:, nh + nkv:]
            keys, values = self.keys[i][:, :, :end], self.values[i][:, :, :end]
            qg = qk[:, :nh].reshape(b, nkv, groups, d).to(keys.dtype)
            o = F.scaled_dot_product_attention(qg, keys, values).to(x.dtype)
            x = x + F.linear(o.reshape(b, 1, nh * d), wo)
            gate, up = F.linear(_rms_norm(x, w2, eps2), wgu).chunk(2, dim=-1)
            x = x + F.linear(act(gate) * up, wdown)
        self.length = end
        h = _rms_norm(x[:, -1], *lean["norm"])
        return self.head(h if self._head_dtype is None else h.to(self._head_dtype))


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``MistralRMSNorm``/``LlamaRMSNorm`` forward, operation for operation."""
    dtype = x.dtype
    xf = x.to(torch.float32)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(dtype)
