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
   loop is per token position, never per walker.

Re-prefilling the context for each frame (instead of sliding the KV cache)
keeps the model input identical to training -- ``<bos>`` at position 0
followed by exactly the last ``C`` frames -- at the cost of one parallel
prefill per ``L`` sequential decode steps. It also makes every frame a pure
function of the previous ``C`` frames and the frame's random stream
(derived from ``(seed, frame index)``), so an interrupted run continued from
its saved tokens produces the same tokens as an uninterrupted run.

Output folder (written as frames are generated, every ``flush_every`` frames)::

    params.json      sampling settings, bundle, seed frames (written first)
    tokens.npz       tokens (n_walkers, n_done, L), log_likelihood (n_walkers, n_done),
                     seed_tokens (n_walkers, n_seed, L) -- the record a continued run starts from
                     (replaced atomically at every flush, before the frames are appended to the xtc)
    trajectory.xtc   decoded frames, frame-major: frame i of walker k is frame i * n_walkers + k
    topology.pdb     topology of the decoded frames

``trajectory.xtc`` and ``topology.pdb`` derive from ``tokens.npz``: a run
killed between the two writes leaves them short or cut, and
:meth:`GeneratedEnsemble.load` rebuilds what they lack from the tokens
(``--resume`` rewrites them).
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_json, remove_stale_temporaries
from ..contracts import is_frame_model
from ..threads import torch_threads
from ..errors import SamplingError
from .bundle import ModelBundle
from .config import SamplingSettings
from .fastdecode import StaticDecoder
from .precision import resolve_precision

__all__ = ["GeneratedEnsemble", "RunWriter", "Sampler"]

logger = logging.getLogger(__name__)


@dataclass
class GeneratedEnsemble:
    """Generated trajectories.

    Attributes
    ----------
    tokens : numpy.ndarray of int64, shape (n_walkers, n_frames, L)
        Structure tokens of every generated frame.
    log_likelihood : numpy.ndarray of float64, shape (n_walkers, n_frames)
        Log-likelihood (nats) of each frame under the model given its
        context, at temperature 1 over the whole vocabulary (before masking
        and truncation): low values flag frames the model finds unusual.
    trajectory : mdtraj.Trajectory
        Decoded frames, frame-major: frame ``i`` of walker ``k`` is
        ``trajectory[i * n_walkers + k]`` (see :meth:`walker`).
    params : dict
        Sampling settings and provenance (``params.json``).
    path : pathlib.Path, optional
        Output folder.
    """

    tokens: np.ndarray
    log_likelihood: np.ndarray
    trajectory: md.Trajectory
    params: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_walkers(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_frames(self) -> int:
        """Frames per walker."""
        return int(self.tokens.shape[1])

    def walker(self, k: int) -> md.Trajectory:
        """The decoded trajectory of walker ``k`` (``n_frames`` frames)."""
        if not 0 <= k < self.n_walkers:
            raise SamplingError(f"walker {k} does not exist; there are {self.n_walkers}")
        return self.trajectory[k:: self.n_walkers]

    @classmethod
    def load(cls, directory: str | os.PathLike, tokenizer: Any = None) -> GeneratedEnsemble:
        """Read an output folder written by :meth:`Sampler.sample` (finished or interrupted).

        ``tokens.npz`` is the record of the run. When ``trajectory.xtc`` or
        ``topology.pdb`` is missing, empty, cut short or unreadable (a run
        stopped between writing its tokens and appending the decoded frames),
        the trajectory is rebuilt in memory by decoding the tokens; the folder
        is not changed (``mdllm sample --resume`` rewrites the file).

        Parameters
        ----------
        directory : path-like
            The sampling output folder.
        tokenizer : StructureTokenizer, optional
            Tokenizer that decodes the tokens, if the trajectory must be
            rebuilt. Default: the one in the model bundle recorded in
            ``params.json``. Its fingerprint must be the run's.

        Raises
        ------
        SamplingError
            The folder is not a sampling folder, its tokens are missing or
            unreadable, or the trajectory must be rebuilt and no tokenizer of
            the run is at hand.
        """
        directory = Path(directory)
        params = _read_params(directory)
        tokens, loglik, _ = _read_tokens(directory)
        k, n = tokens.shape[:2]
        traj = _read_trajectory(directory, k * n)
        if traj is None:
            tokenizer = _run_tokenizer(directory, params, tokenizer, k * n)
            traj = _decode_frame_major(tokenizer, tokens)
        return cls(tokens, loglik, traj, params, directory)


def _read_params(directory: Path) -> dict[str, Any]:
    path = directory / "params.json"
    if not path.is_file():
        raise SamplingError(f"{directory} is not a sampling output folder (no params.json); pass the --out folder "
                            "of mdllm sample")
    try:
        params = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SamplingError(f"{path} is damaged ({type(error).__name__}); this run cannot be used or continued: "
                            "sample again into a new folder") from error
    if not isinstance(params, dict):
        raise SamplingError(f"{path} is not the params.json of mdllm sample; pass the --out folder of mdllm sample")
    return params


def _read_tokens(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``tokens`` (k, n, L), ``log_likelihood`` (k, n) and ``seed_tokens`` of a sampling folder."""
    path = directory / "tokens.npz"
    if not path.is_file():
        raise SamplingError(f"sampling folder {directory} has no tokens.npz: no frame was saved yet; continue the "
                            f"run with mdllm sample BUNDLE --out {directory} --resume, or sample into a new folder")
    try:
        with np.load(path) as data:
            tokens, loglik = data["tokens"].astype(np.int64), np.asarray(data["log_likelihood"], dtype=np.float64)
            seed = data["seed_tokens"].astype(np.int64) if "seed_tokens" in data.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise SamplingError(f"{path} cannot be read ({type(error).__name__}): the folder's record of the run is "
                            "damaged; sample again into a new folder") from error
    if tokens.ndim != 3 or loglik.shape != tokens.shape[:2]:
        raise SamplingError(f"{path} holds tokens of shape {tokens.shape} and log-likelihoods of shape "
                            f"{loglik.shape}, not (walkers, frames, L) and (walkers, frames); sample again into "
                            "a new folder")
    return tokens, loglik, seed


def _read_trajectory(directory: Path, n_expected: int) -> md.Trajectory | None:
    """The first ``n_expected`` frames of ``trajectory.xtc``, or ``None`` if it has fewer or cannot be read."""
    xtc, pdb = directory / "trajectory.xtc", directory / "topology.pdb"
    if not xtc.is_file() or not pdb.is_file():
        return None
    if n_expected == 0:
        return None  # an empty xtc is no valid xtc for mdtraj; decode the (zero) frames instead
    try:
        traj = md.load(str(xtc), top=str(pdb))
    except Exception as error:  # mdtraj raises OSError, ValueError, ... on cut or damaged files
        logger.warning("%s cannot be read (%s: %s); rebuilding the frames from tokens.npz", xtc,
                       type(error).__name__, error)
        return None
    if traj.n_frames < n_expected:
        logger.warning("%s holds %d of the %d frames in tokens.npz (the run was interrupted); rebuilding them "
                       "from the tokens", xtc, traj.n_frames, n_expected)
        return None
    return traj[:n_expected] if traj.n_frames > n_expected else traj


def _run_tokenizer(directory: Path, params: dict[str, Any], tokenizer: Any, n_frames: int) -> Any:
    """The tokenizer that decodes the run's tokens: ``tokenizer`` or the one in the run's bundle."""
    expected = params.get("tokenizer_fingerprint")
    if tokenizer is None:
        from .bundle import load_bundle_tokenizer

        bundle = params.get("bundle")
        if not bundle or not (Path(bundle) / "bundle.json").is_file():
            raise SamplingError(
                f"trajectory.xtc in {directory} is missing or incomplete and the model bundle that can rebuild its "
                f"{n_frames} frame(s) from tokens.npz ({bundle}) is not found; run mdllm sample BUNDLE --out "
                f"{directory} --resume with this run's bundle, or pass tokenizer= to GeneratedEnsemble.load")
        tokenizer = load_bundle_tokenizer(bundle)
    if expected is not None and str(tokenizer.fingerprint) != str(expected):
        raise SamplingError(
            f"the tokenizer (fingerprint {tokenizer.fingerprint}) is not the one {directory} was sampled with "
            f"({expected}); pass the tokenizer of the run's model bundle")
    logger.info("rebuilding %d frame(s) of %s from tokens.npz", n_frames, directory)
    return tokenizer


def _decode_frame_major(tokenizer: Any, tokens: np.ndarray) -> md.Trajectory:
    """Decoded frames of tokens (k, n, L), frame-major (frame i of walker j at i * k + j), time = frame index."""
    k, n, L = tokens.shape
    traj = tokenizer.decode(tokens.transpose(1, 0, 2).reshape(-1, L))
    traj.time = np.repeat(np.arange(n, dtype=float), k)
    return traj


def _bf16_copy(model: Any) -> Any:
    """A bf16 copy of an fp32/fp16 model in eval mode; the model itself when it is bf16 already or quantised."""
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes == {torch.bfloat16} or not all(d.is_floating_point for d in dtypes) or \
            getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return model
    return copy.deepcopy(model).to(torch.bfloat16).eval()


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _frame_generator(seed: int, frame: int, device: torch.device) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(frame)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


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
                       generator: torch.Generator | None, entropy_cap: float | None = None) -> torch.Tensor:
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

    Returns
    -------
    torch.Tensor of int64, shape (B,)
    """
    x = logits.float().masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return x.argmax(-1)
    x = x / (temperature if entropy_cap is None else capped_temperature(x, temperature, entropy_cap))
    index = None
    if top_k and top_k < x.shape[-1]:
        x, index = torch.topk(x, top_k, dim=-1)  # sorted, so top-p below needs no full sort
    elif top_p < 1.0:
        x, index = torch.sort(x, dim=-1, descending=True)
    if top_p < 1.0:
        probs = torch.softmax(x, dim=-1)
        drop = (probs.cumsum(-1) - probs) > top_p  # the most likely token is always kept
        x = x.masked_fill(drop, float("-inf"))
    choice = torch.multinomial(torch.softmax(x, dim=-1), 1, generator=generator)
    return (choice if index is None else index.gather(-1, choice)).squeeze(-1)


class Sampler:
    """Generate trajectories from a :class:`~mdllm_kit.lm.bundle.ModelBundle`.

    Parameters
    ----------
    bundle : ModelBundle
        Trained model, tokenizer and codec (``mk.load_bundle(dir)``).
    decode_threads : int, optional
        CPU threads for the single-token decode steps. Default: 1 for models
        under 50 M parameters on CPU -- their per-step matrices are so small
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
    """

    def __init__(self, bundle: ModelBundle, decode_threads: int | None = None, fast: bool = True,
                 precision: str = "auto") -> None:
        self.bundle = bundle
        self.codec = bundle.codec
        self.model = bundle.model.eval()
        self.device = bundle.device
        self._mask = torch.from_numpy(self.codec.position_mask()).to(self.device)
        # transformers >= 5.x names the KV cache argument ``cache`` (``past_key_values`` before)
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        if decode_threads is None and self.device.type == "cpu":
            n_params = sum(p.numel() for p in self.model.parameters())
            decode_threads = 1 if n_params < 50_000_000 else None
        self.decode_threads = decode_threads
        self.fast = fast
        self._decoder: Any = None
        self._previous_frame_input = is_frame_model(self.model) and bool(self.model.uses_previous_frame)
        self.precision = resolve_precision(precision, self.device, "sampling")
        self._compute_model: Any = None  # bf16 copy of the model for the lean decoder (made once, if needed)

    # ------------------------------------------------------------------ helpers
    def seed_tokens(self, seed_frames: Any, n_walkers: int, context: int) -> np.ndarray:
        """Starting context of every walker, shape (n_walkers, <= context, L).

        ``seed_frames`` as in :meth:`sample` (``None``: the bundle's last
        training window; structures are encoded; tokens of shape ``(n, L)``
        are shared by all walkers).
        """
        if seed_frames is None:
            if self.bundle.seed_tokens is None:
                raise SamplingError("the bundle holds no seed frames; pass seed_frames (structures or tokens)")
            seed = self.bundle.seed_tokens
        elif isinstance(seed_frames, md.Trajectory):
            seed = self.bundle.tokenizer.encode(seed_frames)
        else:
            seed = np.asarray(seed_frames)
        seed = np.asarray(seed, dtype=np.int64)
        if seed.ndim == 2:
            seed = np.broadcast_to(seed, (n_walkers, *seed.shape))
        if seed.ndim != 3 or seed.shape[0] != n_walkers or seed.shape[1] < 1:
            raise SamplingError(f"seed tokens must have shape (n_frames, L) or (n_walkers, n_frames, L); got {seed.shape}")
        self.codec.check_tokens(seed.reshape(-1, seed.shape[-1]))
        return np.ascontiguousarray(seed[:, -context:])

    def _context_ids(self, history: np.ndarray) -> torch.Tensor:
        """LM ids ``<bos> frames...`` of shape (K, 1 + c (L + 1)) from tokens (K, c, L)."""
        c = self.codec
        k, n, _ = history.shape
        body = np.empty((k, n, c.frame_length), dtype=np.int64)
        body[:, :, :-1] = history + c.structure_offset
        body[:, :, -1] = c.frame_id
        ids = np.concatenate([np.full((k, 1), c.bos_id, dtype=np.int64), body.reshape(k, -1)], axis=1)
        return torch.from_numpy(ids).to(self.device)

    @torch.inference_mode()
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
        c = self.codec
        gen = _frame_generator(settings.seed, frame_index, self.device)
        ids = self._context_ids(history)
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
        with torch_threads(self.decode_threads):
            self._decode(logits, step, tokens, loglik, settings, gen)
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
            self._compute_model = _bf16_copy(self.model)
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
                settings: SamplingSettings, gen: torch.Generator) -> None:
        """The ``L`` sequential steps of one frame (fills ``tokens`` and ``loglik`` in place)."""
        c = self.codec
        lo, hi = c.structure_offset, c.structure_offset + c.n_structure_tokens
        for j in range(c.tokens_per_frame):
            tok = sample_from_logits(logits[:, lo:hi], self._mask[j], settings.temperature, settings.top_k,
                                     settings.top_p, gen, settings.entropy_cap)
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
                  "frame_order": "frame-major: frame i of walker k is trajectory frame i * n_walkers + k"}
        writer = RunWriter(Path(out), self.bundle.tokenizer) if out is not None else None
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
        flat = tokens.transpose(1, 0, 2).reshape(-1, L)
        return GeneratedEnsemble(tokens, loglik, self.bundle.tokenizer.decode(flat), params, None)


class RunWriter:
    """Streams a sampling run into a folder: the one implementation of the folder format (see module docs).

    :meth:`Sampler.sample` and :func:`mdllm_kit.explore` write through it,
    so ``mdllm analyze``, the viewers and :meth:`GeneratedEnsemble.load` read
    both alike.
    """

    def __init__(self, directory: Path, tokenizer: Any) -> None:
        self.directory = directory
        self.tokenizer = tokenizer

    def exists(self) -> bool:
        """Whether the folder holds a sampling run; a folder holding anything else is refused."""
        if self.directory.exists() and not self.directory.is_dir():
            raise SamplingError(f"the output {self.directory} exists and is a file, not a folder; choose a new folder")
        if (self.directory / "params.json").exists():
            return True
        if self.directory.is_dir():
            other = sorted(p.name for p in self.directory.iterdir()
                           if p.name not in _RUN_FILES and not p.name.startswith("."))
            if other:
                raise SamplingError(f"the output folder {self.directory} already exists and holds other files "
                                    f"({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}), not a sampling "
                                    "run; choose a new folder")
        return False

    def start(self, params: dict[str, Any], seed: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self._write_topology(seed)
        k, _, L = seed.shape
        self._write_tokens(np.empty((k, 0, L), np.int64), np.empty((k, 0)))
        with atomic_path(self.directory / "trajectory.xtc") as tmp:
            tmp.write_bytes(b"")
        atomic_write_json(self.directory / "params.json", params)

    def resume(self, params: dict[str, Any], seed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        old = _read_params(self.directory)
        if not isinstance(old.get("settings"), dict):
            raise SamplingError(f"{self.directory / 'params.json'} records no sampling settings; this run cannot be "
                                "continued: sample into a new folder")
        if old.get("tokenizer_fingerprint") != params["tokenizer_fingerprint"]:
            raise SamplingError(f"{self.directory} was sampled with another tokenizer (fingerprint "
                                f"{old.get('tokenizer_fingerprint')}, this bundle's is {params['tokenizer_fingerprint']}):"
                                " it belongs to another model; continue it with its own bundle "
                                f"({old.get('bundle')}) or sample into a new folder")
        if old.get("bundle_id") and params.get("bundle_id") and old["bundle_id"] != params["bundle_id"]:
            raise SamplingError(f"{self.directory} was sampled with another model (bundle {old.get('bundle')}); "
                                "continue it with that bundle, or sample into a new folder")
        a, b = dict(old["settings"]), dict(params["settings"])
        for key in ("n_frames", "flush_every"):
            a.pop(key, None), b.pop(key, None)
        a["context_frames (used)"], b["context_frames (used)"] = old.get("context_frames"), params["context_frames"]
        changed = [f"{key}: {a.get(key)!r} in the run, {b.get(key)!r} now" for key in sorted(set(a) | set(b))
                   if a.get(key) != b.get(key)]
        if changed:
            raise SamplingError(f"--resume with changed settings ({'; '.join(changed)}) for the run in "
                                f"{self.directory}; continue it with the same settings (only n_frames may grow and "
                                "flush_every change), or sample into a new folder")
        tokens, loglik, seed_saved = _read_tokens(self.directory)
        if seed_saved is None or seed_saved.shape[0] != tokens.shape[0]:
            raise SamplingError(f"{self.directory / 'tokens.npz'} has no seed frames for its walkers; it cannot be "
                                "continued: sample again into a new folder")
        if old.get("precision", params.get("precision")) != params.get("precision"):
            logger.warning("the run in %s was sampled in %s, this continuation runs in %s: its frames will not be "
                           "exactly those of an uninterrupted run (pass precision=%r to match)", self.directory,
                           old["precision"], params.get("precision"), old["precision"])
        if tokens.shape[1] > _n_frames(params):
            raise SamplingError(f"{self.directory} already holds {tokens.shape[1]} frames per walker, more than "
                                f"n_frames={_n_frames(params)}; pass n_frames >= {tokens.shape[1]} (--n-frames) to "
                                "continue it, or sample into a new folder")
        self.seed = seed_saved
        self._remove_leftovers()  # every check passed: only now is the folder changed
        if not (self.directory / "topology.pdb").is_file():
            self._write_topology(seed_saved)
        # trajectory.xtc is derived from tokens.npz: rebuild it so it matches exactly (a crash may have cut it)
        with atomic_path(self.directory / "trajectory.xtc") as tmp:
            if tokens.shape[1]:
                self._decode(tokens).save_xtc(str(tmp))
            else:
                tmp.write_bytes(b"")
        params_new = dict(params)
        atomic_write_json(self.directory / "params.json", params_new)
        logger.info("continuing the run in %s from frame %d", self.directory, tokens.shape[1])
        return seed_saved, tokens, loglik

    def _decode(self, tokens: np.ndarray) -> md.Trajectory:
        return _decode_frame_major(self.tokenizer, tokens)

    def _write_topology(self, seed: np.ndarray) -> None:
        topology = self.tokenizer.decode(seed[0, -1:])
        with atomic_path(self.directory / "topology.pdb") as tmp:
            topology.save_pdb(str(tmp))

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of a run that was killed while writing (they are never complete)."""
        removed = remove_stale_temporaries(self.directory)
        chunk = self.directory / ".chunk.xtc"
        if chunk.is_file():
            chunk.unlink()
            removed.append(chunk)
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted write in %s", len(removed), self.directory)

    def _write_tokens(self, tokens: np.ndarray, loglik: np.ndarray) -> None:
        with atomic_path(self.directory / "tokens.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, tokens=tokens.astype(np.int32), log_likelihood=loglik.astype(np.float64),
                         seed_tokens=self.seed.astype(np.int32))

    def append(self, all_tokens: np.ndarray, all_loglik: np.ndarray, new_tokens: np.ndarray,
               decoded: md.Trajectory | None = None) -> None:
        """Record all tokens so far, then append the decoded new frames to the xtc.

        ``decoded``: the new frames already decoded, frame-major (a caller that
        decoded them anyway passes them instead of decoding twice).
        """
        self._write_tokens(all_tokens, all_loglik)
        traj = self._decode(new_tokens) if decoded is None else md.Trajectory(decoded.xyz, decoded.topology)
        if decoded is not None:
            traj.time = np.repeat(np.arange(new_tokens.shape[1], dtype=float), new_tokens.shape[0])
        traj.time = traj.time + (all_tokens.shape[1] - new_tokens.shape[1])
        chunk = self.directory / ".chunk.xtc"
        traj.save_xtc(str(chunk))
        with open(self.directory / "trajectory.xtc", "ab") as handle:
            handle.write(chunk.read_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        chunk.unlink()


#: Files of a sampling output folder (a folder holding only these, without params.json, is a run that never started).
_RUN_FILES = frozenset({"params.json", "tokens.npz", "trajectory.xtc", "topology.pdb", "exploration.json"})


def _n_frames(params: dict[str, Any]) -> int:
    return int(params["settings"]["n_frames"])
