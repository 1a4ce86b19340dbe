# %% [markdown]
# # Reproduce the benchmark tables
#
# `BENCHMARKS.md` records what mdllm-kit achieves, with the command, machine and date of each
# measurement. This notebook runs the same benchmark code (`benchmarks/bench_tokenizer.py` and
# `benchmarks/bench_lm.py`, imported from the repository, not copied) and shows the fresh results
# next to the recorded tables, so you can check the numbers on your own machine.
#
# * With `MDLLM_QUICK=1` (what the test suite sets) everything runs on small subsets in under a
#   minute: the tables then show the code path working, **not** numbers to compare.
# * Without it, the notebook uses the settings of the recorded runs (a few minutes on a 2-core CPU).
#
# Speeds depend on the machine and on whatever else runs on it (the recorded runs were made on a
# shared 2-core machine; the load average is printed below). Fidelity numbers (RMSD, bond
# fractions) do not depend on the machine: at full settings they should agree with the recorded
# ones to about 0.01 A; larger differences mean that the code or the data changed since the
# recorded run (the set sizes are printed, compare them with those in `BENCHMARKS.md`).

# %% [markdown]
# ## Parameters

# %%
import os
import tempfile
from pathlib import Path

QUICK = os.environ.get("MDLLM_QUICK") == "1"
# tokenizer benchmark: frames of each set (None: the full sets of the recorded run)
TOK_SUBSET = 60 if QUICK else None
TOK_FIT_SUBSET = 400 if QUICK else None
NOISE_FRAMES = 20 if QUICK else 200
# LM throughput benchmark: the command line recorded in BENCHMARKS.md, or a smaller one
LM_ARGS = (["cpu", "--frames", "40", "--train-steps", "1", "--sample-frames", "1", "--threads", "1"] if QUICK else
           ["cpu", "--frames", "120", "--train-steps", "5", "--sample-frames", "2", "--threads", "1"])
REPO = Path.cwd().parent
OUT = Path(os.environ.get("MDLLM_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="mdllm_benchmarks_")) / "benchmarks"
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}; repository {REPO}; results in {OUT}")

# %% [markdown]
# The benchmark scripts are loaded as modules from `benchmarks/`, and the recorded tables are read
# from `BENCHMARKS.md`, so this notebook always shows the current versions of both.

# %%
import importlib.util
import sys

from IPython.display import Markdown, display


def load_script(name):
    """Import benchmarks/<name>.py as a module (the scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def recorded_table(header_start):
    """The markdown table of BENCHMARKS.md whose header row starts with `header_start`."""
    lines = (REPO / "BENCHMARKS.md").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            return Markdown("\n".join(lines[i:end]))
    return Markdown(f"*(no table starting with `{header_start}` in BENCHMARKS.md)*")


bench_tokenizer = load_script("bench_tokenizer")
bench_lm = load_script("bench_lm")
print(bench_lm.machine())

# %% [markdown]
# ## 1. Structure tokenizer
#
# The data of the recorded run (`bench_tokenizer.shipped_data`): the tokenizer is fitted on the
# first 80 % of the closed training run; test sets are (a) the remaining 20 %, held out, and (b)
# frames of the equilibrium run in the open basin plus the open crystal, a state never seen in
# fitting. Three decoders: `default` (`StructureTokenizer()`: landmark skeleton from the anchors,
# local chain filled onto it with hinge repair, robust refinement, clash removal), `no_hinges`
# (without the hinge repair) and `no_refine` (the filled skeleton as it is).

# %%
import time

import numpy as np
import torch

import mdllm_kit as mk

torch.set_num_threads(1)  # as in the recorded run (--threads 1)
data = bench_tokenizer.shipped_data()


def subset(traj, n):
    return traj if n is None or traj.n_frames <= n else traj[np.linspace(0, traj.n_frames - 1, n).astype(int)]


fit_set = subset(data["fit"], TOK_FIT_SUBSET)
tests = {"closed": subset(data["closed_heldout"], TOK_SUBSET), "open": subset(data["open"], TOK_SUBSET)}
noise_set = subset(data["open"], NOISE_FRAMES)
print(data["source"])
print(f"used here: fit {fit_set.n_frames}, closed {tests['closed'].n_frames}, open {tests['open'].n_frames}, "
      f"noise {noise_set.n_frames} frames")

# the three decoders of the recorded run (the same settings as bench_tokenizer.main)
methods = {"default": {}, "no_hinges": {"hinge_rounds": 0}, "no_refine": {"refine_iterations": 0, "hinge_rounds": 0}}
tok_results = {}
for name, kw in methods.items():
    t0 = time.perf_counter()
    tok = mk.StructureTokenizer(device="cpu", **kw).fit(fit_set)
    fit_s = time.perf_counter() - t0
    fit_tokens = tok.encode(fit_set)
    tok_results[name] = {
        "fit_s": fit_s, "tokens_per_frame": tok.tokens_per_frame, "vocab_size": tok.vocab_size,
        "code_usage_pct": 100 * len(np.unique(fit_tokens)) / tok.vocab_size,
        "closed": bench_tokenizer.evaluate(tok, tests["closed"]), "open": bench_tokenizer.evaluate(tok, tests["open"]),
        "noise_open": bench_tokenizer.noise(tok, noise_set, seed=0),
    }
    print(f"{name}: done in {time.perf_counter() - t0:.1f} s")

# %% [markdown]
# ### Fidelity and speed: fresh

# %%
import pandas as pd

rows = {}
for name, r in tok_results.items():
    c, o = r["closed"], r["open"]
    rows[name] = {
        "closed held-out mean (A)": c["rmsd_mean"], "closed p95 (A)": c["rmsd_p95"],
        "open unseen mean (A)": o["rmsd_mean"], "open p95 (A)": o["rmsd_p95"],
        "bonds 3.5-4.1 A closed (%)": c["bonds_ok_pct"], "bonds open (%)": o["bonds_ok_pct"],
        "code usage (%)": r["code_usage_pct"], "fit (s)": r["fit_s"],
        "frames/s (wall)": 0.5 * (c["fps"] + o["fps"]), "frames/s (per CPU-s)": 0.5 * (c["fps_cpu_time"] + o["fps_cpu_time"]),
        "tokens/frame": r["tokens_per_frame"], "vocab": r["vocab_size"],
    }
pd.DataFrame(rows).T.round(3)

# %% [markdown]
# ### Recorded in BENCHMARKS.md

# %%
display(recorded_table("| method | closed held-out"))

# %% [markdown]
# ### Token noise: fresh, then recorded
#
# RMSD growth over the clean decode when a fraction of the tokens is changed to the adjacent bin
# ("neighbour") or to a uniformly random valid id ("random"), perturbation seed 0.

# %%
noise_rows = {(name, key.replace("_", " ")): v for name, r in tok_results.items() for key, v in r["noise_open"].items()}
display(pd.DataFrame(noise_rows).T.rename(columns={"growth_mean": "RMSD growth mean (A)",
                                                   "growth_median": "growth median (A)",
                                                   "rmsd_p95": "p95 RMSD (A)"}).round(3))
display(recorded_table("| method | noise |"))

# %% [markdown]
# ## 2. Language model throughput (CPU)
#
# `bench_lm.py cpu` trains the default model for a few steps with `mk.train` and times sampling
# with `mk.Sampler` at 1 and 16 walkers against a naive baseline (HF `generate`, one walker at a
# time, the whole context re-encoded for every frame). We call its `main` with the arguments of
# the recorded command (`LM_ARGS`), exactly as the command line would.

# %%
import contextlib
import io
import json

print("python benchmarks/bench_lm.py " + " ".join(LM_ARGS))
log = io.StringIO()
with contextlib.redirect_stdout(log):
    bench_lm.main([*LM_ARGS, "--out", str(OUT / "bench_lm_cpu.json")])
lm = json.loads((OUT / "bench_lm_cpu.json").read_text())
print(f"finished in {lm['wall_s']:.0f} s; load average at the end {lm['machine']['load_average_at_end']}")

# %%
s = lm["sample"]
lm_rows = {
    f"training (mk.train, {lm['train']['steps']} steps)": {"tokens/s": lm["train"]["tokens_per_s"], "frames/s": None},
    "sampling, mk.Sampler, 1 walker": {"tokens/s": s["walkers_1"]["tokens_per_s"], "frames/s": s["walkers_1"]["frames_per_s"]},
    "sampling, mk.Sampler, 16 walkers (one batch)": {"tokens/s": s["walkers_16"]["tokens_per_s"],
                                                     "frames/s": s["walkers_16"]["frames_per_s"]},
    "naive baseline: HF generate, one walker at a time": {
        "tokens/s": s["naive_generate_1_walker_at_a_time"]["tokens_per_s"],
        "frames/s": s["naive_generate_1_walker_at_a_time"]["frames_per_s"]},
}
display(pd.DataFrame(lm_rows).T.round(2))
print(f"speed-up over the baseline: {s['speedup_walkers_16_vs_naive_tokens_per_s']:.1f}x at 16 walkers, "
      f"{s['speedup_walkers_1_vs_naive_tokens_per_s']:.1f}x at 1 walker (wall clock)")
print(f"model: {lm['train']['parameters']['total']:,} parameters; {lm['tokens_per_frame']} tokens per frame")

# %% [markdown]
# ### Recorded in BENCHMARKS.md

# %%
display(recorded_table("| what | tokens/s | frames/s |"))

# %% [markdown]
# ## What is not reproduced here
#
# * **GPU numbers** (`bench_lm.py gpu`): a Mistral-7B-shaped model needs an H100/H200-class GPU;
#   run `python benchmarks/bench_lm.py gpu --out bench_lm_gpu.json` there.
# * **The end-to-end demo** table: that is `time make demo` (several minutes); its report
#   `demo_output/report.html` has the numbers.
# * Any other script in `benchmarks/` has its own command at the top of its file and in
#   `BENCHMARKS.md`.
