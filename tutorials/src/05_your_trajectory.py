# %% [markdown]
# # Tutorial 5: bring your own trajectory
#
# Tutorials 1-4 use the bundled coarse-grained AdK data. Your own data is an all-atom trajectory
# from GROMACS, OpenMM, AMBER or NAMD: a topology file and a trajectory file, with water, ions,
# and molecules split across the periodic box. This tutorial goes from such files to generated
# frames, and stops at every choice you have to make:
#
# 1. **selection**: which atoms the model should see;
# 2. **periodic boundaries**: making molecules whole;
# 3. **stride**: the time step of the model;
# 4. **references**: what to measure generated frames against;
# 5. tokenizer, a short training run and sampling, as in tutorials 1-3.
#
# **Where "your file" comes from here.** So that this notebook runs anywhere without downloads, we
# make the all-atom trajectory ourselves, right now: `mdllm_kit.testing.make_solvated_fixture`
# cuts residues 1-20 out of the AdK crystal (1AKE), adds hydrogens (Amber14), TIP3P-FB water and
# 0.15 M NaCl in a rhombic-dodecahedron box, and runs a short OpenMM simulation on the CPU. It
# writes `system.pdb` (topology) and `traj.xtc` with every atom wrapped into the box, the way MD
# engines write them. It is test data, not production physics: a peptide fragment that is not
# stable on its own, cutoff electrostatics instead of PME, a few tens of picoseconds. Replace
# `TOP` and `TRAJ` below with your own files and everything else stays the same.

# %% [markdown]
# ## Parameters

# %%
import os
from pathlib import Path

QUICK = os.environ.get("MDLLM_QUICK") == "1"
N_MD_FRAMES = 20 if QUICK else 120        # frames of the all-atom run we make
STEPS_PER_FRAME = 25 if QUICK else 100    # 2 fs steps between saved frames (0.05 / 0.2 ps)
STRIDE = 1                                # keep every STRIDE-th frame (see section 3)
FIT_FRACTION = 0.8                        # first 80 % of the frames train, the rest is held out
QUICK_TRAIN = dict(max_steps=4, window_frames=2, batch_size=1, eval_steps=4, save_steps=4,
                   logging_steps=1, eval_max_windows=2, rmsd_max_frames=2, val_fraction=0.25)
SEPARATION = 3.0                          # wanted ratio of frame-to-frame RMSD to the tokenizer error
N_WALKERS, N_SAMPLE_FRAMES = (2, 3) if QUICK else (8, 50)
OUT = Path(os.environ.get("MDLLM_NOTEBOOK_OUT", "tutorial_output")) / "05_your_trajectory"
OUT.mkdir(parents=True, exist_ok=True)
print(f"QUICK={QUICK}, output in {OUT}")

# %% [markdown]
# ## 0. Make "your" files (replace this cell with your own paths)
#
# About 10 s in quick mode, a minute or two otherwise.

# %%
from mdllm_kit.testing import make_solvated_fixture

fixture = make_solvated_fixture(OUT / "md", segments=(("A", 1, 20),), n_frames=N_MD_FRAMES,
                                steps_per_frame=STEPS_PER_FRAME)
TOP, TRAJ = fixture.topology_pdb, fixture.trajectories["xtc"]
print(TOP, TRAJ)
print(f"{fixture.n_atoms} atoms: {len(fixture.protein_atoms)} protein, {fixture.n_water} waters, {fixture.n_ions} ions")

# %% [markdown]
# ## 1. Selection: what the model sees
#
# The structure tokenizer encodes the protein backbone (N, CA, C, O; or only Calpha for
# coarse-grained models), so the trajectory has to be reduced to the protein. `mk.load_trajectory`
# does that by default (`selection="protein"`): water, ions and ligands are dropped while
# reading, and residues mdtraj does not know by name but that are peptide-bonded into the chain
# (force-field names such as HID or CYX) are kept, with a warning. Any mdtraj selection string
# works too, e.g. `"protein and resid 0 to 99"` to model one domain; `selection=None` keeps
# everything. The report says what was dropped.
#
# Two limits to know: the tokenizer encodes **one protein chain** (several chains would be read
# as one chain with a very long "bond" between them), and every residue must have its backbone
# atoms (checked on loading).

# %%
import numpy as np

import mdllm_kit as mk

traj, report = mk.load_trajectory(TRAJ, top=TOP, selection="protein", stride=STRIDE, return_report=True)
print(traj)
print("dropped:", report.dropped_residues, "| made whole:", report.made_whole, "| superposed:", report.superposed)

# %% [markdown]
# ## 2. Periodic boundaries: make molecules whole
#
# MD engines usually write every atom inside the box, so a protein that crosses a box face comes
# out in pieces. Geometry computed on such frames is garbage: here are the longest Calpha-Calpha
# "bonds" (normally 3.8 A) with and without repair. `mk.load_trajectory` rebuilds the molecules
# along their bonds for any box shape (`make_whole=True`, the default) and then superposes all
# frames on the first one (`superpose=True`, on Calpha by default) so that overall rotation and
# drift, which the model should not have to learn, are removed.

# %%
raw = mk.load_trajectory(TRAJ, top=TOP, make_whole=False, superpose=False)
ca = traj.topology.select("name CA")


def longest_ca_bond_A(t):
    return 10 * np.linalg.norm(np.diff(t.xyz[:, ca], axis=1), axis=-1).max()


print(f"longest Calpha-Calpha distance, as written:  {longest_ca_bond_A(raw):6.1f} A")
print(f"longest Calpha-Calpha distance, made whole:  {longest_ca_bond_A(traj):6.1f} A")

# %% [markdown]
# ## 3. Stride: the time step of the model
#
# The language model learns the step from one frame to the next, so the time between kept frames
# *is* the model's time step. Too short, and consecutive frames differ by less than the
# tokenizer's own error (about 0.1-0.2 A): the model learns to copy and generates nothing new.
# Too long, and the next frame is barely predictable from the previous one, and you have fewer
# frames to train on. A practical guide is the mean RMSD between frames a given lag apart,
# compared with the tokenizer's round-trip error; pick a stride where the first is a few times
# the second. (The paper, on all-atom AdK, keeps frames 100 ps apart.)

# %%
import pandas as pd
from IPython.display import display

fit_frames = int(FIT_FRACTION * traj.n_frames)
tok = mk.StructureTokenizer().fit(traj[:fit_frames])
held_out = traj[fit_frames:]
roundtrip_A = mk.analysis.rmsd_per_frame(tok.decode(tok.encode(held_out)).xyz, tok.reduce(held_out).xyz)
lags = [lag for lag in (1, 2, 5, 10, 20) if lag < traj.n_frames]
step_A = np.array([mk.analysis.rmsd_per_frame(tok.reduce(traj[lag:]).xyz, tok.reduce(traj[:-lag]).xyz).mean()
                   for lag in lags])
strides = pd.DataFrame({
    "time step (ps)": [lag * traj.timestep for lag in lags],
    "mean backbone RMSD between frames (A)": step_A,
    "ratio to tokenizer round trip": step_A / roundtrip_A.mean(),
    "frames left": [traj.n_frames // lag for lag in lags],
}, index=pd.Index(lags, name="stride")).round(3)
suggested = next((lag for lag, r in zip(lags, step_A / roundtrip_A.mean()) if r >= SEPARATION), lags[-1])
print(f"tokenizer round trip {roundtrip_A.mean():.3f} A; smallest stride with frames {SEPARATION:.0f}x apart: {suggested}")
strides

# %% [markdown]
# The suggestion trades against the last column: this run is short (0.2 ps between frames, 0.05 ps
# in quick mode), and striding it would leave too few frames to train on, so we keep `STRIDE = 1`
# and accept that consecutive frames are close. A real nanosecond-to-microsecond run saved every
# 10 ps has frames to spare, and the stride the table suggests is the better choice there.
# `stride=` is applied while reading, so long trajectories never have to fit in memory at full
# resolution.
#
# ## 4. The tokenizer on all-atom input
#
# With N, CA, C and O present the tokenizer picks **backbone mode** by itself (`atoms="auto"`):
# besides the Calpha angles, dihedrals and anchor distances, each residue's token also carries the
# orientation of its peptide plane, so the decoder returns N, CA, C and O. Side chains and
# hydrogens are not represented; the model generates backbones.

# %%
print(tok)
print(f"round trip on {held_out.n_frames} held-out frames: {roundtrip_A.mean():.3f} A mean backbone RMSD")

# %% [markdown]
# ## 5. References: what is a "state" of your protein?
#
# Discovery is judged by distances to reference structures, and only you know which structures
# matter for your protein: crystal structures of known states, a frame of a long simulation, a
# model. References may contain other atoms than the trajectory (heavy atoms, no hydrogens);
# they are matched residue by residue and atom name by atom name, but they must cover the **same
# residues in the same order**. Our fragment is residues 1-20 of AdK, so we slice the bundled
# crystal structures to those residues. We also add the first frame of the run: "how far did the
# simulation move from where it started".
#
# An honest caveat for this example: residues 1-20 (the P-loop region of the CORE domain) barely
# differ between the closed and the open crystal; the closed-open difference of AdK is a hinge
# motion of the LID and NMP domains, which a 20-residue fragment cannot show. With your own
# protein, pick references that differ in what you care about.

# %%
crystals = mk.datasets.adk_references()
first, last = fixture.chains[0][1], fixture.chains[0][2]
refs = {name: xtal.atom_slice(xtal.topology.select(f"resSeq {first} to {last}")) for name, xtal in crystals.items()}
refs["MD start"] = traj[0]
print({name: ref.n_residues for name, ref in refs.items()})
print(f"closed vs open crystal, residues {first}-{last}: "
      f"{10 * mk.analysis.rmsd_to_references(refs['open'], {'closed': refs['closed']})['closed'][0]:.2f} A Calpha RMSD")
rmsd_md = mk.analysis.rmsd_to_references(traj, refs)
mk.viz.rmsd_timeline(rmsd_md, traj.time, title="Your trajectory: Calpha RMSD to the references").show()

# %% [markdown]
# ## 6. Train a model on your trajectory
#
# The same `mk.train` as in tutorial 2. A frame of this fragment has only a few dozen tokens, so
# training is fast; with a 200-residue protein, expect the costs of tutorial 2. With one short
# run there is little to learn from: the point here is the workflow, not the model.

# %%
import shutil

settings = mk.TrainSettings(**QUICK_TRAIN) if QUICK else mk.TrainSettings()
shutil.rmtree(OUT / "model", ignore_errors=True)
bundle = mk.train(traj[:fit_frames], tok, OUT / "model", settings=settings, progress=True)
final = bundle.metrics["final_eval"]
for key in ("eval_loss", "eval_next_frame_token_accuracy", "eval_next_frame_rmsd_A"):
    print(f"{key:32s} {final.get(key, float('nan')):.4f}")

# %% [markdown]
# ## 7. Sample and compare
#
# Walkers start from the last window of the training frames (the default seed) and roll forward.
# Generated frames are backbones (N, CA, C, O), written with `out=` as `trajectory.xtc` +
# `topology.pdb` that any viewer or analysis tool reads.

# %%
shutil.rmtree(OUT / "samples", ignore_errors=True)
ens = mk.Sampler(bundle).sample(n_frames=N_SAMPLE_FRAMES, n_walkers=N_WALKERS, seed=0, out=OUT / "samples")
print(ens.trajectory, "|", sorted(p.name for p in ens.path.iterdir()))
rmsd_gen = mk.analysis.rmsd_to_references(ens.trajectory, refs)
summary = pd.DataFrame({
    "your MD, min": {k: 10 * v.min() for k, v in rmsd_md.items()},
    "your MD, max": {k: 10 * v.max() for k, v in rmsd_md.items()},
    "generated, min": {k: 10 * v.min() for k, v in rmsd_gen.items()},
    "generated, max": {k: 10 * v.max() for k, v in rmsd_gen.items()},
}).round(2)
summary.index.name = "Calpha RMSD (A) to"
display(summary)
valid_md, valid_gen = mk.analysis.validity_report(traj), mk.analysis.validity_report(ens.trajectory)
print(f"frames without Calpha break or clash: your MD {100 * valid_md['ca_valid_fraction']:.0f}%, "
      f"generated {100 * valid_gen['ca_valid_fraction']:.0f}%; peptide C-N bonds broken: "
      f"your MD {100 * valid_md['cn_break_rate']:.1f}%, generated {100 * valid_gen['cn_break_rate']:.1f}%")

# %% [markdown]
# **Reading it.** If the generated frames stay within the range the MD run itself covers, the
# model reproduces what it saw; frames much farther from every reference than the MD ever was
# are either new states or broken structures, and tutorial 3 shows how to tell them apart
# (bond lengths, clashes, the tokenizer's round trip); the validity line above is the first check.
# Compare its rates with those of your own MD: the criteria (`mk.analysis.CA_BREAK_NM`, 4.2 A;
# `mk.analysis.CN_BREAK_NM`, 2.0 A) are set so that real MD frames pass, and the reports'
# `cn_bond_length_A` / `ca_bond_length_A` show how far the generated bonds stray from your MD's.
# With one short trajectory and a short training run, as here, expect frames that drift beyond
# anything the MD visited: a useful model needs more data and training (tutorial 2's metrics tell
# you when).
#
# Walker 0 as a movie (drag to rotate; the player under the view steps through the frames):

# %%
mk.viz.show_ensemble(ens.walker(0))

# %% [markdown]
# ## The choices, in one place
#
# | choice | default | when to change it |
# |---|---|---|
# | `selection` | `"protein"` | to model one domain, or when a cofactor should be kept out (or in) |
# | `make_whole` | `True` | never needed off, except for files already whole and without a box |
# | `superpose`, `reference` | on, first frame | superpose on a crystal structure (`reference="xtal.pdb"`) to compare runs |
# | `stride` | 1 | so that consecutive frames differ by a few times the tokenizer error (section 3) |
# | tokenizer atoms | `"auto"` (backbone if N, CA, C, O exist) | `atoms="ca"` for Calpha-only models |
# | references | none | structures of the states you care about, sliced to the same residues |
#
# From the command line the same pipeline is `mdllm inspect`, `mdllm tokenizer fit`, `mdllm train`
# and `mdllm sample` (see the README).
