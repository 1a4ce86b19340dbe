"""Rolling-window datasets of tokenized trajectories with a time-ordered split."""
from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..contracts import jitter_frame_tokens
from ..errors import ModelError
from ..subsample import evenly_spaced_indices
from .codec import FrameCodec

__all__ = ["ContextNoise", "NoisyContextDataset", "WindowDataset", "make_datasets", "time_split"]

logger = logging.getLogger(__name__)


def time_split(n_frames: int, val_fraction: float) -> tuple[range, range]:
    """Frames of one trajectory used for training and for validation.

    The last ``round(n_frames * val_fraction)`` frames are for validation,
    all frames before them for training, so no validation frame can appear
    in a training window.

    Returns
    -------
    train, val : range
        Frame indices.
    """
    n_val = int(round(n_frames * val_fraction))
    return range(0, n_frames - n_val), range(n_frames - n_val, n_frames)


class WindowDataset(torch.utils.data.Dataset):
    """Windows of ``W + 1`` consecutive frames as fixed-length LM sequences.

    Parameters
    ----------
    segments : sequence of numpy.ndarray, each shape (n_frames_i, L)
        Structure tokens of contiguous pieces of trajectories; windows never
        cross from one segment to another.
    codec : FrameCodec
    window_frames : int
        Context frames ``W``.
    stride : int
        Frames between window starts.
    loss_frames : {"all", "last"}
        Frames whose tokens get labels (the others get ``-100``).

    Notes
    -----
    Item ``i`` is a dict with ``input_ids`` and ``labels`` (int64 tensors of
    length ``1 + (W + 1) * (L + 1)``); ``<bos>`` is never a label.
    """

    def __init__(self, segments: Sequence[np.ndarray], codec: FrameCodec, window_frames: int, stride: int = 1,
                 loss_frames: str = "all") -> None:
        self.codec = codec
        self.window_frames = int(window_frames)
        self.loss_frames = loss_frames
        self.segments = [codec.check_tokens(s) for s in segments]
        span = self.window_frames + 1
        self.index = [(k, start) for k, seg in enumerate(self.segments)
                      for start in range(0, seg.shape[0] - span + 1, stride)]
        self.seq_len = codec.sequence_length(span)
        self._label_mask = np.ones(self.seq_len, dtype=bool)
        self._label_mask[0] = False
        if loss_frames == "last":
            self._label_mask[: self.seq_len - codec.frame_length] = False

    def __len__(self) -> int:
        return len(self.index)

    def window(self, i: int) -> np.ndarray:
        """Structure tokens of window ``i``, shape ``(W + 1, L)``."""
        k, start = self.index[i]
        return self.segments[k][start: start + self.window_frames + 1]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        window = self.window(i)
        return self.item(window, window)

    def item(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, torch.Tensor]:
        """Training item whose input ids encode ``inputs`` and whose labels encode ``targets``.

        Parameters
        ----------
        inputs, targets : numpy.ndarray of int, shape (W + 1, L)
            Structure tokens of the window as the model sees it and as it
            should predict it (the same array for a clean window).

        Returns
        -------
        dict
            ``input_ids`` and ``labels``, int64 tensors of length ``seq_len``.
        """
        ids = self.codec.encode_frames(inputs)
        labels = np.where(self._label_mask, self.codec.encode_frames(targets) if targets is not inputs else ids, -100)
        return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}

    def subset(self, max_windows: int) -> WindowDataset:
        """At most ``max_windows`` windows, evenly spaced in time (same segments)."""
        if len(self) <= max_windows:
            return self
        out = WindowDataset.__new__(WindowDataset)
        out.__dict__.update(self.__dict__)
        pick = evenly_spaced_indices(len(self), max_windows)
        out.index = [self.index[i] for i in pick]
        return out


@dataclass(frozen=True)
class ContextNoise:
    """Sampler-like noise for the context frames of training windows (noisy-context training).

    Parameters
    ----------
    valid_ranges : numpy.ndarray of int, shape (L, 2)
        ``[lo, hi)`` of each frame position (``tokenizer.valid_token_ranges()``).
    kinds : tuple of str, length L
        Kind of each position (``tokenizer.position_kinds()``).
    periodic_kinds : frozenset of str
        Kinds whose codes wrap around (``tokenizer.periodic_kinds``).
    bins : float
        Standard deviation of each move, in codes (``TrainSettings.context_noise_bins``).
    fraction : float
        Probability that a token is moved (``TrainSettings.context_noise_fraction``).
    seed : int
        Seed of the noise stream (``TrainSettings.seed``).
    """

    valid_ranges: np.ndarray
    kinds: tuple[str, ...]
    periodic_kinds: Collection[str]
    bins: float
    fraction: float = 1.0
    seed: int = 0

    @classmethod
    def for_tokenizer(cls, tokenizer, bins: float, fraction: float = 1.0, seed: int = 0) -> ContextNoise:
        """The noise for a :class:`~mdllm_kit.contracts.FrameTokenizer` (a tokenizer without kinds: none periodic)."""
        from .evaluate import position_kinds

        ranges = np.asarray(tokenizer.valid_token_ranges(), dtype=np.int64)
        kinds, periodic = position_kinds(tokenizer, len(ranges))
        return cls(ranges, tuple(str(k) for k in kinds), frozenset(periodic), float(bins), float(fraction), int(seed))

    def apply(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``tokens`` (shape ``(n_frames, L)``) with every position moved by the noise, as a new array."""
        return jitter_frame_tokens(tokens, self.valid_ranges, self.kinds, self.periodic_kinds, self.bins, rng,
                                   fraction=self.fraction)


class NoisyContextDataset(torch.utils.data.Dataset):
    """Training windows whose ``W`` context frames are corrupted by :class:`ContextNoise` (labels stay clean).

    Item ``i`` is item ``i`` of ``base`` with the input ids of frames
    ``1 .. W`` replaced by noisy tokens; the last frame's input ids and every
    label are those of the true window. Each call draws fresh noise, so a
    window seen twice gets different noise. The stream is a
    :class:`numpy.random.Generator` owned by this object and keyed by
    ``(noise.seed, RANK, data-loader worker)`` (a worker's key includes the
    seed torch gives it, which is derived from the Trainer's seed and differs
    per epoch), so runs with the same settings draw the same noise and no
    state is shared between processes.

    Parameters
    ----------
    base : WindowDataset
        Clean training windows.
    noise : ContextNoise
    """

    def __init__(self, base: WindowDataset, noise: ContextNoise) -> None:
        self.base = base
        self.noise = noise
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple | None = None

    @property
    def seq_len(self) -> int:
        """LM tokens per item (as :attr:`WindowDataset.seq_len`)."""
        return self.base.seq_len

    def __len__(self) -> int:
        return len(self.base)

    def _generator(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        key = (int(os.environ.get("RANK", "0")),) + ((worker.id, worker.seed) if worker is not None else ())
        if self._rng is None or self._rng_key != key:  # a worker starts its own stream, never a copy of another's
            self._rng, self._rng_key = np.random.default_rng([self.noise.seed, *key]), key
        return self._rng

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        window = self.base.window(i)
        noisy = window.copy()
        W = self.base.window_frames
        noisy[:W] = self.noise.apply(window[:W], self._generator())
        return self.base.item(noisy, window)


@dataclass(frozen=True)
class SplitInfo:
    """Sizes of the split (written to the bundle's metrics)."""

    n_trajectories: int
    train_frames: int
    val_frames: int
    train_windows: int
    val_windows: int


def make_datasets(trajectories: Sequence[np.ndarray], codec: FrameCodec, window_frames: int, stride: int,
                  val_fraction: float, loss_frames: str = "all", context_noise: ContextNoise | None = None,
                  ) -> tuple[WindowDataset | NoisyContextDataset, WindowDataset | None, SplitInfo]:
    """Training and validation window datasets with a time-ordered split per trajectory.

    Parameters
    ----------
    trajectories : sequence of numpy.ndarray, each shape (n_frames_i, L)
        Structure tokens of each trajectory, frames in time order.
    codec, window_frames, stride, loss_frames
        See :class:`WindowDataset`.
    val_fraction : float
        Last fraction of each trajectory held out for validation.
    context_noise : ContextNoise, optional
        Corrupt the context frames of the training windows
        (:class:`NoisyContextDataset`); the validation windows are never noisy.

    Returns
    -------
    train : WindowDataset or NoisyContextDataset
    val : WindowDataset or None
        ``None`` when no trajectory has enough held-out frames for one window.
    info : SplitInfo
    """
    span = window_frames + 1
    train_segments, val_segments = [], []
    for tokens in trajectories:
        tr, va = time_split(len(tokens), val_fraction)
        train_segments.append(tokens[tr.start: tr.stop])
        if len(va) >= span:
            val_segments.append(tokens[va.start: va.stop])
        elif len(va):
            logger.warning("a trajectory keeps %d frames for validation, fewer than a window (%d): "
                           "they are used for neither training nor validation", len(va), span)
    train = WindowDataset(train_segments, codec, window_frames, stride, loss_frames)
    if len(train) == 0:
        longest = max((len(s) for s in train_segments), default=0)
        raise ModelError(
            f"no training window: a window needs {span} consecutive frames but the longest training part "
            f"of a trajectory has {longest}; use a smaller window_frames or val_fraction, or longer trajectories"
        )
    val = WindowDataset(val_segments, codec, window_frames, 1, "last") if val_segments else None
    if val is not None and len(val) == 0:
        val = None
    info = SplitInfo(len(trajectories), sum(len(s) for s in train_segments), sum(len(s) for s in val_segments),
                     len(train), 0 if val is None else len(val))
    if context_noise is not None:
        train = NoisyContextDataset(train, context_noise)
    return train, val, info
