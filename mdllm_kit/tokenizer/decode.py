"""Deterministic decoding: chain building, anchor refinement, backbone placement.

The decoder never sees a stored structure. It starts from the chain built
from the local tokens (bond angles and dihedrals at their bin centres, bond
lengths at the per-bond means measured in fitting) and then runs a fixed
number of Gauss-Newton iterations on the internal coordinates:

.. math::

    \\min_{\\Delta} \\sum_k w_k \\, (d_k(q_0 + \\Delta) - D_k)^2
    + \\sum_p \\lambda_p \\Delta_p^2

where ``D_k`` are the anchor distances carried by the tokens, ``d_k`` the
same distances in the current chain and ``lambda_p = 1 / sigma_p^2`` ties
every internal coordinate to its token (``sigma_p`` is the quantisation
error of its bin). Long-range anchors remove the drift that chain building
accumulates; every step is a closed-form linear solve of size
``n_anchors``, so the result is a deterministic function of the tokens and
each frame is decoded independently of the others in its batch.
"""
from __future__ import annotations

import math

import torch

from .geometry import anchor_jacobian, build_chain, pair_distances, plane_axes

__all__ = ["place_backbone", "refine_chain", "repair_hinges", "split_params"]


def split_params(q: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split packed internal coordinates ``(bonds, angles, dihedrals)`` of an ``n``-atom chain."""
    return q[:, : n - 1], q[:, n - 1 : 2 * n - 3], q[:, 2 * n - 3 :]


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def refine_chain(
    q0: torch.Tensor,
    sigma: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    sigma_distance: float,
    n_iter: int,
    repair: dict | None = None,
    robust_scale: float | None = None,
) -> torch.Tensor:
    """Build a chain from internal coordinates and fit it to anchor distances.

    Parameters
    ----------
    q0 : torch.Tensor, shape (n_frames, 3 * n - 6)
        Token-implied internal coordinates, packed as ``(bonds (n-1),
        angles (n-2), dihedrals (n-3))``; nm and rad.
    sigma : torch.Tensor, shape (3 * n - 6,)
        Allowed deviation of each internal coordinate from ``q0`` (nm, rad).
    pairs : torch.Tensor of int64, shape (k, 2)
        Anchor atom pairs ``(a, c)``, ``a < c``.
    target : torch.Tensor, shape (n_frames, k)
        Anchor distances from the tokens (nm).
    sigma_distance : float
        Allowed deviation of an anchor distance (nm).
    n_iter : int
        Gauss-Newton iterations (0: plain chain building).
    repair : dict, optional
        Keyword arguments ``angle_grid``, ``dihedral_grid``, ``tolerance``
        of :func:`repair_hinges`, run on the initial chain; repaired
        coordinates get the grid spacing as their ``sigma``.
    robust_scale : float, optional
        Anchor residual (nm) beyond which an anchor is down-weighted
        (Cauchy weights ``1 / (1 + (r / scale)^2)``), so that a wrong anchor
        token cannot bend the chain.

    Returns
    -------
    torch.Tensor, shape (n_frames, n, 3)
        Coordinates (nm), centred on their centroid.
    """
    n = (q0.shape[1] + 6) // 3
    inv_lam = (sigma**2).expand_as(q0)
    x = build_chain(*split_params(q0, n))
    if repair is not None:
        fixed = torch.zeros_like(q0, dtype=torch.bool)
        for _ in range(2):
            q0, now = repair_hinges(x, q0, pairs, target, **repair)
            if not now.any():
                break
            fixed |= now
            x = build_chain(*split_params(q0, n))
        if fixed.any():
            spacing = torch.zeros_like(sigma)
            spacing[n - 1 : 2 * n - 3] = float(repair["angle_grid"][1] - repair["angle_grid"][0])
            spacing[2 * n - 3 :] = float(repair["dihedral_grid"][1] - repair["dihedral_grid"][0])
            inv_lam = torch.where(fixed, spacing.expand_as(q0) ** 2, inv_lam)
            x = build_chain(*split_params(q0, n))
    q = q0.clone()
    w_inv = torch.full_like(target, sigma_distance**2)
    for _ in range(n_iter):
        jac = anchor_jacobian(x, pairs)  # (f, k, p)
        resid = target - pair_distances(x, pairs)
        if robust_scale is not None:
            w_inv = sigma_distance**2 * (1.0 + (resid / robust_scale) ** 2)
        dev = q - q0
        dev[:, 2 * n - 3 :] = _wrap(dev[:, 2 * n - 3 :])
        rhs = resid + torch.einsum("fkp,fp->fk", jac, dev)
        jl = jac * inv_lam.unsqueeze(1)
        a = torch.einsum("fkp,fjp->fkj", jl, jac) + torch.diag_embed(w_inv)
        y = torch.linalg.solve(a, rhs.unsqueeze(-1)).squeeze(-1)
        q = q0 + torch.einsum("fkp,fk->fp", jl, y)
        b, t, p = split_params(q, n)
        q[:, n - 1 : 2 * n - 3] = t.clamp(1e-3, math.pi - 1e-3)
        x = build_chain(*split_params(q, n))
    return x - x.mean(dim=1, keepdim=True)


def place_backbone(ca: torch.Tensor, angles: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Place N, C and O around a Calpha trace from peptide-plane angles.

    Parameters
    ----------
    ca : torch.Tensor, shape (n_frames, n, 3)
        Calpha coordinates (nm).
    angles : torch.Tensor, shape (n_frames, n - 1)
        Peptide-plane rotation angles (rad), see :func:`~.geometry.plane_angles`.
    templates : torch.Tensor, shape (6, 3)
        Local coordinates (nm) in the plane axes ``(e, p, q)`` of: C(i), O(i),
        N(i+1) relative to CA(i) for every peptide; N(0) relative to CA(0) in
        plane 0; C and O of the last residue relative to its CA in the last
        plane. Measured as means in fitting.

    Returns
    -------
    torch.Tensor, shape (n_frames, n, 4, 3)
        N, CA, C, O of every residue (nm).
    """
    f, n, _ = ca.shape
    ax = plane_axes(ca, angles)  # (f, n-1, 3, 3), rows e, p, q
    local = templates.to(ca.dtype)
    pos = torch.einsum("ac,ficd->fiad", local[:3], ax) + ca[:, :-1, None, :]  # C, O, N(i+1)
    out = ca.new_zeros((f, n, 4, 3))
    out[:, :, 1] = ca
    out[:, :-1, 2] = pos[:, :, 0]
    out[:, :-1, 3] = pos[:, :, 1]
    out[:, 1:, 0] = pos[:, :, 2]
    out[:, 0, 0] = ca[:, 0] + torch.einsum("c,fcd->fd", local[3], ax[:, 0])
    out[:, -1, 2] = ca[:, -1] + torch.einsum("c,fcd->fd", local[4], ax[:, -1])
    out[:, -1, 3] = ca[:, -1] + torch.einsum("c,fcd->fd", local[5], ax[:, -1])
    return out


def _rotate(v: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues rotation of vectors ``v`` about unit ``axis`` by ``angle`` (broadcasting)."""
    c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
    return v * c + torch.linalg.cross(axis.expand_as(v), v) * s + axis * (axis * v).sum(-1, keepdim=True) * (1 - c)


def repair_hinges(
    x: torch.Tensor,
    q0: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    angle_grid: torch.Tensor,
    dihedral_grid: torch.Tensor,
    tolerance: float,
    max_span: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Find single wrong angle or dihedral tokens and replace their values.

    A wrong bond angle or dihedral bends the chain at one joint (a hinge).
    Anchors between nearby landmarks (at most ``max_span`` landmarks apart)
    see it: all anchors that straddle the landmark segment holding the joint
    disagree with the chain. For every segment whose straddling anchors
    disagree by more than ``tolerance`` (RMS, nm), each joint of the segment
    is tried at every grid value (then on a finer grid around the best);
    the single change that brings the most straddling anchors within
    ``tolerance`` is kept if it brings in at least two (truncated quadratic
    score, robust to a second wrong token nearby). One wrong token is thus
    outvoted by the anchors around it instead of bending the whole chain.

    Parameters
    ----------
    x : torch.Tensor, shape (f, n, 3)
        Chain built from ``q0`` (nm).
    q0 : torch.Tensor, shape (f, 3 n - 6)
        Packed internal coordinates (see :func:`refine_chain`).
    pairs : torch.Tensor of int64, shape (k, 2)
        Anchor pairs; their residues are the landmarks.
    target : torch.Tensor, shape (f, k)
        Anchor distances from the tokens (nm).
    angle_grid, dihedral_grid : torch.Tensor, shape (g,)
        Candidate values (rad) tried for a suspect angle or dihedral.
    tolerance : float
        Anchor disagreement (nm) counted as consistent for anchors one
        landmark apart; ``sqrt(offset)`` times more for longer anchors.
    max_span : int
        Largest landmark offset of the anchors used.

    Returns
    -------
    q : torch.Tensor, shape (f, 3 n - 6)
        ``q0`` with repaired values.
    repaired : torch.Tensor of bool, shape (f, 3 n - 6)
        Which internal coordinates were replaced.
    """
    f, n, _ = x.shape
    q = q0.clone()
    repaired = torch.zeros_like(q0, dtype=torch.bool)
    lm = torch.unique(pairs)
    rank = torch.full((n,), -1, dtype=torch.long, device=x.device)
    rank[lm] = torch.arange(len(lm), device=x.device)
    la, lc = rank[pairs[:, 0]], rank[pairs[:, 1]]
    local = (lc - la) <= max_span
    dist = pair_distances(x, pairs)
    err = dist - target
    for m in range(len(lm) - 1):
        span = local & (la <= m) & (lc >= m + 1)
        k_idx = torch.nonzero(span).squeeze(-1)
        if k_idx.numel() < 2:
            continue
        tol = tolerance * (lc[k_idx] - la[k_idx]).to(x.dtype).sqrt()  # drift grows along the chain
        z = (err[:, k_idx] / tol).pow(2)
        cost = z.clamp(max=1.0).sum(-1)
        frames = torch.nonzero((z > 1.0).any(-1)).squeeze(-1)
        if frames.numel() == 0:
            continue
        lo, hi = int(lm[m]), int(lm[m + 1])
        xa = x[frames][:, pairs[k_idx, 0]]  # (q, ks, 3) fixed ends
        xc = x[frames][:, pairs[k_idx, 1]]  # moving ends
        tgt = target[frames][:, k_idx]
        best_cost = cost[frames]
        best = torch.full_like(best_cost, -1, dtype=torch.long)
        best_val = torch.zeros_like(best_cost)
        # joints whose rotation moves atoms > j for lo <= j < hi
        for j in range(lo, hi):
            cands = []
            if 1 <= j <= n - 2:  # bond angle at atom j: axis normal to the angle plane through x_j
                o = x[frames, j]
                ax = torch.linalg.cross(x[frames, j - 1] - o, x[frames, j + 1] - o)
                ax = ax / torch.linalg.vector_norm(ax, dim=-1, keepdim=True).clamp_min(1e-12)
                cands.append((n - 1 + (j - 1), o, ax, angle_grid))
            if 2 <= j <= n - 2:  # dihedral about bond (j-1, j): axis along it through x_j
                o = x[frames, j]
                ax = o - x[frames, j - 1]
                ax = ax / torch.linalg.vector_norm(ax, dim=-1, keepdim=True).clamp_min(1e-12)
                cands.append((2 * n - 3 + (j - 2), o, ax, dihedral_grid))
            for col, o, ax, grid in cands:
                v = (xc - o[:, None])[:, None]  # (q, 1, ks, 3)

                def scan(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                    delta = values - q[frames, col][:, None]  # (q, g)
                    moved = _rotate(v, ax[:, None, None], delta[:, :, None]) + o[:, None, None]
                    d = torch.linalg.vector_norm(moved - xa[:, None], dim=-1)  # (q, g, ks)
                    c = ((d - tgt[:, None]) / tol).pow(2).clamp(max=1.0).sum(-1)  # (q, g)
                    cmin, arg = c.min(dim=1)
                    return cmin, values.gather(1, arg[:, None]).squeeze(1)

                cmin, val = scan(grid[None, :].expand(len(frames), -1))
                step = grid[1] - grid[0]
                cmin, val = scan(val[:, None] + step * torch.linspace(-1.0, 1.0, 17, dtype=grid.dtype, device=grid.device))
                better = cmin < best_cost
                best_cost = torch.where(better, cmin, best_cost)
                best = torch.where(better, torch.full_like(best, col), best)
                best_val = torch.where(better, val, best_val)
        ok = (best >= 0) & (best_cost < cost[frames] - 2.5)
        if ok.any():
            fr, col = frames[ok], best[ok]
            q[fr, col] = best_val[ok]
            repaired[fr, col] = True
    return q, repaired
