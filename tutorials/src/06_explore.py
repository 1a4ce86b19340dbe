# %% [markdown]
# # Tutorial 6: explore for new states
#
# Plain rollouts (tutorial 3) sample the model's own dynamics: walkers spend their time where the
# training data spent theirs, and a rare transition stays rare. **Exploration strategies** spend
# the same number of generated frames differently:
#
# * `rollout` -- plain rollouts, the MD-LLM paper's method: the baseline;
# * `restart` -- every few steps, restart all walkers from the *least visited* cells of a map of
#   everything generated so far (least counts, as in FAST or adaptive sampling);
# * `bias` -- draw several candidate next frames per walker and prefer the ones in regions visited
#   least (a history-dependent bias, as in metadynamics).
#
# You will run each strategy with the model and with a **model-free control** (the previous
# frame's tokens plus random token noise), and score every frame against the state the model
# never saw. A frame counts as a **hit** only if it is close to the unseen crystal (<= 3 A), a
# physical protein (no Calpha clash or break) *and* on the real landscape (within 2 A of some
# frame of the ground-truth `equilibrium` run). If the control finds hits too, the benchmark
# cannot tell learning from luck.
#
# **Populations and kinetics come only from unbiased rollouts.** `restart` and `bias` choose which
# frames to keep, so their frames are not Boltzmann-weighted; use them to *find* states, then
# sample those states with plain rollouts.

# %% [markdown]
# ## Parameters
#
# `QUICK` (the test suite sets `MDLLM_QUICK=1`) trains a few steps and explores a few frames, so
# every cell runs in seconds but nothing is found. The full settings explore 8 walkers x 25 steps
# per run (six runs: a few minutes on a 2-core CPU with a trained model).

# %%
import os
from pathlib import Path

QUICK = os.environ.get("MDLLM_QUICK") == "1"
N_WALKERS, N_STEPS = (2, 3) if QUICK else (8, 25)
ROUND_FRAMES = 2 if QUICK else 5  # restart: steps per round
CANDIDATES = 2 if QUICK else 4  # bias: candidates per walker and step
QUICK_TRAIN = dict(max_steps=4, window_frames=2, batch_size=1, eval_steps=4, save_steps=4,
                   logging_steps=1, eval_max_windows=2, rmsd_max_frames=2)
ROOT = Path(os.environ.get("MDLLM_NOTEBOOK_OUT", "tutorial_output"))
OUT = ROOT / "06_explore"
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}, output in {OUT}")

# %% [markdown]
# ## 1. A model trained on the closed state only
#
# As in tutorials 3 and 4: the folder in `MDLLM_MODEL`, tutorial 2's model, or `make demo`'s;
# otherwise one is trained here.

# %%
import shutil

import mdllm_kit as mk

train_traj = mk.datasets.load_adk_cg("closed_train")
truth = mk.datasets.load_adk_cg("equilibrium")  # the ground truth: switches closed <-> open
refs = mk.datasets.adk_references()

bundle = mk.find_bundle([os.environ.get("MDLLM_MODEL"), ROOT / "02_train" / "model", "../demo_output/model"])
if bundle is None:
    data = train_traj[:200] if QUICK else train_traj
    tok = mk.StructureTokenizer().fit(data)
    shutil.rmtree(OUT / "model", ignore_errors=True)
    settings = mk.TrainSettings(**QUICK_TRAIN) if QUICK else mk.TrainSettings()
    bundle = mk.train(data, tok, OUT / "model", settings=settings, progress=True)
print(f"model: {bundle.path}, {bundle.metrics.get('global_step')} training steps")
closest_training = float(mk.rmsd_to_references(train_traj, {"open": refs["open"]})["open"].min() * 10)
print(f"the training run's own closest approach to the open crystal: {closest_training:.2f} A")

# %% [markdown]
# ## 2. The map strategies work on
#
# `restart` and `bias` need collective variables: a few numbers per frame in which "visited" and
# "new" mean something. By default the first two principal components of the training frames,
# in units of their standard deviation, so a cell width of 0.5 is half a standard deviation of
# the training ensemble. Any featurisation works: `CollectiveVariables(transform, training)` with
# your own function (a TICA, a distance between two domains, ...).

# %%
cv = mk.exploration.CollectiveVariables.pca(train_traj)
print(cv.labels, "mean", cv.mean.round(3), "std", cv.std.round(3))

# %% [markdown]
# ## 3. Six runs: three strategies, with the model and with the control
#
# `mk.explore` returns the same ensemble type as `mk.Sampler.sample` and, with `out=`, writes the
# same folder (plus `exploration.json`: every restart and the candidates drawn), so `mk.analyze`,
# the viewers and `mdllm analyze` take it unchanged. The command line is
# `mdllm explore BUNDLE --strategy restart --budget-frames 200 --walkers 8 --train train.xtc --train-top ca.pdb --out DIR`.
#
# A callback scores each step's frames as they arrive with `mk.analysis.discovery_scores`.

# %%
import numpy as np

from mdllm_kit.analysis import NM_TO_A, discovery_scores

runs = {}
options = {"rollout": {}, "restart": {"round_frames": ROUND_FRAMES}, "bias": {"n_candidates": CANDIDATES}}
for strategy in ("rollout", "restart", "bias"):
    for source in ("model", "control"):
        curve = []  # (candidates drawn, closest valid on-landscape approach so far, A)
        best = [np.inf]

        def score(step, curve=curve, best=best):
            s = discovery_scores(step.frames, refs["open"], truth)
            if s["on_landscape"].any():
                best[0] = min(best[0], float(s["rmsd_nm"][s["on_landscape"]].min()) * NM_TO_A)
            curve.append((step.frames_drawn, best[0], int(s["hit"].sum()), float(s["valid"].mean())))

        proposal = None if source == "model" else mk.exploration.TokenNoiseProposal(bundle.tokenizer, rate=0.05)
        folder = OUT / f"{strategy}_{source}"
        shutil.rmtree(folder, ignore_errors=True)
        ens = mk.explore(bundle, strategy, budget_frames=N_WALKERS * N_STEPS, n_walkers=N_WALKERS, seed=0, cv=cv,
                         proposal=proposal, out=folder, callback=score, **options[strategy])
        runs[f"{strategy} / {source}"] = {"ensemble": ens, "curve": curve}
        record = ens.params["exploration"]
        print(f"{strategy:>8} / {source:<7}: {record['frames_drawn']:4d} candidates drawn, "
              f"{len(record['restarts']):3d} restarts, closest valid on-landscape approach to open "
              f"{best[0]:.2f} A, hits {sum(c[2] for c in curve)}")

# %% [markdown]
# ## 4. Closest approach against frames generated
#
# One line per run: the closest *valid, on-landscape* frame to the open crystal found so far,
# against candidates drawn (the cost: `bias` draws several per kept frame). The dotted line is the
# hit threshold (3 A); the dashed one, the training run's own closest approach. A strategy that
# beats rollouts reaches lower values with fewer candidates; the control must not reach the
# threshold.

# %%
import plotly.graph_objects as go

fig = go.Figure()
for label, run in runs.items():
    x, y = [c[0] for c in run["curve"]], [c[1] if np.isfinite(c[1]) else None for c in run["curve"]]
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label,
                             line={"dash": "dot" if label.endswith("control") else "solid"}))
fig.add_hline(y=3.0, line_dash="dot", annotation_text="hit (3 A)")
fig.add_hline(y=closest_training, line_dash="dash", annotation_text="training data's closest")
fig.update_layout(xaxis_title="candidates drawn", yaxis_title="closest valid on-landscape RMSD to open (A)",
                  height=420, width=800)
fig.show()

# %% [markdown]
# ## 5. Who restarted from where
#
# `exploration.json` records every restart: from a restart on, a walker's frames continue from
# another walker's earlier frame, so a walker's frames are one trajectory only between restarts.
# `mk.exploration.lineage` follows a frame back through restarts into the seed.

# %%
record = mk.exploration.read_exploration(OUT / "restart_model")
print(f"{len(record['restarts'])} restarts; the first few:")
for r in record["restarts"][:5]:
    print(f"  step {r['step']}: walker {r['walker']} continues from step {r['source_step']} of walker "
          f"{r['source_walker']}")

# %% [markdown]
# ## 6. The state map of the best run
#
# The frames of the run that came closest, on the training PCA, with the crystals as stars.

# %%
best_label = min(runs, key=lambda label: min(c[1] for c in runs[label]["curve"]))
best_ens = runs[best_label]["ensemble"]
pca = mk.fit_pca(train_traj)
ca_refs = {name: ref.atom_slice(ref.topology.select("name CA")) for name, ref in refs.items()}
mk.viz.state_map(pca.transform(train_traj)[:, :2], pca.transform(best_ens.trajectory)[:, :2],
                 {name: tuple(pca.transform(ref)[0][:2]) for name, ref in ca_refs.items()},
                 walker=np.tile(np.arange(best_ens.n_walkers), best_ens.n_frames), labels=tuple(pca.labels[:2]),
                 unit="nm", title=f"{best_label}: generated frames on the training PCA").show()

# %% [markdown]
# ## 7. Interactively
#
# The sampling explorer has a **strategy** selector; below its map, the closest approach to each
# reference is drawn against frames generated while the run goes.

# %%
explorer = mk.viz.SamplingExplorer(bundle, training=train_traj, references=refs,
                                   settings=mk.SamplingSettings(n_frames=N_STEPS, n_walkers=N_WALKERS))
explorer.strategy.value = "restart"
explorer

# %% [markdown]
# ## 8. Your own strategy
#
# A strategy is a small class behind one interface (`mk.exploration.ExplorationStrategy`): it may
# restart walkers (`restarts`), choose among candidates (`select`, with `candidates > 1`) and learn
# from what was kept (`observe`). Everything random uses the generator it is handed, so runs stay
# reproducible and resumable. This one restarts, every few steps, every walker from the valid frame
# farthest from the training ensemble's centre on the map:

# %%
from dataclasses import dataclass

from mdllm_kit.exploration import ExplorationStrategy, Restart, register_strategy


@register_strategy
@dataclass
class FarthestRestart(ExplorationStrategy):
    round_frames: int = 5
    name = "farthest"
    needs_cv = True
    unbiased = False

    def to_dict(self):
        return {"name": self.name, "round_frames": self.round_frames}

    def restarts(self, step, archive, rng):
        if step % self.round_frames or not archive.valid.any():
            return []
        distance = np.linalg.norm(archive.cv, axis=-1)  # (steps, walkers): standard deviations from the centre
        distance[~archive.valid] = -np.inf
        s, w = np.unravel_index(np.argmax(distance), distance.shape)
        return [Restart(step, walker, int(s), int(w)) for walker in range(archive.n_walkers)]


ens = mk.explore(bundle, "farthest", budget_frames=N_WALKERS * N_STEPS, n_walkers=N_WALKERS, seed=0, cv=cv,
                 round_frames=ROUND_FRAMES)
print(ens.params["exploration"]["strategy"], len(ens.params["exploration"]["restarts"]), "restarts")

# %% [markdown]
# ## What the numbers say
#
# The verdict below is computed from the runs above, not written in advance. With the default
# small model trained for a few CPU minutes, expect no hit yet: the measured figures (both
# directions, every strategy, the control) are in `BENCHMARKS.md`, "Discovery".

# %%
hits = {label: sum(c[2] for c in run["curve"]) for label, run in runs.items()}
model_hits = {k: v for k, v in hits.items() if k.endswith("model") and v}
control_hits = {k: v for k, v in hits.items() if k.endswith("control") and v}
if model_hits and not control_hits:
    print(f"Discovery: {', '.join(model_hits)} reached the open state (valid, on the landscape, <= 3 A); the "
          "model-free control did not.")
elif model_hits:
    print(f"Hits by the model ({', '.join(model_hits)}) but also by the control ({', '.join(control_hits)}): "
          "this budget cannot tell learning from luck.")
else:
    closest = {label: min(c[1] for c in run["curve"]) for label, run in runs.items()}
    print("No hit: the open state was not reached. Closest valid on-landscape approach per run (A): "
          + ", ".join(f"{k} {v:.2f}" for k, v in closest.items()))
