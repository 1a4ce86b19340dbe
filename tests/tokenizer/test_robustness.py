"""Robustness of the decoder to tokens that disagree with each other (a language model samples with noise)."""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import mdllm_kit as mk
from mdllm_kit.errors import TokenizerError
from mdllm_kit.tokenizer import TokenizerConfig
from mdllm_kit.tokenizer.clashes import min_nonbonded_distance, remove_clashes
from mdllm_kit.tokenizer.decode import landmark_pairs
from mdllm_kit.tokenizer.geometry import (anchor_gradients, anchor_jacobian, build_chain, internal_coordinates,
                                          joint_twists, pair_distances)
from mdllm_kit.tokenizer.metrics import rmsd_per_frame
from mdllm_kit.tokenizer.skeleton import landmark_skeleton, orient, rigid_fit, solve3, trilaterate
from mdllm_kit.tokenizer.tokenizer import anchor_pairs


@pytest.fixture(scope="module")
def crystal(refs):
    """Calpha tokenizer fitted on the closed crystal, and clean tokens of the open crystal (never fitted)."""
    ca = {k: v.atom_slice(v.topology.select("name CA")) for k, v in refs.items()}
    tok = mk.StructureTokenizer(atoms="ca", device="cpu").fit(ca["closed"])
    z = tok.encode(ca["open"])
    return tok, z, ca["open"].xyz


def _set(tok, z, kind, index, shift):
    """Move token ``index`` of ``kind`` by ``shift`` codes (wrapping inside its range)."""
    pos = tok._layout()[kind][index]
    lo, hi = tok.position_vocab(pos)
    z[:, pos] = lo + (z[:, pos] - lo + shift) % (hi - lo)
    return z


def _closest(xyz):
    return min_nonbonded_distance(torch.as_tensor(xyz, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("wrong, limit", [
    ([("angle", 100, 90)], 0.3),                          # one wrong angle mid-chain
    ([("dihedral", 158, 171)], 0.3),                      # a dihedral turning about a landmark (residue 160)
    ([("distance", 40, 120)], 0.3),                       # a wrong anchor
    ([("angle", 54, -56), ("dihedral", 30, 71)], 0.3),    # two wrong joints in neighbouring segments
    # two wrong joints within one landmark segment (8 residues) are not both found yet: 1.6 A
    ([("angle", 83, 60), ("dihedral", 85, 128)], 2.0),
])
def test_wrong_tokens_stay_local(crystal, wrong, limit):
    tok, z, truth = crystal
    noisy = z.copy()
    for kind, index, shift in wrong:
        _set(tok, noisy, kind, index, shift)
    assert rmsd_per_frame(tok.decode(noisy).xyz, truth)[0] < limit  # Angstrom; built alone, these bend the chain


def test_one_wrong_dihedral_is_outvoted_by_anchors(crystal):
    tok, z, truth = crystal
    noisy = _set(tok, z.copy(), "dihedral", 60, tok.config.codebook_size // 2)  # rotated by 180 degrees
    b, t, p = internal_coordinates(torch.as_tensor(truth, dtype=torch.float64))
    p = p.clone()
    p[:, 60] += math.pi
    bent = rmsd_per_frame(build_chain(b, t, p).numpy().astype(np.float32), truth)[0]
    assert bent > 3.0  # the chain alone swings by several A ...
    assert rmsd_per_frame(tok.decode(noisy).xyz, truth)[0] < 0.5  # ... the anchors keep it in place


def test_sampler_like_noise_decodes_close_and_clash_free(crystal):
    """Every local token off by a Gaussian of 2 or 4 bins, true anchors, unseen open state."""
    tok, z, truth = crystal
    zz = np.repeat(z, 6, axis=0)
    for bins, limit in ((2, 0.6), (4, 1.2)):
        dec = tok.decode(tok.jitter(zz, bins, seed=bins)).xyz
        r = rmsd_per_frame(dec, truth)
        assert r.mean() < limit, (bins, r)
        assert _closest(dec).min() >= tok._fitted["clash_floor_nm"] - 1e-4


def test_no_clashes_even_from_random_tokens(crystal):
    tok, z, _ = crystal
    rng = np.random.default_rng(0)
    ranges = tok.valid_token_ranges()
    tokens = rng.integers(ranges[:, 0], ranges[:, 1], size=(3, tok.tokens_per_frame))
    dec = tok.decode(tokens).xyz
    assert np.isfinite(dec).all()
    assert _closest(dec).min() >= tok._fitted["clash_floor_nm"] - 1e-4
    from mdllm_kit.analysis import CA_BREAK_NM
    assert np.linalg.norm(np.diff(dec, axis=1), axis=-1).max() < CA_BREAK_NM  # no chain break


def test_heavy_noise_is_finite_valid_and_deterministic(crystal):
    """30 % of all tokens random: far from any protein, still finite, unbroken and without validity clashes."""
    from mdllm_kit.analysis import CA_BREAK_NM, CA_CLASH_NM
    tok, z, _ = crystal
    noisy = tok.perturb(np.repeat(z, 4, axis=0), 0.3, "random", seed=1)
    a = tok.decode(noisy).xyz
    assert np.isfinite(a).all() and _closest(a).min() >= CA_CLASH_NM
    assert np.linalg.norm(np.diff(a, axis=1), axis=-1).max() < CA_BREAK_NM
    assert np.array_equal(a, tok.decode(noisy).xyz)
    np.testing.assert_allclose(tok.decode(noisy[2:3]).xyz[0], a[2], atol=1e-5)


def test_noisy_decoding_is_deterministic_and_batch_independent(ca_tok, open_ca):
    z = ca_tok.perturb(ca_tok.encode(open_ca), 0.02, "random", seed=3)
    a = ca_tok.decode(z).xyz
    assert np.array_equal(a, ca_tok.decode(z).xyz)
    for i in (4, 9):
        np.testing.assert_allclose(ca_tok.decode(z[i : i + 1]).xyz[0], a[i], atol=1e-5)


def test_one_percent_random_noise_is_mostly_harmless(crystal):
    tok, z, truth = crystal
    noisy = tok.perturb(np.repeat(z, 20, axis=0), 0.01, "random", seed=0)
    r = rmsd_per_frame(tok.decode(noisy).xyz, truth)
    assert np.median(r) < 0.25 and r.mean() < 0.5  # Angstrom (0.14 / 0.30 here)
    off = tok.config.to_dict() | {"hinge_rounds": 0}
    plain = mk.StructureTokenizer(TokenizerConfig(**off))
    plain._fitted, plain._tensors = tok._fitted, tok._tensors
    assert rmsd_per_frame(plain.decode(noisy).xyz, truth).mean() > 2 * r.mean()  # the hinge repair does it


def test_skeleton_recovers_an_unseen_shape_from_anchors_alone(refs):
    ca = refs["open"].atom_slice(refs["open"].topology.select("name CA"))
    x = torch.as_tensor(ca.xyz, dtype=torch.float64)
    n = x.shape[1]
    pairs = torch.as_tensor(anchor_pairs(n, 8, (1, 2, 3, 4, 8, 16, 32)))
    lm, lp = landmark_pairs(pairs, n)
    target = pair_distances(x, pairs) + 0.005 * torch.randn(1, len(pairs), generator=torch.Generator().manual_seed(0),
                                                              dtype=torch.float64)
    target[0, 17] += 0.8  # one wrong anchor
    # the chain's landmarks are only used for handedness: give it a badly drifted copy
    drifted = x[:, lm] + 0.3 * torch.randn(1, len(lm), 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sk = landmark_skeleton(lp, target, drifted, 0.008, 15, 0.05)
    assert rmsd_per_frame(sk.numpy().astype(np.float32), ca.xyz[:, lm.numpy()])[0] < 0.3  # Angstrom
    mirrored = sk * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(orient(mirrored, x[:, lm]), sk)
    # without offsets 1, 2 and 3 the landmarks cannot be placed one by one
    assert trilaterate(lp[:0], target[:, :0], len(lm), x[:, lm], 0.05) is None


def test_rigid_fit_and_solve3():
    gen = torch.Generator().manual_seed(2)
    pts = torch.randn(5, 9, 3, generator=gen, dtype=torch.float64)
    q = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, a, b, c = q.unbind(-1)
    rot = torch.stack((
        torch.stack((1 - 2 * (b * b + c * c), 2 * (a * b - w * c), 2 * (a * c + w * b)), -1),
        torch.stack((2 * (a * b + w * c), 1 - 2 * (a * a + c * c), 2 * (b * c - w * a)), -1),
        torch.stack((2 * (a * c - w * b), 2 * (b * c + w * a), 1 - 2 * (a * a + b * b)), -1)), -2)
    moved = pts @ rot.transpose(1, 2) + torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64)
    r, t, rms = rigid_fit(pts, moved)
    torch.testing.assert_close(r, rot)
    assert rms.max() < 1e-9
    m = torch.randn(7, 3, 3, generator=gen, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)
    v = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(m @ solve3(m, v).unsqueeze(-1), v.unsqueeze(-1))


def test_remove_clashes_keeps_bonds_and_clears_the_floor():
    gen = torch.Generator().manual_seed(3)
    n = 30
    q = torch.cat((torch.full((1, n - 1), 0.38), 1.0 + 0.2 * torch.rand(1, n - 2, generator=gen),
                   torch.full((1, n - 3), 0.9)), dim=1).double()  # a tight helix-like coil with clashes
    x = build_chain(q[:, : n - 1], q[:, n - 1 : 2 * n - 3], q[:, 2 * n - 3 :])
    assert _closest(x.numpy()).min() < 0.3
    y = remove_clashes(x, 0.33, 100)
    assert _closest(y.numpy()).min() >= 0.33 - 1e-4
    bonds = torch.linalg.vector_norm(y[:, 1:] - y[:, :-1], dim=-1)
    assert (bonds - 0.38).abs().max() < 0.02
    clear = build_chain(torch.full((1, n - 1), 0.38, dtype=torch.float64), torch.full((1, n - 2), 2.0, dtype=torch.float64),
                        torch.full((1, n - 3), 3.0, dtype=torch.float64))
    assert torch.equal(remove_clashes(clear, 0.33, 100), clear)  # frames without a clash are untouched


def test_fitted_clash_floor_lets_real_frames_pass(crystal, refs):
    tok, _, _ = crystal
    from mdllm_kit.analysis import CA_CLASH_NM
    floor = tok._fitted["clash_floor_nm"]
    assert CA_CLASH_NM < floor <= _closest(tok.reduce(refs["closed"]).xyz).min() + 1e-6
    own = mk.StructureTokenizer(atoms="ca", device="cpu", clash_floor_nm=0.36).fit(tok.reduce(refs["closed"]))
    assert own._fitted["clash_floor_nm"] == 0.36


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


_LARGE_BACKBONE = textwrap.dedent("""
    import time, numpy as np, torch, mdtraj as md
    import mdllm_kit as mk
    torch.set_num_threads(2)
    refs = mk.datasets.adk_references()
    sel = lambda t: t.atom_slice(t.topology.select("protein and name N CA C O"))
    a, b = sel(refs["closed"]), sel(refs["open"])
    b = md.Trajectory(b.xyz + np.float32(3.0), b.topology)
    big = a.stack(b)  # two AdK chains read as one protein of 428 residues
    tok = mk.StructureTokenizer(device="cpu").fit(big)
    assert tok.mode == "backbone" and tok.n_residues >= 350
    z = tok.perturb(tok.encode(md.join([big, big])), 0.05, "random", seed=0)
    t0 = time.perf_counter()
    out = tok.decode(z, threads=None)  # keep torch's 2 threads (the default decodes on one)
    assert torch.get_num_threads() == 2
    assert np.isfinite(out.xyz).all() and out.n_frames == 2
    print("decoded", round(time.perf_counter() - t0, 2))
""")


def test_large_backbone_protein_decodes_with_two_threads():
    """A 350+ residue backbone protein with 2 torch threads used to hang in MKL's LU (DLASWP)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    res = subprocess.run([sys.executable, "-c", _LARGE_BACKBONE], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "decoded" in res.stdout and "MKL ERROR" not in res.stderr + res.stdout


def test_decode_runs_on_one_thread_by_default_and_restores_the_count(monkeypatch):
    """The decoder's tiny matrices run on DECODE_THREADS torch threads; the caller's setting comes back."""
    from mdllm_kit.threads import DECODE_THREADS

    ref = mk.datasets.adk_references()["closed"]
    ca = ref.atom_slice(ref.topology.select("name CA and resid 0 to 19"))
    tok = mk.StructureTokenizer(codebook_size=32, device="cpu").fit(ca)
    seen = []
    original = tok._decode
    monkeypatch.setattr(tok, "_decode", lambda *a: (seen.append(torch.get_num_threads()), original(*a))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = tok.decode(tok.encode(ca))
        two = tok.decode(tok.encode(ca), threads=None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [DECODE_THREADS, 2]
    assert rmsd_per_frame(one.xyz, two.xyz).max() < 1e-4  # nm: the thread count does not change the frame


@pytest.mark.parametrize("kwargs", [
    {"skeleton_iterations": -1}, {"robust_scale_nm": 0.0}, {"robust_scale_nm": None}, {"prior_scale": -1.0},
    {"prior_scale": float("inf")}, {"clash_floor_nm": 0.7}, {"clash_floor_nm": -0.1}, {"clash_iterations": -5},
])
def test_decoder_config_is_validated(kwargs):
    with pytest.raises(TokenizerError):
        TokenizerConfig(**kwargs)


def test_hinge_repair_restores_one_wrong_joint_and_leaves_clean_chains(refs):
    from mdllm_kit.tokenizer.hinges import repair_hinges

    ca = refs["open"].atom_slice(refs["open"].topology.select("name CA"))
    x = torch.as_tensor(ca.xyz, dtype=torch.float64)
    n = x.shape[1]
    q_true = torch.cat(internal_coordinates(x), dim=1)
    lm = torch.unique(torch.as_tensor(anchor_pairs(n, 8, (1, 2, 3, 4))))
    skeleton = x[:, lm]
    wrong = q_true.clone()
    wrong[0, 2 * n - 3 + 100] += 1.5  # dihedral 100 off by 86 degrees
    wrong[0, n - 1 + 147] -= 0.5  # angle at residue 148 (mid-segment) off by 29 degrees
    both = torch.cat((wrong, q_true))
    q, chain = repair_hinges(both, skeleton.expand(2, -1, -1), lm, 0.1, 4, math.radians(50))
    dq = q[0] - q_true[0]
    dq[2 * n - 3 :] = torch.remainder(dq[2 * n - 3 :] + math.pi, 2 * math.pi) - math.pi
    assert dq.abs().max() < math.radians(1.0)  # both joints found, values within the 1-degree fine grid
    torch.testing.assert_close(q[1], q_true[0])  # a consistent chain is not touched
    assert rmsd_per_frame(chain.numpy().astype(np.float32), ca.xyz)[0] < 0.2


def test_backbone_decoder_fuzz(bb_tok, refs):
    """Uniformly random valid tokens and heavily noised tokens of a backbone tokenizer: finite N, CA, C, O."""
    rng = np.random.default_rng(5)
    ranges = bb_tok.valid_token_ranges()
    random = rng.integers(ranges[:, 0], ranges[:, 1], size=(2, bb_tok.tokens_per_frame))
    noisy = bb_tok.perturb(np.repeat(bb_tok.encode(refs["open"]), 2, axis=0), 0.3, "random", seed=2)
    for tokens in (random, noisy):
        dec = bb_tok.decode(tokens)
        assert dec.n_atoms == 4 * bb_tok.n_residues and np.isfinite(dec.xyz).all()
        ca = dec.xyz[:, dec.topology.select("name CA")]
        assert np.linalg.norm(np.diff(ca, axis=1), axis=-1).max() < 0.42  # nm: no chain break
