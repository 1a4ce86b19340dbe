"""The landmark skeleton: the global shape of a frame from its anchor tokens alone.

Anchor tokens are distances between landmark Calpha atoms (every
``anchor_stride``-th residue, each paired with the landmarks 1, 2, 3, 4, 8,
... further on). They fix the global shape; the local tokens (angles and
dihedrals) only add detail. Decoding therefore starts here, without the
chain the local tokens build, whose small errors add up along the chain:

1. :func:`trilaterate` places the landmarks one after another, each from
   its distances to the three nearest placed landmarks (the two mirror
   solutions of three spheres, chosen by the remaining distances), with a
   few robust Gauss-Newton steps on the placed part every few landmarks.
2. :func:`refine_landmarks` fits all landmark coordinates to all anchor
   distances at once (damped Gauss-Newton, Cauchy weights, so a wrong anchor
   token is outvoted); :func:`fix_flips` re-tries frames left with
   violated anchors by reflecting a landmark or the rest of the chain
   through the plane of the landmarks before it.
3. :func:`orient` picks the mirror image: distances cannot tell a shape from
   its mirror image, the chain of the local tokens can (signed volumes of
   consecutive landmark quadruples, a majority vote).
4. :func:`fill_chain` places every residue of the local chain onto the
   skeleton by rigid fits of overlapping landmark windows, blended along
   each landmark segment.

Everything is batched over frames, deterministic and computed per frame
(no frame influences another). No LAPACK factorisation with pivoting is
used: 3 x 3 systems are solved in closed form, rigid fits use Horn's
quaternion method with repeated squaring, larger systems Cholesky.
"""
from __future__ import annotations

import torch

__all__ = [
    "fill_chain",
    "fix_flips",
    "landmark_skeleton",
    "orient",
    "refine_landmarks",
    "rigid_fit",
    "solve3",
    "trilaterate",
]

TRILATERATION_REFINE_EVERY = 4
"""Landmarks placed between two robust refinements of the placed part in :func:`trilaterate`."""
TRILATERATION_REFINE_STEPS = 3
"""Gauss-Newton steps of each of those refinements."""
FLIP_TOLERANCE = 5.0
"""Anchor residual, in distance-quantisation errors, above which :func:`fix_flips` re-tries a frame."""
FLIP_MIN_RESIDUAL_NM = 0.3
"""Largest anchor residual (nm) below which :func:`fix_flips` leaves a frame alone: a mirrored landmark leaves
anchors violated by several Angstrom, while a model's anchor tokens disagree by 1-3 A in every frame, which no
reflection repairs (trying them all made decoding model-sampled frames ~5x slower)."""
HINGE_TOLERANCE_NM = 0.1
"""Bond stretch (nm) of the blended fill above which :func:`fill_chain` places a segment as a hinge."""
CHAIN_MARGIN = 1.0
"""Robust anchor cost (sum of ``log(1 + (r / scale)^2)``) by which the trilaterated skeleton must beat
the skeleton grown from the local chain to be chosen (about one anchor 1.3 scales off)."""


def solve3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve batched 3 x 3 systems ``a x = b`` in closed form (adjugate).

    Parameters
    ----------
    a : torch.Tensor, shape (..., 3, 3)
    b : torch.Tensor, shape (..., 3)

    Returns
    -------
    torch.Tensor, shape (..., 3)
        ``x``; a (near-)singular ``a`` gives a large but finite ``x``.
    """
    c0 = torch.linalg.cross(a[..., 1, :], a[..., 2, :])
    c1 = torch.linalg.cross(a[..., 2, :], a[..., 0, :])
    c2 = torch.linalg.cross(a[..., 0, :], a[..., 1, :])
    det = (a[..., 0, :] * c0).sum(-1)
    det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    adj = torch.stack((c0, c1, c2), dim=-1)
    return (adj @ b.unsqueeze(-1)).squeeze(-1) / det[..., None]


def _quaternion_rotation(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack((
        torch.stack((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)), -1),
        torch.stack((2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)), -1),
        torch.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), -1),
    ), -2)


def rigid_fit(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares rotation and translation taking points ``x`` onto ``y`` (Horn's quaternion method).

    The top eigenvector of Horn's 4 x 4 matrix is found by repeated squaring
    of the shifted matrix, so no eigen-solver is called.

    Parameters
    ----------
    x, y : torch.Tensor, shape (f, p, 3)
        Corresponding points (nm), ``p >= 3``.

    Returns
    -------
    rot : torch.Tensor, shape (f, 3, 3)
        Proper rotation with ``y ~ x @ rot.T + shift``.
    shift : torch.Tensor, shape (f, 3)
    rms : torch.Tensor, shape (f,)
        RMS distance (nm) of the fitted points.
    """
    mx, my = x.mean(1), y.mean(1)
    xc, yc = x - mx[:, None], y - my[:, None]
    s = xc.transpose(1, 2) @ yc  # s[a, b] = sum x_a y_b
    sxx, sxy, sxz = s[:, 0, 0], s[:, 0, 1], s[:, 0, 2]
    syx, syy, syz = s[:, 1, 0], s[:, 1, 1], s[:, 1, 2]
    szx, szy, szz = s[:, 2, 0], s[:, 2, 1], s[:, 2, 2]
    n = torch.stack((
        torch.stack((sxx + syy + szz, syz - szy, szx - sxz, sxy - syx), -1),
        torch.stack((syz - szy, sxx - syy - szz, sxy + syx, szx + sxz), -1),
        torch.stack((szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy), -1),
        torch.stack((sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz), -1),
    ), -2)
    scale = torch.linalg.matrix_norm(n).clamp_min(1e-30)
    m = n / scale[:, None, None] + torch.eye(4, dtype=x.dtype, device=x.device)  # eigenvalues in [0, 2]
    for _ in range(10):  # m^(2^10): the top eigenvector dominates every column
        m = m @ m
        m = m / torch.linalg.matrix_norm(m).clamp_min(1e-300)[:, None, None]
    col = torch.argmax(torch.linalg.vector_norm(m, dim=1), dim=-1)
    q = m[torch.arange(m.shape[0], device=x.device), :, col]
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(1e-30)
    rot = _quaternion_rotation(q)
    shift = my - (rot @ mx.unsqueeze(-1)).squeeze(-1)
    fit = x @ rot.transpose(1, 2) + shift[:, None]
    rms = ((fit - y) ** 2).sum(-1).mean(-1).sqrt()
    return rot, shift, rms


def _two_points(p1, p2, p3, r1, r2, r3):
    """Both intersections of three spheres (the pair collapses to one point when they miss)."""
    ex = p2 - p1
    d = torch.linalg.vector_norm(ex, dim=-1).clamp_min(1e-9)
    ex = ex / d[..., None]
    t = p3 - p1
    i = (ex * t).sum(-1)
    ey = t - i[..., None] * ex
    j = torch.linalg.vector_norm(ey, dim=-1).clamp_min(1e-9)
    ey = ey / j[..., None]
    ez = torch.linalg.cross(ex, ey)
    x = (r1**2 - r2**2 + d**2) / (2 * d)
    y = (r1**2 - r3**2 + i**2 + j**2) / (2 * j) - i / j * x
    z = (r1**2 - x**2 - y**2).clamp_min(0).sqrt()
    base = p1 + x[..., None] * ex + y[..., None] * ey
    return base + z[..., None] * ez, base - z[..., None] * ez


_TRIOS = ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3))
"""Sphere triples (indices into a landmark's nearest placed neighbours) tried by :func:`trilaterate`."""


def _volume(a, b, c, d):
    return (torch.linalg.cross(b - a, c - a) * (d - a)).sum(-1)


def _robust_cost(p: torch.Tensor, lm_pairs: torch.Tensor, target: torch.Tensor, scale: float):
    r = torch.linalg.vector_norm(p[:, lm_pairs[:, 1]] - p[:, lm_pairs[:, 0]], dim=-1) - target
    return torch.log1p((r / scale) ** 2).sum(-1), r


def refine_landmarks(
    p: torch.Tensor, lm_pairs: torch.Tensor, target: torch.Tensor, n_iter: int, robust_scale: float,
) -> torch.Tensor:
    """Fit landmark coordinates to anchor distances (damped, robust Gauss-Newton).

    Minimises ``sum_k log(1 + (r_k / robust_scale)^2)`` over the landmark
    coordinates, ``r_k`` the misfit of anchor ``k``, by Levenberg-Marquardt
    steps with Cauchy (IRLS) weights; a step is kept only where it lowers
    the cost of its frame.

    Parameters
    ----------
    p : torch.Tensor, shape (f, m, 3)
        Starting landmark coordinates (nm).
    lm_pairs : torch.Tensor of int64, shape (k, 2)
        Anchors as pairs of landmark indices.
    target : torch.Tensor, shape (f, k)
        Anchor distances (nm).
    n_iter : int
    robust_scale : float
        Cauchy scale (nm).

    Returns
    -------
    torch.Tensor, shape (f, m, 3)
    """
    f, m, _ = p.shape
    a, c = lm_pairs[:, 0], lm_pairs[:, 1]
    lam = torch.full((f,), 1e-3, dtype=p.dtype, device=p.device)
    eye = torch.eye(3 * m, dtype=p.dtype, device=p.device)
    fr = torch.arange(f, device=p.device)[:, None]
    cur, r = _robust_cost(p, lm_pairs, target, robust_scale)
    for _ in range(n_iter):
        diff = p[:, c] - p[:, a]
        u = diff / torch.linalg.vector_norm(diff, dim=-1, keepdim=True).clamp_min(1e-9)
        w = 1.0 / (1.0 + (r / robust_scale) ** 2)
        uu = w[..., None, None] * u[..., :, None] * u[..., None, :]
        h = p.new_zeros((f, m, m, 3, 3))
        h.index_put_((fr, a[None], a[None]), uu, accumulate=True)
        h.index_put_((fr, c[None], c[None]), uu, accumulate=True)
        h.index_put_((fr, a[None], c[None]), -uu, accumulate=True)
        h.index_put_((fr, c[None], a[None]), -uu, accumulate=True)
        h = h.permute(0, 1, 3, 2, 4).reshape(f, 3 * m, 3 * m)
        g = p.new_zeros((f, m, 3))
        wr = (w * r)[..., None] * u
        g.index_add_(1, c, wr)
        g.index_add_(1, a, -wr)
        damp = lam * h.diagonal(dim1=-2, dim2=-1).mean(-1) + 1e-9
        chol, info = torch.linalg.cholesky_ex(h + damp[:, None, None] * eye)
        step = torch.cholesky_solve(-g.reshape(f, 3 * m, 1), chol).reshape(f, m, 3)
        p_new = p + step
        new, r_new = _robust_cost(p_new, lm_pairs, target, robust_scale)
        ok = (new < cur) & (info == 0) & torch.isfinite(new)
        p = torch.where(ok[:, None, None], p_new, p)
        cur = torch.where(ok, new, cur)
        r = torch.where(ok[:, None], r_new, r)
        lam = torch.where(ok, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
    return p


def _neighbours(lm_pairs: torch.Tensor, m: int) -> list[list[int]] | None:
    """Earlier landmarks paired with each landmark, nearest first; ``None`` if some landmark has fewer than 3."""
    nb: list[list[int]] = [[] for _ in range(m)]
    for a, c in lm_pairs.tolist():
        nb[c].append(a)
    out = [sorted(v, reverse=True) for v in nb]
    if m < 4 or any(len(out[j]) < min(j, 3) for j in range(m)):
        return None
    return out


def trilaterate(
    lm_pairs: torch.Tensor, target: torch.Tensor, m: int, chain_landmarks: torch.Tensor, robust_scale: float,
) -> torch.Tensor | None:
    """Place landmarks one by one from their anchor distances.

    Landmark ``j`` goes to one of the two points at the right distances from
    its three nearest placed neighbours: the one that fits its other
    distances better (when it has none, the one on the side the local chain
    puts it). Every :data:`TRILATERATION_REFINE_EVERY` landmarks the placed
    part is refined (:func:`refine_landmarks`).

    Parameters
    ----------
    lm_pairs : torch.Tensor of int64, shape (k, 2)
        Anchors as landmark index pairs ``(a, c)``, ``a < c``.
    target : torch.Tensor, shape (f, k)
        Anchor distances (nm).
    m : int
        Number of landmarks.
    chain_landmarks : torch.Tensor, shape (f, m, 3)
        Landmark positions in the chain of the local tokens (nm).
    robust_scale : float
        Cauchy scale (nm) of the refinements.

    Returns
    -------
    torch.Tensor, shape (f, m, 3), or None
        ``None`` when the anchors do not pair every landmark with three
        earlier ones (``anchor_offsets`` without 1, 2 and 3, or fewer than 4
        landmarks).
    """
    nb = _neighbours(lm_pairs, m)
    if nb is None:
        return None
    f = target.shape[0]
    index = {(a, c): k for k, (a, c) in enumerate(lm_pairs.tolist())}

    def d(a: int, c: int) -> torch.Tensor:
        return target[:, index[(a, c)]]

    p = target.new_zeros((f, m, 3))
    d01 = d(0, 1).clamp_min(1e-3)
    p[:, 1, 0] = d01
    x2 = (d(0, 2) ** 2 - d(1, 2) ** 2 + d01**2) / (2 * d01)
    p[:, 2, 0] = x2
    p[:, 2, 1] = (d(0, 2) ** 2 - x2**2).clamp_min(1e-6).sqrt()
    eye = torch.eye(3, dtype=p.dtype, device=p.device)
    for j in range(3, m):
        prev = nb[j]
        pn = p[:, prev]
        dn = torch.stack([d(i, j) for i in prev], 1)
        v_chain = _volume(chain_landmarks[:, prev[2]], chain_landmarks[:, prev[1]], chain_landmarks[:, prev[0]],
                          chain_landmarks[:, j])
        cands, scores = [], []
        # both points of every sphere triple among the four nearest neighbours (one wrong anchor cannot
        # spoil them all), scored robustly against all the landmark's distances; the chain's handedness
        # breaks ties between mirror images that the distances cannot tell apart
        for trio in _TRIOS if len(prev) >= 4 else ((0, 1, 2),):
            i1, i2, i3 = (prev[t] for t in trio)
            for x in _two_points(p[:, i1], p[:, i2], p[:, i3], d(i1, j), d(i2, j), d(i3, j)):
                r = torch.linalg.vector_norm(x[:, None] - pn, dim=-1) - dn
                hand = _volume(pn[:, 2], pn[:, 1], pn[:, 0], x) * v_chain < 0
                cands.append(x)
                scores.append(torch.log1p((r / robust_scale) ** 2).sum(-1) + 1e-3 * hand)
        best = torch.argmin(torch.stack(scores, 1), dim=1)
        x = torch.stack(cands, 1)[torch.arange(f, device=p.device), best]
        for _ in range(3):  # robust Gauss-Newton on the new landmark alone, steps kept where they help
            v = x[:, None] - pn
            dist = torch.linalg.vector_norm(v, dim=-1).clamp_min(1e-9)
            u = v / dist[..., None]
            r = dist - dn
            w = 1.0 / (1.0 + (r / robust_scale) ** 2)
            x_new = x + solve3((u * w[..., None]).transpose(1, 2) @ u + 1e-3 * eye, -(u * (w * r)[..., None]).sum(1))
            r_new = torch.linalg.vector_norm(x_new[:, None] - pn, dim=-1) - dn
            keep = torch.log1p((r_new / robust_scale) ** 2).sum(-1) < torch.log1p((r / robust_scale) ** 2).sum(-1)
            x = torch.where(keep[:, None], x_new, x)
        p[:, j] = x
        if j % TRILATERATION_REFINE_EVERY == 0:
            sel = lm_pairs[:, 1] <= j
            p[:, : j + 1] = refine_landmarks(p[:, : j + 1].clone(), lm_pairs[sel], target[:, sel],
                                             TRILATERATION_REFINE_STEPS, robust_scale)
    return p


def _reflect(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    nrm = torch.linalg.cross(b - a, c - a)
    nrm = nrm / torch.linalg.vector_norm(nrm, dim=-1, keepdim=True).clamp_min(1e-12)
    h = ((p - a[:, None]) * nrm[:, None]).sum(-1, keepdim=True)
    return p - 2 * h * nrm[:, None]


def fix_flips(
    p: torch.Tensor, lm_pairs: torch.Tensor, target: torch.Tensor, tolerance: float, robust_scale: float,
    n_iter: int, rounds: int = 2,
) -> torch.Tensor:
    """Re-try frames whose skeleton violates anchors by reflecting landmarks.

    A landmark placed on the wrong side of its three predecessors (a near
    coplanar placement) leaves anchors violated that no smooth refinement
    repairs. For each landmark at an end of a violated anchor, the landmark
    alone and the rest of the chain from it are reflected through the plane
    of the three landmarks before it; every trial is refined and the one
    with the lowest robust anchor cost is kept if it beats the frame's.
    Frames whose largest residual is below :data:`FLIP_MIN_RESIDUAL_NM`
    are not tried (anchors that merely disagree, not a flip).

    Parameters
    ----------
    p : torch.Tensor, shape (f, m, 3)
    lm_pairs, target, robust_scale, n_iter
        As in :func:`refine_landmarks`.
    tolerance : float
        Anchor residual (nm) counted as violated.
    rounds : int
        Passes over the frames still violating anchors.

    Returns
    -------
    torch.Tensor, shape (f, m, 3)
    """
    p = p.clone()
    for _ in range(rounds):
        cost, r = _robust_cost(p, lm_pairs, target, robust_scale)
        bad = r.abs() > tolerance
        frames = torch.nonzero(bad.any(1) & (r.abs().amax(1) > FLIP_MIN_RESIDUAL_NM)).squeeze(-1).tolist()
        if not frames:
            break
        for fi in frames:
            ks = torch.nonzero(bad[fi]).squeeze(-1)
            suspects = sorted({int(v) for v in lm_pairs[ks].reshape(-1).tolist()} - {0, 1, 2})
            trials = []
            one = p[fi : fi + 1]
            for j in suspects:
                a, b, c = one[:, j - 3], one[:, j - 2], one[:, j - 1]
                tail = one.clone()
                tail[:, j:] = _reflect(one[:, j:], a, b, c)
                single = one.clone()
                single[:, j : j + 1] = _reflect(one[:, j : j + 1], a, b, c)
                trials += [tail, single]
            if not trials:
                continue
            tgt = target[fi : fi + 1].expand(len(trials), -1)
            t = refine_landmarks(torch.cat(trials), lm_pairs, tgt, n_iter, robust_scale)
            ct, _ = _robust_cost(t, lm_pairs, tgt, robust_scale)
            best = int(torch.argmin(ct))
            if ct[best] < cost[fi]:
                p[fi] = t[best]
    return p


def orient(p: torch.Tensor, chain_landmarks: torch.Tensor) -> torch.Tensor:
    """The skeleton or its mirror image, whichever the local chain agrees with.

    Parameters
    ----------
    p : torch.Tensor, shape (f, m, 3)
        Skeleton (nm), ``m >= 4``.
    chain_landmarks : torch.Tensor, shape (f, m, 3)
        Landmarks of the chain built from the local tokens.

    Returns
    -------
    torch.Tensor, shape (f, m, 3)
        ``p`` mirrored (z -> -z) in frames where the signed volumes of
        consecutive landmark quadruples disagree with the chain's, weighted
        by the chain's volumes.
    """
    if p.shape[1] < 4:
        return p
    vp = _volume(p[:, :-3], p[:, 1:-2], p[:, 2:-1], p[:, 3:])
    vc = _volume(chain_landmarks[:, :-3], chain_landmarks[:, 1:-2], chain_landmarks[:, 2:-1], chain_landmarks[:, 3:])
    vote = (torch.sign(vp) * vc).sum(-1)
    mirrored = p * torch.tensor([1.0, 1.0, -1.0], dtype=p.dtype, device=p.device)
    return torch.where((vote < 0)[:, None, None], mirrored, p)


def landmark_skeleton(
    lm_pairs: torch.Tensor, target: torch.Tensor, chain_landmarks: torch.Tensor, sigma_distance: float,
    n_iter: int, robust_scale: float,
) -> torch.Tensor:
    """The landmark coordinates that best fit the anchor tokens, in the chain's handedness.

    Two candidates are refined (:func:`refine_landmarks`): the trilaterated
    skeleton (:func:`trilaterate`, :func:`fix_flips`, :func:`orient`), which
    does not depend on the local tokens, and the chain's own landmarks.
    The chain's is kept unless the trilaterated one fits the anchors better
    by :data:`CHAIN_MARGIN`: where the anchors leave the shape ambiguous,
    the local tokens decide.

    Parameters
    ----------
    lm_pairs : torch.Tensor of int64, shape (k, 2)
        Anchors as landmark index pairs.
    target : torch.Tensor, shape (f, k)
        Anchor distances (nm).
    chain_landmarks : torch.Tensor, shape (f, m, 3)
        Landmarks of the chain built from the local tokens (nm).
    sigma_distance : float
        Quantisation error of an anchor distance (nm).
    n_iter : int
        Gauss-Newton iterations of each refinement.
    robust_scale : float
        Cauchy scale (nm) of the anchor residuals.

    Returns
    -------
    torch.Tensor, shape (f, m, 3)
    """
    m = chain_landmarks.shape[1]
    grown = refine_landmarks(chain_landmarks.clone(), lm_pairs, target, n_iter, robust_scale)
    placed = trilaterate(lm_pairs, target, m, chain_landmarks, robust_scale)
    if placed is None:
        return grown
    placed = refine_landmarks(placed, lm_pairs, target, n_iter, robust_scale)
    placed = fix_flips(placed, lm_pairs, target, FLIP_TOLERANCE * sigma_distance, robust_scale, n_iter)
    placed = orient(placed, chain_landmarks)
    c_grown, _ = _robust_cost(grown, lm_pairs, target, robust_scale)
    c_placed, _ = _robust_cost(placed, lm_pairs, target, robust_scale)
    return torch.where((c_placed < c_grown - CHAIN_MARGIN)[:, None, None], placed, grown)


def _window_fit(chain, skeleton, lm, lo, hi):
    lo, hi = max(0, lo), min(len(lm), hi)
    if hi - lo < 3:
        lo, hi = max(0, min(lo, len(lm) - 3)), min(len(lm), max(hi, 3))
    r, t, rms = rigid_fit(chain[:, lm[lo:hi]], skeleton[:, lo:hi])
    return r, t, rms


def fill_chain(chain: torch.Tensor, skeleton: torch.Tensor, landmarks: torch.Tensor, span: int = 3,
               hinge_tolerance: float = HINGE_TOLERANCE_NM) -> torch.Tensor:
    """Place every residue of a chain onto a landmark skeleton.

    Each landmark ``j`` gets the rigid motion fitting the chain's landmarks
    around it (``j - 1 .. j + 1``) onto the skeleton; the residues between
    landmarks ``j`` and ``j + 1`` move by the blend of the two motions,
    linear along the segment. Where the blend stretches a bond by more than
    ``hinge_tolerance`` (the two motions disagree: a wrong angle or dihedral
    token inside the segment), the segment is placed as a hinge instead: up
    to a switch residue with the motion fitting the ``span`` landmarks that
    end at landmark ``j``, after it with the one fitting the ``span``
    landmarks from ``j + 1`` on, the switch being where the bond across it
    comes out closest to its length. One wrong token thus becomes one wrong
    joint, which the refinement then outvotes, instead of a distortion of
    the whole segment.

    Parameters
    ----------
    chain : torch.Tensor, shape (f, n, 3)
        Chain built from the local tokens (nm).
    skeleton : torch.Tensor, shape (f, m, 3)
        Landmark coordinates (nm), ``m >= 3``.
    landmarks : torch.Tensor of int64, shape (m,)
        Residue index of each landmark, increasing, first 0 and last ``n - 1``.
    span : int
        Landmarks of the one-sided fits of a hinge.
    hinge_tolerance : float
        Bond stretch (nm) of the blend above which a segment is a hinge.

    Returns
    -------
    torch.Tensor, shape (f, n, 3)
    """
    m = len(landmarks)
    lm = landmarks.tolist()
    centred = [_window_fit(chain, skeleton, lm, j - 1, j + 2)[:2] for j in range(m)]
    left = [_window_fit(chain, skeleton, lm, j - span + 1, j + 1)[:2] for j in range(m)]
    right = [_window_fit(chain, skeleton, lm, j, j + span)[:2] for j in range(m)]
    out = torch.empty_like(chain)
    for j in range(m - 1):
        a, b = lm[j], lm[j + 1]
        seg = chain[:, a : b + 1]
        bond = torch.linalg.vector_norm(seg[:, 1:] - seg[:, :-1], dim=-1)
        w = torch.linspace(0.0, 1.0, b - a + 1, dtype=chain.dtype, device=chain.device)[None, :, None]
        blend = (1 - w) * _move(seg, *centred[j]) + w * _move(seg, *centred[j + 1])
        stretch = (torch.linalg.vector_norm(blend[:, 1:] - blend[:, :-1], dim=-1) - bond).abs().amax(-1)
        ya = _move(seg, *(left[j] if j >= span - 1 else right[j]))
        yb = _move(seg, *(right[j + 1] if j + 1 <= m - span else left[j + 1]))
        err = (torch.linalg.vector_norm(yb[:, 1:] - ya[:, :-1], dim=-1) - bond).abs()  # switch after residue a + k
        k = torch.argmin(err, dim=-1)
        pos = torch.arange(b - a + 1, device=chain.device)
        hinge = torch.where((pos[None] <= k[:, None])[..., None], ya, yb)
        out[:, a : b + 1] = torch.where((stretch > hinge_tolerance)[:, None, None], hinge, blend)
    return out


def _move(x: torch.Tensor, rot: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return x @ rot.transpose(1, 2) + shift[:, None]
