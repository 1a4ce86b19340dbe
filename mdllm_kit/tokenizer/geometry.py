"""Pure geometry of a Calpha trace: internal coordinates, chain building, Jacobians.

All lengths are in nm and all angles in radians. Functions work on batches of
frames and accept numpy arrays or torch tensors (torch is used for speed and so
the decoder can run on a GPU); they have no state and no side effects.

Conventions for a chain of ``n`` atoms ``x[0..n-1]``:

* bond ``b[i] = |x[i+1] - x[i]|``, ``i = 0..n-2``;
* angle ``theta[i-1]`` is the angle at atom ``i`` between ``x[i-1]`` and
  ``x[i+1]``, ``i = 1..n-2``;
* dihedral ``phi[i-1]`` is the torsion ``x[i-1], x[i], x[i+1], x[i+2]`` (IUPAC
  sign, as :func:`mdtraj.compute_dihedrals`), ``i = 1..n-3``.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "anchor_gradients",
    "anchor_jacobian",
    "joint_twists",
    "build_chain",
    "internal_coordinates",
    "pair_distances",
]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-12)


def internal_coordinates(xyz: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bond lengths, bond angles and dihedrals of a chain.

    Parameters
    ----------
    xyz : array, shape (n_frames, n_atoms, 3)
        Coordinates in nm, ``n_atoms >= 4``.

    Returns
    -------
    bonds : torch.Tensor, shape (n_frames, n_atoms - 1)
        Bond lengths (nm).
    angles : torch.Tensor, shape (n_frames, n_atoms - 2)
        Bond angles in [0, pi] (rad).
    dihedrals : torch.Tensor, shape (n_frames, n_atoms - 3)
        Dihedrals in (-pi, pi] (rad).
    """
    x = torch.as_tensor(xyz)
    d = x[:, 1:] - x[:, :-1]
    bonds = torch.linalg.vector_norm(d, dim=-1)
    u = d / bonds.unsqueeze(-1).clamp_min(1e-12)
    cos_t = -(u[:, :-1] * u[:, 1:]).sum(-1)
    angles = torch.arccos(cos_t.clamp(-1.0, 1.0))
    b1, b2, b3 = d[:, :-2], d[:, 1:-1], d[:, 2:]
    c1 = torch.linalg.cross(b2, b3)
    c2 = torch.linalg.cross(b1, b2)
    y = (b1 * c1).sum(-1) * torch.linalg.vector_norm(b2, dim=-1)
    dihedrals = torch.atan2(y, (c1 * c2).sum(-1))
    return bonds, angles, dihedrals


def build_chain(bonds: torch.Tensor, angles: torch.Tensor, dihedrals: torch.Tensor) -> torch.Tensor:
    """Build a chain from internal coordinates (NeRF), deterministically.

    Atom 0 is placed at the origin, atom 1 on +x, atom 2 in the xy plane; the
    result is defined up to a rigid motion.

    Parameters
    ----------
    bonds : torch.Tensor, shape (n_frames, n - 1)
        Bond lengths (nm).
    angles : torch.Tensor, shape (n_frames, n - 2)
        Bond angles (rad).
    dihedrals : torch.Tensor, shape (n_frames, n - 3)
        Dihedrals (rad).

    Returns
    -------
    torch.Tensor, shape (n_frames, n, 3)
        Coordinates in nm, same dtype and device as ``bonds``.
    """
    f, n = bonds.shape[0], bonds.shape[1] + 1
    x = bonds.new_zeros((f, n, 3))
    x[:, 1, 0] = bonds[:, 0]
    t = angles[:, 0]
    x[:, 2, 0] = bonds[:, 0] - bonds[:, 1] * torch.cos(t)
    x[:, 2, 1] = bonds[:, 1] * torch.sin(t)
    # local displacement of every atom k >= 3 in its NeRF frame, computed at once
    b = bonds[:, 2:]
    t = angles[:, 1:]
    p = dihedrals
    local = torch.stack((-b * torch.cos(t), b * torch.sin(t) * torch.cos(p), b * torch.sin(t) * torch.sin(p)), dim=-1)
    a_, b_, c_ = x[:, 0], x[:, 1], x[:, 2]
    out = [a_, b_, c_]
    for k in range(n - 3):
        bc = _unit(c_ - b_)
        nn = _unit(torch.linalg.cross(b_ - a_, bc))
        m = torch.linalg.cross(nn, bc)
        loc = local[:, k]
        d_ = c_ + bc * loc[:, 0:1] + m * loc[:, 1:2] + nn * loc[:, 2:3]
        out.append(d_)
        a_, b_, c_ = b_, c_, d_
    return torch.stack(out, dim=1)


def pair_distances(xyz: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Distances of atom pairs.

    Parameters
    ----------
    xyz : torch.Tensor, shape (n_frames, n_atoms, 3)
    pairs : torch.Tensor of int, shape (n_pairs, 2)

    Returns
    -------
    torch.Tensor, shape (n_frames, n_pairs)
        Distances in the unit of ``xyz``.
    """
    return torch.linalg.vector_norm(xyz[:, pairs[:, 1]] - xyz[:, pairs[:, 0]], dim=-1)


def anchor_jacobian(xyz: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Derivatives of pair distances with respect to the internal coordinates.

    Changing bond ``b[i]`` translates atoms ``> i``; changing the angle at atom
    ``i`` or the dihedral about bond ``(i, i+1)`` rotates the atoms after it.
    Only pairs that straddle the moving joint change length, so the Jacobian
    is computed in closed form from three batched matrix products.

    Parameters
    ----------
    xyz : torch.Tensor, shape (n_frames, n, 3)
        Current coordinates (nm).
    pairs : torch.Tensor of int, shape (k, 2)
        Atom pairs ``(a, c)`` with ``a < c``.

    Returns
    -------
    torch.Tensor, shape (n_frames, k, (n - 1) + (n - 2) + (n - 3))
        ``d distance / d (bonds, angles, dihedrals)``, columns in that order.
    """
    f, n, _ = xyz.shape
    a, c = pairs[:, 0], pairs[:, 1]
    xa, xc = xyz[:, a], xyz[:, c]
    u = _unit(xc - xa)  # (f, k, 3)
    cu = torch.linalg.cross(xc, u)  # x_c x u
    d = xyz[:, 1:] - xyz[:, :-1]
    e = _unit(d)  # (f, n-1, 3) bond directions
    # bonds: translation of atoms > i along e_i ; pair straddles if a <= i < c
    i_b = torch.arange(n - 1, device=xyz.device)
    m_b = (a[:, None] <= i_b[None]) & (c[:, None] > i_b[None])
    j_b = torch.einsum("fkc,fic->fki", u, e) * m_b
    # angles at atom i (1..n-2): rotation about n_i through x_i of atoms > i
    nrm = _unit(torch.linalg.cross(xyz[:, :-2] - xyz[:, 1:-1], xyz[:, 2:] - xyz[:, 1:-1]))
    xi = xyz[:, 1:-1]
    i_t = torch.arange(1, n - 1, device=xyz.device)
    m_t = (a[:, None] <= i_t[None]) & (c[:, None] > i_t[None])
    j_t = (torch.einsum("fkc,fic->fki", cu, nrm) - torch.einsum("fkc,fic->fki", u, torch.linalg.cross(nrm, xi))) * m_t
    # dihedral about bond (i, i+1), i = 1..n-3: rotation about e_i of atoms > i+1
    ei = e[:, 1:-1]
    xi1 = xyz[:, 2:-1]
    i_p = torch.arange(1, n - 2, device=xyz.device)
    m_p = (a[:, None] <= i_p[None] + 1) & (c[:, None] > i_p[None] + 1)
    j_p = (torch.einsum("fkc,fic->fki", cu, ei) - torch.einsum("fkc,fic->fki", u, torch.linalg.cross(ei, xi1))) * m_p
    return torch.cat((j_b, j_t, j_p), dim=-1)


def joint_twists(xyz: torch.Tensor) -> torch.Tensor:
    """Rigid motion that each internal coordinate applies to the atoms after it.

    Bond ``b[i]`` translates atoms ``> i`` along the bond; the angle at atom
    ``i`` turns atoms ``> i`` about the normal of the angle plane through
    ``x[i]``; the dihedral about bond ``(i, i+1)`` turns atoms ``> i+1``
    about the bond. Each motion is a twist ``(w, v)``: a moving point ``y``
    gets velocity ``w x y + v``. With :func:`anchor_gradients` ``g``, the
    Jacobian of :func:`anchor_jacobian` is ``g[k] . twist[p]`` wherever
    the pair straddles the coordinate's pivot, and 0 elsewhere.

    Parameters
    ----------
    xyz : torch.Tensor, shape (n_frames, n, 3)
        Coordinates (nm).

    Returns
    -------
    torch.Tensor, shape (n_frames, 3 n - 6, 6)
        Twists of the packed ``(bonds, angles, dihedrals)`` (rad and nm per unit).
    """
    d = xyz[:, 1:] - xyz[:, :-1]
    e = _unit(d)
    zero = torch.zeros_like(e)
    nrm = _unit(torch.linalg.cross(xyz[:, :-2] - xyz[:, 1:-1], xyz[:, 2:] - xyz[:, 1:-1]))
    ang = torch.cat((nrm, -torch.linalg.cross(nrm, xyz[:, 1:-1])), dim=-1)
    ei = e[:, 1:-1]
    dih = torch.cat((ei, -torch.linalg.cross(ei, xyz[:, 2:-1])), dim=-1)
    return torch.cat((torch.cat((zero, e), dim=-1), ang, dih), dim=1)


def anchor_gradients(xyz: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Gradient of each pair distance with respect to a twist of its second atom.

    Parameters
    ----------
    xyz : torch.Tensor, shape (n_frames, n, 3)
        Coordinates (nm).
    pairs : torch.Tensor of int, shape (k, 2)

    Returns
    -------
    torch.Tensor, shape (n_frames, k, 6)
        ``(x_c x u, u)`` with ``u`` the unit vector from ``x_a`` to ``x_c``.
    """
    xc = xyz[:, pairs[:, 1]]
    u = _unit(xc - xyz[:, pairs[:, 0]])
    return torch.cat((torch.linalg.cross(xc, u), u), dim=-1)


def peptide_frames(ca: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference axes of the peptide units between consecutive Calpha atoms.

    For peptide ``i`` (between ``ca[i]`` and ``ca[i+1]``) the axis ``e`` runs
    from ``ca[i]`` to ``ca[i+1]``; the reference direction ``r`` is the part of
    ``ca[i-1] - ca[i]`` perpendicular to ``e`` (for ``i = 0``: of
    ``ca[2] - ca[1]``), and ``s = e x r``.

    Parameters
    ----------
    ca : torch.Tensor, shape (n_frames, n, 3)
        Calpha coordinates (nm), ``n >= 3``.

    Returns
    -------
    e, r, s : torch.Tensor, each shape (n_frames, n - 1, 3)
        Orthonormal axes of each peptide unit.
    """
    e = _unit(ca[:, 1:] - ca[:, :-1])
    prev = torch.cat((ca[:, 2:3] - ca[:, 1:2], ca[:, :-2] - ca[:, 1:-1]), dim=1)
    r = _unit(prev - (prev * e).sum(-1, keepdim=True) * e)
    s = torch.linalg.cross(e, r)
    return e, r, s


def plane_angles(ca: torch.Tensor, oxygen: torch.Tensor) -> torch.Tensor:
    """Rotation of each peptide plane about its Calpha-Calpha axis.

    Parameters
    ----------
    ca : torch.Tensor, shape (n_frames, n, 3)
        Calpha coordinates (nm).
    oxygen : torch.Tensor, shape (n_frames, n, 3)
        Carbonyl oxygen of each residue (nm); the last one is not used.

    Returns
    -------
    torch.Tensor, shape (n_frames, n - 1)
        Angle (rad, in (-pi, pi]) of the oxygen of peptide ``i`` around the
        axis, measured from ``r`` towards ``s`` (see :func:`peptide_frames`).
    """
    e, r, s = peptide_frames(ca)
    o = oxygen[:, :-1] - ca[:, :-1]
    return torch.atan2((o * s).sum(-1), (o * r).sum(-1))


def plane_axes(ca: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Axes ``(e, p, q)`` of each peptide plane, ``p`` pointing towards its oxygen.

    Parameters
    ----------
    ca : torch.Tensor, shape (n_frames, n, 3)
    angles : torch.Tensor, shape (n_frames, n - 1)
        Plane angles as returned by :func:`plane_angles` (rad).

    Returns
    -------
    torch.Tensor, shape (n_frames, n - 1, 3, 3)
        Rows ``e``, ``p``, ``q = e x p`` (unit vectors).
    """
    e, r, s = peptide_frames(ca)
    c, si = torch.cos(angles).unsqueeze(-1), torch.sin(angles).unsqueeze(-1)
    p = c * r + si * s
    q = torch.linalg.cross(e, p)
    return torch.stack((e, p, q), dim=-2)
