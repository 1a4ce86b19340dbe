"""Where candidate next frames come from: the trained model, or a model-free control."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..contracts import FrameTokenizer
from ..errors import SamplingError

__all__ = ["ModelProposal", "Proposal", "TokenNoiseProposal"]


@runtime_checkable
class Proposal(Protocol):
    """Draws next frames from explicit contexts.

    ``propose(history, frame_index)`` takes contexts of shape
    ``(B, c, L)`` (oldest frame first) and returns ``tokens`` ``(B, L)`` and
    a log-likelihood per frame ``(B,)``; it is a pure function of its input
    and ``frame_index`` (its random stream), so runs are reproducible and
    resumable.
    """

    tokenizer: FrameTokenizer
    context_frames: int

    def propose(self, history: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]: ...

    def to_dict(self) -> dict[str, Any]: ...


class ModelProposal:
    """Next frames sampled from the trained model (:meth:`mdllm_kit.Sampler.generate_frame`).

    Parameters
    ----------
    sampler : Sampler
    settings : SamplingSettings
        Temperature, top-k, top-p, entropy cap, context length and seed.
    """

    def __init__(self, sampler: Any, settings: Any) -> None:
        self.sampler = sampler
        self.settings = settings
        self.tokenizer = sampler.bundle.tokenizer
        self.context_frames = int(settings.context_frames or sampler.bundle.window_frames)

    def propose(self, history: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sampler.generate_frame(history, self.settings, frame_index)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "model", "precision": self.sampler.precision}


class TokenNoiseProposal:
    """Model-free control: the previous frame's tokens with random token noise.

    Each token of the last context frame is moved, with probability
    ``rate``, by a rounded Gaussian of ``bins`` codes (at least one code;
    periodic kinds wrap, others are clipped to their range). Anchors move
    like every other token, so the control can drift anywhere. A discovery
    benchmark runs its strategies with this proposal too: hits it produces
    are luck, not learning.

    Parameters
    ----------
    tokenizer : FrameTokenizer
    rate : float
        Probability that a token moves, in (0, 1].
    bins : float
        Standard deviation of a move, codes (> 0).
    seed : int
    context_frames : int
        Frames of context kept (only the last one is used).
    """

    def __init__(self, tokenizer: FrameTokenizer, rate: float = 0.05, bins: float = 1.0, seed: int = 0,
                 context_frames: int = 1) -> None:
        if not 0.0 < rate <= 1.0 or not bins > 0:
            raise SamplingError(f"token noise needs 0 < rate <= 1 and bins > 0, got rate={rate}, bins={bins}")
        self.tokenizer = tokenizer
        self.rate, self.bins, self.seed = float(rate), float(bins), int(seed)
        self.context_frames = int(context_frames)
        ranges = np.asarray(tokenizer.valid_token_ranges(), dtype=np.int64)
        self._lo, self._span = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
        kinds = tokenizer.position_kinds()
        self._periodic = np.array([kind in tokenizer.periodic_kinds for kind in kinds], dtype=bool)

    def propose(self, history: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        last = np.asarray(history, dtype=np.int64)[:, -1]
        rng = np.random.default_rng([self.seed, int(frame_index), 3])
        move = rng.random(last.shape) < self.rate
        step = np.rint(rng.normal(0.0, self.bins, last.shape)).astype(np.int64)
        step = np.where(step == 0, np.where(rng.random(last.shape) < 0.5, -1, 1), step)
        v = last - self._lo + np.where(move, step, 0)
        v = np.where(self._periodic, v % self._span, np.clip(v, 0, self._span - 1))
        return self._lo + v, np.zeros(len(last))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "token_noise", "rate": self.rate, "bins": self.bins, "seed": self.seed}
