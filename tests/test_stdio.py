"""Machine-readable output stays valid when native code writes to file descriptor 1 (mdllm_kit.stdio)."""
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mdllm_kit as mk

ROOT = Path(__file__).resolve().parents[1]


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_redirect_sends_native_writes_to_stderr_and_json_to_stdout(tmp_path):
    # a real process with stdout a pipe: C's printf is fully buffered there and must be flushed inside the block
    result = _run_python("""
        import ctypes, os, sys
        from mdllm_kit.stdio import print_json, stdout_to_stderr
        print("before")
        with stdout_to_stderr():
            os.write(1, b"native write(1) line\\n")
            ctypes.CDLL(None).printf(b"native printf without newline")
            print("python print inside")
            print_json({"ok": True, "values": [1, 2]})
        print("after")
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "before" and lines[-1] == "after"
    assert json.loads("\n".join(lines[1:-1])) == {"ok": True, "values": [1, 2]}
    for text in ("native write(1) line", "native printf without newline", "python print inside"):
        assert text in result.stderr and text not in result.stdout


def test_redirect_is_a_no_op_when_disabled(capfd):
    from mdllm_kit.stdio import stdout_to_stderr

    with stdout_to_stderr(enabled=False):
        os.write(1, b"plain\n")
    assert capfd.readouterr().out == "plain\n"


def test_print_json_refuses_nan(capsys):
    from mdllm_kit.stdio import print_json

    with pytest.raises(ValueError):
        print_json({"x": float("nan")})


def _dcd_claiming_more_frames(path: Path, traj, claimed: int) -> None:
    """A CHARMM/NAMD DCD whose header frame count (NSET, bytes 8-12) exceeds the frames in the file."""
    traj.save_dcd(str(path))
    data = bytearray(path.read_bytes())
    assert struct.unpack("<i4si", bytes(data[:12]))[:2] == (84, b"CORD")
    data[8:12] = struct.pack("<i", claimed)
    path.write_bytes(bytes(data))


def test_json_of_every_command_is_valid_when_the_dcd_plugin_prints(tmp_path):
    traj = mk.datasets.load_adk_cg("equilibrium")[:12]
    _dcd_claiming_more_frames(tmp_path / "run.dcd", traj, 500)
    traj[0].save_pdb(str(tmp_path / "top.pdb"))
    mk.datasets.export_adk(tmp_path / "data")
    commands = {
        "inspect": ["inspect", "run.dcd", "--top", "top.pdb", "--json"],
        "fit": ["tokenizer", "fit", "run.dcd", "--top", "top.pdb", "--out", "tok", "--codebook-size", "16",
                "--refine-iterations", "0", "--device", "cpu", "--json"],
        "eval": ["tokenizer", "eval", "tok", "run.dcd", "--top", "top.pdb", "--json"],
        "analyze": ["analyze", "run.dcd", "--top", "top.pdb", "--train", "run.dcd", "--train-top", "top.pdb",
                    "--ref", "closed=data/adk_closed.pdb", "--json"],
    }
    # one interpreter runs every command with its file descriptor 1 on a file of its own, as a shell would
    result = _run_python(f"""
        import os, sys
        from mdllm_kit.cli import main
        for name, argv in {commands!r}.items():
            sys.stdout.flush()
            saved = os.dup(1)
            with open(name + ".out", "wb") as out:
                os.dup2(out.fileno(), 1)
                status = main(argv)
                sys.stdout.flush()
                os.dup2(saved, 1)
            os.close(saved)
            if status:
                sys.exit(f"{{name}} exited with {{status}}")
        """, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DCD header claims 500 frames" in result.stderr  # the plugin did print, onto stderr
    outputs = {name: json.loads((tmp_path / f"{name}.out").read_text()) for name in commands}
    assert outputs["inspect"]["n_frames"] == 12
    assert outputs["fit"]["n_frames"] == 12 and outputs["eval"]["n_frames"] == 12
    assert outputs["analyze"]["n_frames"] == 12


def test_mdllm_inspect_json_on_a_short_dcd_is_json(tmp_path):
    traj = mk.datasets.load_adk_cg("equilibrium")[:5]
    _dcd_claiming_more_frames(tmp_path / "run.dcd", traj, 40)
    traj[0].save_pdb(str(tmp_path / "top.pdb"))
    result = subprocess.run([str(Path(sys.executable).parent / "mdllm"), "inspect", "run.dcd", "--top", "top.pdb",
                             "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_frames"] == 5
    assert "dcdplugin" in result.stderr
