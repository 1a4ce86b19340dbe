"""Wrong local tokens found against the landmark skeleton and replaced, one joint at a time.

A wrong angle or dihedral token bends the chain at one joint (a hinge):
the chain after it swings as a rigid body. Against the landmark skeleton
(fixed by the anchor tokens alone) that shows as a window of four
consecutive landmarks that the chain cannot be fitted onto. For the worst
such window of each frame, :func:`repair_hinges` tries every angle and
dihedral inside the window at every value of a grid (each a
rotation of the window's downstream landmarks about the joint's axis) and
keeps the one change that fits the window clearly better; a window no
single change fixes is skipped until the chain changes (its wrong joint may
sit in a neighbouring segment, whose own window comes next). Rounds repeat
up to a fixed number, so a frame with several wrong tokens gets several
repairs; frames whose windows all fit are left alone, so small spread-out
noise (every token a little off) is never "repaired".
"""
from __future__ import annotations

import math

import torch

from .geometry import build_chain, internal_coordinates
from .skeleton import rigid_fit

__all__ = ["repair_hinges", "window_misfit"]

HINGE_GRID = 36
"""Rotations tried per joint on the coarse grid: every 10 degrees."""
HINGE_SHORTLIST = 8
"""Candidates (joint, rotation) kept from the coarse grid for the fine search."""
FINE_STEPS = torch.linspace(-math.radians(5.0), math.radians(5.0), 11, dtype=torch.float64)
"""Offsets (rad) around a shortlisted rotation tried in the fine search."""
HINGE_GAIN = 0.2
"""A repair must bring the window's RMS misfit below this fraction of what it was."""


def _windows(m: int, device: torch.device) -> torch.Tensor:
    """Landmark indices of the four-landmark window of every segment, shape (m - 1, 4)."""
    start = (torch.arange(m - 1, device=device) - 1).clamp(0, m - 4)
    return start[:, None] + torch.arange(4, device=device)[None]


def window_misfit(chain_landmarks: torch.Tensor, skeleton: torch.Tensor) -> torch.Tensor:
    """RMS misfit (nm) of each segment's four-landmark window after a rigid fit onto the skeleton.

    Parameters
    ----------
    chain_landmarks, skeleton : torch.Tensor, shape (f, m, 3)
        Landmarks of the chain and of the skeleton (nm), ``m >= 4``.

    Returns
    -------
    torch.Tensor, shape (f, m - 1)
    """
    f, m, _ = skeleton.shape
    win = _windows(m, skeleton.device)
    a = chain_landmarks[:, win].reshape(f * (m - 1), 4, 3)
    b = skeleton[:, win].reshape(f * (m - 1), 4, 3)
    return rigid_fit(a, b)[2].reshape(f, m - 1)


def _rotate(v: torch.Tensor, origin: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate points ``v`` about ``axis`` through ``origin`` (Rodrigues, broadcasting)."""
    r = v - origin
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    return origin + r * c + torch.linalg.cross(axis.expand_as(r), r) * s + axis * (axis * r).sum(-1, keepdim=True) * (1 - c)


def repair_hinges(
    q0: torch.Tensor, skeleton: torch.Tensor, landmarks: torch.Tensor, tolerance: float, rounds: int, min_angle: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace wrong angle and dihedral values that the landmark skeleton contradicts.

    Parameters
    ----------
    q0 : torch.Tensor, shape (f, 3 n - 6)
        Token-implied internal coordinates ``(bonds, angles, dihedrals)`` (nm, rad).
    skeleton : torch.Tensor, shape (f, m, 3)
        Landmark coordinates fitted to the anchor tokens (nm), ``m >= 4``.
    landmarks : torch.Tensor of int64, shape (m,)
        Residue of each landmark (first 0, last ``n - 1``).
    tolerance : float
        Window misfit (nm) below which a window counts as consistent.
    rounds : int
        Largest number of repairs per frame.
    min_angle : float
        Smallest bond angle (rad) a repair may set.

    Returns
    -------
    q : torch.Tensor, shape (f, 3 n - 6)
        ``q0`` with repaired values.
    chain : torch.Tensor, shape (f, n, 3)
        The chain built from ``q``.
    """
    f = q0.shape[0]
    n = (q0.shape[1] + 6) // 3
    m = len(landmarks)
    q = q0.clone()
    chain = build_chain(q[:, : n - 1], q[:, n - 1 : 2 * n - 3], q[:, 2 * n - 3 :])
    if m < 4 or rounds <= 0:
        return q, chain
    dev = q0.device
    win = _windows(m, dev)
    lm = landmarks.tolist()
    # joints inside each segment's window, padded to one width: packed index, pivot atom, is-dihedral, valid;
    # a joint's rotation moves the window's landmarks after its pivot
    joints = []
    for s in range(m - 1):
        a, b = lm[int(win[s, 0])], lm[int(win[s, -1])]
        js = [(n - 1 + (i - 1), i, False) for i in range(max(a, 1), b) if i <= n - 2]
        js += [(2 * n - 3 + (i - 2), i, True) for i in range(max(a, 2), b) if i <= n - 2]
        joints.append(js)
    width = max(len(js) for js in joints)
    idx_tab = torch.zeros((m - 1, width), dtype=torch.long, device=dev)
    piv_tab = torch.ones((m - 1, width), dtype=torch.long, device=dev)
    dih_tab = torch.zeros((m - 1, width), dtype=torch.bool, device=dev)
    ok_tab = torch.zeros((m - 1, width), dtype=torch.bool, device=dev)
    for s, js in enumerate(joints):
        for c, (p, i, is_dihedral) in enumerate(js):
            idx_tab[s, c], piv_tab[s, c], dih_tab[s, c], ok_tab[s, c] = p, i, is_dihedral, True

    def angle_out(old: torch.Tensor, is_dihedral: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        # a rotation by g about the normal (x[i-1] - x[i]) x (x[i+1] - x[i]) turns the angle at x[i] into
        # angle + g, which must stay in (min_angle, pi)
        new_angle = old + rotation
        return ~is_dihedral & ((new_angle < min_angle) | (new_angle > math.pi - 1e-3))

    grid = (torch.arange(HINGE_GRID, dtype=q.dtype, device=dev) + 0.5) * (2 * math.pi / HINGE_GRID) - math.pi
    failed = torch.zeros((f, m - 1), dtype=torch.bool, device=dev)
    for _ in range(rounds):
        mis = window_misfit(chain[:, landmarks], skeleton)
        mis = torch.where(failed, torch.zeros_like(mis), mis)  # windows no single joint could fix are skipped
        worst, seg = mis.max(dim=1)
        act = torch.nonzero(worst > tolerance).squeeze(-1)
        if act.numel() == 0:
            break
        fa = act.numel()
        x = chain[act]
        sk = skeleton[act]
        sg = seg[act]
        idx, piv, dih, ok = idx_tab[sg], piv_tab[sg], dih_tab[sg], ok_tab[sg]
        rows = torch.arange(fa, device=dev)[:, None]
        xi, xm, xp = x[rows, piv], x[rows, piv - 1], x[rows, (piv + 1).clamp(max=n - 1)]
        normal = torch.linalg.cross(xm - xi, xp - xi)
        bond = xi - xm
        axis = torch.where(dih[..., None], bond, normal)
        axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True).clamp_min(1e-12)
        wl = win[sg]  # (fa, 4) landmark indices of each window
        pts = x[rows, landmarks[wl]]  # (fa, 4, 3) chain landmarks of the window
        target = sk[rows, wl]
        moves = (landmarks[wl][:, None, :] > piv[..., None])  # (fa, width, 4): landmark after the pivot
        rot = _rotate(pts[:, None, None], xi[:, :, None, None], axis[:, :, None, None], grid[None, None, :, None])
        cand = torch.where(moves[:, :, None, :, None], rot, pts[:, None, None])  # (fa, width, G, 4, 3)
        old = q[act[:, None], idx]  # (fa, width)
        bad_angle = angle_out(old[..., None], dih[..., None], grid)
        # candidates are ranked by the window's pair distances (no fit needed), the best one checked by a rigid fit
        ia, ic = torch.triu_indices(4, 4, offset=1, device=dev)
        d_c = torch.linalg.vector_norm(cand[..., ic, :] - cand[..., ia, :], dim=-1)  # (fa, width, G, 6)
        d_s = torch.linalg.vector_norm(target[:, ic] - target[:, ia], dim=-1)  # (fa, 6)
        score = ((d_c - d_s[:, None, None]) ** 2).mean(-1)
        score = torch.where(ok[..., None] & ~bad_angle, score, torch.full_like(score, math.inf))
        # the best few by distances are refined on a finer grid of angles and judged by a rigid fit
        top = score.reshape(fa, -1).topk(min(HINGE_SHORTLIST, score[0].numel()), dim=1, largest=False).indices
        j_top, g_top = top // HINGE_GRID, top % HINGE_GRID  # (fa, t)
        fine = grid[g_top][..., None] + FINE_STEPS.to(grid)  # (fa, t, s)
        o_t, ax_t = xi[rows, j_top], axis[rows, j_top]  # (fa, t, 3)
        rot_t = _rotate(pts[:, None, None], o_t[:, :, None, None], ax_t[:, :, None, None], fine[..., None])
        mv_t = moves[rows, j_top]  # (fa, t, 4)
        cand_t = torch.where(mv_t[:, :, None, :, None], rot_t, pts[:, None, None])  # (fa, t, s, 4, 3)
        fit = rigid_fit(cand_t.reshape(-1, 4, 3), target[:, None, None].expand_as(cand_t).reshape(-1, 4, 3))[2]
        fit = fit.reshape(fa, -1)
        bad_t = angle_out(old[rows, j_top][..., None], dih[rows, j_top][..., None], fine)
        fit = torch.where(bad_t.reshape(fa, -1) | ~torch.isfinite(score.reshape(fa, -1).gather(1, top)).repeat_interleave(
            FINE_STEPS.numel(), dim=1), torch.full_like(fit, math.inf), fit)
        best_fit, best_k = fit.min(dim=1)
        accept = best_fit < HINGE_GAIN * worst[act]
        failed[act[~accept], seg[act[~accept]]] = True
        if not bool(accept.any()):
            continue
        r_acc = torch.nonzero(accept).squeeze(-1)
        t_best, s_best = best_k[r_acc] // FINE_STEPS.numel(), best_k[r_acc] % FINE_STEPS.numel()
        j_best = j_top[r_acc, t_best]
        fr = act[r_acc]
        failed[fr] = False  # the chain changed: every window may be tried again
        # apply as a rigid rotation of the chain after the pivot, then read the joint's new value off it
        xa = chain[fr]
        o, ax, ang = xi[r_acc, j_best], axis[r_acc, j_best], fine[r_acc, t_best, s_best]
        after = torch.arange(n, device=dev)[None] > piv[r_acc, j_best][:, None]
        moved = _rotate(xa, o[:, None], ax[:, None], ang[:, None])
        xa = torch.where(after[..., None], moved, xa)
        new = torch.cat(internal_coordinates(xa), dim=1)
        p = idx[r_acc, j_best]
        q[fr, p] = new[torch.arange(len(fr), device=dev), p]
        chain = chain.clone()
        chain[fr] = build_chain(q[fr, : n - 1], q[fr, n - 1 : 2 * n - 3], q[fr, 2 * n - 3 :])
    return q, chain
