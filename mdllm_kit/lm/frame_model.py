"""The default model: a Mistral causal LM that knows where in a frame each token is.

The LM sees trajectories frame-major (``<bos> s(1,1..L) <frame> s(2,1..L)
<frame> ...``, see :mod:`mdllm_kit.lm.codec`). A plain Mistral model has
only rotary (relative) positions, so it has no direct notion of *which*
structure token of a frame it is predicting, and copying from the same
position one frame back (``L + 1`` tokens earlier) must be discovered through
attention. :class:`FrameMistralForCausalLM` adds two learned embeddings to
the token embedding of every input position ``q`` (``F = L + 1`` tokens per
frame including its delimiter, ``<bos>`` at position 0):

* **frame position** of the input token: ``(q - 1) mod F`` (``0 .. L``, the
  delimiter is ``L``), and a separate row ``F`` for ``<bos>``;
* **previous frame** (optional): the token one frame before the token being
  predicted, i.e. the id at position ``q + 1 - F``, or a "none" id while that
  position lies before the first frame. It is looked up either in a separate
  table (``none`` = row ``vocab_size``) or, with
  ``tie_previous_frame_embedding`` (the default model), in the token
  embedding table itself (``none`` = the ``<pad>`` row): with tied input and
  output embeddings the logits then contain ``e(t) . e(previous)`` from the
  start, and with :func:`ordinal_embedding_init` (neighbouring bins alike)
  that is a prior to stay near the previous frame's bins.

Everything else is the unchanged Mistral stack (HF Trainer, ``generate``,
``save_pretrained`` in safetensors, gradient checkpointing, DDP). For cached
decoding the caller passes ``previous_frame_ids`` for the new positions (the
tokens of the previous frame are known to it);
:meth:`FrameMistralForCausalLM.prepare_inputs_for_generation` does so for
``generate``. The config has its own ``model_type`` and is registered with
the ``Auto`` classes by :func:`register_frame_model` (``trust_remote_code``
stays off).
"""
from __future__ import annotations

from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig, MistralForCausalLM

from ..errors import ModelError

__all__ = ["FRAME_MODEL_TYPE", "FrameEmbeddingMixin", "FrameMistralConfig", "FrameMistralForCausalLM",
           "frame_position_ids", "make_frame_aware", "ordinal_embedding_init", "previous_frame_ids",
           "register_frame_model"]

#: ``model_type`` of the frame-aware Mistral (written into the saved ``config.json``).
FRAME_MODEL_TYPE = "mdllm_frame_mistral"


@strict
class FrameMistralConfig(MistralConfig):
    """:class:`transformers.MistralConfig` plus the frame layout.

    Parameters
    ----------
    frame_length : int
        LM tokens per frame including the delimiter (``F = L + 1``); must be >= 2.
    previous_frame_embedding : bool
        Add the embedding of the token one frame before the predicted one.
    tie_previous_frame_embedding : bool
        Look that token up in the token embedding table itself (shared
        weights; "no earlier frame" is the ``<pad>`` row) instead of a separate
        table. With tied input/output embeddings, the output logits then
        contain ``e(t) . e(previous)`` from the start: a built-in prior to
        stay near the previous frame.
    **kwargs
        Every :class:`~transformers.MistralConfig` field.
    """

    model_type = FRAME_MODEL_TYPE

    frame_length: int = 2
    previous_frame_embedding: bool = True
    tie_previous_frame_embedding: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        if self.frame_length < 2:
            raise ModelError(f"frame_length (tokens per frame incl. the delimiter) must be >= 2, got {self.frame_length}")
        super().__post_init__(**kwargs)


def frame_position_ids(positions: torch.Tensor, frame_length: int) -> torch.Tensor:
    """Position within its frame of the token at each absolute position.

    Parameters
    ----------
    positions : torch.Tensor of int, any shape
        Absolute positions in the sequence (``<bos>`` at 0).
    frame_length : int
        ``F`` (tokens per frame incl. the delimiter).

    Returns
    -------
    torch.Tensor of int64, same shape
        ``(p - 1) mod F`` for ``p >= 1`` (the delimiter gets ``F - 1``), ``F`` for ``<bos>``.
    """
    positions = positions.long()
    return torch.where(positions == 0, torch.full_like(positions, frame_length), (positions - 1) % frame_length)


def previous_frame_ids(input_ids: torch.Tensor, frame_length: int, none_id: int) -> torch.Tensor:
    """For each position ``q`` of a sequence starting at ``<bos>``, the id at ``q + 1 - F``.

    Parameters
    ----------
    input_ids : torch.Tensor of int, shape (B, T)
        Whole sequences from position 0 (no cache).
    frame_length : int
        ``F``.
    none_id : int
        Id used while ``q + 1 - F < 1`` (no earlier frame).

    Returns
    -------
    torch.Tensor of int64, shape (B, T)
        The token one frame before the token predicted at each position.
    """
    b, t = input_ids.shape
    out = torch.full((b, t), none_id, dtype=torch.long, device=input_ids.device)
    # position q reads q + 1 - F; q + 1 - F >= 1 means q >= F
    if t > frame_length:
        out[:, frame_length:] = input_ids[:, 1: t + 1 - frame_length]
    return out


class FrameEmbeddingMixin:
    """Frame-position and previous-frame input embeddings for a Hugging Face decoder-only causal LM.

    One mechanism for every family: it needs only ``get_input_embeddings()``
    and a ``forward`` that takes ``inputs_embeds`` and ``position_ids``
    (Mistral, Llama, Qwen2 and the other ``*ForCausalLM`` classes of
    transformers). The frame layout is read from the model's config:
    ``frame_length``, ``previous_frame_embedding``,
    ``tie_previous_frame_embedding`` (see :class:`FrameMistralConfig`).
    :class:`FrameMistralForCausalLM` is this mixin on Mistral;
    :func:`make_frame_aware` applies it to a loaded model of any family.
    """

    def _init_frame_embeddings(self) -> None:
        """Create ``frame_position_embeddings`` (and a separate previous-frame table if configured)."""
        config = self.config
        self.frame_position_embeddings = nn.Embedding(config.frame_length + 1, config.hidden_size)
        separate = config.previous_frame_embedding and not config.tie_previous_frame_embedding
        self.previous_frame_embeddings = nn.Embedding(config.vocab_size + 1, config.hidden_size) if separate else None

    @property
    def uses_previous_frame(self) -> bool:
        """Whether the inputs include the previous-frame token (cached steps need ``previous_frame_ids``)."""
        return bool(self.config.previous_frame_embedding)

    @property
    def none_id(self) -> int:
        """Previous-frame id meaning "no earlier frame" (``<pad>`` when the table is the token table)."""
        if self.config.tie_previous_frame_embedding:
            return int(self.config.pad_token_id or 0)
        return int(self.config.vocab_size)

    def embed(self, input_ids: torch.Tensor, positions: torch.Tensor,
              previous_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings: token + frame position (+ previous-frame token).

        Parameters
        ----------
        input_ids : torch.Tensor of int, shape (B, T)
        positions : torch.Tensor of int, shape (B, T) or (1, T)
            Absolute positions of ``input_ids`` (``<bos>`` at 0).
        previous_ids : torch.Tensor of int, shape (B, T), optional
            See :func:`previous_frame_ids`; computed from ``input_ids`` when
            ``positions`` starts at 0, required otherwise.

        Returns
        -------
        torch.Tensor, shape (B, T, hidden_size)
        """
        tokens = self.get_input_embeddings()
        x = tokens(input_ids)
        x = x + self.frame_position_embeddings(frame_position_ids(positions, self.config.frame_length))
        if self.uses_previous_frame:
            if previous_ids is None:
                if int(positions.reshape(-1, positions.shape[-1])[:, 0].max()) != 0:
                    raise ModelError("after the first forward call with a KV cache, pass previous_frame_ids (the "
                                     "token one frame before each predicted token; see previous_frame_ids())")
                previous_ids = previous_frame_ids(input_ids, self.config.frame_length, self.none_id)
            table = self.previous_frame_embeddings if self.previous_frame_embeddings is not None else tokens
            x = x + table(previous_ids)
        return x

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, cache: Any = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.LongTensor | None = None,
                use_cache: bool | None = None, logits_to_keep: int | torch.Tensor = 0,
                previous_frame_ids: torch.LongTensor | None = None, **kwargs: Any) -> Any:
        """The family's forward with frame-aware input embeddings.

        Same arguments as the family's ``forward`` (e.g. :meth:`transformers.MistralForCausalLM.forward`;
        ``past_key_values`` is accepted as the older name of ``cache``), plus
        ``previous_frame_ids`` (B, T) for calls that continue a KV cache.
        ``input_ids`` are required (the frame embeddings are looked up from them).
        """
        if input_ids is None:
            raise ModelError(f"{type(self).__name__} needs input_ids (its frame embeddings are looked up from them)")
        if inputs_embeds is not None:
            raise ModelError(f"pass input_ids, not inputs_embeds, to {type(self).__name__}")
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        if position_ids is None:
            start = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)[None]
        embeds = self.embed(input_ids, position_ids, previous_frame_ids)
        return super().forward(input_ids=None, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                               inputs_embeds=embeds, labels=labels, use_cache=use_cache,
                               logits_to_keep=logits_to_keep, **kwargs)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, *args: Any, **kwargs: Any) -> dict:
        """HF ``generate`` support: adds ``previous_frame_ids`` for the positions being run."""
        inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        step_ids = inputs.get("input_ids")
        if step_ids is not None and self.uses_previous_frame:
            full = previous_frame_ids(input_ids, self.config.frame_length, self.none_id)
            inputs["previous_frame_ids"] = full[:, -step_ids.shape[1]:]
        if step_ids is not None and inputs.get("position_ids") is None:
            t = input_ids.shape[1]
            inputs["position_ids"] = torch.arange(t - step_ids.shape[1], t, device=input_ids.device)[None]
        return inputs


class FrameMistralForCausalLM(FrameEmbeddingMixin, MistralForCausalLM):
    """Mistral causal LM with frame-position and previous-frame embeddings (see module docs).

    Parameters
    ----------
    config : FrameMistralConfig
    """

    config_class = FrameMistralConfig

    def __init__(self, config: FrameMistralConfig) -> None:
        super().__init__(config)
        self._init_frame_embeddings()
        self.post_init()


_FRAME_CLASSES: dict[type, type] = {}


def make_frame_aware(model: nn.Module, frame_length: int, *, previous_frame_embedding: bool = True,
                     tie_previous_frame_embedding: bool = True) -> nn.Module:
    """Give a loaded causal LM of any family frame-position and previous-frame embeddings (in place).

    The model's class becomes ``FrameAware<Class>`` (:class:`FrameEmbeddingMixin`
    before the family's class, made once per family), its config records the
    frame layout, and the new tables start as the family initialises
    embeddings (normal, ``config.initializer_range``), in the dtype and on the
    device of the token embeddings. The model is then a
    :class:`~mdllm_kit.contracts.FrameModel`: the sampler, the cached decoder
    and LoRA training treat it like the default model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A decoder-only causal LM (``*ForCausalLM``), e.g. loaded from a local folder.
    frame_length : int
        LM tokens per frame including the delimiter (``FrameCodec.frame_length``).
    previous_frame_embedding, tie_previous_frame_embedding : bool
        As in :class:`FrameMistralConfig`.

    Returns
    -------
    The same model object.
    """
    if isinstance(model, FrameEmbeddingMixin):
        raise ModelError(f"{type(model).__name__} is already frame-aware")
    if frame_length < 2:
        raise ModelError(f"frame_length (tokens per frame incl. the delimiter) must be >= 2, got {frame_length}")
    if not callable(getattr(model, "get_input_embeddings", None)) or getattr(model, "config", None) is None:
        raise ModelError(f"{type(model).__name__} is not a Hugging Face causal LM; pass a *ForCausalLM model")
    base = type(model)
    cls = _FRAME_CLASSES.get(base)
    if cls is None:
        cls = _FRAME_CLASSES[base] = type(f"FrameAware{base.__name__}", (FrameEmbeddingMixin, base),
                                          {"__module__": __name__, "__doc__": f"{base.__name__} + frame embeddings."})
    config = model.config
    config.frame_length = int(frame_length)
    config.previous_frame_embedding = bool(previous_frame_embedding)
    config.tie_previous_frame_embedding = bool(tie_previous_frame_embedding)
    model.__class__ = cls
    model._init_frame_embeddings()
    weight = model.get_input_embeddings().weight
    std = float(getattr(config, "initializer_range", 0.02))
    for table in (model.frame_position_embeddings, model.previous_frame_embeddings):
        if table is not None:
            table.to(device=weight.device, dtype=weight.dtype)
            nn.init.normal_(table.weight, std=std)
    return model


#: Fourier frequencies of the ordinal embedding initialisation and the width (in frequencies) of their
#: Gaussian amplitude envelope: the similarity of two bins falls off over ~ n_bins / (2 pi ORDINAL_WIDTH) bins.
ORDINAL_FREQUENCIES = 32
ORDINAL_WIDTH = 8.0


def ordinal_embedding_init(weight: torch.Tensor, blocks: list[tuple[int, int]], std: float,
                           generator: torch.Generator | None = None) -> None:
    """Initialise embedding rows of ordered bins so that neighbouring bins are similar (in place).

    Row ``lo + i`` of a block ``[lo, hi)`` of ``n = hi - lo`` bins becomes
    ``sum_k a_k (cos(k phi_i) u_k + sin(k phi_i) v_k)`` with ``phi_i = 2 pi i / n``,
    Gaussian amplitudes ``a_k`` over ``k = 1 .. ORDINAL_FREQUENCIES`` and
    random orthonormal directions ``u_k, v_k`` drawn per block, scaled to
    the per-coordinate standard deviation ``std``. The dot product of two rows
    is then a smooth, peaked (periodic) function of their bin distance, so a
    tied output layer starts with "near bins are alike".

    Parameters
    ----------
    weight : torch.Tensor, shape (vocab, hidden)
        Embedding matrix (modified in place).
    blocks : list of (int, int)
        Row ranges ``[lo, hi)`` of ordered bins (e.g. the structure-token
        alphabets); rows outside every block are left as they are.
    std : float
        Per-coordinate standard deviation of the initialised rows.
    generator : torch.Generator, optional
    """
    hidden = weight.shape[1]
    n_freq = min(ORDINAL_FREQUENCIES, hidden // 2)
    k = torch.arange(1, n_freq + 1, dtype=torch.float64)
    amp = torch.exp(-0.5 * (k / ORDINAL_WIDTH) ** 2)
    amp = amp / amp.norm() * std * hidden ** 0.5  # row norm = std * sqrt(hidden)
    with torch.no_grad():
        for lo, hi in blocks:
            phi = 2 * torch.pi * torch.arange(hi - lo, dtype=torch.float64)[:, None] / (hi - lo) * k
            feats = torch.cat([torch.cos(phi) * amp, torch.sin(phi) * amp], dim=1)  # (n, 2 n_freq)
            basis, _ = torch.linalg.qr(torch.randn(hidden, 2 * n_freq, dtype=torch.float64, generator=generator))
            weight[lo:hi] = (feats @ basis.T).to(weight.dtype)


def register_frame_model() -> None:
    """Register :class:`FrameMistralConfig` / :class:`FrameMistralForCausalLM` with the ``Auto`` classes (idempotent)."""
    AutoConfig.register(FRAME_MODEL_TYPE, FrameMistralConfig, exist_ok=True)
    AutoModelForCausalLM.register(FrameMistralConfig, FrameMistralForCausalLM, exist_ok=True)
