"""Structure tokens <-> language-model token ids.

Sequence format
---------------
One LM token per structure token; each frame is followed by a frame
delimiter, and a window starts with a begin-of-sequence token::

    <bos> s(1,1) ... s(1,L) <frame> s(2,1) ... s(2,L) <frame> ... s(W+1,L) <frame>

where ``L`` is the tokenizer's ``tokens_per_frame`` and structure token ``t``
becomes LM id ``structure_offset + t``. The frame delimiter makes frame
boundaries explicit to the model (the position within a frame is always known
to the sampler, which simply forces the delimiter after ``L`` tokens).

For the default model the vocabulary is ``[<pad>, <bos>, <frame>, s_0, ...,
s_{V-1}]``; for a pretrained model the structure tokens and ``<frame>`` are
appended after its own vocabulary and its own ``<bos>`` is reused.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..contracts import check_frame_tokens
from ..errors import ModelError

__all__ = ["FrameCodec"]


@dataclass(frozen=True)
class FrameCodec:
    """Mapping between structure tokens and LM token ids.

    Parameters
    ----------
    tokens_per_frame : int
        Structure tokens per frame (``L``).
    n_structure_tokens : int
        Structure vocabulary size ``V`` (ids ``0..V-1``).
    valid_ranges : tuple of (int, int)
        ``[lo, hi)`` of the allowed structure ids at each position within a
        frame, length ``L`` (from ``tokenizer.valid_token_ranges()``).
    structure_offset : int
        LM id of structure token 0.
    frame_id, bos_id, pad_id : int
        LM ids of the frame delimiter, begin-of-sequence and padding tokens.
    lm_vocab_size : int
        Size of the LM vocabulary (every id used here is below it).
    """

    tokens_per_frame: int
    n_structure_tokens: int
    valid_ranges: tuple[tuple[int, int], ...]
    structure_offset: int = 3
    frame_id: int = 2
    bos_id: int = 1
    pad_id: int = 0
    lm_vocab_size: int = 0

    def __post_init__(self) -> None:
        if self.tokens_per_frame < 1 or self.n_structure_tokens < 1:
            raise ModelError("a codec needs tokens_per_frame >= 1 and n_structure_tokens >= 1")
        ranges = tuple((int(lo), int(hi)) for lo, hi in self.valid_ranges)
        object.__setattr__(self, "valid_ranges", ranges)
        if len(ranges) != self.tokens_per_frame:
            raise ModelError(
                f"valid_ranges has {len(ranges)} rows but tokens_per_frame is {self.tokens_per_frame}; "
                "the tokenizer's valid_token_ranges() must have one [lo, hi) row per position in a frame"
            )
        for pos, (lo, hi) in enumerate(ranges):
            if not 0 <= lo < hi <= self.n_structure_tokens:
                raise ModelError(
                    f"valid range [{lo}, {hi}) at frame position {pos} is empty or outside the structure "
                    f"vocabulary [0, {self.n_structure_tokens}); check tokenizer.valid_token_ranges()"
                )
        if self.lm_vocab_size == 0:
            object.__setattr__(self, "lm_vocab_size", self.structure_offset + self.n_structure_tokens)
        specials = {self.frame_id, self.bos_id, self.pad_id}
        structure = range(self.structure_offset, self.structure_offset + self.n_structure_tokens)
        if any(s in structure for s in specials):
            raise ModelError("special token ids overlap the structure-token ids; choose a larger structure_offset")
        if max(max(specials), structure.stop - 1) >= self.lm_vocab_size:
            raise ModelError(f"token ids do not fit in an LM vocabulary of {self.lm_vocab_size}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_tokenizer(cls, tokenizer: Any, base_vocab_size: int | None = None, bos_id: int | None = None,
                      pad_id: int | None = None) -> FrameCodec:
        """Codec for a structure tokenizer.

        Parameters
        ----------
        tokenizer : StructureTokenizer
            Needs ``tokens_per_frame``, ``vocab_size`` and ``valid_token_ranges()``.
        base_vocab_size : int, optional
            Vocabulary size of a pretrained LM; structure tokens are appended
            after it (ids ``base_vocab_size ..``) followed by ``<frame>``.
            ``None`` (default model): ``[<pad>, <bos>, <frame>, structure...]``.
        bos_id, pad_id : int, optional
            The pretrained model's begin-of-sequence / padding ids.
        """
        ranges = np.asarray(tokenizer.valid_token_ranges(), dtype=np.int64)
        n_struct = int(tokenizer.vocab_size)
        if base_vocab_size is None:
            return cls(int(tokenizer.tokens_per_frame), n_struct, tuple(map(tuple, ranges.tolist())))
        offset = int(base_vocab_size)
        return cls(
            tokens_per_frame=int(tokenizer.tokens_per_frame), n_structure_tokens=n_struct,
            valid_ranges=tuple(map(tuple, ranges.tolist())), structure_offset=offset,
            frame_id=offset + n_struct, bos_id=1 if bos_id is None else int(bos_id),
            pad_id=0 if pad_id is None else int(pad_id), lm_vocab_size=offset + n_struct + 1,
        )

    # ------------------------------------------------------------------ sizes
    @property
    def frame_length(self) -> int:
        """LM tokens per frame including its delimiter (``L + 1``)."""
        return self.tokens_per_frame + 1

    def sequence_length(self, n_frames: int) -> int:
        """LM tokens of a sequence of ``n_frames`` frames (with ``<bos>``)."""
        return 1 + n_frames * self.frame_length

    def new_token_ids(self) -> list[int]:
        """LM ids of the structure tokens and ``<frame>`` (rows to train in a pretrained model)."""
        ids = list(range(self.structure_offset, self.structure_offset + self.n_structure_tokens))
        if self.frame_id not in ids:
            ids.append(self.frame_id)
        return sorted(ids)

    def ranges_array(self) -> np.ndarray:
        """Allowed structure ids per frame position, shape ``(L, 2)``, ``[lo, hi)``."""
        return np.asarray(self.valid_ranges, dtype=np.int64)

    def position_mask(self) -> np.ndarray:
        """Boolean mask of allowed structure tokens, shape ``(L, V)``."""
        ranges = self.ranges_array()
        ids = np.arange(self.n_structure_tokens)
        return (ids[None, :] >= ranges[:, :1]) & (ids[None, :] < ranges[:, 1:])

    # ------------------------------------------------------------------ encode / decode
    def check_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Validate structure tokens of shape ``(n_frames, L)``; return them as int64 (:class:`ModelError`).

        See :func:`mdllm_kit.contracts.check_frame_tokens`.
        """
        return check_frame_tokens(tokens, self.ranges_array(), one_frame_ok=False, error=ModelError)

    def encode_frames(self, tokens: np.ndarray, bos: bool = True) -> np.ndarray:
        """LM ids of frames.

        Parameters
        ----------
        tokens : numpy.ndarray of int, shape (n_frames, L)
            Structure tokens.
        bos : bool
            Prepend ``<bos>``.

        Returns
        -------
        numpy.ndarray of int64, shape (n_frames * (L + 1) + bos,)
        """
        tokens = self.check_tokens(tokens)
        body = np.empty((tokens.shape[0], self.frame_length), dtype=np.int64)
        body[:, :-1] = tokens + self.structure_offset
        body[:, -1] = self.frame_id
        flat = body.reshape(-1)
        return np.concatenate([[self.bos_id], flat]).astype(np.int64) if bos else flat

    def decode_frames(self, ids: np.ndarray) -> np.ndarray:
        """Structure tokens of a sequence made by :meth:`encode_frames` (``<bos>`` optional).

        Returns
        -------
        numpy.ndarray of int64, shape (n_frames, L)
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and ids[0] == self.bos_id and ids.size % self.frame_length == 1:
            ids = ids[1:]
        if ids.size % self.frame_length:
            raise ModelError(f"a sequence of {ids.size} ids is not a whole number of {self.frame_length}-id frames")
        body = ids.reshape(-1, self.frame_length)
        if (body[:, -1] != self.frame_id).any():
            raise ModelError("frame delimiters are missing or misplaced in the LM id sequence")
        return self.check_tokens(body[:, :-1] - self.structure_offset)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (see :meth:`from_dict`)."""
        out = dataclasses.asdict(self)
        out["valid_ranges"] = [list(r) for r in self.valid_ranges]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameCodec:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["valid_ranges"] = tuple(tuple(r) for r in data["valid_ranges"])
        return cls(**data)
