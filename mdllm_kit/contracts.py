"""The contracts between the stages: load -> tokenize -> train -> sample -> analyse -> view.

This is a bottom-layer module: it imports nothing from mdllm-kit but
:mod:`mdllm_kit.errors`, so every stage can import it and none has to
re-derive what another stage promises.

* :class:`FrameTokenizer` -- what the language model needs from a structure
  tokenizer. :class:`~mdllm_kit.tokenizer.StructureTokenizer` implements it;
  so may a learned tokenizer. Saved tokenizers are found again through
  :func:`load_tokenizer`, which dispatches on the format string of the saved
  ``tokenizer_config.json`` (a new tokenizer registers its format with
  :func:`register_tokenizer_format`).
* :func:`check_frame_tokens` and :func:`jitter_frame_tokens` -- the one
  validation of token arrays against the per-position ranges, and the one
  sampler-like noise rule that respects them.
* :class:`FrameModel` / :func:`is_frame_model` -- a frame-aware causal LM
  (frame-position and previous-frame embeddings).
* The frame-major order of an ensemble of walkers: frame ``i`` of walker
  ``k`` is element ``i * n_walkers + k`` (:func:`frame_major_index`,
  :func:`step_and_walker`, :func:`frame_major_labels`, :func:`per_walker`).
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import MdllmError, TokenizerError

__all__ = ["FRAME_EMBEDDING_MODULES", "TOKENIZER_CONFIG_FILE", "FrameModel", "FrameTokenizer", "check_frame_tokens",
           "frame_major_index",
           "frame_major_frames", "jitter_frame_tokens", "frame_major_labels", "is_frame_model", "load_tokenizer", "per_walker", "register_tokenizer_format",
           "registered_tokenizer_formats", "step_and_walker", "tokenizer_format"]


# ---------------------------------------------------------------- tokenizer
@runtime_checkable
class FrameTokenizer(Protocol):
    """What the language model, the sampler and the evaluation need from a tokenizer.

    A tokenizer turns each frame of one protein into a fixed number of
    integer tokens and back. Every position of a frame has its own
    contiguous range of valid ids (its alphabet) and a *kind* (e.g.
    ``"dihedral"``); kinds listed in :attr:`periodic_kinds` are bins of a
    periodic quantity, so the bin distance between two tokens wraps around.

    Attributes
    ----------
    tokens_per_frame : int
        ``L``, tokens of one frame.
    vocab_size : int
        Distinct token ids (all positions together), ids are ``[0, vocab_size)``.
    fingerprint : str
        Short hash of the state; equal fingerprints encode and decode identically.
    periodic_kinds : frozenset of str
        Kinds (values of :meth:`position_kinds`) whose bins wrap around.

    Notes
    -----
    ``isinstance(obj, FrameTokenizer)`` only checks that the members exist.
    A saved tokenizer folder should hold a ``tokenizer_config.json`` whose
    ``"format"`` (or ``"fitted"["format"]``) names a format registered with
    :func:`register_tokenizer_format`, so that :func:`load_tokenizer` and
    the command line can load it.
    """

    @property
    def tokens_per_frame(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def periodic_kinds(self) -> frozenset[str]: ...

    def valid_token_ranges(self) -> np.ndarray:
        """``[lo, hi)`` of every position of a frame, int64 of shape ``(tokens_per_frame, 2)``."""
        ...

    def position_kinds(self) -> list[str]:
        """Kind of token at each position of a frame (length ``tokens_per_frame``)."""
        ...

    def encode(self, traj: Any) -> np.ndarray:
        """Tokens of every frame of an ``mdtraj.Trajectory`` (nm), int64 of shape ``(n_frames, tokens_per_frame)``."""
        ...

    def decode(self, tokens: Any) -> Any:
        """``mdtraj.Trajectory`` (nm) of token frames of shape ``(n_frames, tokens_per_frame)``."""
        ...

    def save_pretrained(self, directory: str | os.PathLike) -> Any:
        """Write the tokenizer to ``directory`` (no pickle)."""
        ...

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "FrameTokenizer":
        """Read a tokenizer written by :meth:`save_pretrained`."""
        ...


#: File of a saved tokenizer folder that names its format.
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

#: The format every tokenizer folder without a readable format string is taken to have.
DEFAULT_TOKENIZER_FORMAT = "mdllm-structure-tokenizer"

#: Saved-tokenizer format -> class (or ``"module:qualname"`` imported on first use).
_TOKENIZER_FORMATS: dict[str, type | str] = {DEFAULT_TOKENIZER_FORMAT: "mdllm_kit.tokenizer.tokenizer:StructureTokenizer"}


def register_tokenizer_format(format: str, cls: type | str) -> None:
    """Make :func:`load_tokenizer` load folders of ``format`` with ``cls.from_pretrained``.

    Parameters
    ----------
    format : str
        The ``"format"`` string the tokenizer writes into its ``tokenizer_config.json``.
    cls : type or str
        A class implementing :class:`FrameTokenizer`, or ``"module:qualname"``
        imported when a folder of this format is first loaded.
    """
    if not isinstance(format, str) or not format:
        raise TokenizerError(f"a tokenizer format must be a non-empty string; got {format!r}")
    _TOKENIZER_FORMATS[format] = cls


def registered_tokenizer_formats() -> tuple[str, ...]:
    """Formats :func:`load_tokenizer` can read."""
    return tuple(sorted(_TOKENIZER_FORMATS))


def tokenizer_format(directory: str | os.PathLike) -> str:
    """Format string of a saved tokenizer folder (:data:`DEFAULT_TOKENIZER_FORMAT` when it names none)."""
    path = Path(directory) / TOKENIZER_CONFIG_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return DEFAULT_TOKENIZER_FORMAT  # the default loader names the missing or damaged file
    if isinstance(meta, dict):
        fitted = meta.get("fitted")
        found = meta.get("format") or (fitted.get("format") if isinstance(fitted, dict) else None)
        if isinstance(found, str) and found:
            return found
    return DEFAULT_TOKENIZER_FORMAT


def load_tokenizer(directory: str | os.PathLike) -> FrameTokenizer:
    """The tokenizer saved in ``directory``, by the class registered for its format.

    Raises
    ------
    TokenizerError
        The folder's format is not registered (or the class's own
        ``from_pretrained`` refuses the folder).
    """
    fmt = tokenizer_format(directory)
    cls = _TOKENIZER_FORMATS.get(fmt)
    if cls is None:
        raise TokenizerError(f"{Path(directory) / TOKENIZER_CONFIG_FILE} has tokenizer format {fmt!r}, which is not "
                             f"registered ({', '.join(registered_tokenizer_formats())}); import the package that "
                             "defines it or call mdllm_kit.contracts.register_tokenizer_format")
    if isinstance(cls, str):
        module, _, qualname = cls.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        cls = _TOKENIZER_FORMATS[fmt] = obj
    return cls.from_pretrained(directory)  # type: ignore[union-attr]


def check_frame_tokens(tokens: Any, valid_ranges: Any, *, kinds: Any = None, one_frame_ok: bool = True,
                       error: type[MdllmError] = MdllmError) -> np.ndarray:
    """Validate structure tokens against the per-position valid ranges of a :class:`FrameTokenizer`.

    Parameters
    ----------
    tokens : array-like of int, shape (n_frames, L)
        Token ids (a numpy array, a torch tensor or nested lists). With
        ``one_frame_ok``, a 1-D array of length ``L`` is taken as one frame.
    valid_ranges : array-like of int, shape (L, 2)
        ``[lo, hi)`` per position (``tokenizer.valid_token_ranges()``).
    kinds : sequence of str, optional
        Kind of each position (``tokenizer.position_kinds()``), named in the error.
    error : type
        :class:`~mdllm_kit.errors.MdllmError` subclass to raise.

    Returns
    -------
    numpy.ndarray of int64, shape (n_frames, L)

    Raises
    ------
    MdllmError
        (of type ``error``) for a wrong shape, non-integer values or an id outside its position's range.
    """
    if hasattr(tokens, "detach"):  # torch.Tensor
        tokens = tokens.detach().cpu().numpy()
    ranges = np.asarray(valid_ranges, dtype=np.int64)
    n_pos = len(ranges)
    arr = np.asarray(tokens)
    if one_frame_ok and arr.ndim == 1 and arr.shape[0] == n_pos:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != n_pos:
        raise error(f"structure tokens must have shape (n_frames, {n_pos}), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.mod(arr, 1) == 0):
            raise error(f"token ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < ranges[None, :, 0]) | (arr >= ranges[None, :, 1])
    if bad.any():
        f, p = np.argwhere(bad)[0]
        kind = f"{kinds[p]} " if kinds is not None else ""
        raise error(f"{int(bad.sum())} token id(s) are out of range, first at frame {f}, position {p}: id {arr[f, p]} "
                    f"is outside the allowed range [{ranges[p, 0]}, {ranges[p, 1]}) of a {kind}position; were these "
                    "tokens made by the same tokenizer?")
    return arr


def jitter_frame_tokens(tokens: Any, valid_ranges: Any, kinds: Any, periodic_kinds: Any, bins: float,
                        rng: np.random.Generator, *, fraction: float = 1.0, moved_kinds: Any = None) -> np.ndarray:
    """Tokens moved as a sampler would move them: a rounded Gaussian step within each position's range.

    The one noise rule of mdllm-kit (``StructureTokenizer.jitter`` and the
    noisy-context training of :mod:`mdllm_kit.lm.data` call it). Each chosen
    position of each frame is moved by ``rint(N(0, bins))`` codes; the move
    wraps around for ``periodic_kinds`` and is clipped at the ends of the
    position's ``[lo, hi)`` range otherwise, so every result is a valid token.

    Parameters
    ----------
    tokens : array-like of int, shape (n_frames, L)
        Valid structure tokens (not checked here: see :func:`check_frame_tokens`).
    valid_ranges : array-like of int, shape (L, 2)
        ``[lo, hi)`` per position (``tokenizer.valid_token_ranges()``).
    kinds : sequence of str, length L
        Kind of each position (``tokenizer.position_kinds()``).
    periodic_kinds : collection of str
        Kinds whose codes wrap around (``tokenizer.periodic_kinds``).
    bins : float
        Standard deviation of the move, in codes (>= 0).
    rng : numpy.random.Generator
        Source of the noise; the draws are made position by position, in order.
    fraction : float
        Probability that a token of a moved kind is moved at all, in ``[0, 1]``
        (1: every one, the step may still round to 0).
    moved_kinds : collection of str, optional
        Only positions of these kinds move (``None``: every position).

    Returns
    -------
    numpy.ndarray of int64, shape (n_frames, L)
    """
    out = np.array(tokens, dtype=np.int64, copy=True)
    ranges = np.asarray(valid_ranges, dtype=np.int64)
    if not bins >= 0:
        raise MdllmError(f"the noise width bins must be >= 0, got {bins}")
    if not 0.0 <= fraction <= 1.0:
        raise MdllmError(f"the noise fraction must be in [0, 1], got {fraction}")
    periodic = frozenset(periodic_kinds)
    for pos, kind in enumerate(kinds):
        if moved_kinds is not None and kind not in moved_kinds:
            continue
        lo, hi = int(ranges[pos, 0]), int(ranges[pos, 1])
        step = np.rint(rng.normal(0.0, bins, len(out))).astype(np.int64)
        if fraction < 1.0:
            step = np.where(rng.random(len(out)) < fraction, step, 0)
        v = out[:, pos] - lo + step
        out[:, pos] = lo + (v % (hi - lo) if kind in periodic else np.clip(v, 0, hi - lo - 1))
    return out


# -------------------------------------------------------------------- model
#: Modules of a frame-aware model that LoRA training keeps fully trainable.
FRAME_EMBEDDING_MODULES: tuple[str, ...] = ("frame_position_embeddings", "previous_frame_embeddings")


@runtime_checkable
class FrameModel(Protocol):
    """A causal LM that knows the frame layout of its input.

    Besides the token embedding it adds a learned embedding of the position
    inside the frame (``frame_position_embeddings``) and, when
    :attr:`uses_previous_frame`, of the token one frame before the predicted
    one. :class:`~mdllm_kit.lm.frame_model.FrameMistralForCausalLM` is one, and
    :func:`~mdllm_kit.lm.frame_model.make_frame_aware` makes a loaded model of
    any family one.
    The cached decoder (:mod:`mdllm_kit.lm.fastdecode`) and the sampler
    call :meth:`embed` instead of the token embedding when
    :func:`is_frame_model` is true.
    """

    frame_position_embeddings: Any

    @property
    def uses_previous_frame(self) -> bool: ...

    @property
    def none_id(self) -> int: ...

    def embed(self, input_ids: Any, positions: Any, previous_ids: Any = None) -> Any:
        """Input embeddings ``(batch, time, hidden)`` of ids and absolute positions ``(batch, time)``."""
        ...


def is_frame_model(model: Any) -> bool:
    """Whether ``model`` (possibly wrapped by peft) is a frame-aware model (:class:`FrameModel`)."""
    return getattr(model, "frame_position_embeddings", None) is not None and callable(getattr(model, "embed", None))


# ------------------------------------------------------- frame-major order
def frame_major_index(step: Any, walker: Any, n_walkers: int) -> Any:
    """Index in a frame-major ensemble of frame ``step`` of walker ``walker``: ``step * n_walkers + walker``."""
    return step * _walkers(n_walkers) + walker


def step_and_walker(index: Any, n_walkers: int) -> tuple[Any, Any]:
    """``(step, walker)`` of element ``index`` of a frame-major ensemble (inverse of :func:`frame_major_index`)."""
    n = _walkers(n_walkers)
    return index // n, index % n


def frame_major_labels(n_frames: int, n_walkers: int) -> tuple[np.ndarray, np.ndarray]:
    """Step and walker of every element of a frame-major ensemble, each int64 of shape ``(n_frames * n_walkers,)``."""
    return step_and_walker(np.arange(int(n_frames) * _walkers(n_walkers), dtype=np.int64), n_walkers)


def per_walker(values: Any, n_walkers: int) -> np.ndarray:
    """Frame-major values ``(n_frames * n_walkers, ...)`` as ``(n_walkers, n_frames, ...)``.

    Raises
    ------
    MdllmError
        The number of values is not a multiple of ``n_walkers``.
    """
    arr = np.asarray(values)
    n = _walkers(n_walkers)
    if len(arr) % n:
        raise MdllmError(f"{len(arr)} frames do not split into {n} walkers; pass the ensemble's n_walkers")
    return arr.reshape(-1, n, *arr.shape[1:]).swapaxes(0, 1)


def frame_major_frames(generated: Any, n_walkers: int | None = None) -> tuple[Any, int | None]:
    """The frame-major frames and walker count of a trajectory or of a sampled ensemble.

    Parameters
    ----------
    generated : mdtraj.Trajectory or ensemble
        Frames, or an ensemble with ``trajectory`` (frame-major ``md.Trajectory``)
        and ``n_walkers`` (e.g. :class:`mdllm_kit.GeneratedEnsemble`).
    n_walkers : int, optional
        Walkers of a frame-major trajectory; for an ensemble it must agree with
        the ensemble's own count.

    Returns
    -------
    trajectory : mdtraj.Trajectory
    n_walkers : int or None
        ``None`` when neither the caller nor the input says.
    """
    traj = getattr(generated, "trajectory", None)
    own = getattr(generated, "n_walkers", None)
    if traj is None or own is None:
        return generated, n_walkers
    if n_walkers is not None and int(n_walkers) != int(own):
        raise MdllmError(f"the ensemble has {own} walkers, not n_walkers={n_walkers}; leave n_walkers out")
    return traj, int(own)


def _walkers(n_walkers: int) -> int:
    n = int(n_walkers)
    if n < 1:
        raise MdllmError(f"n_walkers must be >= 1, got {n_walkers}")
    return n
