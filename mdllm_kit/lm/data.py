"""Rolling-window datasets of tokenized trajectories with a time-ordered split."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelError
from ..subsample import evenly_spaced_indices
from .codec import FrameCodec

__all__ = ["WindowDataset", "make_datasets", "time_split"]

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
        ids = self.codec.encode_frames(self.window(i))
        labels = np.where(self._label_mask, ids, -100)
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
class SplitInfo:
    """Sizes of the split (written to the bundle's metrics)."""

    n_trajectories: int
    train_frames: int
    val_frames: int
    train_windows: int
    val_windows: int


def make_datasets(trajectories: Sequence[np.ndarray], codec: FrameCodec, window_frames: int, stride: int,
                  val_fraction: float, loss_frames: str = "all") -> tuple[WindowDataset, WindowDataset | None, SplitInfo]:
    """Training and validation window datasets with a time-ordered split per trajectory.

    Parameters
    ----------
    trajectories : sequence of numpy.ndarray, each shape (n_frames_i, L)
        Structure tokens of each trajectory, frames in time order.
    codec, window_frames, stride, loss_frames
        See :class:`WindowDataset`.
    val_fraction : float
        Last fraction of each trajectory held out for validation.

    Returns
    -------
    train, val : WindowDataset
        ``val`` is ``None`` when no trajectory has enough held-out frames for
        one window.
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
    return train, val, info
