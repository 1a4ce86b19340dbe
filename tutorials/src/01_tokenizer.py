# %% [markdown]
# # Tutorial 1: load a trajectory and fit the structure tokenizer
#
# A language model reads tokens, not coordinates. The first step of MD-LLM is therefore a
# **structure tokenizer**: it turns every frame of a molecular-dynamics (MD) trajectory into a
# short sequence of discrete tokens, and turns tokens back into coordinates. If that round trip
# loses the structure, nothing the language model learns later can be trusted, so we measure it
# first.
#
# In this tutorial you will
#
# 1. load the bundled adenylate kinase (AdK) trajectories, once from the package and once from
#    ordinary `xtc` + `pdb` files with `mk.load_trajectory` (how you will load your own runs);
# 2. see what the training run covers: it never leaves the *closed* state;
# 3. fit `mk.StructureTokenizer` and read its token layout;
# 4. measure its fidelity (RMSD of decoded frames, bond lengths) on held-out closed frames and on
#    *open* frames it has never seen, and look at the worst frame in 3D;
# 5. see what happens when tokens are wrong, as they will be when a model generates them.
#
# Units: coordinates are in nm inside the library (as in mdtraj) and times in ps; numbers shown to
# people (RMSD) are in Angstrom, and names of such values end in `_A`.

# %% [markdown]
# ## Parameters
#
# `QUICK` is set by the test suite (`MDLLM_QUICK=1`) to run this notebook in seconds on fewer
# frames. Leave it off to reproduce the numbers of `BENCHMARKS.md`. Files go to
# `tutorial_output/` next to this notebook (or to `MDLLM_NOTEBOOK_OUT`).

# %%
import os
from pathlib import Path

QUICK = os.environ.get("MDLLM_QUICK") == "1"
N_FIT = 400 if QUICK else 1920          # closed_train frames used to fit (the rest is held out)
N_EVAL = 40 if QUICK else None           # frames per evaluation set (None: all of them)
N_NOISE = 20 if QUICK else 200           # open frames for the wrong-token test (as in BENCHMARKS.md)
OUT = Path(os.environ.get("MDLLM_NOTEBOOK_OUT", "tutorial_output")) / "01_tokenizer"
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}, output in {OUT}")

# %% [markdown]
# ## 1. The data: AdK, closed and open
#
# Adenylate kinase (214 residues) closes two domains, LID and NMP, over its substrates. The
# package ships the two crystal structures (closed: PDB 1AKE, open: PDB 4AKE; heavy atoms) and
# two trajectories of a coarse-grained model that has both states as minima: one Calpha bead
# per residue, simulated with OpenMM (see `scripts/make_adk_cg.py`).
#
# * `closed_train`: a run that never reaches the open state. This is what the model will learn
#   from.
# * `equilibrium`: a long run that switches between closed and open many times: the ground truth
#   that a generated ensemble is compared with in tutorials 3 and 4.

# %%
import numpy as np

import mdllm_kit as mk

refs = mk.datasets.adk_references()                    # {"closed": 1AKE, "open": 4AKE}, heavy atoms
train = mk.datasets.load_adk_cg("closed_train")
truth = mk.datasets.load_adk_cg("equilibrium")
print(train)
print(truth)
print(f"time between frames: {train.timestep:.1f} ps; closed_train covers {train.time[-1] / 1000:.1f} ns")
print(f"closed-open crystal Calpha RMSD: {mk.datasets.closed_open_rmsd():.2f} A")

# %% [markdown]
# Your own simulations come as files. `mk.load_trajectory` reads any format mdtraj reads, keeps
# the protein, makes molecules whole across periodic boundaries and superposes the frames.
# Here we write the bundled data to ordinary files (`mk.datasets.export_adk`, the same as
# `mdllm datasets export`) and load them back, exactly as you would load `run.xtc` with
# `protein.pdb`. Tutorial 5 does this with an all-atom, solvated trajectory.

# %%
files = {p.name: p for p in mk.datasets.export_adk(OUT / "adk_data")}
loaded, report = mk.load_trajectory(files["adk_cg_closed_train.xtc"], top=files["adk_cg_ca.pdb"],
                                    return_report=True)
print(report)
# the same frames as the bundled copy, up to xtc precision (0.001 nm) and superposition
assert loaded.n_frames == train.n_frames and loaded.n_atoms == train.n_atoms

# %% [markdown]
# ### What the training run covers
#
# The Calpha RMSD to each crystal structure (after optimal superposition) is the simplest map of
# where a frame is. A frame is *closed* if it is within 3 A of 1AKE and *open* if within 3 A of
# 4AKE (`mk.datasets.BASIN_RMSD_A`). The training run stays near the closed structure and never
# comes within 3 A of the open one; the equilibrium run visits both.

# %%
rmsd_train = mk.analysis.rmsd_to_references(train, refs)      # nm, per frame
rmsd_truth = mk.analysis.rmsd_to_references(truth, refs)
print(f"closed_train: min RMSD to open = {10 * rmsd_train['open'].min():.2f} A")
print(f"equilibrium:  min RMSD to open = {10 * rmsd_truth['open'].min():.2f} A")
mk.viz.rmsd_timeline(rmsd_train, train.time, title="closed_train: Calpha RMSD to the crystals").show()

# %% [markdown]
# ## 2. Fit the tokenizer
#
# `StructureTokenizer` describes a Calpha trace by **local geometry** (for every residue the
# Calpha bond angle and dihedral, each put into one of 256 uniform bins) plus a set of
# **anchor distances** between landmark residues (also binned), which pin down the global shape
# so that small local errors cannot add up along the chain. Fitting only records what the
# decoder needs (the protein's sequence, mean bond lengths, the range of the distances); it
# stores no conformation, so it cannot "memorise" the closed state.
#
# We fit on the first `N_FIT` frames of the training run and keep the rest as a held-out test.

# %%
tok = mk.StructureTokenizer().fit(train[:N_FIT])
print(tok)
print("token kinds and their id ranges:", tok.kind_ranges())
print(f"{tok.n_anchors} anchor distances per frame")

# %% [markdown]
# Encoding gives an integer array of shape `(n_frames, tokens_per_frame)`. Every position has its
# own kind (angle, dihedral or distance) and its own valid id range: a language model that
# generates frames must only pick ids from that range at each position, which the sampler
# enforces.

# %%
frame_tokens = tok.encode(train[:1])
kinds = tok.position_kinds()
print(frame_tokens.shape)
for pos in (0, 1, 2, 3, tok.tokens_per_frame - 1):
    print(f"position {pos:3d}: {kinds[pos]:8s} token {frame_tokens[0, pos]:4d}, valid ids {tok.position_vocab(pos)}")

# %% [markdown]
# ## 3. Fidelity: encode, decode, compare
#
# Three test sets, none used in fitting:
#
# * **closed, held out**: the end of `closed_train`;
# * **open, unseen**: frames of the equilibrium run in the open basin, a state the tokenizer
#   never saw;
# * the **open crystal** itself (reduced to Calpha).
#
# Decoded frames come back centred in an arbitrary fixed orientation, so we compare after optimal
# superposition (`mk.analysis.rmsd_per_frame`, Angstrom). We also check the Calpha-Calpha bond
# lengths, which must stay near 3.8 A for a physical chain.

# %%
from mdllm_kit.tokenizer.metrics import bond_ok_fraction

states = mk.datasets.adk_cg_states(truth)
eval_sets = {
    "closed, held out": train[N_FIT:],
    "open, unseen": truth[np.flatnonzero(states == mk.datasets.STATE_OPEN)],
    "open crystal": tok.reduce(refs["open"]),
}
if N_EVAL is not None:
    eval_sets = {name: t[np.linspace(0, t.n_frames - 1, min(N_EVAL, t.n_frames)).astype(int)]
                 for name, t in eval_sets.items()}

fidelity, decoded_sets = {}, {}
for name, frames in eval_sets.items():
    decoded = tok.decode(tok.encode(frames))
    err_A = mk.analysis.rmsd_per_frame(decoded.xyz, tok.reduce(frames).xyz)
    decoded_sets[name] = (frames, decoded, err_A)
    fidelity[name] = {
        "frames": frames.n_frames,
        "mean RMSD (A)": err_A.mean(), "p95 RMSD (A)": np.percentile(err_A, 95), "max RMSD (A)": err_A.max(),
        "bonds 3.5-4.1 A, decoded": bond_ok_fraction(decoded.xyz),
        "bonds 3.5-4.1 A, input": bond_ok_fraction(tok.reduce(frames).xyz),
    }

import pandas as pd

pd.DataFrame(fidelity).T.round(3)

# %% [markdown]
# **What to look for.** The error should be a small fraction of an Angstrom and about the same on
# the open frames as on the closed ones: the tokens describe local geometry and distances, not
# "closeness to the training data", so a state the tokenizer never saw is represented as well as
# the ones it did. `BENCHMARKS.md` reports 0.120 A (closed, held out) and 0.123 A (open, unseen)
# at full settings. The bond check matches the input: the few bonds outside 3.5-4.1 A are outside
# in the input frames too.
#
# An RMSD of 0.1 A is far below the 6.9 A that separates the two crystal structures: when a
# generated frame later decodes to something open, that is the model's doing, not the
# tokenizer's.

# %% [markdown]
# ### See it: the worst open frame, input and decoded
#
# `mk.viz.show_overlay` superposes the decoded frame on its input (drawn underneath) and colours
# each residue by how far its Calpha is from the input, here on a scale from 0 to 0.5 A, so that
# the small errors are visible at all. Drag to rotate. (If you see no 3D view, your Jupyter lacks
# the nglview widget; `make install-dev` installs it.)

# %%
frames, decoded, err_A = decoded_sets["open, unseen"]
worst = int(np.argmax(err_A))
print(f"open frame {worst}: {err_A[worst]:.3f} A after the round trip")
overlay = mk.viz.show_overlay(decoded[worst], tok.reduce(frames[worst]), color_range_A=(0.0, 0.5),
                              reference_name="input frame")
print(f"largest per-residue deviation {np.nanmax(overlay.deviation_A):.2f} A, "
      f"at residue {int(np.nanargmax(overlay.deviation_A)) + 1}")
overlay

# %% [markdown]
# ## 4. Wrong tokens
#
# A language model will sometimes pick a wrong token. How much does one wrong token cost? We
# change a fraction of the tokens of the open frames on purpose (`tok.perturb`): either to the
# adjacent bin (a near miss) or to a uniformly random valid id (a real mistake), and measure how
# much the decoded frame moves away from the clean decode, on `N_NOISE` evenly spaced open frames.

# %%
frames, clean, _ = decoded_sets["open, unseen"]
pick = np.linspace(0, frames.n_frames - 1, min(N_NOISE, frames.n_frames)).astype(int)
frames, clean = frames[pick], clean[pick]
clean_tokens = tok.encode(frames)
noise = {}
for how in ("neighbour", "random"):
    for fraction in (0.01, 0.05):
        noisy = tok.decode(tok.perturb(clean_tokens, fraction, how=how, seed=0))
        growth_A = mk.analysis.rmsd_per_frame(noisy.xyz, clean.xyz)
        noise[(how, f"{fraction:.0%}")] = {"mean growth (A)": growth_A.mean(), "median growth (A)": np.median(growth_A)}
pd.DataFrame(noise).T.round(3)

# %% [markdown]
# Near misses are harmless (a few hundredths of an Angstrom). Random errors at 1 % of the
# positions (about 6 tokens per frame) typically cost a tenth of an Angstrom: the decoder takes
# the global shape from the anchor tokens alone, finds single wrong angles and dihedrals that
# contradict it and outvotes them. Two wrong joints close together cost more, and at 5 % random
# errors frames are several Angstrom off (`BENCHMARKS.md` lists this as not solved), though they
# stay physical chains without clashes. What a sampler does to a good model's tokens, every
# token a few bins off, is what the decoder is built for: `BENCHMARKS.md` records 0.8 A at 4
# bins, where the chain built from the local tokens alone is 10 A off.

# %% [markdown]
# ## 5. Save and load
#
# A fitted tokenizer is a small folder (`tokenizer_config.json` + `tokenizer.safetensors`). Its
# **fingerprint** identifies it: a model trained on one tokenizer's tokens refuses a tokenizer
# with another fingerprint.

# %%
tok.save_pretrained(OUT / "tokenizer")
again = mk.StructureTokenizer.from_pretrained(OUT / "tokenizer")
assert again.fingerprint == tok.fingerprint
assert np.array_equal(again.encode(train[:5]), tok.encode(train[:5]))
print(sorted(p.name for p in (OUT / "tokenizer").iterdir()), tok.fingerprint)

# %% [markdown]
# The same from the command line:
#
# ```bash
# mdllm tokenizer fit adk_data/adk_cg_closed_train.xtc --top adk_data/adk_cg_ca.pdb --out tok
# mdllm tokenizer eval tok adk_data/adk_cg_equilibrium.xtc --top adk_data/adk_cg_ca.pdb
# ```
#
# **Next:** [tutorial 2](02_train.ipynb) trains the language model on these tokens.
