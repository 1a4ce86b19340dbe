"""Roll new trajectories forward with a trained model.

Mechanics
---------
All walkers are one batch. For every new frame the sampler

1. builds each walker's context, ``<bos>`` plus its last ``C`` frames
   (``C`` = the training window ``W`` by default; seed frames first, then
   generated ones), and runs one batched prefill that fills a KV cache;
2. generates the frame's ``L`` tokens one position at a time from the cache
   (``L - 1`` single-token forward passes, batched over walkers). At
   position ``j`` the logits are cut to the structure-token block and every
   id outside ``[lo_j, hi_j)`` is masked *before* temperature, top-k and
   top-p, so each frame has exactly ``L`` valid tokens at any temperature
   and always decodes; the ``<frame>`` delimiter is implied, never sampled.
   A frame-aware model (the default,
   :class:`~mdllm_kit.lm.frame_model.FrameMistralForCausalLM`) also gets,
   at each step, the token at the same position of the last context frame
   (``previous_frame_ids``); its frame positions follow from the absolute
   positions, which start at ``<bos>`` = 0 in every prefill.
   For Mistral/Llama-style models the steps run through
   :class:`~mdllm_kit.lm.fastdecode.StaticDecoder` (preallocated KV cache, no
   per-call HF bookkeeping; the same modules and numbers as the HF forward),
   otherwise through the HF forward with its ``DynamicCache``. The Python
   loop is per token position, never per walker. Token ``j`` of walker
   ``k`` is drawn with the uniform number ``u[k, j]`` of the frame's random
   stream, so a walker's draws do not depend on the other walkers; on a CPU
   the walkers are therefore split over processes
   (:mod:`mdllm_kit.lm.walker_pool`, ``processes``). Frames are reproduced
   exactly for the same precision and number of processes (in bf16 a
   batch of another size rounds differently, which can change a draw).

Re-prefilling the context for each frame (instead of sliding the KV cache)
keeps the model input identical to training -- ``<bos>`` at position 0
followed by exactly the last ``C`` frames -- at the cost of one parallel
prefill per ``L`` sequential decode steps. It also makes every frame a pure
function of the previous ``C`` frames and the frame's random stream
(derived from ``(seed, frame index)``), so an interrupted run continued from
its saved tokens produces the same tokens as an uninterrupted run.

The output folder and its record are those of :mod:`mdllm_kit.ensemble`
(:class:`~mdllm_kit.ensemble.RunWriter` writes them as frames are generated,
every ``flush_every`` frames; :class:`~mdllm_kit.ensemble.GeneratedEnsemble`
reads them back).
"""
from __future__ import annotations

import copy
import inspect
import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np
import torch

from ..contracts import is_frame_model
from ..ensemble import GeneratedEnsemble, RunWriter
from ..threads import torch_threads
from ..errors import SamplingError
from .bundle import ModelBundle
from .config import SamplingSettings
from .fastdecode import StaticDecoder
from .precision import resolve_precision
from .model import parameters_key
from .walker_pool import MIN_WALKERS_PER_PROCESS, WalkerPool, fork_available, shard_bounds, usable_cpus

__all__ = ["Sampler", "capped_temperature", "frame_uniforms", "sample_from_logits", "seed_context"]

logger = logging.getLogger(__name__)


def _bf16_copy(model: Any) -> Any:
    """A bf16 copy of an fp32/fp16 model in eval mode; the model itself when it is bf16 already or quantised."""
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes == {torch.bfloat16} or not all(d.is_floating_point for d in dtypes) or \
            getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return model
    # hook handles kept as attributes (e.g. transformers' enable_input_require_grads, set for gradient
    # checkpointing) cannot be deep-copied (torch: "cannot create weak reference to 'NoneType'"); the inference
    # copy needs none of them, so they are copied as None
    memo: dict[int, Any] = {id(v): None for m in model.modules() for v in vars(m).values()
                            if isinstance(v, torch.utils.hooks.RemovableHandle)}
    return copy.deepcopy(model, memo).to(torch.bfloat16).eval()


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


#: What a shard of walker-parallel work can be: the sampler method that does it, on one thread.
_SHARD_TASKS = {"generate": "_generate_one_thread", "decode": "_decode_one_thread"}


def _shard_target(sampler: "Sampler") -> Callable[..., Any]:
    """``target(task, *args)``: the sampler's method for ``task`` (:data:`_SHARD_TASKS`), reached through a weak
    reference: the worker pool must not keep its sampler alive, so the workers stop as soon as the sampler is
    dropped (e.g. at the end of ``mk.explore``)."""
    ref = weakref.ref(sampler)

    def target(task: str, *args: Any) -> Any:
        return getattr(ref(), _SHARD_TASKS[task])(*args)

    return target


def frame_uniforms(seed: int, frame: int, n_walkers: int, tokens_per_frame: int) -> torch.Tensor:
    """The random numbers of frame ``frame`` of a run seeded with ``seed``, shape (n_walkers, tokens_per_frame).

    Token ``j`` of walker ``k`` is drawn at ``u[k, j]`` (uniform in ``[0, 1)``, float64, CPU: the same on every
    device); a walker's row does not depend on how many walkers are drawn after it.
    """
    state = np.random.SeedSequence([int(seed), int(frame)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.rand((int(n_walkers), int(tokens_per_frame)), dtype=torch.float64, generator=gen)


#: Models below this many parameters count as small on a CPU: their sampling steps run on one thread per process
#: (thread synchronisation costs more than their tiny products gain) and walkers are split over processes instead.
SMALL_MODEL_PARAMETERS = 50_000_000

#: Bisection steps of the entropy cap's temperature search (log-temperature resolution ~ range / 2**steps).
_ENTROPY_BISECTION_STEPS = 12
#: Lowest temperature the entropy cap may choose (relative to ``temperature``).
_ENTROPY_MIN_TEMPERATURE = 1e-3


def _entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax over the last axis of logits ``x`` (-inf entries have zero probability)."""
    logp = torch.log_softmax(x, dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def capped_temperature(logits: torch.Tensor, temperature: float, entropy_cap: float) -> torch.Tensor:
    """Per-row temperature ``<= temperature`` whose distribution has entropy ``<= entropy_cap``.

    Rows whose distribution at ``temperature`` is within the cap keep
    ``temperature``; the others get the largest temperature that brings their
    entropy down to the cap (entropy grows monotonically with temperature),
    found by bisection in log-temperature.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, V)
        Masked logits (-inf for forbidden tokens).
    temperature : float
        Upper bound (> 0).
    entropy_cap : float
        Nats per token (> 0).

    Returns
    -------
    torch.Tensor, shape (B, 1)
    """
    t = torch.full((logits.shape[0], 1), float(temperature), device=logits.device)
    over = _entropy(logits / temperature) > entropy_cap
    if not bool(over.any()):
        return t
    x = logits[over]
    lo = torch.full((x.shape[0], 1), float(np.log(temperature * _ENTROPY_MIN_TEMPERATURE)), device=x.device)
    hi = torch.full_like(lo, float(np.log(temperature)))
    for _ in range(_ENTROPY_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = (_entropy(x / mid.exp()) > entropy_cap)[:, None]
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    t[over] = lo.exp()
    return t


def sample_from_logits(logits: torch.Tensor, allowed: torch.Tensor, temperature: float, top_k: int, top_p: float,
                       generator: torch.Generator | None, entropy_cap: float | None = None,
                       uniform: torch.Tensor | None = None) -> torch.Tensor:
    """Sample one token per row under a mask, with temperature, top-k, top-p and an optional entropy cap.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, V)
        Logits of the structure tokens.
    allowed : torch.Tensor of bool, shape (V,) or (B, V)
        Tokens that may be drawn (at least one per row).
    temperature : float
        0 means arg-max.
    top_k, top_p : int, float
        Truncation (``top_k=0`` / ``top_p=1`` disable it); applied among the allowed tokens.
    generator : torch.Generator, optional
    entropy_cap : float, optional
        Nats per token: rows whose distribution (among the allowed tokens, at
        ``temperature``) is more uncertain than this are drawn at the lower
        temperature that brings them to it (:func:`capped_temperature`).
    uniform : torch.Tensor, shape (B,), optional
        One number in ``[0, 1)`` per row: the draw is the inverse of the
        row's cumulative distribution at it (``generator`` is then unused),
        so a row's token depends on its own number only, not on the other
        rows of the batch (what lets the sampler split walkers over
        processes). ``None``: ``torch.multinomial`` with ``generator``.

    Returns
    -------
    torch.Tensor of int64, shape (B,)
    """
    x = logits.float().masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return x.argmax(-1)
    if entropy_cap is not None:  # on the allowed tokens alone when every row has the same (3x fewer; same result)
        x = x / capped_temperature(x if allowed.dim() == 2 else x[:, allowed], temperature, entropy_cap)
    else:
        x = x / temperature
    index = None
    if top_k and top_k < x.shape[-1]:
        x, index = torch.topk(x, top_k, dim=-1)  # sorted, so top-p below needs no full sort
    elif top_p < 1.0:
        x, index = torch.sort(x, dim=-1, descending=True)
    if top_p < 1.0:
        probs = torch.softmax(x, dim=-1)
        drop = (probs.cumsum(-1) - probs) > top_p  # the most likely token is always kept
        x = x.masked_fill(drop, float("-inf"))
    probs = torch.softmax(x, dim=-1)
    if uniform is None:
        choice = torch.multinomial(probs, 1, generator=generator)
    else:  # first token whose cumulative probability exceeds u (tokens of zero probability are never hit)
        cdf = probs.cumsum(-1)
        total = cdf[:, -1:]
        if not bool(torch.isfinite(total).all()):  # (torch.multinomial refuses these too)
            raise SamplingError("the model gave NaN or infinite logits; its weights are broken (retrain, or load "
                                "another checkpoint)")
        # strictly below the total, so a rounded-up u * total never lands past the last token of nonzero probability
        at = torch.minimum(uniform.to(cdf.dtype)[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
        choice = torch.searchsorted(cdf, at.contiguous(), right=True).clamp_(max=x.shape[-1] - 1)
    return (choice if index is None else index.gather(-1, choice)).squeeze(-1)


def seed_context(seed_frames: Any, tokenizer: Any, n_walkers: int, context: int, *, default: Any = None,
                 check: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    """Starting context of every walker from structures or tokens, shape (n_walkers, <= context, L).

    Parameters
    ----------
    seed_frames : mdtraj.Trajectory or numpy.ndarray or None
        Structures (encoded with ``tokenizer``) or tokens, shape ``(n, L)``
        shared by all walkers or ``(n_walkers, n, L)``; the last ``context``
        frames are used. ``None``: ``default``.
    tokenizer : FrameTokenizer
    n_walkers, context : int
    default : numpy.ndarray, optional
        Tokens used when ``seed_frames`` is ``None`` (a bundle's last training window).
    check : callable, optional
        Validates the tokens, shape ``(n, L)`` (raises on ids outside a position's range).
    """
    if seed_frames is None:
        if default is None:
            raise SamplingError("the bundle holds no seed frames; pass seed_frames (structures or tokens)")
        seed = default
    elif isinstance(seed_frames, md.Trajectory):
        seed = tokenizer.encode(seed_frames)
    else:
        seed = np.asarray(seed_frames)
    seed = np.asarray(seed, dtype=np.int64)
    if seed.ndim == 2:
        seed = np.broadcast_to(seed, (n_walkers, *seed.shape))
    if seed.ndim != 3 or seed.shape[0] != n_walkers or seed.shape[1] < 1:
        raise SamplingError(f"seed tokens must have shape (n_frames, L) or (n_walkers, n_frames, L); got {seed.shape}")
    if check is not None:
        check(seed.reshape(-1, seed.shape[-1]))
    return np.ascontiguousarray(seed[:, -context:])


class Sampler:
    """Generate trajectories from a :class:`~mdllm_kit.lm.bundle.ModelBundle`.

    Parameters
    ----------
    bundle : ModelBundle
        Trained model, tokenizer and codec (``mk.load_bundle(dir)``).
    decode_threads : int, optional
        CPU threads for the single-token decode steps. Default: 1 for models
        under 50 M parameters (:data:`SMALL_MODEL_PARAMETERS`) on CPU -- their per-step matrices are so small
        that thread synchronisation costs more than it saves (measured 10x
        slower with 2 threads on a loaded 2-core machine) -- else torch's setting.
        The prefill always uses torch's setting.
    fast : bool
        Use :class:`~mdllm_kit.lm.fastdecode.StaticDecoder` (preallocated
        KV cache, no per-call HF bookkeeping) when it supports the model;
        ``False`` always uses the HF forward with a ``DynamicCache``.
    precision : {"auto", "bf16", "fp32"}
        Arithmetic of the model's forward passes. ``"bf16"``: the lean decoder
        runs the prefills in a bf16 copy of an fp32 model, keeps a bf16 KV
        cache and (on GPU) runs the single-token steps in bf16 too; the HF
        forward runs under ``torch.autocast``. The logits are computed in fp32
        by the original output layer, so temperature, top-k, top-p and the
        log-likelihoods work on fp32 numbers. ``"auto"``: bf16 where the
        device has native bf16 arithmetic (see
        :func:`~mdllm_kit.lm.precision.resolve_precision`), fp32 otherwise
        (said in the log). A model that is already bf16 is used as it is.
    processes : int, optional
        Processes that generate the walkers of a frame in parallel, this one
        included (:class:`~mdllm_kit.lm.walker_pool.WalkerPool`: contiguous
        shards of walkers, one CPU thread per process, workers forked from
        this process on first use). Default: on a CPU with the ``fork``
        start method (Linux) and a model under 50 M parameters, one process
        per usable core, used when every process gets at least
        :data:`~mdllm_kit.lm.walker_pool.MIN_WALKERS_PER_PROCESS` walkers;
        1 elsewhere (GPUs run the whole batch at once). An explicit number
        splits any batch into up to that many shards. The workers stop with
        the sampler (when it is no longer referenced, and at exit), or
        earlier with :meth:`close` or a ``with`` block.
    """

    def __init__(self, bundle: ModelBundle, decode_threads: int | None = None, fast: bool = True,
                 precision: str = "auto", processes: int | None = None) -> None:
        self.bundle = bundle
        self.codec = bundle.codec
        self.model = bundle.model.eval()
        self.device = bundle.device
        self._mask = torch.from_numpy(self.codec.position_mask()).to(self.device)
        # transformers >= 5.x names the KV cache argument ``cache`` (``past_key_values`` before)
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        small = sum(p.numel() for p in self.model.parameters()) < SMALL_MODEL_PARAMETERS
        if decode_threads is None and self.device.type == "cpu":
            decode_threads = 1 if small else None
        self.decode_threads = decode_threads
        self._auto_processes = processes is None
        if processes is None:
            processes = usable_cpus() if self.device.type == "cpu" and small and fork_available() else 1
        elif int(processes) < 1:
            raise SamplingError(f"processes must be >= 1, got {processes}")
        elif int(processes) > 1 and self.device.type != "cpu":
            raise SamplingError(f"processes={processes} splits walkers over CPU processes; a {self.device.type} "
                                "model runs all walkers at once: use processes=1")
        elif int(processes) > 1 and not fork_available():
            raise SamplingError(f"processes={processes} needs the 'fork' start method of Linux; use processes=1")
        self.processes = int(processes)
        self._pool: WalkerPool | None = None
        self.fast = fast
        self._decoder: Any = None
        self._previous_frame_input = is_frame_model(self.model) and bool(self.model.uses_previous_frame)
        self.precision = resolve_precision(precision, self.device, "sampling")
        self._compute_model: Any = None  # bf16 copy of the model for the lean decoder (made when needed)
        self._compute_key: tuple | None = None  # parameters_key(self.model) when the copy was made

    # ------------------------------------------------------------------ helpers
    def seed_tokens(self, seed_frames: Any, n_walkers: int, context: int) -> np.ndarray:
        """Starting context of every walker, shape (n_walkers, <= context, L) (:func:`seed_context`).

        ``seed_frames`` as in :meth:`sample` (``None``: the bundle's last
        training window).
        """
        return seed_context(seed_frames, self.bundle.tokenizer, n_walkers, context, default=self.bundle.seed_tokens,
                            check=self.codec.check_tokens)

    def _context_ids(self, history: np.ndarray) -> torch.Tensor:
        """LM ids ``<bos> frames...`` of shape (K, 1 + c (L + 1)) from tokens (K, c, L)."""
        c = self.codec
        k, n, _ = history.shape
        body = np.empty((k, n, c.frame_length), dtype=np.int64)
        body[:, :, :-1] = history + c.structure_offset
        body[:, :, -1] = c.frame_id
        ids = np.concatenate([np.full((k, 1), c.bos_id, dtype=np.int64), body.reshape(k, -1)], axis=1)
        return torch.from_numpy(ids).to(self.device)

    def generate_frame(self, history: np.ndarray, settings: SamplingSettings, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Generate one frame for every walker.

        Parameters
        ----------
        history : numpy.ndarray of int, shape (n_walkers, c, L)
            Context frames (oldest first); all of them are used.
        settings : SamplingSettings
        frame_index : int
            Index of the frame in the run (selects its random stream).

        Returns
        -------
        tokens : numpy.ndarray of int64, shape (n_walkers, L)
        log_likelihood : numpy.ndarray of float64, shape (n_walkers,)
        """
        k = history.shape[0]
        # one uniform number per walker and token: a walker's draws do not depend on the batch it is generated in
        uniforms = frame_uniforms(settings.seed, frame_index, k, self.codec.tokens_per_frame)
        shards = shard_bounds(k, self.processes_for(k))
        if len(shards) == 1:
            return self._generate(history, settings, uniforms)
        parts = self._pool_for(len(shards)).map([("generate", history[a:b], settings, uniforms[a:b])
                                                  for a, b in shards])
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def decode_frames(self, tokens: np.ndarray) -> md.Trajectory:
        """Structures of frames' tokens with the bundle's tokenizer, split over the sampling processes.

        Parameters
        ----------
        tokens : numpy.ndarray of int, shape (n_frames, L)

        Returns
        -------
        mdtraj.Trajectory
            ``n_frames`` frames in order (nm): what ``bundle.tokenizer.decode(tokens)`` gives (the decoder
            handles each frame on its own), with the frames shared out like walkers (:meth:`processes_for`).
        """
        tokens = np.asarray(tokens)
        shards = shard_bounds(len(tokens), self.processes_for(len(tokens)))
        if len(shards) == 1:
            return self.bundle.tokenizer.decode(tokens)
        parts = self._pool_for(len(shards)).map([("decode", tokens[a:b]) for a, b in shards])
        return md.Trajectory(np.concatenate([p.xyz for p in parts]), parts[0].topology)

    def _pool_for(self, n_shards: int) -> WalkerPool:
        """The worker pool, started (again) with room for ``n_shards`` shards."""
        if self._pool is None or self._pool.processes < n_shards:
            self.close()
            self._pool = WalkerPool(_shard_target(self), self.model, n_shards)
        return self._pool

    def processes_for(self, n_walkers: int) -> int:
        """Processes that generate a frame of ``n_walkers`` walkers (see ``processes`` in the class docs)."""
        if self.processes <= 1:
            return 1
        return max(1, min(self.processes, n_walkers // MIN_WALKERS_PER_PROCESS if self._auto_processes
                          else n_walkers))

    def close(self) -> None:
        """Stop the worker processes of walker-parallel sampling, if any (they start again when needed)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _generate_one_thread(self, history: np.ndarray, settings: SamplingSettings,
                             uniforms: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_generate` on one torch thread (a shard of walker-parallel sampling: one core per process)."""
        with torch_threads(1):  # also for the decode steps, whatever decode_threads says (no OpenMP after fork)
            return self._generate(history, settings, uniforms, decode_threads=1)

    def _decode_one_thread(self, tokens: np.ndarray) -> md.Trajectory:
        """Decoded frames of ``tokens`` (n, L) on one torch thread (a shard of :meth:`decode_frames`)."""
        with torch_threads(1):
            return self.bundle.tokenizer.decode(tokens)

    @torch.inference_mode()
    def _generate(self, history: np.ndarray, settings: SamplingSettings, uniforms: torch.Tensor,
                  decode_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and log-likelihoods of one frame of the walkers of ``history``, drawn with ``uniforms`` (K, L)."""
        c = self.codec
        ids = self._context_ids(history)
        uniforms = uniforms.to(self.device)
        k = ids.shape[0]
        max_len = ids.shape[1] + c.tokens_per_frame
        # a frame-aware model also sees, at each step, the token one frame before the predicted one: position j
        # of the new frame reads position j of the last context frame (see mdllm_kit.lm.frame_model)
        last_frame = ids[:, -c.frame_length:-1]
        if self._previous_frame_input:
            prev = lambda j: {"previous_frame_ids": last_frame[:, j: j + 1]}  # noqa: E731
        else:
            prev = lambda j: {}  # noqa: E731
        if self.fast and StaticDecoder.supports(self.model, max_len):
            if self._compute_model is not None and self._compute_key != parameters_key(self.model):
                self._compute_model, self._decoder = None, None  # the model changed: a new bf16 copy
            if self._decoder is None or self._decoder.batch != k or self._decoder.max_len < max_len:
                self._decoder = self._static_decoder(k, max_len)
            decoder = self._decoder
            logits = decoder.forward(ids, reset=True)
            step = lambda tok, j: decoder.forward(tok[:, None], **prev(j))  # noqa: E731
        else:
            with self._autocast():
                out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            state = {"cache": _cache_of(out)}
            logits = out.logits[:, -1].float()

            def step(tok: torch.Tensor, j: int) -> torch.Tensor:
                with self._autocast():
                    out = self.model(input_ids=tok[:, None], use_cache=True, **{self._cache_arg: state["cache"]},
                                     **prev(j))
                state["cache"] = _cache_of(out)
                return out.logits[:, -1].float()

        tokens = torch.empty((k, c.tokens_per_frame), dtype=torch.long, device=self.device)
        loglik = torch.zeros(k, dtype=torch.float64, device=self.device)
        with torch_threads(decode_threads or self.decode_threads):
            self._decode(logits, step, tokens, loglik, settings, uniforms)
        return tokens.cpu().numpy(), loglik.cpu().numpy()

    def _static_decoder(self, batch: int, max_len: int) -> StaticDecoder:
        """The lean decoder in this sampler's precision.

        fp32: the model as it is. bf16: the prefills run a bf16 copy of the
        model (thousands of rows per matrix product: bf16 matrix units pay),
        the KV cache is bf16 (half the bytes read per step), and the logits
        come from the fp32 output layer. The single-token steps run the bf16
        copy on a GPU and the fp32 model on a CPU, where bf16 products of
        16-64 rows are no faster than fp32 (``BENCHMARKS.md``).
        """
        if self.precision != "bf16":
            return StaticDecoder(self.model, batch, max_len)
        if self._compute_model is None:
            self._compute_model, self._compute_key = _bf16_copy(self.model), parameters_key(self.model)
        head = self.model.lm_head
        if self.device.type == "cpu":
            return StaticDecoder(self.model, batch, max_len, head=head, cache_dtype=torch.bfloat16,
                                 prefill_model=self._compute_model)
        return StaticDecoder(self._compute_model, batch, max_len, head=head)

    def _autocast(self) -> Any:
        """bf16 autocast for the HF forward when sampling in bf16 (a no-op context otherwise)."""
        enabled = self.precision == "bf16" and next(self.model.parameters()).dtype != torch.bfloat16
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _decode(self, logits: torch.Tensor, step: Any, tokens: torch.Tensor, loglik: torch.Tensor,
                settings: SamplingSettings, uniforms: torch.Tensor) -> None:
        """The ``L`` sequential steps of one frame (fills ``tokens`` and ``loglik`` in place; token ``j`` of
        walker ``k`` is drawn with ``uniforms[k, j]``)."""
        c = self.codec
        lo, hi = c.structure_offset, c.structure_offset + c.n_structure_tokens
        for j in range(c.tokens_per_frame):
            tok = sample_from_logits(logits[:, lo:hi], self._mask[j], settings.temperature, settings.top_k,
                                     settings.top_p, None, settings.entropy_cap, uniform=uniforms[:, j])
            tokens[:, j] = tok
            loglik += torch.log_softmax(logits.float(), dim=-1).gather(1, (tok + lo)[:, None])[:, 0].double()
            if j + 1 < c.tokens_per_frame:
                logits = step(tok + lo, j + 1)  # the input token j predicts token j + 1

    # ------------------------------------------------------------------ main entry
    def sample(self, settings: SamplingSettings | None = None, *, seed_frames: Any = None,
               out: str | os.PathLike | None = None, resume: bool = False, progress: bool = False,
               callback: Callable[[int, np.ndarray], bool | None] | None = None,
               **overrides: Any) -> GeneratedEnsemble:
        """Roll out ``n_walkers`` trajectories of ``n_frames`` frames.

        Parameters
        ----------
        settings : SamplingSettings, optional
            Sampling settings; keyword ``overrides`` replace single fields,
            e.g. ``sample(n_frames=200, n_walkers=16, seed=1)``.
        seed_frames : mdtraj.Trajectory or numpy.ndarray, optional
            Starting structures (encoded with the bundle's tokenizer) or
            their tokens, shape ``(n, L)`` shared by all walkers or
            ``(n_walkers, n, L)``; the last ``context_frames`` are used.
            Default: the last window of the training data.
        out : path-like, optional
            Folder to stream the results into (see module docs).
        resume : bool
            Continue the run saved in ``out`` (same settings; ``n_frames``
            may be larger than before). Without it, an ``out`` that already
            holds a run is refused.
        progress : bool
            Show a progress bar over frames.
        callback : callable, optional
            Called as ``callback(i, tokens)`` after frame ``i`` (0-based, counted
            over the whole run) of every walker is generated, with its tokens
            ``tokens`` of shape ``(n_walkers, L)`` (read-only; decode them with
            ``bundle.tokenizer.decode`` for structures). Returning ``False`` stops
            the run cooperatively after that frame: the frames so far are
            flushed to ``out`` and returned (a stopped run in ``out`` can be
            continued with ``resume=True``). Any other return value continues.
            Notebook widgets use it to show frames as they arrive.

        Returns
        -------
        GeneratedEnsemble
            ``n_frames`` frames per walker, or fewer if ``callback`` stopped the run.
        """
        s = (settings or SamplingSettings()).replace(**overrides) if overrides else (settings or SamplingSettings())
        context = s.context_frames or self.bundle.window_frames
        if context > self.bundle.window_frames:
            logger.warning("context_frames=%d is longer than the training window (%d frames): the model never saw "
                           "contexts this long", context, self.bundle.window_frames)
        k, L = s.n_walkers, self.codec.tokens_per_frame
        seed = self.seed_tokens(seed_frames, k, context)
        tokens = np.empty((k, 0, L), dtype=np.int64)
        loglik = np.empty((k, 0), dtype=np.float64)
        params = {"settings": s.to_dict(), "context_frames": context,
                  "bundle": str(Path(self.bundle.path).resolve()) if self.bundle.path else None,
                  "bundle_id": self.bundle.bundle_id,
                  "tokenizer_fingerprint": str(self.bundle.tokenizer.fingerprint), "precision": self.precision,
                  "processes": self.processes_for(k),
                  "frame_order": "frame-major: frame i of walker k is trajectory frame i * n_walkers + k"}
        writer = RunWriter(Path(out), self.bundle.tokenizer, decode=self.decode_frames) if out is not None else None
        if writer is not None:
            if writer.exists():
                if not resume:
                    raise SamplingError(f"{out} already holds a sampling run; pass resume=True (--resume) to "
                                        "continue it, or choose a new folder")
                seed, tokens, loglik = writer.resume(params, seed)
            else:
                writer.start(params, seed)
        elif resume:
            raise SamplingError("resume=True needs the out folder of the run to continue")
        history = np.concatenate([seed, tokens], axis=1)[:, -context:]
        done = tokens.shape[1]
        new_tok, new_ll = [tokens], [loglik]
        pending_t, pending_l = [], []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=s.n_frames, initial=done, unit="frame", desc=f"sampling {k} walker(s)")
        for i in range(done, s.n_frames):
            frame, ll = self.generate_frame(history, s, i)
            history = np.concatenate([history, frame[:, None]], axis=1)[:, -context:]
            pending_t.append(frame)
            pending_l.append(ll)
            if bar is not None:
                bar.update(1)
            stop = False
            if callback is not None:
                view = frame.view()
                view.flags.writeable = False
                stop = callback(i, view) is False
            if len(pending_t) >= s.flush_every or i == s.n_frames - 1 or stop:
                new_tok.append(np.stack(pending_t, axis=1))
                new_ll.append(np.stack(pending_l, axis=1))
                if writer is not None:
                    writer.append(np.concatenate(new_tok, axis=1), np.concatenate(new_ll, axis=1), new_tok[-1])
                pending_t, pending_l = [], []
            if stop:
                logger.info("sampling stopped by the callback after frame %d of %d", i + 1, s.n_frames)
                break
        if bar is not None:
            bar.close()
        tokens = np.concatenate(new_tok, axis=1)
        loglik = np.concatenate(new_ll, axis=1)
        if writer is not None:
            ensemble = GeneratedEnsemble.load(writer.directory, tokenizer=self.bundle.tokenizer)
            if ensemble.n_frames != tokens.shape[1]:
                raise SamplingError(f"{writer.directory} holds {ensemble.n_frames} frames per walker, expected {tokens.shape[1]}")
            return ensemble
        return GeneratedEnsemble(tokens, loglik, None, params, tokenizer=self.bundle.tokenizer)  # decoded when read

