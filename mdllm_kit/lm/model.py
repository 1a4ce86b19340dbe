"""Build the default small Mistral model, or load a local pretrained one, and add LoRA.

Nothing here downloads: a pretrained model is read from a local folder with
``local_files_only=True`` and ``trust_remote_code`` stays off.
"""
from __future__ import annotations

import logging
from typing import Any

import torch

from ..contracts import FRAME_EMBEDDING_MODULES, is_frame_model
from ..errors import ModelError
from .codec import FrameCodec
from .config import ModelSettings

__all__ = ["apply_lora", "build_default_model", "count_parameters", "load_base_model", "parameters_key",
           "prepare_model"]

logger = logging.getLogger(__name__)



def build_default_model(codec: FrameCodec, settings: ModelSettings, max_positions: int) -> torch.nn.Module:
    """A randomly initialised small Mistral-architecture causal LM.

    Parameters
    ----------
    codec : FrameCodec
        Gives the vocabulary size (structure tokens + 3 specials) and the
        frame length.
    settings : ModelSettings
        Model shape; ``frame_embeddings`` selects the frame-aware model.
    max_positions : int
        Longest sequence the model will see (tokens); full attention, no
        sliding window.

    Returns
    -------
    FrameMistralForCausalLM or transformers.MistralForCausalLM
        The frame-aware subclass (see :mod:`mdllm_kit.lm.frame_model`) when
        ``settings.frame_embeddings``, else a plain Mistral model.
    """
    from transformers import MistralConfig, MistralForCausalLM

    from .frame_model import FrameMistralConfig, FrameMistralForCausalLM, register_frame_model

    extra: dict[str, Any] = {}
    config_cls, model_cls = MistralConfig, MistralForCausalLM
    if settings.frame_embeddings:
        register_frame_model()
        config_cls, model_cls = FrameMistralConfig, FrameMistralForCausalLM
        extra = {"frame_length": codec.frame_length, "previous_frame_embedding": settings.previous_frame_embedding,
                 "tie_previous_frame_embedding": settings.tie_previous_frame_embedding}
    config = config_cls(
        vocab_size=codec.lm_vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_kv_heads,
        max_position_embeddings=max(int(max_positions), 128),
        sliding_window=None,
        tie_word_embeddings=True,
        bos_token_id=codec.bos_id,
        eos_token_id=codec.frame_id,
        pad_token_id=codec.pad_id,
        rope_parameters={"rope_type": "default", "rope_theta": float(settings.rope_theta)},
        **extra,
    )
    config._attn_implementation = settings.attn_implementation
    model = model_cls(config)
    if settings.ordinal_embedding_init:
        from .frame_model import ordinal_embedding_init

        blocks = sorted({(codec.structure_offset + lo, codec.structure_offset + hi) for lo, hi in codec.valid_ranges})
        ordinal_embedding_init(model.get_input_embeddings().weight, blocks, config.initializer_range)
    logger.info("built a %s from config: %.2f M parameters", model_cls.__name__, count_parameters(model)[1] / 1e6)
    return model


def load_base_model(tokenizer: Any, settings: ModelSettings, device_map: Any = None) -> tuple[torch.nn.Module, FrameCodec]:
    """Load a local pretrained causal LM and append the structure tokens to its vocabulary.

    Parameters
    ----------
    tokenizer : StructureTokenizer
        Provides the structure vocabulary.
    settings : ModelSettings
        ``base_model`` must be a local folder.
    device_map : optional
        Passed to ``from_pretrained`` (4-bit loading needs a GPU).

    Returns
    -------
    model : transformers.PreTrainedModel
        Embedding (and untied output) matrix grown to the new vocabulary; the
        new rows are the mean of the old ones (deterministic, so an adapter
        bundle needs only the trained token rows, not whole matrices). With
        ``settings.frame_embeddings`` (the default) the model is made
        frame-aware (:func:`~mdllm_kit.lm.frame_model.make_frame_aware`),
        whatever its family.
    codec : FrameCodec
        Structure tokens at ``[old_vocab, old_vocab + V)``, ``<frame>`` right after.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if settings.base_model is None:
        raise ModelError("load_base_model needs ModelSettings.base_model (a local folder)")
    config = AutoConfig.from_pretrained(settings.base_model, local_files_only=True, trust_remote_code=False)
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False,
                              "attn_implementation": settings.attn_implementation}
    if settings.load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as error:
            raise ModelError("load_in_4bit needs the bitsandbytes package (pip install bitsandbytes) and a GPU") from error
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = device_map or {"": 0}
    elif device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(settings.base_model, **kwargs)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    base_vocab = int(model.get_input_embeddings().weight.shape[0])
    codec = FrameCodec.for_tokenizer(tokenizer, base_vocab_size=base_vocab,
                                     bos_id=getattr(text_config, "bos_token_id", None),
                                     pad_id=getattr(text_config, "pad_token_id", None))
    _append_token_rows(model, base_vocab, codec.lm_vocab_size)
    logger.info("loaded %s; vocabulary %d -> %d (structure tokens + <frame> appended)",
                settings.base_model, base_vocab, codec.lm_vocab_size)
    if settings.frame_embeddings:  # the same frame-position / previous-frame embeddings as the default model
        from .frame_model import make_frame_aware

        if model.config.pad_token_id is None:  # the "no earlier frame" row of a tied previous-frame lookup
            model.config.pad_token_id = codec.pad_id
        make_frame_aware(model, codec.frame_length, previous_frame_embedding=settings.previous_frame_embedding,
                         tie_previous_frame_embedding=settings.tie_previous_frame_embedding)
    return model, codec


def _append_token_rows(model: torch.nn.Module, old: int, new: int) -> None:
    model.resize_token_embeddings(new, mean_resizing=False)
    with torch.no_grad():
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            if layer is not None and layer.weight.shape[0] >= new:
                weight = layer.weight
                weight[old:new] = weight[:old].float().mean(0).to(weight.dtype)
                if getattr(layer, "bias", None) is not None:
                    layer.bias[old:new] = layer.bias[:old].float().mean().to(layer.bias.dtype)


def _tied(model: torch.nn.Module) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def apply_lora(model: torch.nn.Module, codec: FrameCodec, settings: ModelSettings, new_tokens: bool) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (peft); base weights are frozen.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    codec : FrameCodec
    settings : ModelSettings
        ``settings.lora`` gives rank, alpha, dropout and target modules.
    new_tokens : bool
        The structure tokens were added to a pretrained vocabulary: their
        input-embedding and output rows are made trainable
        (``trainable_token_indices``; both matrices when they are not tied).

    Returns
    -------
    peft.PeftModel
    """
    from peft import LoraConfig, get_peft_model

    lora = settings.lora
    kwargs: dict[str, Any] = {}
    if new_tokens and lora.train_new_tokens:
        ids = codec.new_token_ids()
        if _tied(model):
            kwargs["trainable_token_indices"] = ids
        else:
            kwargs["trainable_token_indices"] = {"embed_tokens": ids, "lm_head": ids}
    frame_modules = [name for name in FRAME_EMBEDDING_MODULES if getattr(model, name, None) is not None]
    if is_frame_model(model):  # a frame-aware model: its (randomly initialised) frame embeddings are trained fully
        kwargs["modules_to_save"] = frame_modules
    if settings.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM", **kwargs)
    peft_model = get_peft_model(model, config)
    trainable, total = count_parameters(peft_model)
    logger.info("LoRA r=%d: %.2f M of %.2f M parameters trainable", lora.r, trainable / 1e6, total / 1e6)
    return peft_model


def prepare_model(tokenizer: Any, settings: ModelSettings, max_positions: int) -> tuple[torch.nn.Module, FrameCodec]:
    """The model to train and its codec, following ``settings`` (default model or local base, full or LoRA)."""
    if settings.base_model is None:
        codec = FrameCodec.for_tokenizer(tokenizer)
        model = build_default_model(codec, settings, max_positions)
        new_tokens = False
    else:
        model, codec = load_base_model(tokenizer, settings)
        new_tokens = True
    if settings.use_lora:
        model = apply_lora(model, codec, settings, new_tokens=new_tokens)
    return model, codec


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared tensors counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def parameters_key(model: torch.nn.Module) -> tuple:
    """Identity and version of every parameter of ``model``: changes when it is trained, edited or replaced
    (in place or not), so whatever was derived from it (concatenated weights, a bf16 copy, forked workers)
    can tell that it is stale."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())
