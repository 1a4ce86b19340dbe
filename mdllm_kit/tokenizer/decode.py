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

Wrong tokens (a language model samples with noise) are handled before the
refinement, so that one wrong token distorts only its neighbourhood:

1. :func:`repair_hinges` replaces a single wrong angle or dihedral per
   landmark segment by the value that the anchors around it agree on.
2. :func:`segment_badness` flags segments whose straddling nearby anchors
   mostly disagree with the chain (several wrong tokens close together, or
   one the repair could not place); :func:`realign_segments` re-places the
   chain after each as a rigid body fitted to those anchors
   (:func:`fit_rigid_to_anchors`, robust, from fixed starting rotations),
   and the segment's angles and dihedrals are freed in the refinement.
   This test and realignment run up to ``REALIGN_ROUNDS`` times.
3. A repair can fit nearby anchors with a wrong value when wrong tokens
   cluster; frames the repair changed are decoded again without it and the
   result agreeing clearly better with all anchors is kept.

Every choice depends only on the frame's own tokens, in a fixed order, so
decoding stays deterministic and batch-independent.
"""
from __future__ import annotations

import math

import torch

from .geometry import anchor_gradients, build_chain, internal_coordinates, joint_twists, pair_distances, plane_axes

__all__ = ["fit_rigid_to_anchors", "place_backbone", "realign_segments", "refine_chain", "repair_hinges", "rotation_grid", "segment_badness", "split_params"]

REPAIR_PASSES = 2
"""Rounds of :func:`repair_hinges` (each fixes at most one joint per landmark segment)."""
REALIGN_ROUNDS = 3
"""Rounds of corruption test and realignment (later rounds only on frames realigned before)."""
REPAIR_GAIN = 2.5
"""Truncated anchor cost a single-joint repair must remove to be accepted (about three anchors)."""
REPAIR_MIN_VIOLATED = 3
"""Anchors across a landmark segment that must be violated before the repair searches it."""
SELECT_MARGIN = 2.0 * math.log1p(9.0)
"""Robust anchor cost (sum of ``log(1 + (r / tolerance)^2)``) by which decoding without the repair
must beat decoding with it to be chosen: about two anchors off by three tolerances."""


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
    realign: dict | None = None,
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
        Keyword arguments ``angle_grid``, ``dihedral_grid``, ``tolerance``,
        ``max_span`` of :func:`repair_hinges`, run on the initial chain; repaired
        coordinates get the grid spacing as their ``sigma``.
    robust_scale : float, optional
        Anchor residual (nm) beyond which an anchor is down-weighted
        (Cauchy weights ``1 / (1 + (r / scale)^2)``), so that a wrong anchor
        token cannot bend the chain.
    realign : dict, optional
        Settings of the corruption test and realignment (see the module
        docstring): ``tolerance`` (nm), ``detect_span``, ``fraction``,
        ``rotations`` (r, 3, 3), ``iterations``, ``scale`` (nm),
        ``fit_span``, ``loose_sigma`` (rad), ``extra_iterations``.

    Returns
    -------
    torch.Tensor, shape (n_frames, n, 3)
        Coordinates (nm), centred on their centroid.
    """
    n = (q0.shape[1] + 6) // 3
    inv_lam = (sigma**2).expand_as(q0).clone()
    x, repaired = _decode_candidate(q0, inv_lam, sigma, pairs, target, sigma_distance, n_iter, repair, robust_scale, realign)
    if repair is not None and realign is not None:
        # a repair can fit the nearby anchors with a wrong value when several tokens are wrong close
        # together; decode those frames again without it and keep what agrees better with all anchors
        scale = realign["tolerance"]
        cost_a = torch.log1p(((pair_distances(x, pairs) - target) / scale) ** 2).sum(-1)
        fr = torch.nonzero(repaired & (cost_a > SELECT_MARGIN)).squeeze(-1)  # else the other cannot win
        if fr.numel():
            xb, _ = _decode_candidate(
                q0[fr], inv_lam[fr], sigma, pairs, target[fr], sigma_distance, n_iter, None, robust_scale, realign,
            )
            cost_b = torch.log1p(((pair_distances(xb, pairs) - target[fr]) / scale) ** 2).sum(-1)
            x = x.clone()
            x[fr] = torch.where((cost_b < cost_a[fr] - SELECT_MARGIN)[:, None, None], xb, x[fr])
    return x - x.mean(dim=1, keepdim=True)


def _decode_candidate(
    q0: torch.Tensor,
    inv_lam: torch.Tensor,
    sigma: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    sigma_distance: float,
    n_iter: int,
    repair: dict | None,
    robust_scale: float | None,
    realign: dict | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding pass of :func:`refine_chain`: repair, realignment, Gauss-Newton.

    Returns
    -------
    x : torch.Tensor, shape (f, n, 3)
        Chain (nm), not centred.
    repaired : torch.Tensor of bool, shape (f,)
        Frames in which the repair changed a token value.
    """
    n = (q0.shape[1] + 6) // 3
    x = build_chain(*split_params(q0, n))
    repaired = torch.zeros(q0.shape[0], dtype=torch.bool, device=q0.device)
    if repair is not None:
        fixed = torch.zeros_like(q0, dtype=torch.bool)
        for _ in range(REPAIR_PASSES):
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
            repaired = fixed.any(1)
    q, q0, inv_lam, x = q0.clone(), q0.clone(), inv_lam.clone(), x.clone()
    if realign is None:
        x, q = _gauss_newton(x, q, q0, inv_lam, pairs, target, sigma_distance, n_iter, robust_scale)
        return x, repaired
    frames = torch.arange(x.shape[0], device=x.device)
    for round_ in range(REALIGN_ROUNDS):
        # later rounds look again at frames realigned before, now that their chain is refined
        frames = _realign_frames(x, q, q0, inv_lam, pairs, target, realign, frames)
        if round_ == 0:
            x, q = _gauss_newton(x, q, q0, inv_lam, pairs, target, sigma_distance, n_iter, robust_scale)
        if frames.numel() == 0:
            break
        if realign["extra_iterations"]:
            x[frames], q[frames] = _gauss_newton(
                x[frames], q[frames], q0[frames], inv_lam[frames], pairs, target[frames], sigma_distance,
                realign["extra_iterations"], robust_scale,
            )
    return x, repaired


def _realign_frames(
    x: torch.Tensor,
    q: torch.Tensor,
    q0: torch.Tensor,
    inv_lam: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    realign: dict,
    frames: torch.Tensor,
) -> torch.Tensor:
    """Realign the corrupt segments of ``frames`` in place (``x``, ``q``, ``q0``, ``inv_lam``).

    The angles and dihedrals of a corrupt segment get the realigned chain's
    values as prior centre and ``loose_sigma`` as allowed deviation.

    Returns
    -------
    torch.Tensor of int64
        The frames (indices into the batch) that had a corrupt segment.
    """
    n = x.shape[1]
    bad = segment_badness(x[frames], pairs, target[frames], realign["tolerance"], realign["detect_span"])
    bad = bad > realign["fraction"]
    hit = bad.any(1)
    fr, bad = frames[hit], bad[hit]
    if fr.numel() == 0:
        return fr
    xr = realign_segments(
        x[fr], pairs, target[fr], bad, realign["rotations"], realign["iterations"], realign["scale"], realign["fit_span"],
    )
    qs = torch.cat(internal_coordinates(xr), dim=1)
    lm = torch.unique(pairs)
    seg = (torch.bucketize(_pivots(n, x.device), lm, right=True) - 1).clamp(0, len(lm) - 2)
    loose = bad[:, seg]
    loose[:, : n - 1] = False  # bond lengths keep their prior (their mean)
    q0[fr] = torch.where(loose, qs, q0[fr])
    inv_lam[fr] = torch.where(loose, torch.full_like(qs, realign["loose_sigma"] ** 2), inv_lam[fr])
    q[fr] = qs
    x[fr] = build_chain(*split_params(qs, n))
    return fr


def _pivots(n: int, device: torch.device) -> torch.Tensor:
    """Atom after which each packed internal coordinate moves the chain, shape (3 n - 6,)."""
    return torch.cat((torch.arange(n - 1), torch.arange(1, n - 1), torch.arange(2, n - 1))).to(device)


def _gauss_newton(
    x: torch.Tensor,
    q: torch.Tensor,
    q0: torch.Tensor,
    inv_lam: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    sigma_distance: float,
    n_iter: int,
    robust_scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Newton steps of :func:`refine_chain` from ``q`` (chain ``x``); returns the new chain and ``q``.

    Anchors join landmarks, so every internal coordinate between two
    landmarks moves the same anchors, as the twist it applies: the
    normal matrix ``J diag(inv_lam) J^T`` (k x k) is assembled from one 6 x 6
    twist covariance per landmark segment instead of the full Jacobian,
    ``O(k^2 m)`` instead of ``O(k^2 n)`` (``m`` segments).
    """
    f, n, _ = x.shape
    lm, _, st = _local_straddle(pairs, n, n)  # st: (m, k)
    seg = (torch.bucketize(_pivots(n, x.device), lm, right=True) - 1).clamp(0, len(lm) - 2)
    onehot = torch.nn.functional.one_hot(seg, len(lm) - 1).to(x.dtype).T  # (m, p)
    stf = st.T.to(x.dtype)  # (k, m)
    m = stf.shape[1]
    w_inv = torch.full_like(target, sigma_distance**2)
    for _ in range(n_iter):
        tau = joint_twists(x)  # (f, p, 6)
        g = anchor_gradients(x, pairs)  # (f, k, 6)
        resid = target - pair_distances(x, pairs)
        if robust_scale is not None:
            w_inv = sigma_distance**2 * (1.0 + (resid / robust_scale) ** 2)
        dev = q - q0
        dev[:, 2 * n - 3 :] = _wrap(dev[:, 2 * n - 3 :])
        cov = torch.einsum("sp,fpij->fsij", onehot, (tau * inv_lam[..., None]).unsqueeze(-1) * tau.unsqueeze(-2))
        shift = torch.einsum("sp,fpi->fsi", onehot, tau * dev[..., None])  # (f, m, 6)
        rhs = resid + (torch.einsum("fki,fsi->fks", g, shift) * stf).sum(-1)
        left = (torch.einsum("fki,fsij->fksj", g, cov) * stf[None, :, :, None]).reshape(f, -1, m * 6)
        right = (g[:, :, None, :] * stf[None, :, :, None]).reshape(f, -1, m * 6)
        a = left @ right.transpose(1, 2) + torch.diag_embed(w_inv)
        y = torch.linalg.solve(a, rhs.unsqueeze(-1)).squeeze(-1)
        h = torch.einsum("fk,ks,fki->fsi", y, stf, g)  # (f, m, 6)
        q = q0 + inv_lam * (tau * h[:, seg]).sum(-1)
        b, t, p = split_params(q, n)
        q[:, n - 1 : 2 * n - 3] = t.clamp(1e-3, math.pi - 1e-3)
        x = build_chain(*split_params(q, n))
    return x, q


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
        # a wrong joint upsets every anchor across it; fewer than REPAIR_MIN_VIOLATED is drift or a wrong anchor
        frames = torch.nonzero(((z > 1.0).sum(-1) >= REPAIR_MIN_VIOLATED) & (cost > REPAIR_GAIN)).squeeze(-1)
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
        ok = (best >= 0) & (best_cost < cost[frames] - REPAIR_GAIN)
        if ok.any():
            fr, col = frames[ok], best[ok]
            q[fr, col] = best_val[ok]
            repaired[fr, col] = True
    return q, repaired


# --------------------------------------------------------------- realignment
def _local_straddle(pairs: torch.Tensor, n: int, max_span: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Landmarks, landmark ranks of the anchor ends, and which anchors straddle which segment.

    Returns
    -------
    lm : torch.Tensor of int64, shape (m + 1,)
        Landmark residues (sorted); segment ``s`` runs from ``lm[s]`` to ``lm[s + 1]``.
    span : torch.Tensor of int64, shape (k,)
        Landmark offset of each anchor.
    straddle : torch.Tensor of bool, shape (m, k)
        Anchor ``k`` straddles segment ``s`` and spans at most ``max_span`` landmarks.
    """
    lm = torch.unique(pairs)
    rank = torch.full((n,), -1, dtype=torch.long, device=pairs.device)
    rank[lm] = torch.arange(len(lm), device=pairs.device)
    la, lc = rank[pairs[:, 0]], rank[pairs[:, 1]]
    s = torch.arange(len(lm) - 1, device=pairs.device)[:, None]
    straddle = (la[None] <= s) & (lc[None] > s) & ((lc - la)[None] <= max_span)
    return lm, lc - la, straddle


def segment_badness(x: torch.Tensor, pairs: torch.Tensor, target: torch.Tensor, tolerance: float,
                    max_span: int = 3) -> torch.Tensor:
    """Share of the nearby anchors straddling each landmark segment that disagree with the chain.

    A wrong local token inside segment ``s`` bends the chain there, so every
    anchor straddling ``s`` disagrees; a wrong token in a neighbouring
    segment upsets only some of them, a wrong anchor token only one.

    Parameters
    ----------
    x : torch.Tensor, shape (f, n, 3)
        Chain (nm).
    pairs : torch.Tensor of int64, shape (k, 2)
        Anchor pairs.
    target : torch.Tensor, shape (f, k)
        Anchor distances from the tokens (nm).
    tolerance : float
        Disagreement (nm) tolerated for anchors one landmark apart,
        ``sqrt(span)`` times more for longer ones.
    max_span : int
        Largest landmark offset of the anchors counted.

    Returns
    -------
    torch.Tensor, shape (f, m)
        Fraction in [0, 1] per segment (0 where no anchor straddles it).
    """
    lm, span, st = _local_straddle(pairs, x.shape[1], max_span)
    err = (pair_distances(x, pairs) - target).abs() / (tolerance * span.to(x.dtype).sqrt())
    off = (err > 1.0).to(x.dtype)
    # a joint turning about the segment's first landmark leaves the anchors from that landmark intact:
    # also score the anchors that start before it
    rank = torch.searchsorted(lm, pairs[:, 0].contiguous())
    inner = st & (rank[None] < torch.arange(st.shape[0], device=x.device)[:, None])
    out = []
    for m in (st, inner):
        mf = m.to(x.dtype)
        out.append(torch.where(mf.sum(1) > 0, (off @ mf.T) / mf.sum(1).clamp_min(1.0), torch.zeros_like(off[:, :1])))
    return torch.maximum(*out)


def rotation_grid(count: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Deterministic, evenly spread rotation matrices (super-Fibonacci quaternions, Alexa 2022).

    Returns
    -------
    torch.Tensor, shape (count, 3, 3)
    """
    phi, psi = math.sqrt(2.0), 1.533751168755204288118041
    s = torch.arange(count, dtype=dtype, device=device) + 0.5
    r, big_r = torch.sqrt(s / count), torch.sqrt(1.0 - s / count)
    a, b = 2 * math.pi * s / phi, 2 * math.pi * s / psi
    x, y, z, w = r * torch.sin(a), r * torch.cos(a), big_r * torch.sin(b), big_r * torch.cos(b)
    return torch.stack((
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ), dim=-1).reshape(count, 3, 3)


def _axis_angle(omega: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of rotation vectors ``omega`` (..., 3) (Rodrigues)."""
    theta = torch.linalg.vector_norm(omega, dim=-1, keepdim=True)
    k = omega / theta.clamp_min(1e-12)
    kx = torch.zeros(omega.shape[:-1] + (3, 3), dtype=omega.dtype, device=omega.device)
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - kx.transpose(-1, -2)
    t = theta.unsqueeze(-1)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return eye + torch.sin(t) * kx + (1 - torch.cos(t)) * (kx @ kx)


def fit_rigid_to_anchors(
    fixed: torch.Tensor,
    moving: torch.Tensor,
    target: torch.Tensor,
    pivot: torch.Tensor,
    rotations: torch.Tensor,
    iterations: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rigid motion of a body that best restores its distances to fixed points.

    Robust (Cauchy) Gauss-Newton on the 6 rigid-body degrees of freedom,
    started from every rotation of ``rotations`` about ``pivot``; the start
    with the lowest final robust cost wins, so the result does not depend on
    how badly the body was placed.

    Parameters
    ----------
    fixed : torch.Tensor, shape (b, k, 3)
        Fixed ends of the anchors (nm).
    moving : torch.Tensor, shape (b, k, 3)
        Anchor ends on the moving body (nm).
    target : torch.Tensor, shape (b, k)
        Anchor distances (nm); ``nan`` marks padding.
    pivot : torch.Tensor, shape (b, 3)
        Point of the body the rotations turn about (nm).
    rotations : torch.Tensor, shape (r, 3, 3)
        Starting rotations.
    iterations : int
        Gauss-Newton steps per start.
    scale : float
        Cauchy scale of the anchor residuals (nm).

    Returns
    -------
    rot : torch.Tensor, shape (b, 3, 3)
    shift : torch.Tensor, shape (b, 3)
        The motion ``y -> rot @ (y - pivot) + pivot + shift`` (nm).
    """
    b, k, _ = moving.shape
    r = rotations.shape[0]
    valid = ~torch.isnan(target)
    tgt = torch.nan_to_num(target)[:, None].expand(b, r, k)
    rel = (moving - pivot[:, None])[:, None]  # (b, 1, k, 3)
    rot = rotations[None].expand(b, r, 3, 3).clone()
    shift = moving.new_zeros((b, r, 3))
    fx = fixed[:, None]
    vmask = valid[:, None].to(moving.dtype)

    def residual(rot_: torch.Tensor, shift_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = torch.einsum("brij,bokj->brki", rot_, rel)  # body vectors from the (moved) pivot
        d = v + pivot[:, None, None] + shift_[:, :, None] - fx
        dist = torch.linalg.vector_norm(d, dim=-1)
        return v, d / dist.clamp_min(1e-9)[..., None], (dist - tgt) * vmask

    eye = 1e-6 * torch.eye(6, dtype=moving.dtype, device=moving.device)
    for _ in range(iterations):
        v, u, res = residual(rot, shift)
        w = vmask / (1.0 + (res / scale) ** 2)
        jac = torch.cat((torch.linalg.cross(v, u), u), dim=-1)  # (b, r, k, 6)
        jw = jac * w[..., None]
        a = jw.transpose(-1, -2) @ jac + eye
        g = (jw * res[..., None]).sum(-2)
        step = -torch.linalg.solve(a, g.unsqueeze(-1)).squeeze(-1)
        rot = _axis_angle(step[..., :3]) @ rot
        shift = shift + step[..., 3:]
    _, _, res = residual(rot, shift)
    cost = (torch.log1p((res / scale) ** 2) * vmask).sum(-1)  # (b, r)
    best = cost.argmin(dim=1)
    idx = torch.arange(b, device=moving.device)
    return rot[idx, best], shift[idx, best]


def realign_segments(
    x: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    bad: torch.Tensor,
    rotations: torch.Tensor,
    iterations: int,
    scale: float,
    max_span: int,
) -> torch.Tensor:
    """Re-place the chain after each corrupt segment from the anchors around it.

    For each flagged segment (N- to C-terminal, vectorised over frames),
    the rest of the chain after it is moved as a rigid body so that the
    anchors spanning at most ``max_span`` landmarks across the segment hold
    (:func:`fit_rigid_to_anchors`); the atoms inside the segment up to one
    of its joints stay, the rest move with the body, the joint chosen where
    the bond left open is closest to its length before (for a single wrong
    joint: exactly that joint). The tokens of a corrupt segment thus only
    distort that segment, never the rest of the chain; the refinement that
    follows closes the bond and fits the segment to its anchors.

    Parameters
    ----------
    x : torch.Tensor, shape (f, n, 3)
        Chain (nm).
    pairs : torch.Tensor of int64, shape (k, 2)
    target : torch.Tensor, shape (f, k)
        Anchor distances (nm).
    bad : torch.Tensor of bool, shape (f, m)
        Segments to realign.
    rotations : torch.Tensor, shape (r, 3, 3)
        Starting rotations of the rigid fit.
    iterations : int
        Gauss-Newton steps of the rigid fit.
    scale : float
        Cauchy scale of the anchor residuals (nm).
    max_span : int
        Largest landmark offset of the anchors used.

    Returns
    -------
    torch.Tensor, shape (f, n, 3)
    """
    f, n, _ = x.shape
    lm, _, st = _local_straddle(pairs, n, max_span)
    x = x.clone()
    ar = torch.arange(n, device=x.device)
    for s in range(bad.shape[1]):
        fr = torch.nonzero(bad[:, s]).squeeze(-1)
        ks = torch.nonzero(st[s]).squeeze(-1)
        if fr.numel() == 0 or ks.numel() < 3:
            continue
        lo, hi = int(lm[s]), int(lm[s + 1])
        xf = x[fr]
        pivot = xf[:, hi]
        rot, shift = fit_rigid_to_anchors(
            xf[:, pairs[ks, 0]], xf[:, pairs[ks, 1]], target[fr][:, ks], pivot, rotations, iterations, scale,
        )
        moved = torch.einsum("bij,bnj->bni", rot, xf[:, lo + 1 :] - pivot[:, None]) + (pivot + shift)[:, None]
        # the segment's atoms keep either their old place or the moved one; the switch goes where the
        # bond it leaves is closest to the chain's own bond (at a single wrong joint: exactly there)
        up = xf[:, lo:hi]  # atoms lo .. hi-1 in place
        dn = moved[:, : hi - lo]  # atoms lo+1 .. hi moved
        bond = torch.linalg.vector_norm(xf[:, lo + 1 : hi + 1] - xf[:, lo:hi], dim=-1)
        gap = (torch.linalg.vector_norm(dn - up, dim=-1) - bond).abs()  # (b, hi - lo): switch after atom lo + j
        j = gap.argmin(dim=1)
        w = ((ar[lo + 1 :][None] - lo - 1) >= j[:, None]).to(x.dtype)[..., None]
        x[fr, lo + 1 :] = (1 - w) * xf[:, lo + 1 :] + w * moved
    return x
