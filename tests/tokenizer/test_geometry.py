import math

import mdtraj as md
import numpy as np
import pytest
import torch

from mdllm_kit.tokenizer.geometry import (anchor_jacobian, build_chain, internal_coordinates, pair_distances,
                                          plane_angles, plane_axes)
from mdllm_kit.tokenizer.metrics import rmsd_per_frame


def test_internal_coordinates_match_mdtraj(closed_ca):
    t = closed_ca[:3]
    b, a, p = internal_coordinates(torch.as_tensor(t.xyz, dtype=torch.float64))
    n = t.n_atoms
    np.testing.assert_allclose(b.numpy(), md.compute_distances(t, [[i, i + 1] for i in range(n - 1)]), atol=1e-5)
    np.testing.assert_allclose(a.numpy(), md.compute_angles(t, [[i, i + 1, i + 2] for i in range(n - 2)]), atol=1e-4)
    ref = md.compute_dihedrals(t, [[i, i + 1, i + 2, i + 3] for i in range(n - 3)])
    diff = np.angle(np.exp(1j * (p.numpy() - ref)))
    assert np.abs(diff).max() < 1e-4


def test_build_chain_inverts_internal_coordinates(closed_ca):
    x = torch.as_tensor(closed_ca.xyz[:4], dtype=torch.float64)
    y = build_chain(*internal_coordinates(x))
    assert rmsd_per_frame(y.numpy(), x.numpy()).max() < 1e-4  # Angstrom


def test_anchor_jacobian_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    n = 12
    q = torch.cat((0.38 + 0.01 * torch.rand(2, n - 1, generator=gen),
                   1.5 + 0.3 * torch.rand(2, n - 2, generator=gen),
                   math.pi * (2 * torch.rand(2, n - 3, generator=gen) - 1)), dim=1).double()
    pairs = torch.tensor([[0, 11], [2, 7], [3, 4], [1, 3], [5, 9]])

    def dist(qq):
        return pair_distances(build_chain(qq[:, : n - 1], qq[:, n - 1 : 2 * n - 3], qq[:, 2 * n - 3 :]), pairs)

    jac = anchor_jacobian(build_chain(q[:, : n - 1], q[:, n - 1 : 2 * n - 3], q[:, 2 * n - 3 :]), pairs)
    eps = 1e-6
    num = torch.stack([(dist(q + eps * torch.eye(q.shape[1], dtype=q.dtype)[j]) - dist(q)) / eps
                       for j in range(q.shape[1])], dim=-1)
    torch.testing.assert_close(jac, num, atol=1e-5, rtol=0)


def test_plane_axes_point_at_oxygen(refs):
    t = refs["closed"]
    sel = [[r.atom(n).index for n in ("N", "CA", "C", "O")] for r in [res for res in t.topology.residues]
           if all(any(a.name == n for a in r.atoms) for n in ("N", "CA", "C", "O"))]
    x = torch.as_tensor(t.xyz[:, np.array(sel)], dtype=torch.float64)
    ca, o = x[:, :, 1], x[:, :, 3]
    ax = plane_axes(ca, plane_angles(ca, o))
    v = o[:, :-1] - ca[:, :-1]
    # oxygen lies in the (e, p) half-plane: no q component, positive p component
    assert (v * ax[:, :, 2]).sum(-1).abs().max() < 1e-9
    assert ((v * ax[:, :, 1]).sum(-1) > 0).all()
    with pytest.raises(Exception):
        plane_angles(ca[:, :1], o[:, :1]) + torch.zeros(1, 5)
