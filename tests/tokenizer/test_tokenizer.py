import json

import mdtraj as md
import numpy as np
import pytest

import mdllm_kit as mk
from mdllm_kit.errors import TokenizerError
from mdllm_kit.tokenizer.metrics import bond_ok_fraction, rmsd_per_frame


def test_shapes_vocab_and_layout(ca_tok, closed_ca):
    tok = ca_tok
    z = tok.encode(closed_ca[:5])
    n = closed_ca.n_atoms
    assert tok.mode == "ca"
    assert z.shape == (5, tok.tokens_per_frame) and z.dtype == np.int64
    assert tok.tokens_per_frame == 2 * n - 5 + tok.n_anchors
    assert tok.tokens_per_frame * 11 <= 9000
    ranges = tok.valid_token_ranges()
    assert ranges.shape == (tok.tokens_per_frame, 2)
    assert ((z >= ranges[:, 0]) & (z < ranges[:, 1])).all()
    kr = tok.kind_ranges()
    assert sorted(kr.values())[0][0] == 0 and max(hi for _, hi in kr.values()) == tok.vocab_size
    assert tok.position_vocab(0) == kr["angle"] and tok.position_vocab(1) == kr["dihedral"]
    assert tok.position_kinds()[-1] == "distance"


def test_round_trip_transfers_to_unseen_state(ca_tok, closed_ca, open_ca):
    for traj in (closed_ca[-5:], open_ca):
        dec = ca_tok.decode(ca_tok.encode(traj))
        assert dec.n_atoms == traj.n_atoms and [a.name for a in dec.topology.atoms][:2] == ["CA", "CA"]
        r = rmsd_per_frame(dec.xyz, traj.xyz)
        assert r.mean() < 0.5  # Angstrom (the jitter makes bond lengths vary by 0.3 A)
        assert bond_ok_fraction(dec.xyz) >= bond_ok_fraction(traj.xyz) - 1e-9
    # the open state is not pulled towards the closed training frames
    dec = ca_tok.decode(ca_tok.encode(open_ca))
    assert rmsd_per_frame(dec.xyz, closed_ca.xyz[:1]).mean() > 6.0


def test_decoding_is_deterministic_and_batch_independent(ca_tok, open_ca):
    z = ca_tok.encode(open_ca)
    a = ca_tok.decode(z).xyz
    b = ca_tok.decode(z).xyz
    c = ca_tok.decode(z[3:4]).xyz
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a[3:4], c, atol=1e-6)


def test_all_atom_input_is_reduced(refs):
    tok = mk.StructureTokenizer(atoms="ca", device="cpu").fit(refs["closed"])
    z_all = tok.encode(refs["open"])
    ca = refs["open"].atom_slice(refs["open"].topology.select("name CA"))
    assert np.array_equal(z_all, tok.encode(ca))


def test_backbone_mode(bb_tok, refs):
    assert bb_tok.mode == "backbone"
    assert bb_tok.tokens_per_frame == bb_tok.valid_token_ranges().shape[0]
    for state in ("closed", "open"):
        dec = bb_tok.decode(bb_tok.encode(refs[state]))
        assert [a.name for a in dec.topology.residue(0).atoms] == ["N", "CA", "C", "O"]
        ref = bb_tok.reduce(refs[state])
        assert rmsd_per_frame(dec.xyz, ref.xyz)[0] < 0.4  # Angstrom, all backbone atoms
    with pytest.raises(TokenizerError, match="no N atom"):
        ca = refs["open"].atom_slice(refs["open"].topology.select("name CA"))
        bb_tok.encode(ca)


def test_save_load_round_trip(ca_tok, open_ca, tmp_path):
    ca_tok.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["tokenizer.safetensors", "tokenizer_config.json"]
    tok2 = mk.StructureTokenizer.from_pretrained(tmp_path / "tok")
    assert tok2.fingerprint == ca_tok.fingerprint
    z = ca_tok.encode(open_ca)
    assert np.array_equal(tok2.encode(open_ca), z)
    assert np.array_equal(tok2.decode(z).xyz, ca_tok.decode(z).xyz)


def test_load_errors(ca_tok, tmp_path):
    with pytest.raises(TokenizerError, match="missing"):
        mk.StructureTokenizer.from_pretrained(tmp_path / "nothing")
    d = ca_tok.save_pretrained(tmp_path / "tok")
    meta = json.loads((d / "tokenizer_config.json").read_text())
    meta["fitted"]["max_distance_nm"] += 1.0
    (d / "tokenizer_config.json").write_text(json.dumps(meta))
    with pytest.raises(TokenizerError, match="fingerprint"):
        mk.StructureTokenizer.from_pretrained(d)


def test_input_errors(ca_tok, closed_ca, refs):
    with pytest.raises(TokenizerError, match="protein residues"):
        ca_tok.encode(closed_ca.atom_slice(np.arange(100)))
    with pytest.raises(TokenizerError, match="mdtraj"):
        ca_tok.encode(closed_ca.xyz)
    z = ca_tok.encode(closed_ca[:2])
    with pytest.raises(TokenizerError, match="shape"):
        ca_tok.decode(z[:, :-1])
    bad = z.copy()
    bad[0, 1] = ca_tok.kind_ranges()["angle"][0]  # an angle id at a dihedral position
    with pytest.raises(TokenizerError, match="out of range"):
        ca_tok.decode(bad)
    bad[0, 1] = ca_tok.vocab_size
    with pytest.raises(TokenizerError, match="out of range"):
        ca_tok.decode(bad)
    with pytest.raises(TokenizerError, match="not fitted"):
        mk.StructureTokenizer().encode(closed_ca)
    nan = md.Trajectory(closed_ca.xyz[:1].copy(), closed_ca.topology)
    nan.xyz[0, 3, 0] = np.nan
    with pytest.raises(TokenizerError, match="NaN"):
        ca_tok.encode(nan)


def test_single_frame_tokens_and_progress(ca_tok, closed_ca):
    calls = []
    z = ca_tok.encode(closed_ca[:3], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)
    assert ca_tok.decode(z[0]).n_frames == 1


def test_noise_stays_local(ca_tok, open_ca):
    z = ca_tok.encode(open_ca)
    base = rmsd_per_frame(ca_tok.decode(z).xyz, open_ca.xyz).mean()
    nb = ca_tok.perturb(z, 0.01, "neighbour", seed=0)
    assert (nb != z).mean() < 0.03
    assert ca_tok.check_tokens(nb) is not None
    assert rmsd_per_frame(ca_tok.decode(nb).xyz, open_ca.xyz).mean() - base < 0.1
    rnd = ca_tok.perturb(z, 0.05, "random", seed=0)
    ca_tok.check_tokens(rnd)
    jit = ca_tok.jitter(z, 4.0, seed=0)  # every angle and dihedral moved, anchors kept
    ca_tok.check_tokens(jit)
    anchors = np.asarray(ca_tok.position_kinds()) == "distance"
    assert np.array_equal(jit[:, anchors], z[:, anchors]) and (jit[:, ~anchors] != z[:, ~anchors]).mean() > 0.5
    assert np.array_equal(jit, ca_tok.jitter(z, 4.0, seed=0))


def test_backbone_jitter_moves_the_angle_part_of_the_joint_code(bb_tok, refs):
    """In backbone mode the bond angle lives in the joint angle/plane code: jitter moves that part only."""
    z = np.repeat(bb_tok.encode(refs["open"]), 20, axis=0)
    jit = bb_tok.jitter(z, 4.0, seed=0)
    bb_tok.check_tokens(jit)
    assert np.array_equal(jit, bb_tok.jitter(z, 4.0, seed=0))
    kinds = np.asarray(bb_tok.position_kinds())
    kept = (kinds == "distance") | (kinds == "plane")
    assert np.array_equal(jit[:, kept], z[:, kept])
    assert (jit[:, kinds == "dihedral"] != z[:, kinds == "dihedral"]).mean() > 0.5
    lo, nb = bb_tok.kind_ranges()["angle_plane"][0], bb_tok.config.plane_bins
    joint, moved = z[:, kinds == "angle_plane"] - lo, jit[:, kinds == "angle_plane"] - lo
    assert np.array_equal(moved % nb, joint % nb)  # the peptide-plane part stays
    step = moved // nb - joint // nb  # angle bins; std ~4 (a few clipped at the range ends)
    assert (step != 0).mean() > 0.5 and 3.0 < step.std() < 5.0
    assert np.array_equal(bb_tok.jitter(z, 0.0, seed=3), z)


def test_structure_tokenizer_implements_the_frame_tokenizer_contract(ca_tok, bb_tok):
    from mdllm_kit.contracts import FrameTokenizer

    for tok in (ca_tok, bb_tok):
        assert isinstance(tok, FrameTokenizer)
        assert tok.periodic_kinds <= set(tok._quantisers())
        assert "dihedral" in tok.periodic_kinds and "distance" not in tok.periodic_kinds
        assert set(tok.position_kinds()) <= set(tok.kind_ranges())
