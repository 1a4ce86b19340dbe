import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mdllm_kit.cli import build_parser, main


def _all_command_paths(parser: argparse.ArgumentParser, prefix=()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_command_paths(sub, (*prefix, name))


def test_every_level_answers_help(capsys):
    paths = list(_all_command_paths(build_parser()))
    assert {("demo",), ("inspect",), ("datasets", "export"), ("tokenizer", "fit"), ("tokenizer", "eval"),
            ("train",), ("sample",)} <= set(paths)
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: mdllm"), path
        assert " ".join(("mdllm", *path)) in out.splitlines()[0]


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "mdllm"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("mdllm-kit ")


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_user_error_is_one_clear_line_not_a_traceback(tmp_path, capsys):
    missing = tmp_path / "nothing.xtc"
    assert main(["inspect", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mdllm: error:")
    assert "Traceback" not in err


def test_datasets_list_names_every_run(capsys):
    assert main(["datasets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, n_frames in (("closed_train", 2400), ("open_train", 2400), ("equilibrium", 4800)):
        assert f"adk_cg/{name}: {n_frames} frames, 214 residues (Calpha)" in lines


def test_datasets_export_then_inspect(tmp_path, capsys):
    assert main(["datasets", "export", "--out", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    names = {p.rsplit("/", 1)[-1] for p in written}
    assert {"adk_cg_ca.pdb", "adk_cg_closed_train.xtc", "adk_cg_open_train.xtc", "adk_cg_equilibrium.xtc",
            "adk_cg_metadata.json", "adk_closed.pdb", "adk_open.pdb"} == names
    assert main(["inspect", str(tmp_path / "adk_cg_closed_train.xtc"),
                 "--top", str(tmp_path / "adk_cg_ca.pdb"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_residues"] == 214
    assert summary["n_frames"] >= 2000
