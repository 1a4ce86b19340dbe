# %% [markdown]
# # Tutorial 4: thermodynamics and kinetics against the ground truth
#
# Tutorial 3 asked *whether* the model reaches the open state. This one asks whether the
# generated trajectories have the right **thermodynamics** (how much time is spent in each state:
# populations) and **kinetics** (how fast the protein moves between states: transitions, dwell
# times, Markov state models). That needs a ground truth, which real proteins rarely give you;
# the bundled coarse-grained AdK model does: its `equilibrium` run switches between closed and
# open dozens of times.
#
# You will
#
# 1. measure the ground truth: state populations, transitions, dwell times, and an MSM
#    (deeptime) with its implied timescales;
# 2. generate walkers and measure the same on them;
# 3. put the model's numbers between two controls computed the same way: pieces of the ground
#    truth cut to the walkers' length (what a **perfect** model would score with this little
#    data) and pieces of the closed-only training run (what **copying the training data** would
#    score);
# 4. read off where the model is right and where it is wrong.
#
# States (`mk.datasets.adk_cg_states`): **closed** within 3 A Calpha RMSD of 1AKE, **open** within
# 3 A of 4AKE, **intermediate** otherwise. A generated frame can also be no AdK conformation at
# all, and it would then count as "intermediate" and flatter the model, so we split off a fourth
# label, **off path**: neither basin nor on the closed-open path (`mk.datasets.on_path`: the two
# RMSDs add up to at most 3.5 A more than the 6.9 A between the crystals). Every frame of the
# ground truth is in a basin or on the path. Frames are 5 ps apart in both runs, and the model
# generates one frame per training-frame step, so generated time is 5 ps per frame too.

# %% [markdown]
# ## Parameters

# %%
import os
from pathlib import Path

QUICK = os.environ.get("MDLLM_QUICK") == "1"
N_WALKERS, N_FRAMES = (2, 4) if QUICK else (16, 30)
MSM_LAG = 1                      # MSM lag time in frames (5 ps); short, because walkers are short
MSM_CLUSTERS = 20                # k-means centres on the ground truth's PCA, shared by every ensemble
QUICK_TRAIN = dict(max_steps=4, window_frames=2, batch_size=1, eval_steps=4, save_steps=4,
                   logging_steps=1, eval_max_windows=2, rmsd_max_frames=2)
ROOT = Path(os.environ.get("MDLLM_NOTEBOOK_OUT", "tutorial_output"))
OUT = ROOT / "04_thermo_kinetics"
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}, output in {OUT}")

# %% [markdown]
# ## 1. The ground truth
#
# Populations are fractions of frames per state; transitions are counted core to core (a change
# of the last visited basin, so recrossings of the 3 A line that do not reach the other state
# are not counted); a dwell is the time from entering a basin to first reaching the other.

# %%
import numpy as np
import pandas as pd
from IPython.display import display

import mdllm_kit as mk

truth = mk.datasets.load_adk_cg("equilibrium")
train_traj = mk.datasets.load_adk_cg("closed_train")
refs = mk.datasets.adk_references()
NAMES = (*mk.datasets.ADK_STATE_NAMES, "off path")
OFF_PATH = len(mk.datasets.ADK_STATE_NAMES)
DT_PS = truth.timestep


def states_of(traj):
    """closed / open / intermediate labels of mk.datasets, with off-path intermediates relabelled."""
    labels = mk.datasets.adk_cg_states(traj).astype(int)
    r_closed, r_open = mk.datasets.adk_cg_rmsd(traj)
    labels[(labels == mk.datasets.STATE_INTERMEDIATE) & ~mk.datasets.on_path(r_closed, r_open)] = OFF_PATH
    return labels


truth_states = states_of(truth)
# transitions and dwells are counted on the three labels of mk.datasets (off-path frames are not in a core)
truth_kinetics = mk.datasets.core_transitions(mk.datasets.adk_cg_states(truth), DT_PS)
pops = pd.Series(np.bincount(truth_states, minlength=len(NAMES)) / truth_states.size, index=NAMES, name="population")
print(f"equilibrium run: {truth.n_frames} frames x {DT_PS:.0f} ps = {truth.time[-1] / 1000:.1f} ns")
print(f"{truth_kinetics['n_transitions']} transitions; mean dwell closed {truth_kinetics['mean_dwell_ps']['closed']:.0f} ps, "
      f"open {truth_kinetics['mean_dwell_ps']['open']:.0f} ps")
print(pops.round(3).to_string())
mk.viz.rmsd_timeline(mk.analysis.rmsd_to_references(truth, refs), truth.time,
                     title="Ground truth: Calpha RMSD to the crystals (below 3 A = in that state)").show()

# %% [markdown]
# An MSM turns a trajectory into jumps between clusters and estimates the transition
# probabilities; its **implied timescales** are the relaxation times of the slowest processes
# (here the closed <-> open exchange should be the slowest), and its **stationary distribution**
# gives populations. We cluster on the first principal components of the ground truth and use
# the same cluster centres for every ensemble, so their MSMs are comparable. On the full ground
# truth the slowest timescale should be of the order of the relaxation time of a two-state
# exchange with the measured dwell times, `1 / (1 / dwell_closed + 1 / dwell_open)`. At a lag of
# one frame (5 ps) the MSM underestimates it somewhat: on 20 clusters the dynamics are not yet
# Markovian at so short a lag. Longer lags need longer walkers than we will generate.

# %%
pca_truth = mk.analysis.fit_pca(truth)
msm_truth = mk.analysis.msm_comparison([truth], truth, pca_truth, n_clusters=MSM_CLUSTERS, lagtime=MSM_LAG,
                                       generated_dt_ps=DT_PS, reference_dt_ps=DT_PS)
dwell = truth_kinetics["mean_dwell_ps"]
print(f"two-state relaxation time from the dwell times: {1 / (1 / dwell['closed'] + 1 / dwell['open']):.0f} ps")
print("implied timescales of the full ground truth's MSM (ps):",
      [round(t) for t in msm_truth["reference"]["timescales_ps"]])

# %% [markdown]
# ## 2. Generated walkers
#
# A model bundle is reused if one exists (see tutorial 3: `MDLLM_MODEL`, tutorial 2's output,
# `make demo`'s), else trained here. For kinetics, several walkers of a few dozen frames each
# (`N_WALKERS` x `N_FRAMES`) is the least that gives an MSM anything to count.

# %%
import shutil

bundle = mk.find_bundle([os.environ.get("MDLLM_MODEL"), ROOT / "02_train" / "model", "../demo_output/model"])
if bundle is None:
    data = train_traj[:200] if QUICK else train_traj
    shutil.rmtree(OUT / "model", ignore_errors=True)
    settings = mk.TrainSettings(**QUICK_TRAIN) if QUICK else mk.TrainSettings()
    bundle = mk.train(data, mk.StructureTokenizer().fit(data), OUT / "model", settings=settings, progress=True)
print(f"model: {bundle.path} ({bundle.metrics.get('global_step')} training steps)")
shutil.rmtree(OUT / "samples", ignore_errors=True)
ens = mk.Sampler(bundle).sample(n_frames=N_FRAMES, n_walkers=N_WALKERS, seed=0, out=OUT / "samples", progress=True)
generated = [ens.walker(k) for k in range(ens.n_walkers)]

# %% [markdown]
# ## 3. Two controls of the same size
#
# Numbers from a few short walkers are noisy and biased: a 30-frame walker cannot show a process
# that takes a nanosecond. To know what "right" looks like *with this much data*, we cut the
# ground truth into `N_WALKERS` pieces of `N_FRAMES` frames at evenly spaced starts (a perfect
# generator), and do the same with the closed-only training run (a generator that only replays
# its training data).

# %%
def pieces(traj, n, length):
    starts = np.linspace(0, traj.n_frames - length, n).astype(int)
    return [traj[s: s + length] for s in starts]


ensembles = {
    "perfect model (ground-truth pieces)": pieces(truth, N_WALKERS, N_FRAMES),
    "replay training (closed_train pieces)": pieces(train_traj, N_WALKERS, N_FRAMES),
    "generated": generated,
}

# %% [markdown]
# ## 4. Thermodynamics: populations
#
# Fractions of frames per state in each ensemble, next to the full ground truth, and the
# Jensen-Shannon distance (base 2: 0 = identical distributions, 1 = no overlap) to the ground
# truth.

# %%
pop_rows, js = {"ground truth (full run)": pops.to_dict()}, {}
for name, walkers in ensembles.items():
    labels = np.concatenate([states_of(w) for w in walkers])
    p = mk.analysis.state_populations(labels, truth_states, n_states=len(NAMES), state_names=NAMES, labelled=True)
    pop_rows[name] = dict(zip(NAMES, p["generated"]))
    js[name] = p["js_distance"]
table = pd.DataFrame(pop_rows).T
table["JS distance to truth"] = pd.Series(js)
display(table.round(3))

import plotly.graph_objects as go

fig = go.Figure([go.Bar(name=state, x=list(pop_rows), y=[row[state] for row in pop_rows.values()]) for state in NAMES])
fig.update_layout(barmode="stack", yaxis_title="fraction of frames", template="plotly_white",
                  title="State populations")
fig.show()

# %% [markdown]
# ## 5. Kinetics: transitions and MSMs
#
# Per ensemble: core-to-core transitions summed over walkers, and an MSM on the shared clusters
# (pooled walkers; every walker is its own trajectory, so no jump is counted between walkers).
# `active fraction` is the share of frames in the MSM's largest connected set: an MSM of walkers
# that never leave their starting cluster cannot be estimated.

# %%
kin_rows = {"ground truth (full run)": {
    "transitions": truth_kinetics["n_transitions"], "frames": truth.n_frames,
    "slowest timescale (ps)": msm_truth["reference"]["timescales_ps"][0], "active fraction": 1.0}}
for name, walkers in ensembles.items():
    n_trans = sum(mk.datasets.core_transitions(mk.datasets.adk_cg_states(w), DT_PS)["n_transitions"] for w in walkers)
    msm = mk.analysis.msm_comparison(walkers, truth, pca_truth, n_clusters=MSM_CLUSTERS, lagtime=MSM_LAG,
                                     generated_dt_ps=DT_PS, reference_dt_ps=DT_PS)["generated"]
    kin_rows[name] = {
        "transitions": n_trans, "frames": sum(w.n_frames for w in walkers),
        "slowest timescale (ps)": (msm.get("timescales_ps") or [np.nan])[0] if "error" not in msm else np.nan,
        "active fraction": msm.get("active_fraction", np.nan),
    }
    if "error" in msm:
        print(f"{name}: no MSM ({msm['error']})")
pd.DataFrame(kin_rows).T.round(3)

# %% [markdown]
# ## 6. Where the model is right, and where it is wrong
#
# The summary below is computed from the tables, not written in advance. Read the model's row
# against the two controls, not against the full ground truth: the "perfect model" row is the best
# any generator can score with this many frames.

# %%
gen = pop_rows["generated"]
js_gen, js_perfect, js_replay = (js[k] for k in ("generated", "perfect model (ground-truth pieces)",
                                                 "replay training (closed_train pieces)"))
if js_gen <= js_perfect:
    verdict = "as close to the truth as the perfect-model control"
elif js_gen < js_replay:
    verdict = "between the controls: better than replaying the training data, not as good as a perfect model"
else:
    verdict = "no closer to the truth than replaying the closed-only training data"
print("populations (" + " / ".join(NAMES) + "): generated " + " / ".join(f"{gen[n]:.2f}" for n in NAMES)
      + "; ground truth " + " / ".join(f"{pops[n]:.2f}" for n in NAMES))
print(f"{100 * gen['off path']:.0f}% of the generated frames are off the closed-open path (not AdK-like); "
      f"ground truth {100 * pops['off path']:.0f}%")
caveat = (f"; {100 * gen['off path']:.0f}% of its frames are off the path, where the ground truth has "
          f"{100 * pops['off path']:.0f}%" if gen["off path"] > pops["off path"] else "")
print(f"JS distance to the truth: generated {js_gen:.2f}, perfect model {js_perfect:.2f}, replay {js_replay:.2f}: "
      f"by populations the model is {verdict}{caveat}")
print(f"transitions: generated {kin_rows['generated']['transitions']}, perfect model "
      f"{kin_rows['perfect model (ground-truth pieces)']['transitions']}")

# %% [markdown]
# **Reading the result.**
#
# * "Off path" population is the first thing to check: it is mass the model puts where AdK never
#   goes. Only the remaining frames say anything about thermodynamics, and even "intermediate"
#   frames on the path should be checked for validity (tutorial 3) before the model gets credit.
# * At the time of writing, the default model trained for minutes on a CPU does not reproduce the
#   ground truth (`BENCHMARKS.md` records its next-frame accuracy and the demo's discovery
#   result); the tables above show by how much, for the model you used. That is what these
#   measurements are for: with a model trained on a GPU (`MDLLM_MODEL=/path/to/bundle`), the same
#   cells show how close it gets.
# * Kinetics from generated trajectories need the model's time step to be physical: one generated
#   frame stands for one training-frame interval (5 ps) only if the model has learned the
#   dynamics at that step. Compare timescales in frames, and check the perfect-model control, whose
#   timescales are limited by the walker length, before reading anything into ps.
#
# `mk.analyze(ens.trajectory, training, refs, reference_ensemble=truth, n_walkers=..., generated_labels=...,
# reference_labels=...)` computes all of this (and JS distances on PCA/TICA histograms, RMSF
# correlation) in one call; `make demo` reports it.
