"""``mdllm train`` and ``mdllm sample`` killed with SIGKILL at random points, then resumed.

Each seed kills a real ``mdllm`` process at a random moment of its run (drawn
between the moment it starts writing its output and the duration of an
uninterrupted run, so a kill can land in training steps, checkpoint writes,
token or frame flushes, or the final bundle save), checks that what it left
is either complete or recognisably incomplete, resumes the run with
``--resume`` and compares the result with an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

import mdllm_kit as mk
from mdllm_kit.cli import main
from mdllm_kit.lm.train import CHECKPOINT_DIR, _checkpoint_complete

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (0, 1, 2)
MODEL_ARGS = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate-size", "32"]
TRAIN_ARGS = ["--max-steps", "12", "--window", "2", "--batch-size", "2", "--eval-steps", "100", "--save-steps", "2",
              "--logging-steps", "1", "--seed", "0", "--no-progress", "--device", "cpu"]
SAMPLE_ARGS = ["--n-frames", "20", "--walkers", "2", "--seed", "3", "--flush-every", "1", "--temperature", "1.0",
               "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_adk_traj):
    root = tmp_path_factory.mktemp("kill")
    small_adk_traj.save_xtc(str(root / "traj.xtc"))
    small_adk_traj[0].save_pdb(str(root / "top.pdb"))
    # no decoder refinement: decoding is most of a sampling run's time
    mk.StructureTokenizer(codebook_size=32, refine_iterations=0).fit(small_adk_traj).save_pretrained(root / "tok")
    return root


def _train_argv(files: Path, out: Path) -> list[str]:
    return ["train", str(files / "traj.xtc"), "--top", str(files / "top.pdb"), "--tokenizer", str(files / "tok"),
            "--out", str(out), *TRAIN_ARGS, *MODEL_ARGS]


def _start(argv: list[str], started: Path) -> tuple[subprocess.Popen, float]:
    """Start ``mdllm ARGV`` in a process; return it once ``started`` exists, with that moment."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen([sys.executable, "-m", "mdllm_kit.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return proc, time.monotonic()


def _run_to_the_end(argv: list[str], started: Path) -> float:
    """Run ``mdllm ARGV`` uninterrupted; seconds from ``started`` existing to the end of the process."""
    proc, t0 = _start(argv, started)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    return time.monotonic() - t0


def _run_and_kill(argv: list[str], started: Path, delay_s: float) -> int:
    """Start ``mdllm ARGV``, SIGKILL it ``delay_s`` after ``started`` exists; the exit status."""
    proc, _ = _start(argv, started)
    try:
        time.sleep(delay_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        return proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_nothing_half_written_looks_complete(out: Path) -> None:
    """What a reader takes for complete is complete: a bundle with bundle.json loads; the newest checkpoint has
    either no readable trainer_state.json (the Trainer writes it last: a checkpoint cut while being written) or its weights
    and optimiser state. (An older checkpoint may be cut while the Trainer deletes it; resuming never picks it.)"""
    if (out / "bundle.json").exists():
        mk.load_bundle(out, device="cpu")
    checkpoints = sorted((out / CHECKPOINT_DIR).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if checkpoints:
        try:
            json.loads((checkpoints[-1] / "trainer_state.json").read_text())
        except (OSError, ValueError):  # missing or cut while written: recognisably incomplete
            return
        assert _checkpoint_complete(checkpoints[-1]), checkpoints[-1]


@pytest.fixture(scope="module")
def uninterrupted_training(files, tmp_path_factory):
    """The bundle of an uninterrupted ``mdllm train`` process and the seconds it wrote its output for."""
    out = tmp_path_factory.mktemp("full") / "bundle"
    seconds = _run_to_the_end(_train_argv(files, out), out / CHECKPOINT_DIR)
    return mk.load_bundle(out, device="cpu"), seconds


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_killed_training_resumes_to_the_same_weights(files, uninterrupted_training, tmp_path, seed):
    full, seconds = uninterrupted_training
    out = tmp_path / "bundle"
    delay = np.random.default_rng(seed).uniform(0.0, seconds)
    status = _run_and_kill(_train_argv(files, out), out / CHECKPOINT_DIR, delay)
    assert status in (-signal.SIGKILL, 0)
    _assert_nothing_half_written_looks_complete(out)
    assert main(_train_argv(files, out) + ["--resume"]) == 0
    resumed = mk.load_bundle(out, device="cpu")
    assert resumed.metrics["global_step"] == 12
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    leftovers = [p.name for p in out.rglob(".*") if ".tmp" in p.name]
    assert not leftovers
    assert all(_checkpoint_complete(p) for p in (out / CHECKPOINT_DIR).glob("checkpoint-*"))


@pytest.fixture(scope="module")
def sampling_reference(uninterrupted_training, tmp_path_factory):
    bundle, _ = uninterrupted_training
    out = tmp_path_factory.mktemp("ref") / "gen"
    seconds = _run_to_the_end(["sample", str(bundle.path), "--out", str(out), *SAMPLE_ARGS], out / "params.json")
    return mk.GeneratedEnsemble.load(out), seconds


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_killed_sampling_keeps_its_frames_and_resumes_to_the_same_tokens(uninterrupted_training, sampling_reference,
                                                                        tmp_path, seed):
    bundle, _ = uninterrupted_training
    ref, seconds = sampling_reference
    out = tmp_path / "gen"
    argv = ["sample", str(bundle.path), "--out", str(out), *SAMPLE_ARGS]
    delay = np.random.default_rng(seed).uniform(0.0, seconds)
    status = _run_and_kill(argv, out / "params.json", delay)
    assert status in (-signal.SIGKILL, 0)
    # what the killed run left: every frame in tokens.npz is the reference's, and the folder reads as a whole
    part = mk.GeneratedEnsemble.load(out)
    n = part.n_frames
    np.testing.assert_array_equal(part.tokens, ref.tokens[:, :n])
    np.testing.assert_allclose(part.log_likelihood, ref.log_likelihood[:, :n], rtol=1e-6)
    assert part.trajectory.n_frames == 2 * n
    assert main(argv + ["--resume"]) == 0
    done = mk.GeneratedEnsemble.load(out)
    np.testing.assert_array_equal(done.tokens, ref.tokens)
    np.testing.assert_allclose(done.log_likelihood, ref.log_likelihood, rtol=1e-6)
    # the trajectory file holds every frame, in order (--resume rewrites it from tokens.npz), with the reference's
    # coordinates: the decoder is batch-independent, so regrouping the frames into other batches changes nothing
    on_disk = md.load(str(out / "trajectory.xtc"), top=str(out / "topology.pdb"))
    assert on_disk.n_frames == ref.trajectory.n_frames and np.isfinite(on_disk.xyz).all()
    np.testing.assert_allclose(on_disk.xyz, ref.trajectory.xyz, atol=2e-3)  # xtc precision
    np.testing.assert_array_equal(on_disk.time, np.repeat(np.arange(20.0), 2))
    np.testing.assert_allclose(done.trajectory.xyz, on_disk.xyz)  # the reader returns the complete file
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists() or not mk.lm.walker_pool.fork_available(),
                    reason="needs Linux (/proc, fork)")
def test_killed_sampling_in_two_processes_leaves_no_worker_and_resumes(uninterrupted_training, tmp_path):
    bundle, _ = uninterrupted_training
    argv = ["sample", str(bundle.path), *SAMPLE_ARGS, "--walkers", "4", "--processes", "2"]
    ref_out = tmp_path / "ref"
    seconds = _run_to_the_end([*argv, "--out", str(ref_out)], ref_out / "params.json")
    ref = mk.GeneratedEnsemble.load(ref_out)
    out = tmp_path / "gen"
    proc, _ = _start([*argv, "--out", str(out)], out / "params.json")
    deadline = time.monotonic() + 60
    while not (workers := _children(proc.pid)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # the workers are forked at the first frame
    time.sleep(min(0.2, seconds / 4))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert workers, "the sampling process forked no worker"

    def running(pid: int) -> bool:  # exists and is not a zombie (it may exit while being read)
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while any(running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [w for w in workers if running(w)]
    assert not alive, f"workers {alive} outlived the killed sampling process"
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    np.testing.assert_array_equal(mk.GeneratedEnsemble.load(out).tokens, ref.tokens)
