"""Excluded volume for decoded Calpha traces."""
from __future__ import annotations

import math

import torch

__all__ = ["min_angle_for_floor", "min_nonbonded_distance", "remove_clashes"]

CLASH_MARGIN_NM = 0.005
"""Distance (nm) beyond the floor to which clashing pairs are pushed, so that a pass ends clear of it."""


def min_nonbonded_distance(xyz: torch.Tensor) -> torch.Tensor:
    """Smallest Calpha distance between residues at least two apart, per frame.

    Parameters
    ----------
    xyz : torch.Tensor, shape (f, n, 3)
        Calpha coordinates (nm), ``n >= 3``.

    Returns
    -------
    torch.Tensor, shape (f,)
        nm.
    """
    n = xyz.shape[1]
    i, j = torch.triu_indices(n, n, offset=2, device=xyz.device)
    return torch.linalg.vector_norm(xyz[:, j] - xyz[:, i], dim=-1).min(-1).values


def min_angle_for_floor(floor: float, bond: float) -> float:
    """Smallest bond angle (rad) that keeps atoms ``i`` and ``i + 2`` at least ``floor`` apart."""
    return 2.0 * math.asin(min(1.0, floor / (2.0 * bond)))


def remove_clashes(x: torch.Tensor, floor: float, n_iter: int) -> torch.Tensor:
    """Push apart Calpha atoms closer than ``floor``, keeping the chain's bonds and angles.

    A deterministic projection (Jacobi sweeps, frame by frame): every pair
    ``|i - j| >= 2`` closer than ``floor`` is moved apart symmetrically to
    ``floor + CLASH_MARGIN_NM``, then one sweep restores the bond lengths
    and the ``i, i + 2`` distances (so the bond angles) they had on entry
    (those below the floor are raised to it). Only frames that still clash
    are touched; at most ``n_iter`` passes, so the time is bounded.

    Parameters
    ----------
    x : torch.Tensor, shape (f, n, 3)
        Calpha coordinates (nm).
    floor : float
        Smallest allowed distance (nm) between non-bonded Calpha atoms.
    n_iter : int
        Largest number of passes.

    Returns
    -------
    torch.Tensor, shape (f, n, 3)
        Frames without a clash are returned unchanged.
    """
    f, n, _ = x.shape
    if n < 3 or n_iter <= 0:
        return x
    ii, jj = torch.triu_indices(n, n, offset=2, device=x.device)
    a1 = torch.arange(n - 1, device=x.device)
    a2 = torch.arange(n - 2, device=x.device)
    rest1 = torch.linalg.vector_norm(x[:, a1 + 1] - x[:, a1], dim=-1)
    rest2 = torch.linalg.vector_norm(x[:, a2 + 2] - x[:, a2], dim=-1).clamp_min(floor + CLASH_MARGIN_NM)
    x = x.clone()
    todo = torch.arange(f, device=x.device)
    for _ in range(n_iter):
        xs = x[todo]
        d = torch.linalg.vector_norm(xs[:, jj] - xs[:, ii], dim=-1)
        clash = d < floor
        still = clash.any(1)
        if not bool(still.any()):
            break
        todo, xs, d, clash = todo[still], xs[still], d[still], clash[still]
        u = (xs[:, jj] - xs[:, ii]) / d.clamp_min(1e-6)[..., None]
        push = ((floor + CLASH_MARGIN_NM - d) * 0.5 * clash)[..., None] * u
        disp = torch.zeros_like(xs)
        count = torch.zeros(xs.shape[:2], dtype=xs.dtype, device=xs.device)
        disp.index_add_(1, jj, push)
        disp.index_add_(1, ii, -push)
        cm = clash.to(xs.dtype)
        count.index_add_(1, jj, cm)
        count.index_add_(1, ii, cm)
        xs = xs + disp / count.clamp_min(1.0)[..., None]
        disp = torch.zeros_like(xs)
        count = torch.zeros(xs.shape[:2], dtype=xs.dtype, device=xs.device)
        for a, off, rest in ((a1, 1, rest1[todo]), (a2, 2, rest2[todo])):
            dv = xs[:, a + off] - xs[:, a]
            dl = torch.linalg.vector_norm(dv, dim=-1).clamp_min(1e-6)
            corr = ((dl - rest) / dl * 0.5)[..., None] * dv
            disp.index_add_(1, a, corr)
            disp.index_add_(1, a + off, -corr)
            one = torch.ones_like(dl)
            count.index_add_(1, a, one)
            count.index_add_(1, a + off, one)
        x[todo] = xs + disp / count.clamp_min(1.0)[..., None]
    return x
