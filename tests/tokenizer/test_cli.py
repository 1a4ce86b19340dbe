import argparse
import json

import pytest

from mdllm_kit.tokenizer.cli import add_tokenizer_commands, eval_tokenizer, fit_tokenizer_cli


@pytest.fixture()
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdllm tokenizer")
    add_tokenizer_commands(p.add_subparsers(dest="action"))
    return p


def test_help(parser, capsys):
    for action in ("fit", "eval"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([action, "--help"])
        assert exc.value.code == 0
    assert "--codebook-size" not in capsys.readouterr().out.split("usage: mdllm tokenizer eval")[-1]


def test_fit_and_eval_functions(closed_ca, open_ca, tmp_path):
    closed_ca.save_xtc(str(tmp_path / "train.xtc"))
    closed_ca[0].save_pdb(str(tmp_path / "top.pdb"))
    open_ca.save_pdb(str(tmp_path / "open.pdb"))
    res = fit_tokenizer_cli([tmp_path / "train.xtc"], tmp_path / "tok", top=tmp_path / "top.pdb", device="cpu")
    assert res["mode"] == "ca" and res["n_frames"] == closed_ca.n_frames
    ev = eval_tokenizer(tmp_path / "tok", tmp_path / "open.pdb")
    assert ev["n_frames"] == open_ca.n_frames and ev["rmsd_mean_A"] < 0.5
    assert ev["fingerprint"] == res["fingerprint"] and ev["frames_per_s"] > 0


def test_parsed_commands_run(parser, closed_ca, tmp_path, capsys):
    closed_ca.save_pdb(str(tmp_path / "train.pdb"))
    ns = parser.parse_args(["fit", str(tmp_path / "train.pdb"), "--out", str(tmp_path / "tok"), "--device", "cpu"])
    assert ns.func(ns) == 0
    capsys.readouterr()
    ns = parser.parse_args(["eval", str(tmp_path / "tok"), str(tmp_path / "train.pdb"), "--json"])
    assert ns.func(ns) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rmsd_mean_A"] < 0.5 and out["bonds_ok_pct"] > 90
