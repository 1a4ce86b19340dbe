"""Excluded volume for decoded Calpha traces."""
from __future__ import annotations

import math

import torch

__all__ = ["min_angle_for_floor", "min_nonbonded_distance", "remove_clashes"]

CLASH_MARGIN_NM = 0.005
"""Distance (nm) beyond the floor to which clashing pairs are pushed, so that a pass ends clear of it."""
BOND_TOLERANCE_NM = 0.03
BOND_SWEEPS = 3
"""Bond- (and angle-) restoring sweeps after each push."""
"""Bond-length change (nm) the clash removal may leave; beyond it bonds are restored at the end."""



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
    are touched; at most ``n_iter`` passes, so the time is bounded. Frames
    still clashing then (a locally tangled chain the angles lock in) get up
    to ``n_iter`` more passes that restore only the bond lengths. A chain
    still tangled after that (random tokens) has its bonds restored, so it
    may keep a clash but never a chain break.

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
    if x.shape[1] < 3 or n_iter <= 0:
        return x
    rest = torch.linalg.vector_norm(x[:, 1:] - x[:, :-1], dim=-1)
    y = _project(_project(x, floor, n_iter, True), floor, n_iter, False)
    return _restore_bonds(y, rest, n_iter)


def _restore_bonds(x: torch.Tensor, rest: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Jacobi sweeps back to the bond lengths ``rest`` (nm) in frames the projection left off by more than
    :data:`BOND_TOLERANCE_NM` (a chain too tangled to clear in time keeps its bonds: no break)."""
    x = x.clone()
    lo = torch.arange(x.shape[1] - 1, device=x.device)
    for _ in range(n_iter):
        dv = x[:, 1:] - x[:, :-1]
        dl = torch.linalg.vector_norm(dv, dim=-1).clamp_min(1e-6)
        off = ((dl - rest).abs() > BOND_TOLERANCE_NM).any(1)
        if not bool(off.any()):
            break
        fr = torch.nonzero(off).squeeze(-1)
        corr = ((dl[fr] - rest[fr]) / dl[fr] * 0.5)[..., None] * dv[fr]
        disp = torch.zeros_like(x[fr])
        count = torch.zeros(disp.shape[:2], dtype=x.dtype, device=x.device)
        disp.index_add_(1, lo, corr)
        disp.index_add_(1, lo + 1, -corr)
        count.index_add_(1, lo, torch.ones_like(corr[..., 0]))
        count.index_add_(1, lo + 1, torch.ones_like(corr[..., 0]))
        x[fr] = x[fr] + disp / count[..., None]
    return x


def _project(x: torch.Tensor, floor: float, n_iter: int, keep_angles: bool) -> torch.Tensor:
    """Passes of :func:`remove_clashes`, restoring bonds and (``keep_angles``) the ``i, i + 2`` distances."""
    f, n, _ = x.shape
    upper = torch.ones((n, n), dtype=torch.bool, device=x.device).triu(2)  # pairs |i - j| >= 2
    a1 = torch.arange(n - 1, device=x.device)
    a2 = torch.arange(n - 2, device=x.device)
    rest1 = torch.linalg.vector_norm(x[:, a1 + 1] - x[:, a1], dim=-1)
    rest2 = torch.linalg.vector_norm(x[:, a2 + 2] - x[:, a2], dim=-1).clamp_min(floor + CLASH_MARGIN_NM)
    x = x.clone()
    todo = torch.arange(f, device=x.device)
    for _ in range(n_iter):
        xs = x[todo]
        d = torch.cdist(xs, xs, compute_mode="donot_use_mm_for_euclid_dist")
        clash = (d < floor) & upper
        still = clash.flatten(1).any(1)
        if not bool(still.any()):
            break
        todo, xs, d, clash = todo[still], xs[still], d[still], clash[still]
        fr, a, c = torch.nonzero(clash, as_tuple=True)  # frame-major: each frame sums in its own order
        dc = torch.linalg.vector_norm(xs[fr, c] - xs[fr, a], dim=-1)
        u = (xs[fr, c] - xs[fr, a]) / dc.clamp_min(1e-6)[:, None]
        push = ((floor + CLASH_MARGIN_NM - dc) * 0.5)[:, None] * u
        disp = torch.zeros_like(xs)
        count = torch.zeros(xs.shape[:2], dtype=xs.dtype, device=xs.device)
        disp.index_put_((fr, c), push, accumulate=True)
        disp.index_put_((fr, a), -push, accumulate=True)
        one = torch.ones_like(dc)
        count.index_put_((fr, c), one, accumulate=True)
        count.index_put_((fr, a), one, accumulate=True)
        xs = xs + disp / count.clamp_min(1.0)[..., None]
        for _ in range(BOND_SWEEPS):
            disp = torch.zeros_like(xs)
            count = torch.zeros(xs.shape[:2], dtype=xs.dtype, device=xs.device)
            for lo, off, rest in ((a1, 1, rest1[todo]), (a2, 2, rest2[todo]))[: 2 if keep_angles else 1]:
                dv = xs[:, lo + off] - xs[:, lo]
                dl = torch.linalg.vector_norm(dv, dim=-1).clamp_min(1e-6)
                corr = ((dl - rest) / dl * 0.5)[..., None] * dv
                disp.index_add_(1, lo, corr)
                disp.index_add_(1, lo + off, -corr)
                one = torch.ones_like(dl)
                count.index_add_(1, lo, one)
                count.index_add_(1, lo + off, one)
            xs = xs + disp / count.clamp_min(1.0)[..., None]
        x[todo] = xs
    return x
