"""``mdllm analyze``: the metrics of a generated ensemble on the command line."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MdllmError
from ..stdio import print_json

__all__ = ["add_analysis_commands"]


def _parse_refs(items: list[str]) -> dict[str, str]:
    refs: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise MdllmError(f"--ref {item!r} is not NAME=PDB; write e.g. --ref open=adk_open.pdb")
        refs[name] = path
    return refs


def _load_generated(path: str, top: str | None):
    """A sampling output folder (a GeneratedEnsemble, with its walkers) or a trajectory file."""
    from ..loading import load_trajectory

    folder = Path(path)
    if folder.is_dir():
        from ..ensemble import GeneratedEnsemble

        # the sampler owns the folder layout (params.json, tokens.npz -- the record -- and trajectory.xtc, which
        # is rebuilt from the tokens when an interrupted run cut it short) and names what is missing
        ensemble = GeneratedEnsemble.load(folder)
        if ensemble.n_frames == 0:
            raise MdllmError(f"sampling folder {folder} holds no frames yet; let mdllm sample --out {folder} run "
                             "(or continue it with --resume) until it has written frames, or pass a trajectory file")
        return ensemble  # mk.analyze takes the ensemble, walkers included
    return load_trajectory(path, top=top, superpose=False)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from ..loading import load_trajectory
    from .metrics import analyze, summary_lines

    generated = _load_generated(args.gen, args.top)
    n_walkers = args.walkers
    training = load_trajectory(args.train, top=args.train_top, superpose=False)
    refs = {name: load_trajectory(p, superpose=False) for name, p in _parse_refs(args.ref).items()}
    ensemble = None
    if args.reference_ensemble:
        ensemble = load_trajectory(args.reference_ensemble, top=args.reference_top, superpose=False)
    metrics = analyze(generated, training, refs, reference_ensemble=ensemble, n_walkers=n_walkers, seed=args.seed)
    if args.json:
        print_json(metrics, sort_keys=True)
    else:
        print("\n".join(summary_lines(metrics)))
    return 0


def add_analysis_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``mdllm analyze`` on the top-level subparsers."""
    p = sub.add_parser(
        "analyze", help="discovery, novelty and validity metrics of generated frames",
        description="Measure generated frames against named reference structures (minimum Calpha RMSD, "
                    "first arrival, coverage), the training ensemble (novelty), physical validity "
                    "(Calpha breaks and clashes, peptide bonds) and, optionally, a reference ensemble "
                    "(histogram JS distances, RMSF correlation, populations, MSM). The metrics layout is "
                    "documented in mdllm_kit.analysis.metrics.",
    )
    p.add_argument("gen", metavar="GEN", help="sampling output folder (mdllm sample --out) or a trajectory file")
    p.add_argument("--top", default=None, help="topology of GEN when it is a coordinate-only trajectory file")
    p.add_argument("--walkers", type=int, default=None,
                   help="walkers of a frame-major GEN file (a sampling folder knows its own)")
    p.add_argument("--train", required=True, metavar="TRAIN", help="training trajectory")
    p.add_argument("--train-top", default=None, help="topology of TRAIN")
    p.add_argument("--ref", action="append", default=[], metavar="NAME=PDB", required=True,
                   help="named reference structure (repeatable), e.g. --ref open=adk_open.pdb")
    p.add_argument("--reference-ensemble", default=None, metavar="TRAJ",
                   help="ground-truth trajectory to compare the ensemble with")
    p.add_argument("--reference-top", default=None, help="topology of --reference-ensemble")
    p.add_argument("--seed", type=int, default=0, help="seed of the clusterings (default: 0)")
    p.add_argument("--json", action="store_true", help="print the metrics dictionary as JSON")
    p.set_defaults(func=_cmd_analyze)
