"""Training losses beyond the model's own cross-entropy: ordinal soft targets.

Structure tokens are bins of ordered (and for angles periodic) quantities, so
a prediction one bin off is nearly right. :class:`OrdinalSoftTargetLoss`
trains against a discretised Gaussian around the true bin instead of the
one-hot true token (``TrainSettings.ordinal_label_sigma``); it plugs into the
Hugging Face Trainer as its ``compute_loss_func``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from .codec import FrameCodec

__all__ = ["IGNORE_INDEX", "OrdinalSoftTargetLoss", "ordinal_soft_targets"]

#: label of a sequence position that carries no loss (the Hugging Face convention)
IGNORE_INDEX = -100


def ordinal_soft_targets(tokens: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, periodic: torch.Tensor,
                         n_structure_tokens: int, sigma: float) -> torch.Tensor:
    """Discretised Gaussians around true structure tokens, each restricted to its position's block.

    Parameters
    ----------
    tokens : torch.Tensor of int64, shape (..., T)
        True structure tokens (ids ``0 .. V-1``; entries of other positions
        may hold anything, their rows are meaningless and must be masked by the caller).
    lo, hi : torch.Tensor of int64, shape (T,)
        The valid block ``[lo, hi)`` of each position.
    periodic : torch.Tensor of bool, shape (T,)
        Positions whose bins wrap around (the bin distance is taken around the block).
    n_structure_tokens : int
        ``V``.
    sigma : float
        Width of the Gaussian, in bins (> 0).

    Returns
    -------
    torch.Tensor of float32, shape (..., T, V)
        Rows sum to 1; zero outside ``[lo, hi)`` of the row's position. As
        ``sigma`` -> 0 the rows become one-hot on the true token.
    """
    if not sigma > 0:
        raise ModelError(f"the soft-target width sigma must be > 0 bins, got {sigma}")
    j = torch.arange(n_structure_tokens, device=tokens.device)
    d = (j - tokens.unsqueeze(-1)).abs().float()  # (..., T, V)
    size = (hi - lo).float().unsqueeze(-1)  # (T, 1)
    d = torch.where(periodic.unsqueeze(-1), torch.minimum(d, size - d), d)
    block = (j >= lo.unsqueeze(-1)) & (j < hi.unsqueeze(-1))  # (T, V)
    w = torch.exp(-0.5 * (d / sigma) ** 2) * block
    return w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)


class OrdinalSoftTargetLoss:
    """Cross-entropy against ordinal soft targets, for the Trainer's ``compute_loss_func``.

    Every label that is a structure token is replaced by
    :func:`ordinal_soft_targets` (width ``sigma`` bins within the valid block
    of its frame position, wrapped for periodic kinds); other labels (the
    frame delimiter) keep their one-hot target; ``-100`` carries no loss. The
    loss is summed over labelled positions and divided by
    ``num_items_in_batch`` when the Trainer gives it (gradient accumulation,
    several processes), else averaged, exactly as the models' own
    cross-entropy, which it equals as ``sigma`` -> 0.

    Parameters
    ----------
    codec : FrameCodec
        Sequence layout (``<bos>``, then ``L`` structure tokens and ``<frame>`` per frame).
    kinds : sequence of str, length L
        Kind of each frame position (``tokenizer.position_kinds()``).
    periodic_kinds : collection of str
        Kinds whose bins wrap (``tokenizer.periodic_kinds``).
    sigma : float
        Width in bins (``TrainSettings.ordinal_label_sigma``, > 0).
    """

    def __init__(self, codec: FrameCodec, kinds: Any, periodic_kinds: Any, sigma: float) -> None:
        if not sigma > 0:
            raise ModelError(f"ordinal_label_sigma must be > 0 bins for a soft-target loss, got {sigma}")
        kinds = list(kinds)
        if len(kinds) != codec.tokens_per_frame:
            raise ModelError(f"{len(kinds)} position kinds for a frame of {codec.tokens_per_frame} tokens; pass "
                             "tokenizer.position_kinds()")
        self.codec = codec
        self.sigma = float(sigma)
        ranges = codec.ranges_array()
        # one row per position within a frame, the delimiter last (an empty block there, never used)
        self._lo = torch.from_numpy(np.append(ranges[:, 0], 0))
        self._hi = torch.from_numpy(np.append(ranges[:, 1], 1))
        self._periodic = torch.from_numpy(np.append(np.isin(kinds, sorted(periodic_kinds)), False))

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        """Loss of a batch.

        Parameters
        ----------
        outputs : model output
            With ``logits`` of shape ``(B, T, lm_vocab)``.
        labels : torch.Tensor of int64, shape (B, T)
            Unshifted labels (position ``q`` of the logits predicts label ``q + 1``).
        num_items_in_batch : int or torch.Tensor, optional
            Labelled tokens in the whole accumulated batch.

        Returns
        -------
        torch.Tensor
            Scalar loss (nats per labelled token).
        """
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        c = self.codec
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, lm_vocab)
        target = labels[:, 1:].to(logp.device)
        valid = target != IGNORE_INDEX
        # frame position of label q = 1 .. T-1 (<bos> is q = 0; the delimiter is frame position L)
        pos = (torch.arange(1, labels.shape[1], device=logp.device) - 1) % c.frame_length
        struct = target - c.structure_offset
        is_struct = valid & (struct >= 0) & (struct < c.n_structure_tokens) & (pos < c.tokens_per_frame)
        hard = -logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        lo, hi, periodic = (t.to(logp.device) for t in (self._lo, self._hi, self._periodic))
        soft_targets = ordinal_soft_targets(struct.clamp(0, c.n_structure_tokens - 1), lo[pos], hi[pos], periodic[pos],
                                            c.n_structure_tokens, self.sigma)
        block = logp[..., c.structure_offset: c.structure_offset + c.n_structure_tokens]
        # 0 * -inf would be nan: log-probabilities outside the block do not enter
        soft = -(soft_targets * block.masked_fill(soft_targets == 0, 0.0)).sum(-1)
        total = torch.where(is_struct, soft, hard).masked_fill(~valid, 0.0).sum()
        if num_items_in_batch is None:
            return total / valid.sum().clamp_min(1)
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
