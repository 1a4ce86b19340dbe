"""``mdllm tokenizer fit`` and ``mdllm tokenizer eval``.

The typed functions :func:`fit_tokenizer_cli` and :func:`eval_tokenizer` do
the work; :func:`add_tokenizer_commands` registers argparse subcommands whose
``func`` unpacks the parsed namespace and calls them.
"""
from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..contracts import load_tokenizer
from ..stdio import print_json
from ..errors import TokenizerError
from .config import TokenizerConfig
from .metrics import bond_ok_fraction, rmsd_per_frame
from .tokenizer import StructureTokenizer

__all__ = ["add_tokenizer_commands", "eval_tokenizer", "fit_tokenizer_cli"]

logger = logging.getLogger(__name__)


def _load(path: str | Path, top: str | Path | None):
    from ..loading import load_trajectory

    return load_trajectory(path, top=top)


def fit_tokenizer_cli(
    trajectories: Sequence[str | Path],
    out: str | Path,
    top: str | Path | None = None,
    codebook_size: int = 256,
    atoms: str = "auto",
    anchor_stride: int = 8,
    refine_iterations: int = TokenizerConfig.refine_iterations,
    device: str = "auto",
) -> dict[str, Any]:
    """Fit a tokenizer on trajectory files and save it.

    Parameters
    ----------
    trajectories : sequence of path
        Trajectory files of one protein (any format mdtraj reads).
    out : path
        Output directory (created; files replaced atomically).
    top : path, optional
        Topology for formats without one (xtc, dcd...).
    codebook_size, atoms, anchor_stride, refine_iterations, device
        See :class:`~mdllm_kit.tokenizer.TokenizerConfig`.

    Returns
    -------
    dict
        ``out``, ``mode``, ``n_residues``, ``n_frames``, ``tokens_per_frame``,
        ``vocab_size``, ``fingerprint``, ``fit_seconds``.
    """
    out_path = Path(out)
    if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
        raise TokenizerError(f"the output {out_path} already exists and is not an empty folder; a tokenizer there may "
                             "belong to trained models: choose a new folder (or delete it first)")
    cfg = TokenizerConfig(
        codebook_size=codebook_size, atoms=atoms, anchor_stride=anchor_stride,
        refine_iterations=refine_iterations, device=device,
    )
    trajs = [_load(p, top) for p in trajectories]
    t0 = time.perf_counter()
    tok = StructureTokenizer(cfg).fit(trajs)
    seconds = time.perf_counter() - t0
    tok.save_pretrained(out)
    return {
        "out": str(out), "mode": tok.mode, "n_residues": tok.n_residues,
        "n_frames": int(sum(t.n_frames for t in trajs)), "tokens_per_frame": tok.tokens_per_frame,
        "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint, "fit_seconds": round(seconds, 3),
    }


def eval_tokenizer(directory: str | Path, trajectory: str | Path, top: str | Path | None = None) -> dict[str, Any]:
    """Round-trip frames through a saved tokenizer and measure the error.

    Parameters
    ----------
    directory : path
        Directory written by ``save_pretrained`` / ``mdllm tokenizer fit``.
    trajectory : path
        Frames of the same protein.
    top : path, optional
        Topology for formats without one.

    Returns
    -------
    dict
        ``n_frames``, ``rmsd_mean_A`` and ``rmsd_p95_A`` (Calpha RMSD after
        superposition, Angstrom), ``backbone_rmsd_mean_A`` (backbone mode),
        ``bonds_ok_pct`` (decoded Calpha-Calpha distances within 3.8 +/- 0.3 A),
        ``code_usage_pct`` (share of the vocabulary used), ``frames_per_s``
        (encode + decode), ``tokens_per_frame``, ``vocab_size``, ``fingerprint``.
    """
    tok = load_tokenizer(directory)  # any registered FrameTokenizer format
    traj = _load(trajectory, top)
    t0 = time.perf_counter()
    tokens = tok.encode(traj)
    dec = tok.decode(tokens)
    seconds = time.perf_counter() - t0
    ref = tok.reduce(traj) if hasattr(tok, "reduce") else traj  # the atoms the tokenizer encodes
    ca = [a.index for a in dec.topology.atoms if a.name == "CA"]
    r = rmsd_per_frame(dec.xyz[:, ca], ref.xyz[:, ca])
    out: dict[str, Any] = {
        "n_frames": int(traj.n_frames),
        "rmsd_mean_A": round(float(r.mean()), 4),
        "rmsd_p95_A": round(float(np.percentile(r, 95)), 4),
    }
    if getattr(tok, "mode", None) == "backbone":
        out["backbone_rmsd_mean_A"] = round(float(rmsd_per_frame(dec.xyz, ref.xyz).mean()), 4)
    out.update({
        "bonds_ok_pct": round(100.0 * bond_ok_fraction(dec.xyz[:, ca]), 3),
        "code_usage_pct": round(100.0 * len(np.unique(tokens)) / tok.vocab_size, 2),
        "frames_per_s": round(traj.n_frames / seconds, 1),
        "tokens_per_frame": tok.tokens_per_frame,
        "vocab_size": tok.vocab_size,
        "fingerprint": tok.fingerprint,
    })
    return out


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v}")


def _run_fit(ns: argparse.Namespace) -> int:
    result = fit_tokenizer_cli(
        ns.traj, ns.out, top=ns.top, codebook_size=ns.codebook_size, atoms=ns.atoms,
        anchor_stride=ns.anchor_stride, refine_iterations=ns.refine_iterations, device=ns.device,
    )
    _print(result, ns.json)
    return 0


def _run_eval(ns: argparse.Namespace) -> int:
    _print(eval_tokenizer(ns.dir, ns.traj, top=ns.top), ns.json)
    return 0


def add_tokenizer_commands(subparsers: Any) -> None:
    """Register ``fit`` and ``eval`` on an argparse subparsers object.

    Each subcommand sets ``func``: a callable taking the parsed namespace and
    returning an exit code.
    """
    d = TokenizerConfig()
    fit = subparsers.add_parser(
        "fit", help="fit a structure tokenizer on trajectories and save it",
        description="Fit a structure tokenizer on frames of one protein and save it to --out "
        "(tokenizer_config.json + tokenizer.safetensors).",
    )
    fit.add_argument("traj", nargs="+", help="trajectory file(s) of one protein")
    fit.add_argument("--top", default=None, help="topology file (for xtc, dcd, ...)")
    fit.add_argument("--out", required=True, help="output directory")
    fit.add_argument("--codebook-size", type=int, default=d.codebook_size, help="bins per token alphabet (default %(default)s)")
    fit.add_argument("--atoms", choices=("auto", "ca", "backbone"), default=d.atoms, help="atoms to encode (default %(default)s)")
    fit.add_argument("--anchor-stride", type=int, default=d.anchor_stride, help="residues between anchor landmarks (default %(default)s)")
    fit.add_argument("--refine-iterations", type=int, default=d.refine_iterations, help="decoder refinement steps (default %(default)s)")
    fit.add_argument("--device", default=d.device, help="auto, cpu or cuda (default %(default)s)")
    fit.add_argument("--json", action="store_true", help="print the summary as JSON")
    fit.set_defaults(func=_run_fit)

    ev = subparsers.add_parser(
        "eval", help="measure round-trip RMSD and speed of a saved tokenizer",
        description="Encode and decode TRAJ with the tokenizer in DIR; report mean/p95 Calpha RMSD (A), "
        "physical bonds, code usage and frames/s.",
    )
    ev.add_argument("dir", help="tokenizer directory (from `mdllm tokenizer fit`)")
    ev.add_argument("traj", help="trajectory file of the same protein")
    ev.add_argument("--top", default=None, help="topology file (for xtc, dcd, ...)")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(func=_run_eval)
