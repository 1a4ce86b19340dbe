"""Discovery benchmark: does an exploration strategy reach the state the model never saw?

::

    python benchmarks/bench_discovery.py --direction closed-to-open --out bench_discovery_c2o.json
    python benchmarks/bench_discovery.py --direction open-to-closed --out bench_discovery_o2c.json

Trains the default model (``--steps``, the ``make demo`` budget by default)
on one bundled AdK run that never leaves its basin (``closed_train`` or
``open_train``), tokenizer fitted on the same run (``--bundle DIR`` reuses a
trained bundle), then runs every strategy of ``--strategies`` with

* the model (``mk.explore``), and
* the model-free control: the previous frame's tokens with random token
  noise (:class:`mdllm_kit.exploration.TokenNoiseProposal`), same strategy,
  same budget. Hits of the control are luck, not learning.

Every kept frame is scored against the unseen crystal (Calpha RMSD). A
frame is a **hit** when it is within ``--hit`` A (3 A; the stretch target
2 A) of the unseen crystal, physically valid (``mk.validity_report``: no
Calpha clash or break) and on the real landscape: within ``--landscape`` A
(2 A) of some frame of the ground-truth ``equilibrium`` run (a distorted
frame near the target is not a discovery). Reported per run: the closest
valid on-landscape approach against candidates drawn (a curve), candidates,
kept frames and wall seconds to the first hit, valid and on-landscape
fractions, generated frames per second (candidates drawn and decoded, the
benchmark's own scoring time excluded; ``scoring_s`` gives it). The training run's own closest
approach is the floor to beat.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from bench_lm import machine  # noqa: E402

import mdllm_kit as mk  # noqa: E402
from mdllm_kit.analysis import NM_TO_A, discovery_scores, rmsd_to_references  # noqa: E402
from mdllm_kit.exploration import CollectiveVariables, TokenNoiseProposal  # noqa: E402
from mdllm_kit.lm.cli import entropy_cap_arg  # noqa: E402

#: direction -> (training run, unseen crystal)
DIRECTIONS = {"closed-to-open": ("closed_train", "open"), "open-to-closed": ("open_train", "closed")}


def run_one(bundle, strategy: str, options: dict, proposal, budget: int, walkers: int, seed: int, train, target,
            landscape, hit_a: float, landscape_a: float, settings=None) -> dict:
    """One exploration run scored step by step."""
    cv = CollectiveVariables.pca(train)
    curve, state = [], {"best": np.inf, "first_hit": None, "t0": time.perf_counter(), "kept": 0, "valid": 0,
                        "on_landscape": 0, "stretch": None,
                        "scoring_s": 0.0}

    def score(step) -> None:
        t_score = time.perf_counter()
        frames = step.frames
        scores = discovery_scores(frames, target, landscape, hit_nm=hit_a / NM_TO_A, landscape_nm=landscape_a / NM_TO_A)
        r, ok = scores["rmsd_nm"] * NM_TO_A, scores["on_landscape"]
        state["kept"] += frames.n_frames
        state["valid"] += int(scores["valid"].sum())
        state["on_landscape"] += int(ok.sum())
        if ok.any():
            state["best"] = min(state["best"], float(r[ok].min()))
        elapsed = time.perf_counter() - state["t0"]
        if state["first_hit"] is None and state["best"] <= hit_a:
            state["first_hit"] = {"frames_drawn": step.frames_drawn, "frames_kept": state["kept"],
                                  "wall_s": round(elapsed, 1)}
        if state["stretch"] is None and state["best"] <= 2.0:
            state["stretch"] = {"frames_drawn": step.frames_drawn, "wall_s": round(elapsed, 1)}
        curve.append([step.frames_drawn, round(state["best"], 3) if np.isfinite(state["best"]) else None,
                      round(float(r.min()), 3)])
        state["scoring_s"] += time.perf_counter() - t_score

    t0 = time.perf_counter()
    ens = mk.explore(bundle, strategy, budget_frames=budget, n_walkers=walkers, seed=seed, cv=cv, proposal=proposal,
                     settings=settings, callback=score, **options)
    wall = time.perf_counter() - t0
    record = ens.params["exploration"]
    return {"strategy": record["strategy"], "proposal": record["proposal"], "frames_kept": state["kept"],
            "frames_drawn": record["frames_drawn"], "wall_s": round(wall, 1),
            "scoring_s": round(state["scoring_s"], 1),
            "frames_drawn_per_s": round(record["frames_drawn"] / max(wall - state["scoring_s"], 1e-9), 2),
            "valid_fraction": round(state["valid"] / max(state["kept"], 1), 4),
            "valid_on_landscape_fraction": round(state["on_landscape"] / max(state["kept"], 1), 4),
            "closest_valid_on_landscape_A": None if not np.isfinite(state["best"]) else round(state["best"], 3),
            "closest_any_A": round(min(c[2] for c in curve), 3),
            "first_hit": state["first_hit"], "first_stretch_hit": state["stretch"],
            "restarts": len(record["restarts"]),
            "curve": {"columns": ["frames_drawn", "closest_valid_on_landscape_A", "closest_this_step_A"],
                      "rows": curve}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--direction", choices=sorted(DIRECTIONS), default="closed-to-open")
    ap.add_argument("--bundle", default=None, help="reuse a trained bundle (trained on the direction's run)")
    ap.add_argument("--keep", default=None, help="folder to keep the trained bundle in")
    ap.add_argument("--steps", type=int, default=400, help="training steps (default: the make demo budget)")
    ap.add_argument("--budget", type=int, default=400, help="frames kept per run")
    ap.add_argument("--walkers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default="rollout,restart,bias")
    ap.add_argument("--restart-round", type=int, default=10, help="restart: steps per round")
    ap.add_argument("--bias-candidates", type=int, default=4, help="bias: candidates per walker and step")
    ap.add_argument("--entropy-cap", type=entropy_cap_arg, default=None,
                    help="entropy control of the model's sampling (nats; default off, as in the recorded runs)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the model")
    ap.add_argument("--noise-rate", type=float, default=0.05, help="control: probability that a token moves")
    ap.add_argument("--no-control", action="store_true", help="skip the model-free control runs")
    ap.add_argument("--hit", type=float, default=3.0, help="hit: RMSD to the unseen crystal, A")
    ap.add_argument("--landscape", type=float, default=2.0, help="on the landscape: RMSD to an equilibrium frame, A")
    ap.add_argument("--out", default="bench_discovery.json")
    args = ap.parse_args(argv)

    run_name, unseen = DIRECTIONS[args.direction]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    train = mk.datasets.load_adk_cg(run_name)
    target = mk.datasets.adk_references()[unseen]
    landscape = mk.datasets.load_adk_cg("equilibrium")
    t0 = time.perf_counter()
    if args.bundle:
        bundle = mk.load_bundle(args.bundle, device="cpu")
        train_wall = 0.0
    else:
        folder = args.keep or tempfile.mkdtemp(prefix="bench_discovery_")
        tok = mk.StructureTokenizer().fit(train)
        bundle = mk.train(train, tok, folder, mk.ModelSettings(),
                          mk.TrainSettings(max_steps=args.steps, seed=args.seed), progress=False, device="cpu")
        train_wall = time.perf_counter() - t0
    training_closest = float(rmsd_to_references(train, {unseen: target})[unseen].min() * NM_TO_A)
    options = {"rollout": {}, "restart": {"round_frames": args.restart_round},
               "bias": {"n_candidates": args.bias_candidates}}
    runs = []
    for strategy in args.strategies.split(","):
        proposals = [("model", None)]
        if not args.no_control:
            proposals.append(("control", TokenNoiseProposal(bundle.tokenizer, rate=args.noise_rate, seed=args.seed)))
        for label, proposal in proposals:
            settings = mk.SamplingSettings(temperature=args.temperature, entropy_cap=args.entropy_cap)
            result = run_one(bundle, strategy, options[strategy], proposal, args.budget, args.walkers, args.seed,
                             train, target, landscape, args.hit, args.landscape, settings)
            result["label"] = f"{strategy} / {label}"
            runs.append(result)
            hit = result["first_hit"]
            print(f"{result['label']:>20}: closest valid on-landscape {result['closest_valid_on_landscape_A']} A "
                  f"(any {result['closest_any_A']} A), valid {result['valid_fraction']:.3f}, on landscape "
                  f"{result['valid_on_landscape_fraction']:.3f}, first hit {hit}, {result['frames_drawn_per_s']} "
                  f"frames/s, {result['wall_s']} s", flush=True)
    rollout = next((r for r in runs if r["label"] == "rollout / model"), None)
    for r in runs:
        r["settings"] = {"temperature": args.temperature, "entropy_cap": args.entropy_cap}
        if rollout and rollout["first_hit"] and r["first_hit"]:
            r["frames_to_hit_vs_rollout"] = round(r["first_hit"]["frames_drawn"] / rollout["first_hit"]["frames_drawn"], 3)
    result = {"benchmark": "discovery", "direction": args.direction, "training_run": run_name, "unseen": unseen,
              "command": "python benchmarks/bench_discovery.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "started": started, "machine": machine(), "train_steps": args.steps if not args.bundle else None,
              "train_wall_s": round(train_wall, 1), "training_closest_to_unseen_A": round(training_closest, 3),
              "hit_A": args.hit, "landscape_A": args.landscape, "budget_frames": args.budget,
              "walkers": args.walkers, "runs": runs}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"training run's own closest approach to {unseen}: {training_closest:.2f} A; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
