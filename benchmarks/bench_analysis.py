"""Benchmark of the discovery analysis (``mk.analyze``) on the bundled AdK data.

Usage::

    python benchmarks/bench_analysis.py [--walkers 8] [--frames 25] [--json out.json]

Two stand-in "generated" ensembles of the demo's size (``walkers`` x ``frames``
frames, frame-major) with known answers, analysed exactly as the demo does
(references closed/open, training ``closed_train``, ground truth
``equilibrium`` with its state labels):

``positive``
    ``walkers`` evenly spaced segments of ``frames`` consecutive frames of the
    ``equilibrium`` run: MD that does visit the open state. The analysis
    must find it (open reached, frames outside the training ensemble) and
    call the frames physical.
``negative``
    the same from ``closed_train``: the open state must not be reached and
    (almost) nothing is novel.

Reports the wall time of ``analyze`` and its main numbers per ensemble.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import mdtraj as md
import numpy as np

import mdllm_kit as mk


def frame_major_segments(traj: md.Trajectory, walkers: int, frames: int) -> md.Trajectory:
    """``walkers`` evenly spaced segments of ``frames`` frames, interleaved frame-major."""
    starts = np.linspace(0, traj.n_frames - frames, walkers).round().astype(int)
    idx = np.stack([np.arange(s, s + frames) for s in starts], axis=1).ravel()  # (frames, walkers) row-major
    return traj[idx]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walkers", type=int, default=8)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    refs = mk.datasets.adk_references()
    train = mk.datasets.load_adk_cg("closed_train")
    truth = mk.datasets.load_adk_cg("equilibrium")
    truth_labels = mk.datasets.adk_cg_states(truth)
    results = {"machine": platform.processor() or platform.machine(), "walkers": args.walkers, "frames": args.frames}
    for name, source in (("positive", truth), ("negative", train)):
        gen = frame_major_segments(source, args.walkers, args.frames)
        start = time.perf_counter()
        metrics = mk.analyze(gen, train, refs, reference_ensemble=truth, n_walkers=args.walkers,
                             generated_labels=mk.datasets.adk_cg_states(gen), reference_labels=truth_labels,
                             state_names=mk.datasets.ADK_STATE_NAMES, n_states=3)
        seconds = time.perf_counter() - start
        comp = metrics["comparison"]
        results[name] = {
            "seconds": round(seconds, 2),
            "min_rmsd_open_A": metrics["references"]["open"]["min_rmsd_A"],
            "open_within_3A": metrics["references"]["open"]["fraction_within"]["3.0"],
            "open_first_step": metrics["references"]["open"]["first_step_within"],
            "min_rmsd_closed_A": metrics["references"]["closed"]["min_rmsd_A"],
            "novel_fraction": metrics["novelty"]["novel_fraction"],
            "novelty_cutoff_A": metrics["novelty"]["cutoff_A"],
            "ca_valid_fraction": metrics["validity"]["ca_valid_fraction"],
            "training_ca_valid_fraction": metrics["validity"]["training"]["ca_valid_fraction"],
            "js_pc12": comp["js_distance"]["PC1-PC2"],
            "rmsf_r": comp["rmsf"]["pearson_r"],
            "populations_generated": dict(zip(comp["populations"]["states"], comp["populations"]["generated"])),
            "populations_truth": dict(zip(comp["populations"]["states"], comp["populations"]["reference"])),
            "msm_generated": comp["msm"]["generated"].get("timescales_frames", comp["msm"]["generated"].get("error")),
            "msm_truth": comp["msm"]["reference"].get("timescales_frames"),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
