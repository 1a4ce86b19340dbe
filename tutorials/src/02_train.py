# %% [markdown]
# # Tutorial 2: train the language model
#
# MD-LLM treats a trajectory as text: frame after frame of structure tokens. A causal language
# model (Mistral architecture, HF transformers) learns to predict the tokens of the next frame
# from the `W` frames before it, exactly like predicting the next sentence from the previous
# ones. Rolled forward, it generates new trajectories (tutorial 3).
#
# In this tutorial you will
#
# 1. tokenize the closed-state training run (tutorial 1);
# 2. see how frames become one training sequence;
# 3. choose model and training settings, train with the HF `Trainer` and watch its progress;
# 4. read the evaluation metrics, and compare them with two baselines that need no model at all:
#    guessing uniformly, and copying the previous frame.
#
# Expectations, honestly: the default model is small (its size is printed below) so that it
# trains on a laptop CPU in minutes. Minutes of CPU training do not make a good model of
# AdK's dynamics; `BENCHMARKS.md` has the measured numbers. This tutorial is about the workflow
# and about reading the metrics correctly, which is what tells you whether a longer (GPU) run
# is worth it.

# %% [markdown]
# ## Parameters
#
# `QUICK` (set by the test suite with `MDLLM_QUICK=1`) trains for a handful of steps on a short
# piece of the data; the model is then useless, but every cell runs. Without it the notebook uses
# the library's default `TrainSettings()` (a few minutes on a 2-core CPU).

# %%
import os
from pathlib import Path

QUICK = os.environ.get("MDLLM_QUICK") == "1"
N_FRAMES = 200 if QUICK else None            # training-run frames used (None: all 2,400)
QUICK_TRAIN = dict(max_steps=4, window_frames=2, batch_size=1, eval_steps=4, save_steps=4,
                   logging_steps=1, eval_max_windows=2, rmsd_max_frames=2)
OUT = Path(os.environ.get("MDLLM_NOTEBOOK_OUT", "tutorial_output")) / "02_train"
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}, output in {OUT}")

# %% [markdown]
# ## 1. Tokens of the training run
#
# The tokenizer is fitted on the training run itself (a fraction of a second; see tutorial 1 for
# what it does and how faithful it is). Encoding 2,400 frames takes a few seconds.

# %%
import numpy as np

import mdllm_kit as mk

train_traj = mk.datasets.load_adk_cg("closed_train")
if N_FRAMES is not None:
    train_traj = train_traj[:N_FRAMES]
tok = mk.StructureTokenizer().fit(train_traj)
tokens = tok.encode(train_traj)
print(tok)
print(f"tokens: {tokens.shape} (frames, tokens per frame), {train_traj.timestep:.0f} ps between frames")

# %% [markdown]
# ## 2. From frames to sequences
#
# The frame codec (`mk.lm.FrameCodec`) maps the tokenizer's ids into the language model's
# vocabulary and lays frames out as one sequence:
#
# ```
# <bos> s(1,1) ... s(1,L) <frame> s(2,1) ... s(2,L) <frame> ... s(W+1,L) <frame>
# ```
#
# A training example is a **window** of `W + 1` consecutive frames; the model learns frame
# `W + 1` from the `W` before it (by default every frame of the window contributes to the loss,
# each predicted from the frames before it; `TrainSettings(loss_frames="last")` is strictly the
# paper's objective). The last 10 % of the run (in time) is held out for validation, so
# validation windows are frames the model never trained on, later in time.

# %%
settings = mk.TrainSettings(**QUICK_TRAIN) if QUICK else mk.TrainSettings()
codec = mk.lm.FrameCodec.for_tokenizer(tok)
W = settings.window_frames
print(f"W = {W} context frames; one window = {codec.sequence_length(W + 1):,} tokens")
print(f"language-model vocabulary: {codec.lm_vocab_size} ids ({codec.n_structure_tokens} structure tokens + specials)")
print(settings)

# %% [markdown]
# ## 3. The model
#
# `mk.ModelSettings()` builds a small Mistral-architecture model from a config, with random
# weights, and trains all of it. With `base_model="path/to/local/model"` a pretrained causal LM
# is loaded from a local folder instead (nothing is ever downloaded), the structure tokens are
# appended to its vocabulary and it is fine-tuned with LoRA (peft) as in the paper; that needs a
# GPU to be practical.

# %%
model_settings = mk.ModelSettings()
print(model_settings)

# %% [markdown]
# ## 4. Train and watch
#
# `mk.train` runs the HF `Trainer`: a live progress bar with the training loss, evaluation on the
# held-out windows every `eval_steps`, checkpoints every `save_steps` (so an interrupted run
# continues with `resume=True`), and at the end a **model bundle** written to `out`: weights,
# tokenizer, codec, settings and metrics in one folder.
#
# Re-running this cell starts over: a folder with checkpoints is refused unless you resume, so we
# remove the previous run first.

# %%
import shutil

shutil.rmtree(OUT / "model", ignore_errors=True)
bundle = mk.train(tokens, tok, OUT / "model", model=model_settings, settings=settings, progress=True)
print(sorted(p.name for p in bundle.path.iterdir()))

# %% [markdown]
# ## 5. Read the metrics
#
# `bundle.metrics` (also `metrics.json` in the bundle) holds the data split, the parameter count,
# the throughput, the full log history and the final evaluation:
#
# * `eval_loss`: mean cross-entropy of the held-out tokens, in nats per token, over the model's
#   whole vocabulary. An untrained model starts near ln(vocabulary size) (ln 771 = 6.65 here);
#   every position has 256 valid ids, so a model that has only learned which ids are valid where
#   scores ln 256 = 5.55. Below that it has learned something about the structure.
# * `eval_next_frame_token_accuracy`: the model predicts the next frame token by token from the
#   true previous frames (teacher forcing, most likely valid id); the fraction that matches the
#   true frame.
# * `eval_next_frame_rmsd_A`: those predicted frames decoded to coordinates and compared with the
#   true next frames (Angstrom, after superposition).

# %%
m = bundle.metrics
final = m["final_eval"]
print(f"parameters: {m['parameters']['trainable']:,} trainable of {m['parameters']['total']:,} ({m['finetune']})")
print(f"split: {m['split']}")
print(f"trained {m['global_step']} steps at {m['train_tokens_per_s']:,.0f} tokens/s")
for key in ("eval_loss", "eval_next_frame_token_accuracy", "eval_next_frame_rmsd_A"):
    print(f"{key:32s} {final.get(key, float('nan')):.4f}")

# %% [markdown]
# The log history is a list of dictionaries, one per logging step; the training loss should
# fall.

# %%
import plotly.graph_objects as go

hist = m["log_history"]
train_log = [(h["step"], h["loss"]) for h in hist if "loss" in h]
eval_log = [(h["step"], h["eval_loss"]) for h in hist if "eval_loss" in h]
fig = go.Figure()
fig.add_trace(go.Scatter(x=[s for s, _ in train_log], y=[v for _, v in train_log], mode="lines+markers", name="training loss"))
fig.add_trace(go.Scatter(x=[s for s, _ in eval_log], y=[v for _, v in eval_log], mode="markers", name="validation loss",
                         marker={"size": 10}))
fig.add_hline(y=np.log(codec.lm_vocab_size), line_dash="dot", annotation_text="uniform over the vocabulary")
fig.add_hline(y=np.log(256), line_dash="dash", annotation_text="uniform over the valid ids, ln 256")
fig.update_layout(xaxis_title="optimiser step", yaxis_title="cross-entropy (nats/token)", template="plotly_white")
fig.show()

# %% [markdown]
# ### Two baselines that need no model
#
# A metric means little without a reference. Consecutive frames of MD are similar (5 ps apart
# here), so the trivial prediction **"the next frame equals the previous one"** is already
# right for a fraction of the tokens and already close in RMSD. We compute it on the same held-out
# end of the run. A model that has learned the dynamics should beat it on token accuracy; a model
# that has not even learned to copy is below it.

# %%
n_val = m["split"]["val_frames"]
val_tokens = tokens[-n_val:]
val_frames = train_traj[-n_val:]
copy_accuracy = float((val_tokens[1:] == val_tokens[:-1]).mean())
copy_rmsd_A = float(mk.analysis.rmsd_per_frame(val_frames.xyz[1:], val_frames.xyz[:-1]).mean())
import pandas as pd

pd.DataFrame({
    "next-frame token accuracy": {"uniform guess": 1 / 256, "copy previous frame": copy_accuracy,
                                  "trained model": final.get("eval_next_frame_token_accuracy")},
    "next-frame RMSD (A)": {"uniform guess": None, "copy previous frame": copy_rmsd_A,
                            "trained model": final.get("eval_next_frame_rmsd_A")},
}).round(4)

# %% [markdown]
# **How to read this table.** Compare the trained model with "copy previous frame", not with
# zero, and in both columns. Token accuracy counts exact matches; the RMSD says where the decoded
# frame ends up. They can disagree: a model can get more tokens right than copying does and still
# place the frame worse, because a few wrong anchor or dihedral tokens move whole segments. A model
# that does not beat copying in RMSD has not yet learned the simplest regularity of MD (continuity)
# well enough for its rollouts to stay protein-like: train longer or on a GPU before reading
# anything into discovery results. `BENCHMARKS.md` records where the default settings stand on
# this machine class.

# %%
acc, rmsd = final.get("eval_next_frame_token_accuracy"), final.get("eval_next_frame_rmsd_A")
if acc is not None and rmsd is not None:
    print(f"token accuracy: {'beats' if acc > copy_accuracy else 'does not beat'} copying "
          f"({acc:.3f} vs {copy_accuracy:.3f})")
    print(f"next-frame RMSD: {'beats' if rmsd < copy_rmsd_A else 'does not beat'} copying "
          f"({rmsd:.2f} A vs {copy_rmsd_A:.2f} A)")

# %% [markdown]
# ## 6. Use the bundle
#
# The bundle folder is all you need later; `mk.load_bundle` checks that tokenizer, codec and
# weights belong together.

# %%
again = mk.load_bundle(OUT / "model")
assert again.tokenizer.fingerprint == tok.fingerprint
print(again.model_settings.hidden_size, again.window_frames, again.seed_tokens.shape)

# %% [markdown]
# * **Train longer:** raise `max_steps` and call `mk.train(..., resume=True)` on the same folder;
#   training continues from the last checkpoint.
# * **Several GPUs or processes:** the same code runs under DDP:
#   `torchrun --nproc_per_node 2 -m mdllm_kit.cli train ...`.
# * **Command line:** `mdllm train adk_data/adk_cg_closed_train.xtc --top adk_data/adk_cg_ca.pdb --tokenizer tok --out model`.
#
# **Next:** [tutorial 3](03_sample.ipynb) samples new trajectories from a bundle and looks for
# states that the training run never visited.
