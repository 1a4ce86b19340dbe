"""Robustness of the decoder to wrong tokens (the language model samples with noise)."""
import numpy as np
import pytest
import torch

import mdllm_kit as mk
from mdllm_kit.errors import TokenizerError
from mdllm_kit.tokenizer import TokenizerConfig
from mdllm_kit.tokenizer.decode import fit_rigid_to_anchors, rotation_grid
from mdllm_kit.tokenizer.geometry import anchor_gradients, anchor_jacobian, build_chain, joint_twists
from mdllm_kit.tokenizer.metrics import rmsd_per_frame


@pytest.fixture(scope="module")
def crystal(refs):
    """Calpha tokenizer fitted on the closed crystal, and clean tokens of the open crystal (never fitted)."""
    ca = {k: v.atom_slice(v.topology.select("name CA")) for k, v in refs.items()}
    tok = mk.StructureTokenizer(atoms="ca", device="cpu").fit(ca["closed"])
    z = tok.encode(ca["open"])
    return tok, z, tok.decode(z).xyz


def _set(tok, z, kind, index, shift):
    """Move token ``index`` of ``kind`` by ``shift`` codes (wrapping inside its range)."""
    pos = tok._layout()[kind][index]
    lo, hi = tok.position_vocab(pos)
    z[:, pos] = lo + (z[:, pos] - lo + shift) % (hi - lo)
    return z


@pytest.mark.parametrize("wrong", [
    [("angle", 100, 90)],                          # one wrong angle mid-chain
    [("dihedral", 158, 171)],                      # a dihedral turning about a landmark (residue 160)
    [("distance", 40, 120)],                       # a wrong anchor
    [("angle", 54, -56), ("dihedral", 30, 71)],    # two wrong joints in neighbouring segments
    [("angle", 83, 60), ("dihedral", 85, 128)],    # two wrong joints in one landmark segment
])
def test_wrong_tokens_stay_local(crystal, wrong):
    tok, z, clean = crystal
    noisy = z.copy()
    for kind, index, shift in wrong:
        _set(tok, noisy, kind, index, shift)
    r = rmsd_per_frame(tok.decode(noisy).xyz, clean)[0]
    assert r < 0.6  # Angstrom from the clean decode; without realignment these bend the chain by several A


def test_two_wrong_joints_need_realignment(crystal):
    tok, z, clean = crystal
    noisy = z.copy()
    _set(tok, noisy, "angle", 83, 60)
    _set(tok, noisy, "dihedral", 85, 128)
    plain = mk.StructureTokenizer(TokenizerConfig(**{**tok.config.to_dict(), "realign_fraction": None}))
    plain._fitted, plain._tensors = tok._fitted, tok._tensors
    assert rmsd_per_frame(plain.decode(noisy).xyz, clean)[0] > 2.0
    assert rmsd_per_frame(tok.decode(noisy).xyz, clean)[0] < 0.6


def test_noisy_decoding_is_deterministic_and_batch_independent(ca_tok, open_ca):
    z = ca_tok.perturb(ca_tok.encode(open_ca), 0.02, "random", seed=3)
    a = ca_tok.decode(z).xyz
    assert np.array_equal(a, ca_tok.decode(z).xyz)
    for i in (4, 9):
        np.testing.assert_allclose(ca_tok.decode(z[i : i + 1]).xyz[0], a[i], atol=1e-5)


def test_one_percent_random_noise_is_mostly_harmless(crystal):
    tok, z, clean = crystal
    noisy = tok.perturb(np.repeat(z, 20, axis=0), 0.01, "random", seed=0)
    r = rmsd_per_frame(tok.decode(noisy).xyz, clean)
    assert np.median(r) < 0.3 and r.mean() < 1.0  # Angstrom from the clean decode


def test_twists_reproduce_the_jacobian():
    gen = torch.Generator().manual_seed(1)
    n = 14
    q = torch.cat((0.38 + 0.01 * torch.rand(2, n - 1, generator=gen), 1.5 + 0.3 * torch.rand(2, n - 2, generator=gen),
                   3.0 * (2 * torch.rand(2, n - 3, generator=gen) - 1)), dim=1).double()
    x = build_chain(q[:, : n - 1], q[:, n - 1 : 2 * n - 3], q[:, 2 * n - 3 :])
    pairs = torch.tensor([[0, 13], [2, 7], [3, 4], [1, 3], [5, 9]])
    pivot = torch.cat((torch.arange(n - 1), torch.arange(1, n - 1), torch.arange(2, n - 1)))
    mask = (pairs[:, :1] <= pivot[None]) & (pairs[:, 1:] > pivot[None])
    jac = torch.einsum("fki,fpi->fkp", anchor_gradients(x, pairs), joint_twists(x)) * mask
    torch.testing.assert_close(jac, anchor_jacobian(x, pairs))


def test_rigid_fit_recovers_a_large_motion():
    gen = torch.Generator().manual_seed(2)
    fixed = torch.randn(1, 12, 3, generator=gen, dtype=torch.float64)
    body = torch.randn(1, 12, 3, generator=gen, dtype=torch.float64) + 2.0
    target = torch.linalg.vector_norm(body - fixed, dim=-1)
    target[0, 3] += 0.8  # one wrong anchor
    rot = rotation_grid(7, torch.float64, torch.device("cpu"))[5]  # a large rotation
    moved = (body - body[:, :1]) @ rot.T + body[:, :1] + 0.3
    r, t = fit_rigid_to_anchors(fixed, moved, target, moved[:, 0], rotation_grid(64, torch.float64, torch.device("cpu")),
                                12, 0.05)
    back = torch.einsum("bij,bkj->bki", r, moved - moved[:, :1]) + moved[:, :1] + t[:, None]
    d = torch.linalg.vector_norm(back - fixed, dim=-1) - target
    assert d.abs()[0, [i for i in range(12) if i != 3]].max() < 5e-3  # nm; the wrong anchor keeps a small pull


def test_rotation_grid_is_orthonormal():
    r = rotation_grid(64, torch.float64, torch.device("cpu"))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    assert torch.allclose(torch.linalg.det(r), torch.ones(64, dtype=torch.float64))


@pytest.mark.parametrize("kwargs", [
    {"local_span": 0}, {"realign_fraction": 1.0}, {"realign_fraction": -0.1}, {"realign_starts": 0},
    {"realign_scale_nm": 0.0}, {"loose_sigma_rad": -1.0}, {"realign_refine_iterations": 51},
])
def test_realign_config_is_validated(kwargs):
    with pytest.raises(TokenizerError):
        TokenizerConfig(**kwargs)
