"""The ``mdllm`` command: a thin shell over the Python API.

Each subcommand parses its arguments and calls one typed function of the
package; argparse namespaces never travel further than this module.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import MdllmError
from .stdio import print_json, stdout_to_stderr

__all__ = ["build_parser", "main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    metrics = run_demo(args.out, DemoConfig(quick=args.quick, seed=args.seed))
    print(f"report: {Path(args.out) / 'report.html'}")
    print(f"metrics: {Path(args.out) / 'metrics.json'} (stages run: {', '.join(metrics['stages_run'])})")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .loading import describe_trajectory, load_trajectory

    traj = load_trajectory(args.traj, top=args.top, selection=args.selection, stride=args.stride)
    summary = describe_trajectory(traj)
    if args.json:
        print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


def _cmd_datasets_list(args: argparse.Namespace) -> int:
    from . import datasets

    for name in datasets.ADK_CG_RUNS:
        traj = datasets.load_adk_cg(name)
        print(f"adk_cg/{name}: {traj.n_frames} frames, {traj.n_residues} residues (Calpha)")
    for state in ("closed", "open"):
        print(f"adk_references/{state}: crystal structure, heavy atoms")
    return 0


def _cmd_datasets_export(args: argparse.Namespace) -> int:
    from .datasets import export_adk

    for path in export_adk(args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mdllm`` (every level answers ``--help``)."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="mdllm",
        description="mdllm-kit: learn a protein's molecular dynamics with a language model.",
    )
    parser.add_argument("--version", action="version", version=f"mdllm-kit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole pipeline on the bundled AdK data",
                          description="Run every available stage on the bundled AdK demo data and "
                                      "write OUT/report.html and OUT/metrics.json.")
    demo.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--quick", action="store_true", help="small settings (for tests and CI)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_cmd_demo)

    inspect = sub.add_parser("inspect", help="load a trajectory and summarise it",
                             description="Load a trajectory as mk.load_trajectory does (protein atoms, "
                                         "molecules made whole, frames superposed) and print a summary.")
    inspect.add_argument("traj", help="trajectory file (xtc, dcd, trr, nc, h5, pdb, gro, ...)")
    inspect.add_argument("--top", default=None, help="topology (pdb, gro, psf, prmtop) for coordinate-only files")
    inspect.add_argument("--selection", default="protein", help="mdtraj atom selection (default: protein)")
    inspect.add_argument("--stride", type=int, default=None, help="keep every STRIDE-th frame")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(func=_cmd_inspect)

    data = sub.add_parser("datasets", help="the bundled demo data",
                          description="List or export the bundled AdK demo data.")
    data_sub = data.add_subparsers(dest="datasets_command", metavar="ACTION")
    data_list = data_sub.add_parser("list", help="list the bundled datasets", description="List the bundled datasets.")
    data_list.set_defaults(func=_cmd_datasets_list)
    export = data_sub.add_parser("export", help="write the bundled AdK data to files",
                                 description="Write the bundled AdK trajectories (xtc), their topology and "
                                             "the crystal structures (pdb) into a folder, for use with the "
                                             "other commands.")
    export.add_argument("--out", required=True, help="output folder")
    export.set_defaults(func=_cmd_datasets_export)
    data.set_defaults(func=lambda _args: (data.print_help(), 2)[1])

    from .tokenizer.cli import add_tokenizer_commands

    tokenizer = sub.add_parser("tokenizer", help="fit and evaluate structure tokenizers",
                               description="Fit a structure tokenizer on a trajectory, or measure how "
                                           "faithfully a saved one reconstructs another trajectory.")
    add_tokenizer_commands(tokenizer.add_subparsers(dest="tokenizer_command", metavar="ACTION"))
    tokenizer.set_defaults(func=lambda _args: (tokenizer.print_help(), 2)[1])

    from .lm.cli import add_lm_commands

    add_lm_commands(sub)

    from .exploration.cli import add_explore_command

    add_explore_command(sub)

    from .analysis.cli import add_analysis_commands

    add_analysis_commands(sub)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mdllm``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        # machine-readable output stays valid whatever native code prints: under --json, file descriptor 1
        # points at standard error while the command runs and only print_json writes to the real stdout
        with stdout_to_stderr(bool(getattr(args, "json", False))):
            return int(args.func(args))
    except MdllmError as error:
        print(f"mdllm: error: {' '.join(str(error).split())}", file=sys.stderr)  # one line, always
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
