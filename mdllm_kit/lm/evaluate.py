"""Teacher-forced next-frame quality of a trained model, next to the copy-previous-frame baseline.

The trivial predictor "the next frame equals the last one" is the bar a
dynamics model has to clear: :func:`next_frame_quality` scores the model and
that baseline on the same windows of held-out frames.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..analysis.rmsd import rmsd_per_frame
from ..errors import ModelError
from ..subsample import evenly_spaced_indices

__all__ = ["constrained_frame_argmax", "next_frame_quality", "position_kinds", "predict_next_frames"]

logger = logging.getLogger(__name__)


def constrained_frame_argmax(logits: torch.Tensor, codec: Any, first: int, mask: torch.Tensor) -> torch.Tensor:
    """Arg-max structure token of each position of the frame starting at sequence position ``first``.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, T, lm_vocab)
        Teacher-forced logits of whole windows (position ``q`` predicts ``q + 1``).
    codec : FrameCodec
    first : int
        Sequence position of the frame's first token.
    mask : torch.Tensor of bool, shape (L, n_structure_tokens)
        ``codec.position_mask()``: the valid ids of each position.

    Returns
    -------
    torch.Tensor of int64, shape (B, L)
        Structure tokens, each within its position's valid range.
    """
    lo = codec.structure_offset
    sl = logits[:, first - 1: first - 1 + codec.tokens_per_frame, lo: lo + codec.n_structure_tokens]
    return sl.float().masked_fill(~mask.to(sl.device), float("-inf")).argmax(-1)


@torch.inference_mode()
def predict_next_frames(bundle: Any, windows: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Constrained arg-max prediction of the last frame of each window under teacher forcing.

    Parameters
    ----------
    bundle : ModelBundle
    windows : numpy.ndarray of int, shape (n, C + 1, L)
        ``C`` context frames followed by the frame to predict (its tokens are
        the teacher-forced inputs of its own later positions).
    batch_size : int
        Windows per forward pass.

    Returns
    -------
    numpy.ndarray of int64, shape (n, L)
        Predicted structure tokens (each within its position's valid range).
    """
    codec, model = bundle.codec, bundle.model
    windows = np.asarray(windows, dtype=np.int64)
    if windows.ndim != 3 or windows.shape[1] < 2:
        raise ModelError(f"windows must have shape (n, C + 1, L) with C >= 1, got {windows.shape}")
    first = codec.sequence_length(windows.shape[1]) - codec.frame_length  # first token of the last frame
    mask = torch.from_numpy(codec.position_mask()).to(bundle.device)
    out = []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start: start + batch_size]
        ids = np.stack([codec.encode_frames(w) for w in chunk])
        logits = model(input_ids=torch.from_numpy(ids).to(bundle.device)).logits
        out.append(constrained_frame_argmax(logits, codec, first, mask).cpu().numpy())
    return np.concatenate(out)


def next_frame_quality(bundle: Any, tokens: np.ndarray, context_frames: int | None = None, max_windows: int = 64,
                       batch_size: int = 8) -> dict[str, Any]:
    """Token accuracy and RMSD of teacher-forced next-frame predictions, model vs. copying the last frame.

    Parameters
    ----------
    bundle : ModelBundle
    tokens : numpy.ndarray of int, shape (n_frames, L)
        Consecutive held-out frames (e.g. the validation end of a run).
    context_frames : int, optional
        Context ``C`` (default: the training window ``W``).
    max_windows : int
        At most this many windows of ``C + 1`` frames, evenly spaced.
    batch_size : int
        Windows per forward pass.

    Returns
    -------
    dict
        ``n_windows``; ``model`` and ``copy_previous`` each with
        ``token_accuracy`` (fraction of the ``L`` tokens equal to the truth),
        ``rmsd_A`` (mean Calpha RMSD in Angstrom between the decoded
        prediction and the decoded true frame, after superposition), and
        ``mean_bin_error`` (mean distance in bins between predicted and true
        token, wrapped for the tokenizer's ``periodic_kinds`` such as
        dihedrals), also per kind of token (``position_kinds()``).
    """
    codec = bundle.codec
    tokens = codec.check_tokens(tokens)
    c = int(context_frames or bundle.window_frames)
    n = len(tokens) - c
    if n < 1:
        raise ModelError(f"{len(tokens)} frames are too few for one window of {c} + 1 frames; pass more frames "
                         "or a smaller context_frames")
    starts = evenly_spaced_indices(n, max_windows)
    windows = np.stack([tokens[s: s + c + 1] for s in starts])
    truth = windows[:, -1]
    candidates = {"model": predict_next_frames(bundle, windows, batch_size), "copy_previous": windows[:, -2]}
    true_xyz = bundle.tokenizer.decode(truth).xyz
    kinds, periodic = position_kinds(bundle.tokenizer, codec.tokens_per_frame)
    out: dict[str, Any] = {"n_windows": int(len(windows)), "context_frames": c}
    for name, pred in candidates.items():
        rmsd_A = rmsd_per_frame(bundle.tokenizer.decode(pred).xyz, true_xyz)  # Angstrom
        error = _bin_error(pred, truth, codec.ranges_array(), kinds, periodic)
        out[name] = {"token_accuracy": float((pred == truth).mean()), "rmsd_A": float(np.mean(rmsd_A)),
                     "mean_bin_error": float(error.mean()),
                     "mean_bin_error_by_kind": {k: float(error[:, kinds == k].mean()) for k in np.unique(kinds)}}
    return out


def position_kinds(tokenizer: Any, n: int) -> tuple[np.ndarray, frozenset[str]]:
    """Kind of every frame position and the periodic kinds (:class:`~mdllm_kit.contracts.FrameTokenizer`)."""
    kinds = getattr(tokenizer, "position_kinds", None)
    if not callable(kinds):  # a tokenizer without kinds: one non-periodic kind
        return np.asarray(["token"] * n), frozenset()
    return np.asarray(kinds()), frozenset(getattr(tokenizer, "periodic_kinds", ()))


def _bin_error(pred: np.ndarray, truth: np.ndarray, ranges: np.ndarray, kinds: np.ndarray,
               periodic: frozenset[str]) -> np.ndarray:
    """Distance in bins between predicted and true tokens, shape (n, L); wrapped for periodic kinds."""
    d = np.abs(pred - truth)
    size = (ranges[:, 1] - ranges[:, 0])[None]
    wraps = np.isin(kinds, sorted(periodic))[None]
    return np.where(wraps, np.minimum(d, size - d), d)
