"""DDP: the same training code under torchrun with 2 CPU processes (gloo). Takes ~30-60 s."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    import torch.distributed as dist
    from toy_tokenizer import ToyTokenizer, toy_trajectory
    from mdllm_kit.lm.config import ModelSettings, TrainSettings
    from mdllm_kit.lm.train import train

    traj = toy_trajectory(n_frames=60, n_atoms=6, seed=0)
    tok = ToyTokenizer(traj.topology, n_bins=16)
    bundle = train(traj, tok, {out!r},
                   ModelSettings(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=32),
                   TrainSettings(window_frames=2, max_steps=3, batch_size=2, eval_steps=3, save_steps=3,
                                 logging_steps=1, eval_max_windows=4, rmsd_max_frames=2),
                   progress=False, device="cpu")
    with open({marker!r} + str(dist.get_rank()), "w") as handle:
        handle.write(f"{{dist.get_rank()}} {{dist.get_world_size()}} {{dist.get_backend()}}")
""")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_torchrun_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    out = tmp_path / "bundle"
    marker = str(tmp_path / "rank_done_")
    script.write_text(SCRIPT.format(here=str(HERE), out=str(out), marker=marker))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        proc.communicate()
        raise
    out_text, err_text = stdout, stderr
    assert proc.returncode == 0, out_text[-3000:] + err_text[-3000:]
    done = [Path(marker + str(rank)).read_text() for rank in (0, 1)]
    assert done == ["0 2 gloo", "1 2 gloo"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == 3
    assert (out / "bundle.json").exists()
