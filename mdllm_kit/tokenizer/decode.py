"""Deterministic decoding: skeleton first, local detail second, excluded volume last.

Tokens that a language model samples disagree with each other a little
everywhere and a lot in a few places. The decoder therefore never trusts
the chain that the local tokens build on their own (its small errors add up
along the chain); it finds the physically valid Calpha trace that agrees
best with all tokens together:

1. The **landmark skeleton** from the anchor tokens alone
   (:func:`~.skeleton.landmark_skeleton`): the global shape, robust to a
   wrong anchor, in the handedness the local chain has.
2. **Hinge repair** (:func:`~.hinges.repair_hinges`): single wrong angle or
   dihedral tokens that the skeleton contradicts are found (one joint at a
   time) and replaced in the starting chain.
3. The **fill** (:func:`~.skeleton.fill_chain`): that chain placed onto the
   skeleton by rigid fits of overlapping landmark windows.
4. **Refinement** (:func:`refine`): damped Gauss-Newton on the internal
   coordinates from there, anchors to the skeleton's distances, bonds to
   their means and every angle and dihedral tied to its token,

   .. math::

       \\min_q \\sum_k (d_k(q) - D_k)^2 / \\sigma_D^2 + \\sum_b (b - \\bar b)^2 / \\sigma_b^2
       + \\sum_p c^2 \\log(1 + (q_p - q^0_p)^2 / (c \\sigma_p)^2)

   with Cauchy weights (``c = prior_scale``) so that a token far from the
   consensus of the others is outvoted instead of bending the chain.
5. **Excluded volume** (:func:`~.clashes.remove_clashes`): no two Calpha
   atoms closer than the floor measured on the fitting frames.

Every step is a fixed number of batched operations per frame, so decoding
is deterministic, batch-independent and bounded in time; no structure is
stored (an unseen conformation decodes as well as a seen one). Linear
systems are solved in closed form (3 x 3) or by Cholesky factorisation,
never by pivoted LU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .clashes import remove_clashes
from .geometry import anchor_gradients, build_chain, internal_coordinates, joint_twists, pair_distances, plane_axes
from .hinges import repair_hinges
from .skeleton import fill_chain, landmark_skeleton

__all__ = ["DecodeSettings", "decode_chain", "place_backbone", "refine", "split_params"]

LINE_SEARCH = (1.0, 0.5, 0.25)
"""Step fractions tried by :func:`refine`, largest first; a frame keeps the first that lowers its cost."""
BOND_RESET_NM = 0.015
"""Largest change of a bond length (nm) from its mean: beyond it a bond of the filled chain is reset to
the mean, and refinement keeps every bond within it."""
BOND_SIGMAS = 3.0
"""Refinement keeps every bond within this many fitted bond-length spreads of its mean (or
:data:`BOND_RESET_NM`, whichever is more)."""
CONVERGED = 1e-3
"""Relative fall of a frame's cost in one :func:`refine` iteration below which the frame is done."""
CONVERGED_ABS = 0.5
"""Absolute fall of the cost (in squared quantisation errors) below which a frame is done."""


@dataclass(frozen=True)
class DecodeSettings:
    """Numerical settings of :func:`decode_chain` (taken from the tokenizer config and fit).

    Attributes
    ----------
    refine_iterations : int
        Gauss-Newton iterations of :func:`refine` (0: the filled skeleton as it is).
    skeleton_iterations : int
        Gauss-Newton iterations of each landmark-skeleton fit.
    robust_scale_nm : float
        Anchor residual (nm) beyond which an anchor token is down-weighted in the skeleton fit.
    prior_scale : float
        Deviation of an internal coordinate from its token, in quantisation errors, beyond which
        the token is down-weighted in refinement.
    clash_floor_nm : float
        Smallest distance (nm) allowed between Calpha atoms at least two residues apart.
    clash_iterations : int
        Largest number of passes of :func:`~.clashes.remove_clashes`.
    hinge_tolerance_nm : float
        Window misfit (nm) above which the starting chain is searched for a wrong joint.
    hinge_rounds : int
        Largest number of joints repaired per frame in the starting chain.
    min_angle : float
        Smallest bond angle (rad) of the token-implied chain (angles that would put atoms ``i`` and
        ``i + 2`` closer than the floor are raised to it); the clash removal enforces it on the result.
    """

    refine_iterations: int
    skeleton_iterations: int
    robust_scale_nm: float
    prior_scale: float
    clash_floor_nm: float
    clash_iterations: int
    hinge_tolerance_nm: float
    hinge_rounds: int
    min_angle: float


def split_params(q: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split packed internal coordinates ``(bonds, angles, dihedrals)`` of an ``n``-atom chain."""
    return q[:, : n - 1], q[:, n - 1 : 2 * n - 3], q[:, 2 * n - 3 :]


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def _pivots(n: int, device: torch.device) -> torch.Tensor:
    """Atom after which each packed internal coordinate moves the chain, shape (3 n - 6,)."""
    return torch.cat((torch.arange(n - 1), torch.arange(1, n - 1), torch.arange(2, n - 1))).to(device)


def _straddle(pairs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks (sorted residues) and which anchors straddle which landmark segment, shape (m - 1, k)."""
    lm, lm_pairs = landmark_pairs(pairs, n)
    s = torch.arange(len(lm) - 1, device=pairs.device)[:, None]
    return lm, (lm_pairs[None, :, 0] <= s) & (lm_pairs[None, :, 1] > s)


def landmark_pairs(pairs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmark residues and the anchors as landmark-index pairs.

    Parameters
    ----------
    pairs : torch.Tensor of int64, shape (k, 2)
        Anchor residue pairs.
    n : int
        Residues.

    Returns
    -------
    landmarks : torch.Tensor of int64, shape (m,)
    lm_pairs : torch.Tensor of int64, shape (k, 2)
    """
    lm = torch.unique(pairs)
    rank = torch.full((n,), -1, dtype=torch.long, device=pairs.device)
    rank[lm] = torch.arange(len(lm), device=pairs.device)
    return lm, torch.stack((rank[pairs[:, 0]], rank[pairs[:, 1]]), dim=1)


def refine(
    x: torch.Tensor,
    q: torch.Tensor,
    q0: torch.Tensor,
    sigma: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    sigma_distance: float,
    n_iter: int,
    prior_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Damped Gauss-Newton on internal coordinates (the refinement of the module docstring).

    Anchors join landmarks, so every internal coordinate between two
    landmarks moves the same anchors, as the twist it applies: the normal
    matrix ``J diag(inv_lam) J^T`` (k x k) is assembled from one 6 x 6 twist
    covariance per landmark segment, ``O(k^2 m)`` instead of ``O(k^2 n)``.
    Each iteration re-weights the token prior (Cauchy), solves by Cholesky
    and keeps, per frame, the largest step of :data:`LINE_SEARCH` that
    lowers the frame's cost.

    Parameters
    ----------
    x : torch.Tensor, shape (f, n, 3)
        Start chain (nm), built from ``q``.
    q : torch.Tensor, shape (f, 3 n - 6)
        Its packed internal coordinates (bonds, angles, dihedrals; nm, rad).
    q0 : torch.Tensor, shape (f, 3 n - 6)
        Token-implied internal coordinates.
    sigma : torch.Tensor, shape (3 n - 6,)
        Quantisation error of each internal coordinate (nm, rad).
    pairs : torch.Tensor of int64, shape (k, 2)
        Anchor residue pairs.
    target : torch.Tensor, shape (f, k)
        Anchor distances to fit (nm).
    sigma_distance : float
        Allowed deviation of an anchor distance (nm).
    n_iter : int
    prior_scale : float
        Cauchy scale of the token prior, in units of ``sigma``.

    Bond lengths stay within :data:`BOND_SIGMAS` fitted spreads (at least :data:`BOND_RESET_NM`) of their mean.

    Returns
    -------
    x : torch.Tensor, shape (f, n, 3)
    q : torch.Tensor, shape (f, 3 n - 6)
    """
    f, n, _ = x.shape
    lm, st = _straddle(pairs, n)
    seg = (torch.bucketize(_pivots(n, x.device), lm, right=True) - 1).clamp(0, len(lm) - 2)
    onehot = torch.nn.functional.one_hot(seg, len(lm) - 1).to(x.dtype).T  # (m, p)
    stf = st.T.to(x.dtype)  # (k, m)
    m = stf.shape[1]
    s2 = sigma**2
    token_mask = torch.arange(3 * n - 6, device=x.device) >= n - 1  # angles and dihedrals
    bond_room = (BOND_SIGMAS * sigma[: n - 1]).clamp_min(BOND_RESET_NM)

    def deviation(qq: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        dev = qq - ref
        dev[:, 2 * n - 3 :] = _wrap(dev[:, 2 * n - 3 :])
        return dev

    def cost(xx: torch.Tensor, qq: torch.Tensor, ref: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        r = (tgt - pair_distances(xx, pairs)) / sigma_distance
        z = deviation(qq, ref) / sigma
        # anchors (the skeleton's, already robust) and bond lengths (not tokens): quadratic; tokens: Cauchy
        return ((r**2).sum(-1) + (z[:, : n - 1] ** 2).sum(-1)
                + prior_scale**2 * torch.log1p((z[:, n - 1 :] / prior_scale) ** 2).sum(-1))

    def step(xx: torch.Tensor, qq: torch.Tensor, cc: torch.Tensor, ref: torch.Tensor, tgt: torch.Tensor):
        fa = xx.shape[0]
        tau = joint_twists(xx)  # (f, p, 6)
        g = anchor_gradients(xx, pairs)  # (f, k, 6)
        resid = tgt - pair_distances(xx, pairs)
        dev = deviation(qq, ref)
        inv_lam = s2 * (1.0 + (dev / (prior_scale * sigma)) ** 2) * token_mask
        inv_lam = inv_lam + s2 * ~token_mask
        cov = torch.einsum("sp,fpij->fsij", onehot, (tau * inv_lam[..., None]).unsqueeze(-1) * tau.unsqueeze(-2))
        shift = torch.einsum("sp,fpi->fsi", onehot, tau * dev[..., None])  # (f, m, 6)
        rhs = resid + (torch.einsum("fki,fsi->fks", g, shift) * stf).sum(-1)
        left = (torch.einsum("fki,fsij->fksj", g, cov) * stf[None, :, :, None]).reshape(fa, -1, m * 6)
        right = (g[:, :, None, :] * stf[None, :, :, None]).reshape(fa, -1, m * 6)
        normal = left @ right.transpose(1, 2) + torch.diag_embed(torch.full_like(tgt, sigma_distance**2))
        chol, info = torch.linalg.cholesky_ex(normal)
        y = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
        h = torch.einsum("fk,ks,fki->fsi", y, stf, g)  # (f, m, 6)
        delta = ref + inv_lam * (tau * h[:, seg]).sum(-1) - qq
        delta[:, 2 * n - 3 :] = _wrap(delta[:, 2 * n - 3 :])
        delta = torch.where(torch.isfinite(delta) & (info == 0)[:, None], delta, torch.zeros_like(delta))
        best_x, best_q, best_c = xx, qq, cc
        taken = torch.zeros(fa, dtype=torch.bool, device=xx.device)
        for alpha in LINE_SEARCH:  # each frame takes the largest step that lowers its own cost
            q_new = qq + alpha * delta
            q_new[:, n - 1 : 2 * n - 3] = q_new[:, n - 1 : 2 * n - 3].clamp(1e-3, math.pi - 1e-3)
            q_new[:, : n - 1] = torch.minimum(torch.maximum(q_new[:, : n - 1], ref[:, : n - 1] - bond_room),
                                              ref[:, : n - 1] + bond_room)
            x_new = build_chain(*split_params(q_new, n))
            c_new = cost(x_new, q_new, ref, tgt)
            better = (c_new < cc) & ~taken
            best_x = torch.where(better[:, None, None], x_new, best_x)
            best_q = torch.where(better[:, None], q_new, best_q)
            best_c = torch.where(better, c_new, best_c)
            taken |= better
            if bool(taken.all()):
                break
        return best_x, best_q, best_c

    x, q = x.clone(), q.clone()
    current = cost(x, q, q0, target)
    active = torch.arange(f, device=x.device)
    for _ in range(n_iter):
        if active.numel() == 0:
            break
        ca = current[active]
        xa, qa, ca_new = step(x[active], q[active], ca, q0[active], target[active])
        x[active], q[active], current[active] = xa, qa, ca_new
        # a frame whose cost no longer falls is done (decided on the frame alone: batch-independent)
        active = active[ca - ca_new > torch.clamp(CONVERGED * ca.abs(), min=CONVERGED_ABS)]
    return x, q


def decode_chain(
    q0: torch.Tensor,
    sigma: torch.Tensor,
    pairs: torch.Tensor,
    target: torch.Tensor,
    sigma_distance: float,
    settings: DecodeSettings,
) -> torch.Tensor:
    """Calpha trace of token-implied internal coordinates and anchor distances.

    Parameters
    ----------
    q0 : torch.Tensor, shape (f, 3 n - 6)
        Token-implied internal coordinates, packed as ``(bonds (n-1),
        angles (n-2), dihedrals (n-3))``; nm and rad.
    sigma : torch.Tensor, shape (3 n - 6,)
        Quantisation error of each internal coordinate (nm, rad).
    pairs : torch.Tensor of int64, shape (k, 2)
        Anchor residue pairs ``(a, c)``, ``a < c``.
    target : torch.Tensor, shape (f, k)
        Anchor distances from the tokens (nm).
    sigma_distance : float
        Quantisation error of an anchor distance (nm).
    settings : DecodeSettings

    Returns
    -------
    torch.Tensor, shape (f, n, 3)
        Coordinates (nm), centred on their centroid.
    """
    n = (q0.shape[1] + 6) // 3
    b, t, p = split_params(q0, n)
    q0 = torch.cat((b, t.clamp(settings.min_angle, math.pi - 1e-3), p), dim=1)
    chain = build_chain(*split_params(q0, n))
    lm, lm_pairs = landmark_pairs(pairs, n)
    x, q = chain, q0
    if len(lm) >= 3:
        skeleton = landmark_skeleton(lm_pairs, target, chain[:, lm], sigma_distance, settings.skeleton_iterations,
                                     settings.robust_scale_nm)
        # wrong joints the skeleton contradicts are repaired in the starting chain only: the prior stays
        # centred on the tokens, so a repair the tokens as a whole disagree with is undone by refinement
        _, chain = repair_hinges(q0, skeleton, lm, settings.hinge_tolerance_nm, settings.hinge_rounds,
                                 settings.min_angle)
        filled = fill_chain(chain, skeleton, lm)
        q = torch.cat(internal_coordinates(filled), dim=1)
        # bonds the fill stretched or squeezed (its two rigid motions disagree) go back to their mean
        off = (q[:, : n - 1] - q0[:, : n - 1]).abs() > BOND_RESET_NM
        q[:, : n - 1] = torch.where(off, q0[:, : n - 1], q[:, : n - 1])
        x = build_chain(*split_params(q, n))  # the filled chain itself (a rigid motion of it)
        target = pair_distances(skeleton, lm_pairs)
    x, q = refine(x, q, q0, sigma, pairs, target, sigma_distance, settings.refine_iterations, settings.prior_scale)
    x = remove_clashes(x, settings.clash_floor_nm, settings.clash_iterations)
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
