"""Configuration of the structure tokenizer (hyperparameters only, no fitted state)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import TokenizerError
from ..jsonconfig import JsonConfig

__all__ = ["TokenizerConfig"]

_ATOMS = ("auto", "ca", "backbone")


@dataclass
class TokenizerConfig(JsonConfig):
    """Hyperparameters of :class:`~mdllm_kit.StructureTokenizer`.

    The defaults work for proteins of a few hundred residues; they are what
    the benchmark in ``BENCHMARKS.md`` measured.

    Parameters
    ----------
    codebook_size : int
        Bins of each scalar alphabet in Calpha mode: the Calpha bond angle,
        the Calpha dihedral and the anchor distance each get this many codes.
    atoms : {"auto", "ca", "backbone"}
        Atoms the tokenizer represents. ``"auto"`` picks ``"backbone"`` when
        the fitting input has N, CA, C and O in every residue, else ``"ca"``.
    backbone_angle_bins : int
        Bins of the bond angle in backbone mode, where the angle shares its
        token with the peptide-plane orientation (joint code of
        ``backbone_angle_bins * plane_bins`` symbols).
    plane_bins : int
        Bins of the peptide-plane rotation about the Calpha-Calpha axis
        (backbone mode only).
    angle_range_deg : tuple of float
        Range of the Calpha bond angle covered by the angle alphabet, degrees.
        Values outside are clipped (and logged).
    anchor_stride : int
        Residue spacing of the landmark Calpha atoms between which anchor
        distances are encoded.
    anchor_offsets : tuple of int
        Each landmark is paired with the landmarks this many landmarks
        further along the chain (multi-scale anchors).
    max_distance_nm : float or None
        Upper end of the anchor-distance alphabet (nm). ``None``: 1.25 times
        the largest anchor distance seen in fitting plus 1 nm, so that
        unseen, more open states stay in range.
    refine_iterations : int
        Gauss-Newton iterations of the decoder's last stage, which ties every
        internal coordinate to its token (robustly) while keeping the anchor
        distances of the landmark skeleton (0: the filled skeleton as it is).
    skeleton_iterations : int
        Gauss-Newton iterations of each fit of the landmark skeleton to the
        anchor tokens.
    robust_scale_nm : float
        Anchor residual (nm) beyond which an anchor token is down-weighted in
        the skeleton fit (Cauchy weights), so one wrong anchor cannot bend it.
    prior_scale : float
        Deviation of a decoded angle or dihedral from its token, in
        quantisation errors, beyond which the token is down-weighted (Cauchy
        weights): a token far from what the others agree on is outvoted.
    clash_floor_nm : float or None
        Smallest distance (nm) the decoder allows between Calpha atoms at
        least two residues apart. ``None``: measured in fitting, the 1st
        percentile of the fitting frames' smallest such distance, kept between
        the clash threshold of :func:`mdllm_kit.validity_report` plus 0.01 nm
        and plus 0.06 nm.
    clash_iterations : int
        Largest number of passes of the clash removal (bounds its time).
    hinge_tolerance_nm : float
        RMS misfit (nm) of a window of four landmarks between the chain of the
        local tokens and the landmark skeleton above which the decoder looks
        for one wrong angle or dihedral token in it (a hinge) and repairs it
        in its starting chain.
    hinge_rounds : int
        Largest number of such repairs per frame (0: none).
    batch_size : int
        Frames encoded or decoded at once.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``...
    """

    json_error = TokenizerError

    codebook_size: int = 256
    atoms: str = "auto"
    backbone_angle_bins: int = 128
    plane_bins: int = 24
    angle_range_deg: tuple[float, float] = (50.0, 180.0)
    anchor_stride: int = 8
    anchor_offsets: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 32)
    max_distance_nm: float | None = None
    refine_iterations: int = 6
    skeleton_iterations: int = 15
    robust_scale_nm: float = 0.05
    prior_scale: float = 2.0
    clash_floor_nm: float | None = None
    clash_iterations: int = 100
    hinge_tolerance_nm: float = 0.1
    hinge_rounds: int = 4
    batch_size: int = 256
    device: str = "auto"

    def __post_init__(self) -> None:
        self.angle_range_deg = tuple(float(v) for v in self.angle_range_deg)  # type: ignore[assignment]
        self.anchor_offsets = tuple(int(v) for v in self.anchor_offsets)
        for name in ("codebook_size", "backbone_angle_bins", "plane_bins"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 65536:
                raise TokenizerError(f"{name} must be an integer between 2 and 65536, got {v!r}")
        if self.atoms not in _ATOMS:
            raise TokenizerError(f"atoms must be one of {', '.join(_ATOMS)}, got {self.atoms!r}")
        lo, hi = self.angle_range_deg if len(self.angle_range_deg) == 2 else (math.nan, math.nan)
        if not (0.0 <= lo < hi <= 180.0):
            raise TokenizerError(f"angle_range_deg must be (low, high) with 0 <= low < high <= 180, got {self.angle_range_deg!r}")
        if not isinstance(self.anchor_stride, int) or self.anchor_stride < 1:
            raise TokenizerError(f"anchor_stride must be a positive integer, got {self.anchor_stride!r}")
        if not self.anchor_offsets or min(self.anchor_offsets) < 1 or len(set(self.anchor_offsets)) != len(self.anchor_offsets):
            raise TokenizerError(f"anchor_offsets must be distinct positive integers, got {self.anchor_offsets!r}")
        if self.max_distance_nm is not None and not (self.max_distance_nm > 0.5):
            raise TokenizerError(f"max_distance_nm must be None or > 0.5 nm, got {self.max_distance_nm!r}")
        if not isinstance(self.refine_iterations, int) or not 0 <= self.refine_iterations <= 50:
            raise TokenizerError(f"refine_iterations must be an integer in [0, 50], got {self.refine_iterations!r}")
        for name, lo, hi in (("skeleton_iterations", 0, 100), ("clash_iterations", 0, 10000), ("hinge_rounds", 0, 100)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise TokenizerError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
        for name in ("robust_scale_nm", "prior_scale", "hinge_tolerance_nm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
                raise TokenizerError(f"{name} must be a positive number, got {v!r}")
        if self.clash_floor_nm is not None and (isinstance(self.clash_floor_nm, bool)
                                                or not isinstance(self.clash_floor_nm, (int, float))
                                                or not 0.0 <= self.clash_floor_nm <= 0.5):
            raise TokenizerError(f"clash_floor_nm must be None or a distance in [0, 0.5] nm, got {self.clash_floor_nm!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise TokenizerError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.device, str) or not self.device:
            raise TokenizerError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
