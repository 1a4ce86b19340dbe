"""``mdllm explore``: a thin shell over :func:`mdllm_kit.explore`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import SamplingError

__all__ = ["add_explore_command", "explore_command", "parse_options"]


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["round_frames=20", "cell_width=0.5"]`` -> ``{"round_frames": 20, "cell_width": 0.5}`` (JSON values, else text)."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SamplingError(f"--option {item!r} is not KEY=VALUE; write e.g. --option round_frames=20")
        try:
            options[key.strip().replace("-", "_")] = json.loads(text)
        except ValueError:
            options[key.strip().replace("-", "_")] = text
    return options


def explore_command(bundle_dir: str, out: str, *, strategy: str, budget_frames: int, n_walkers: int,
                    seed: int, options: dict[str, Any], settings: Any = None, training: str | None = None,
                    top: str | None = None, cv: str = "pca", cv_components: int = 2, tica_lag: int = 10,
                    proposal: str = "model", noise_rate: float = 0.05, noise_bins: float = 1.0,
                    seed_structures: str | None = None, seed_top: str | None = None, resume: bool = False,
                    flush_every: int = 10, precision: str = "auto", device: str | None = None,
                    processes: int | None = None,
                    progress: bool = True, as_json: bool = False) -> int:
    """Load what the options name, explore into ``out`` and print a summary; returns 0."""
    from ..loading import load_trajectory
    from ..lm.bundle import load_bundle
    from ..stdio import print_json
    from .cv import CollectiveVariables
    from .engine import explore
    from .proposals import TokenNoiseProposal
    from .strategy import make_strategy

    strat = make_strategy(strategy, **options)
    bundle = load_bundle(bundle_dir, device=device) if bundle_dir is not None else None
    train = load_trajectory(training, top=top) if training is not None else None
    collective = None
    if strat.needs_cv:
        if train is None:
            raise SamplingError(f"strategy {strategy!r} works on a map of the training frames; pass --train "
                                "TRAJ (and --train-top for coordinate-only files)")
        fit = CollectiveVariables.tica if cv == "tica" else CollectiveVariables.pca
        collective = fit(train, n_components=cv_components, **({"lagtime": tica_lag} if cv == "tica" else {}))
    seed_frames = load_trajectory(seed_structures, top=seed_top) if seed_structures is not None else None
    chosen = None
    if proposal == "token-noise":
        chosen = TokenNoiseProposal(bundle.tokenizer, rate=noise_rate, bins=noise_bins, seed=seed)
    ensemble = explore(bundle, strat, budget_frames=budget_frames, n_walkers=n_walkers,
                       seed=seed, out=out, resume=resume, settings=settings, cv=collective, proposal=chosen,
                       seed_frames=seed_frames, precision=precision, flush_every=flush_every, progress=progress,
                       processes=processes)
    record = ensemble.params["exploration"]
    summary = {"out": str(Path(out)), "strategy": record["strategy"], "n_walkers": ensemble.n_walkers,
               "frames_per_walker": ensemble.n_frames, "frames_drawn": record["frames_drawn"],
               "restarts": len(record["restarts"]), "invalid_drawn": record["invalid_drawn"],
               "invalid_chosen": record["invalid_chosen"], "unbiased": record["unbiased"]}
    if as_json:
        print_json(summary)
    else:
        print(f"{ensemble.n_walkers} walker(s) x {ensemble.n_frames} frames ({record['strategy']['name']}) -> "
              f"{Path(out) / 'trajectory.xtc'}")
        print(f"candidates drawn: {record['frames_drawn']}, invalid: {record['invalid_drawn']} "
              f"(kept: {record['invalid_chosen']}); restarts: {len(record['restarts'])}")
        if not record["unbiased"]:
            print("note: this strategy biases which frames are kept; use rollout runs for populations and kinetics")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from ..lm.config import SamplingSettings

    settings = SamplingSettings(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                context_frames=args.context_frames, entropy_cap=args.entropy_cap)
    return explore_command(args.bundle, args.out, strategy=args.strategy, budget_frames=args.budget_frames,
                           n_walkers=args.walkers, seed=args.seed, options=parse_options(args.option),
                           settings=settings, training=args.train, top=args.train_top, cv=args.cv,
                           cv_components=args.cv_components, tica_lag=args.tica_lag, proposal=args.proposal,
                           noise_rate=args.noise_rate, noise_bins=args.noise_bins,
                           seed_structures=args.seed_structures, seed_top=args.seed_top, resume=args.resume,
                           flush_every=args.flush_every, precision=args.precision, device=args.device,
                           processes=args.processes,
                           progress=not args.no_progress, as_json=args.json)


def add_explore_command(subparsers: Any) -> None:
    """Register ``explore`` on an ``argparse`` sub-parser collection."""
    from ..lm.cli import ENTROPY_CAP_HELP, PROCESSES_HELP, entropy_cap_arg, processes_arg
    from ..lm.config import SamplingSettings
    from ..lm.precision import PRECISIONS
    from .strategy import strategy_names

    s = SamplingSettings()
    ex = subparsers.add_parser(
        "explore", help="look for new states with an exploration strategy",
        description="Drive a model bundle with an exploration strategy and write the folder of mdllm sample "
                    "(trajectory.xtc, topology.pdb, tokens.npz, params.json) plus exploration.json (restarts, "
                    "candidates drawn, invalid frames). Strategies: rollout (plain rollouts), restart (least-"
                    "counts restarts in rounds; options round_frames, cell_width), bias (several candidates per "
                    "walker chosen against a history bias; options n_candidates, hill_width, strength). "
                    "Frames of restart and bias runs are not Boltzmann-weighted.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ex.add_argument("bundle", help="model bundle folder (the --out of mdllm train)")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--strategy", default="rollout", choices=strategy_names(), help="exploration strategy")
    ex.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="strategy option, repeatable (e.g. --option round_frames=20)")
    ex.add_argument("--budget-frames", type=int, required=True, help="frames kept in all (split over walkers)")
    ex.add_argument("--walkers", type=int, default=s.n_walkers, help="walkers")
    ex.add_argument("--seed", type=int, default=s.seed, help="random seed (same seed, same frames)")
    ex.add_argument("--train", default=None, help="training trajectory: the map (PCA/TICA) strategies use")
    ex.add_argument("--train-top", default=None, help="topology for --train (as for mdllm analyze)")
    ex.add_argument("--cv", choices=("pca", "tica"), default="pca", help="collective variables fitted on --train")
    ex.add_argument("--cv-components", type=int, default=2, help="components of the map")
    ex.add_argument("--tica-lag", type=int, default=10, help="TICA lag time, frames")
    ex.add_argument("--proposal", choices=("model", "token-noise"), default="model",
                    help="token-noise: the model-free control (previous frame's tokens with random noise)")
    ex.add_argument("--noise-rate", type=float, default=0.05, help="token-noise: probability that a token moves")
    ex.add_argument("--noise-bins", type=float, default=1.0, help="token-noise: standard deviation of a move, bins")
    ex.add_argument("--temperature", type=float, default=s.temperature, help="softmax temperature")
    ex.add_argument("--top-k", type=int, default=s.top_k, help="top-k truncation (0: off)")
    ex.add_argument("--top-p", type=float, default=s.top_p, help="nucleus truncation (1: off)")
    ex.add_argument("--entropy-cap", type=entropy_cap_arg, default=s.entropy_cap, help=ENTROPY_CAP_HELP)
    ex.add_argument("--context-frames", type=int, default=None, help="context frames (default: training window)")
    ex.add_argument("--seed-structures", default=None, help="starting structures (default: last training window)")
    ex.add_argument("--seed-top", default=None, help="topology for --seed-structures")
    ex.add_argument("--flush-every", type=int, default=10, help="steps between writes to OUT")
    ex.add_argument("--resume", action="store_true", help="continue the run in OUT")
    ex.add_argument("--device", choices=("cpu", "cuda"), default=None, help="force a device")
    ex.add_argument("--precision", choices=PRECISIONS, default="auto", help="arithmetic of the model")
    ex.add_argument("--processes", type=processes_arg, default=None, metavar="N|auto", help=PROCESSES_HELP)
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.add_argument("--json", action="store_true", help="print a JSON summary")
    ex.set_defaults(func=_cmd_explore)
