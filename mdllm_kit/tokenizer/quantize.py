"""Uniform scalar quantisers: the alphabets of the structure tokens.

A :class:`UniformBins` maps a real value to one of ``n_bins`` equal bins over
``[low, high)`` and back to the bin centre. Periodic quantisers (dihedrals)
wrap around, so bin ``0`` and bin ``n_bins - 1`` are neighbours; open ones
clip values outside the range to the first or last bin. The natural order of
the bins is the order of their values, which defines the "neighbouring code"
used in the noise benchmarks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["UniformBins"]


@dataclass(frozen=True)
class UniformBins:
    """Equal-width bins over ``[low, high)``.

    Parameters
    ----------
    low, high : float
        Range covered, in the unit of the quantity (nm or rad).
    n_bins : int
        Number of bins (the alphabet size).
    periodic : bool
        Whether ``high`` wraps around to ``low`` (angles in radians).
    """

    low: float
    high: float
    n_bins: int
    periodic: bool = False

    def __post_init__(self) -> None:
        if not (self.high > self.low):
            raise ValueError(f"quantiser range must have high > low, got [{self.low}, {self.high})")
        if self.n_bins < 2:
            raise ValueError(f"a quantiser needs at least 2 bins, got {self.n_bins}")

    @property
    def width(self) -> float:
        """Bin width in the unit of the quantity."""
        return (self.high - self.low) / self.n_bins

    @property
    def rms_error(self) -> float:
        """RMS quantisation error for values spread evenly within a bin (``width / sqrt(12)``)."""
        return self.width / math.sqrt(12.0)

    def encode(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bin indices of ``values``.

        Parameters
        ----------
        values : torch.Tensor, any shape

        Returns
        -------
        codes : torch.Tensor of int64, same shape
            Bin indices in ``[0, n_bins)``.
        clipped : torch.Tensor of bool, same shape
            True where a value of a non-periodic quantiser lay outside the range.
        """
        z = (values - self.low) / self.width
        codes = torch.floor(z).to(torch.int64)
        if self.periodic:
            return torch.remainder(codes, self.n_bins), torch.zeros_like(codes, dtype=torch.bool)
        clipped = (codes < 0) | (codes >= self.n_bins)
        return codes.clamp(0, self.n_bins - 1), clipped

    def decode(self, codes: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Bin centres of ``codes`` (same shape, floating point)."""
        return self.low + (codes.to(dtype) + 0.5) * self.width
