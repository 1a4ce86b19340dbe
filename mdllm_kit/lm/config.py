"""Validated settings of the language model, its training and sampling.

Every settings class is a frozen dataclass checked in ``__post_init__`` and
round-trips through JSON (:meth:`to_dict` / :meth:`from_dict`,
:meth:`save` / :meth:`load`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..jsonconfig import JsonConfig
from .precision import PRECISIONS

__all__ = ["DEFAULT_ENTROPY_CAP", "LoraSettings", "ModelSettings", "SamplingSettings", "TrainSettings"]

#: All attention and MLP projections of Mistral/Llama-style models (the paper's LoRA targets).
ALL_PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ModelError(message)


class _JsonSettings(JsonConfig):
    """JSON round trip shared by the settings classes (:class:`~mdllm_kit.jsonconfig.JsonConfig`)."""

    json_error = ModelError


@dataclass(frozen=True)
class LoraSettings(_JsonSettings):
    """LoRA adapter settings (defaults follow the MD-LLM paper: rank 16 on every projection).

    Parameters
    ----------
    r : int
        Adapter rank.
    alpha : float
        Scaling numerator (the update is scaled by ``alpha / r``).
    dropout : float
        Dropout on the adapter input, in ``[0, 1)``.
    target_modules : tuple of str
        Module names that get adapters (all attention and MLP projections).
    train_new_tokens : bool
        Make the embedding and output rows of the added structure tokens
        trainable (peft ``trainable_token_indices``); needed when the tokens
        are new to a pretrained model.
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_PROJECTIONS
    train_new_tokens: bool = True

    def __post_init__(self) -> None:
        _require(self.r >= 1, f"LoRA rank r must be >= 1, got {self.r}")
        _require(self.alpha > 0, f"LoRA alpha must be > 0, got {self.alpha}")
        _require(0.0 <= self.dropout < 1.0, f"LoRA dropout must be in [0, 1), got {self.dropout}")
        _require(len(self.target_modules) > 0 and all(isinstance(m, str) and m for m in self.target_modules),
                 "LoRA target_modules must be a non-empty list of module names, e.g. ['q_proj', 'v_proj']")


@dataclass(frozen=True)
class ModelSettings(_JsonSettings):
    """Which language model to train.

    The default is a small Mistral-architecture model built from this
    config: 3 layers, hidden 128, MLP 384, 4 query heads sharing one
    key-value head (multi-query attention: sampling reads the KV cache of
    every walker at every step, and on a CPU that read is the bottleneck),
    made frame-aware (:class:`~mdllm_kit.lm.frame_model.FrameMistralForCausalLM`):
    each input also carries the embedding of its position within the frame
    and the token at the predicted position one frame earlier, looked up in
    the (tied) token table, whose structure-token rows start smooth in bin
    order. With the default AdK tokenizer (557 tokens per frame, 768
    structure ids) it has 0.74 M parameters and trains on a 2-core CPU in
    minutes (see ``BENCHMARKS.md`` for what it learns there). It is
    trained fully (see ``finetune``). With ``base_model`` a pretrained
    model is loaded from a local folder, the structure tokens are appended to
    its vocabulary, and it is fine-tuned with LoRA.

    Parameters
    ----------
    base_model : str, optional
        Local folder of a pretrained causal LM (``save_pretrained`` layout).
        Never a hub id: nothing is downloaded.
    hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size : int
        Shape of the default model (ignored with ``base_model``).
    rope_theta : float
        RoPE base of the default model.
    frame_embeddings : bool
        Add a learned embedding of each token's position within its frame
        (``0 .. L``, the delimiter last) to the token embedding
        (:class:`~mdllm_kit.lm.frame_model.FrameMistralForCausalLM` for the
        default model; a local ``base_model`` of any family is made
        frame-aware the same way, :func:`~mdllm_kit.lm.frame_model.make_frame_aware`);
        ``False`` gives a plain model (RoPE only).
    previous_frame_embedding : bool
        With ``frame_embeddings``: also add the embedding of the token at the
        predicted position one frame earlier (a separate table), so staying
        near the previous frame is directly learnable.
    tie_previous_frame_embedding : bool
        Look the previous-frame token up in the token embedding table itself
        (shared weights) instead of a separate table; with the tied output
        layer the model then starts out preferring the previous frame's bins.
    ordinal_embedding_init : bool
        Default model only: initialise the embeddings of each block of
        structure tokens (each position's ``[lo, hi)`` alphabet, ordered bins)
        so that neighbouring bins are similar
        (:func:`~mdllm_kit.lm.frame_model.ordinal_embedding_init`).
    finetune : {"auto", "full", "lora"}
        ``"auto"``: full training for the model built from config (its weights
        are random, so there is nothing to preserve and LoRA would only limit
        capacity), LoRA for a pretrained ``base_model``.
    lora : LoraSettings
        Adapter settings used when fine-tuning with LoRA.
    load_in_4bit : bool
        Load ``base_model`` weights in 4 bit (needs bitsandbytes and a GPU).
    attn_implementation : str
        ``"sdpa"`` (default) or ``"eager"``.
    """

    base_model: str | None = None
    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 1
    intermediate_size: int = 384
    rope_theta: float = 10000.0
    frame_embeddings: bool = True
    previous_frame_embedding: bool = True
    tie_previous_frame_embedding: bool = True
    ordinal_embedding_init: bool = True
    finetune: str = "auto"
    lora: LoraSettings = field(default_factory=LoraSettings)
    load_in_4bit: bool = False
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", LoraSettings.from_dict(self.lora))
        _require(self.hidden_size >= 8 and self.num_layers >= 1 and self.intermediate_size >= 1,
                 "model hidden_size must be >= 8 and num_layers, intermediate_size >= 1")
        _require(self.num_heads >= 1 and self.hidden_size % self.num_heads == 0,
                 f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        _require(self.num_kv_heads >= 1 and self.num_heads % self.num_kv_heads == 0,
                 f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}")
        _require((self.hidden_size // self.num_heads) % 2 == 0, "the head dimension must be even (RoPE)")
        _require(self.frame_embeddings or not self.previous_frame_embedding,
                 "previous_frame_embedding needs frame_embeddings=True; for a plain Mistral model set both to False")
        _require(self.finetune in ("auto", "full", "lora"),
                 f"finetune must be 'auto', 'full' or 'lora', got {self.finetune!r}")
        _require(self.attn_implementation in ("sdpa", "eager"),
                 f"attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}")
        if self.base_model is not None:
            _require(Path(self.base_model).is_dir(),
                     f"base_model {self.base_model!r} is not a local folder; pass the folder of a model saved "
                     "with save_pretrained (mdllm-kit never downloads models)")

    @property
    def use_lora(self) -> bool:
        """Whether training uses LoRA adapters (resolves ``finetune="auto"``)."""
        if self.finetune == "auto":
            return self.base_model is not None
        return self.finetune == "lora"

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["lora"] = self.lora.to_dict()
        return out


@dataclass(frozen=True)
class TrainSettings(_JsonSettings):
    """How to train: windows, split, optimisation, checkpoints.

    Parameters
    ----------
    window_frames : int
        Context frames ``W``; each training sequence holds ``W + 1``
        consecutive frames and the model learns to predict frame ``W + 1``
        (paper: 10). Default 2, for CPUs: with 557 tokens per AdK frame a
        3-frame window is 1,675 tokens (an 11-frame one would be 6,139).
        Measured on the AdK data with the same token budget (``BENCHMARKS.md``),
        W = 2 for 200 steps gave a lower validation loss than W = 4 for 120
        steps (3.16 vs 3.21 nats) and rollouts at least as close to the closed
        state: the token-level memory of these trajectories is short.
    stride : int
        Frames between the starts of consecutive windows.
    val_fraction : float
        Last fraction of every trajectory (in time) kept for validation;
        training windows never contain a validation frame.
    loss_frames : {"all", "last"}
        Tokens that contribute to the loss: every frame of the window (each
        frame is a next-frame prediction from the frames before it; more signal
        per token) or only the last one (strictly the paper's objective).
    max_steps, batch_size, grad_accum : int
        Optimiser steps (default 200: about 4-5 minutes on a quiet 2-core
        CPU with the default model and window, 1.3 M tokens), sequences per
        device per step, accumulation.
    learning_rate, weight_decay, warmup_ratio, max_grad_norm : float
        AdamW settings (cosine schedule).
    eval_steps, save_steps, logging_steps, save_total_limit : int
        Evaluation / checkpoint / logging interval (steps); checkpoints kept.
    eval_max_windows : int
        At most this many validation windows (evenly spaced) are evaluated.
    rmsd_max_frames : int
        At most this many teacher-forced next frames are decoded for the RMSD metric.
    seed : int
        Seed of initialisation, data order and dropout.
    precision : {"auto", "bf16", "fp32"}
        Arithmetic of training. ``"bf16"``: mixed precision (``torch.autocast``
        bf16 through the HF Trainer's ``bf16``; fp32 weights, optimizer state
        and loss), on CPU and GPU. ``"auto"`` (default): bf16 on a GPU that
        supports it and on a CPU with native bf16 matrix instructions (AMX or
        AVX-512 BF16), fp32 elsewhere (said in the log; see
        :func:`~mdllm_kit.lm.precision.resolve_precision`). Measured on an AMX
        CPU, bf16 trains faster at the same validation loss per token
        (``BENCHMARKS.md``).
    bf16 : bool or None
        Older spelling of ``precision``: ``True`` / ``False`` mean ``"bf16"`` /
        ``"fp32"`` (``None``: follow ``precision``).
    gradient_checkpointing : bool or None
        ``None``: on when a CUDA GPU is used.
    dataloader_workers : int
        Data-loader worker processes.
    context_noise_bins : float
        Noisy-context training (cf. arXiv 2602.04883): standard deviation, in
        bins, of a rounded Gaussian move of the structure tokens of the ``W``
        context frames of every training window (the input ids only; the
        labels, the window's last frame and the validation windows stay clean),
        wrapped for the tokenizer's periodic kinds, clipped at the ends of the
        position's range otherwise (:func:`~mdllm_kit.contracts.jitter_frame_tokens`).
        The model learns to predict the true next frame from a context that
        drifted as a rollout's does. Fresh noise for every window drawn, from a
        stream seeded by ``seed`` (a resumed run draws new noise). ``0``
        (default): off.
    context_noise_fraction : float
        With ``context_noise_bins``: probability, in ``(0, 1]``, that a context
        token is moved at all.
    ordinal_label_sigma : float
        Ordinal soft targets: the training loss is the cross-entropy against a
        discretised Gaussian of this width (bins) centred on the true bin,
        restricted to the position's valid ``[lo, hi)`` block and wrapped for
        periodic kinds, instead of the one-hot true token (frame delimiters keep
        one-hot targets). The evaluation loss stays the plain cross-entropy.
        ``0`` (default): off (plain cross-entropy).
    """

    window_frames: int = 2
    stride: int = 1
    val_fraction: float = 0.1
    loss_frames: str = "all"
    max_steps: int = 200
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    eval_steps: int = 100
    save_steps: int = 100
    logging_steps: int = 10
    save_total_limit: int = 2
    eval_max_windows: int = 16
    rmsd_max_frames: int = 16
    seed: int = 0
    precision: str = "auto"
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None
    dataloader_workers: int = 0
    context_noise_bins: float = 0.0
    context_noise_fraction: float = 1.0
    ordinal_label_sigma: float = 0.0

    def __post_init__(self) -> None:
        _require(self.window_frames >= 1, f"window_frames must be >= 1, got {self.window_frames}")
        _require(self.stride >= 1, f"stride must be >= 1, got {self.stride}")
        _require(0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        _require(self.loss_frames in ("all", "last"), f"loss_frames must be 'all' or 'last', got {self.loss_frames!r}")
        for name in ("max_steps", "batch_size", "grad_accum", "eval_steps", "save_steps", "logging_steps",
                     "save_total_limit", "eval_max_windows", "rmsd_max_frames"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _require(self.weight_decay >= 0 and self.max_grad_norm > 0, "weight_decay must be >= 0 and max_grad_norm > 0")
        _require(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _require(self.dataloader_workers >= 0, "dataloader_workers must be >= 0")
        _require(math.isfinite(self.context_noise_bins) and self.context_noise_bins >= 0,
                 f"context_noise_bins must be a finite number of bins >= 0 (0: off), got {self.context_noise_bins}")
        _require(0.0 < self.context_noise_fraction <= 1.0,
                 f"context_noise_fraction must be in (0, 1], got {self.context_noise_fraction}; to turn the noise "
                 "off set context_noise_bins=0")
        _require(math.isfinite(self.ordinal_label_sigma) and self.ordinal_label_sigma >= 0,
                 f"ordinal_label_sigma must be a finite number of bins >= 0 (0: off), got {self.ordinal_label_sigma}")
        _require(self.precision in PRECISIONS,
                 f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.bf16 is not None:
            implied = "bf16" if self.bf16 else "fp32"
            _require(self.precision in ("auto", implied),
                     f"bf16={self.bf16} contradicts precision={self.precision!r}; set only precision")

    @property
    def requested_precision(self) -> str:
        """``precision`` with the older ``bf16`` flag folded in ("auto", "bf16" or "fp32")."""
        if self.bf16 is not None:
            return "bf16" if self.bf16 else "fp32"
        return self.precision


#: Default ``SamplingSettings.entropy_cap`` (nats per token). With a CPU-budget model (the demo's 400
#: steps) it keeps rollouts on the real ensemble (median 0.98 A from the nearest real frame instead of
#: 1.8 A, no 10-20 A jumps, no drift over 500 frames); with a model trained 7x longer it still meets the
#: targets but narrows the ensemble, and ``None`` is better there. BENCHMARKS.md, "Entropy cap as the
#: default, two training budgets".
DEFAULT_ENTROPY_CAP = 2.0


@dataclass(frozen=True)
class SamplingSettings(_JsonSettings):
    """How to roll out new trajectories (defaults: the paper's 1.0, 100, 0.95, plus an entropy cap).

    Parameters
    ----------
    n_frames : int
        Frames to generate per walker.
    n_walkers : int
        Independent trajectories generated together as one batch.
    temperature : float
        Softmax temperature; 0 means greedy (arg-max) decoding.
    top_k : int
        Keep the ``top_k`` most likely allowed tokens (0: no limit).
    top_p : float
        Nucleus sampling: keep the smallest set of tokens with probability
        mass ``>= top_p`` (1.0: no limit).
    context_frames : int, optional
        Frames of context; default: the training window ``W``.
    seed : int
        Random seed. Frame ``i`` uses its own random stream derived from
        ``(seed, i)``, so a run continued after an interruption produces the
        same tokens as an uninterrupted one.
    flush_every : int
        Frames generated between writes to the output folder.
    entropy_cap : float, optional
        Entropy control (nats per token): every token whose distribution at
        ``temperature`` has a higher entropy is drawn at the lower temperature
        that brings it to this value, so no token of any frame is drawn from
        a distribution more uncertain than the cap; confident tokens keep
        ``temperature``. Meant against error build-up in long rollouts (cf.
        the frame-isoentropic sampling of MD-LLM-2, arXiv 2610.10879). Default
        :data:`DEFAULT_ENTROPY_CAP`; ``None``: off (the MD-LLM paper's plain
        temperature, top-k and top-p sampling), the better choice for a
        well-trained model, whose own distribution has the ensemble's spread.
    """

    n_frames: int = 100
    n_walkers: int = 1
    temperature: float = 1.0
    top_k: int = 100
    top_p: float = 0.95
    context_frames: int | None = None
    seed: int = 0
    flush_every: int = 10
    entropy_cap: float | None = DEFAULT_ENTROPY_CAP

    def __post_init__(self) -> None:
        _require(self.n_frames >= 1, f"n_frames must be >= 1, got {self.n_frames}")
        _require(self.n_walkers >= 1, f"n_walkers must be >= 1, got {self.n_walkers}")
        _require(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        _require(self.top_k >= 0, f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        _require(0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}")
        _require(self.context_frames is None or self.context_frames >= 1, "context_frames must be >= 1")
        _require(self.flush_every >= 1, "flush_every must be >= 1")
        _require(self.entropy_cap is None or self.entropy_cap > 0,
                 f"entropy_cap must be > 0 nats per token (or None: off), got {self.entropy_cap}")
