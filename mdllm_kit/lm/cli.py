"""``mdllm train``, ``mdllm sample`` and ``mdllm export``.

:func:`add_lm_commands` registers the subcommands on the ``mdllm`` parser;
their ``func`` unpacks the namespace and calls the typed functions
:func:`train_command`, :func:`sample_command` and :func:`export_command`.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import contracts

__all__ = ["add_lm_commands", "entropy_cap_arg", "export_command", "load_tokenizer", "sample_command",
           "train_command"]

logger = logging.getLogger(__name__)

ENTROPY_CAP_HELP = ("entropy control: no token drawn from a distribution above this entropy, nats per token "
                    "('off': sample at the temperature alone, as in the MD-LLM paper)")
_OFF = ("off", "none", "0")


def entropy_cap_arg(text: str) -> float | None:
    """``--entropy-cap`` value: a positive number of nats, or ``off`` (``None``)."""
    if text.strip().lower() in _OFF:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of nats or 'off'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the cap must be > 0 nats, or 'off'")
    return value


#: ``--processes`` help, shared by ``mdllm sample`` and ``mdllm explore``.
PROCESSES_HELP = ("processes that generate the walkers in parallel on a CPU, one core each (auto: one per usable "
                  "core for small models on Linux, when each gets >= 2 walkers; 1: this process only)")


def processes_arg(text: str) -> int | None:
    """``--processes`` value: a positive number, or ``auto`` (``None``)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes or 'auto'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1 process, or 'auto'")
    return value


def load_tokenizer(directory: str | Path) -> Any:
    """The tokenizer saved in ``directory``, by its saved format (:func:`mdllm_kit.contracts.load_tokenizer`)."""
    return contracts.load_tokenizer(directory)


def train_command(trajectories: Sequence[str], tokenizer_dir: str, out: str, *, top: str | None = None,
                  selection: str | None = "protein", stride_frames: int | None = None,
                  model_settings: Any = None, train_settings: Any = None, resume: bool = False,
                  progress: bool = True, device: str | None = None) -> int:
    """Load trajectories and a tokenizer, train, and write the bundle to ``out``; returns 0."""
    from ..loading import load_trajectory
    from .train import train

    tokenizer = load_tokenizer(tokenizer_dir)
    trajs = [load_trajectory(path, top=top, selection=selection, stride=stride_frames) for path in trajectories]
    bundle = train(trajs, tokenizer, out, model_settings, train_settings, resume=resume, progress=progress,
                   device=device)
    final = bundle.metrics.get("final_eval", {})
    print(f"bundle: {out}")
    for key in ("eval_loss", "eval_next_frame_token_accuracy", "eval_next_frame_rmsd_A"):
        if key in final:
            print(f"{key}: {final[key]:.4g}")
    return 0


def sample_command(bundle_dir: str, out: str, *, settings: Any = None, seed_structures: str | None = None,
                   seed_top: str | None = None, resume: bool = False, progress: bool = True,
                   device: str | None = None, precision: str = "auto", processes: int | None = None) -> int:
    """Load a bundle, sample into ``out`` and print a summary; returns 0."""
    from .bundle import load_bundle
    from .sampler import Sampler

    bundle = load_bundle(bundle_dir, device=device)
    seed = None
    if seed_structures is not None:
        from ..loading import load_trajectory

        seed = load_trajectory(seed_structures, top=seed_top)
    with Sampler(bundle, precision=precision, processes=processes) as sampler:
        ensemble = sampler.sample(settings, seed_frames=seed, out=out, resume=resume, progress=progress)
    print(f"{ensemble.n_walkers} walker(s) x {ensemble.n_frames} frames -> {Path(out) / 'trajectory.xtc'}")
    print(f"mean log-likelihood per frame: {ensemble.log_likelihood.mean():.4g}")
    return 0


def export_command(bundle_dir: str, out: str, *, merged: bool = False) -> int:
    """Write a bundle's merged model as a plain Hugging Face checkpoint folder; returns 0."""
    from ..errors import ModelError
    from .bundle import export_merged

    if not merged:
        raise ModelError("mdllm export writes a merged checkpoint (LoRA folded into the weights); pass --merged")
    print(f"merged model -> {export_merged(bundle_dir, out)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import LoraSettings, ModelSettings, TrainSettings

    lora = LoraSettings(r=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout)
    model = ModelSettings(base_model=args.base_model, hidden_size=args.hidden_size, num_layers=args.layers,
                          num_heads=args.heads, num_kv_heads=args.kv_heads, intermediate_size=args.intermediate_size,
                          finetune=args.finetune, lora=lora, load_in_4bit=args.load_in_4bit,
                          frame_embeddings=not args.plain_mistral, previous_frame_embedding=not args.plain_mistral)
    settings = TrainSettings(window_frames=args.window, stride=args.stride, val_fraction=args.val_fraction,
                             loss_frames=args.loss_frames, max_steps=args.max_steps, batch_size=args.batch_size,
                             grad_accum=args.grad_accum, learning_rate=args.lr, eval_steps=args.eval_steps,
                             save_steps=args.save_steps, logging_steps=args.logging_steps, seed=args.seed,
                             precision=args.precision, context_noise_bins=args.context_noise_bins,
                             context_noise_fraction=args.context_noise_fraction,
                             ordinal_label_sigma=args.ordinal_label_sigma)
    return train_command(args.traj, args.tokenizer, args.out, top=args.top, selection=args.selection,
                         stride_frames=args.frame_stride, model_settings=model, train_settings=settings,
                         resume=args.resume, progress=not args.no_progress, device=args.device)


def _cmd_sample(args: argparse.Namespace) -> int:
    from .config import SamplingSettings

    settings = SamplingSettings(n_frames=args.n_frames, n_walkers=args.walkers, temperature=args.temperature,
                                top_k=args.top_k, top_p=args.top_p, context_frames=args.context_frames,
                                seed=args.seed, flush_every=args.flush_every, entropy_cap=args.entropy_cap)
    return sample_command(args.bundle, args.out, settings=settings, seed_structures=args.seed_structures,
                          seed_top=args.seed_top, resume=args.resume, progress=not args.no_progress,
                          device=args.device, precision=args.precision, processes=args.processes)


def add_lm_commands(subparsers: Any) -> None:
    """Register ``train``, ``sample`` and ``export`` on an ``argparse`` sub-parser collection."""
    from .config import LoraSettings, ModelSettings, SamplingSettings, TrainSettings
    from .precision import PRECISIONS

    m, t, lo, s = ModelSettings(), TrainSettings(), LoraSettings(), SamplingSettings()
    tr = subparsers.add_parser(
        "train", help="train the language model on tokenized trajectories",
        description="Fine-tune a causal language model to predict the next frame from a window of W frames "
                    "and write a model bundle (weights, tokenizer, codec, settings, metrics) to OUT. "
                    "Runs unchanged under torchrun / accelerate launch for several GPUs or processes, e.g. "
                    "torchrun --nproc_per_node 2 -m mdllm_kit.cli train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tr.add_argument("traj", nargs="+", help="training trajectories, in time order (xtc, dcd, h5, pdb, ...)")
    tr.add_argument("--top", default=None, help="topology for coordinate-only trajectory files")
    tr.add_argument("--selection", default="protein", help="mdtraj atom selection")
    tr.add_argument("--frame-stride", type=int, default=None, help="keep every N-th frame when loading")
    tr.add_argument("--tokenizer", required=True, help="folder of the fitted structure tokenizer")
    tr.add_argument("--out", required=True, help="output folder (the model bundle and checkpoints/)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT")
    tr.add_argument("--max-steps", type=int, default=t.max_steps, help="optimiser steps")
    tr.add_argument("--window", type=int, default=t.window_frames, help="context frames W (paper: 10)")
    tr.add_argument("--stride", type=int, default=t.stride, help="frames between window starts")
    tr.add_argument("--val-fraction", type=float, default=t.val_fraction, help="last fraction of each trajectory held out")
    tr.add_argument("--loss-frames", choices=("all", "last"), default=t.loss_frames, help="frames that carry the loss")
    tr.add_argument("--batch-size", type=int, default=t.batch_size, help="windows per device per step")
    tr.add_argument("--grad-accum", type=int, default=t.grad_accum, help="gradient accumulation steps")
    tr.add_argument("--lr", type=float, default=t.learning_rate, help="peak learning rate")
    tr.add_argument("--eval-steps", type=int, default=t.eval_steps, help="steps between evaluations")
    tr.add_argument("--save-steps", type=int, default=t.save_steps, help="steps between checkpoints")
    tr.add_argument("--logging-steps", type=int, default=t.logging_steps, help="steps between log lines")
    tr.add_argument("--seed", type=int, default=t.seed, help="random seed")
    tr.add_argument("--context-noise-bins", type=float, default=t.context_noise_bins,
                    help="noisy-context training: std (bins) of the rounded Gaussian moves of the context frames' "
                         "input tokens (labels stay clean; 0: off)")
    tr.add_argument("--context-noise-fraction", type=float, default=t.context_noise_fraction,
                    help="noisy-context training: probability that a context token is moved")
    tr.add_argument("--ordinal-label-sigma", type=float, default=t.ordinal_label_sigma,
                    help="ordinal soft targets: width (bins) of the Gaussian around the true bin that the training "
                         "loss targets, within the position's valid range (0: plain cross-entropy)")
    tr.add_argument("--base-model", default=None, help="local folder of a pretrained causal LM (LoRA fine-tuning)")
    tr.add_argument("--finetune", choices=("auto", "full", "lora"), default=m.finetune,
                    help="auto: full for the model built from config, LoRA for --base-model")
    tr.add_argument("--hidden-size", type=int, default=m.hidden_size, help="default model: hidden size")
    tr.add_argument("--layers", type=int, default=m.num_layers, help="default model: decoder layers")
    tr.add_argument("--heads", type=int, default=m.num_heads, help="default model: attention heads")
    tr.add_argument("--kv-heads", type=int, default=m.num_kv_heads, help="default model: key/value heads")
    tr.add_argument("--intermediate-size", type=int, default=m.intermediate_size, help="default model: MLP width")
    tr.add_argument("--plain-mistral", "--no-frame-embeddings", dest="plain_mistral", action="store_true",
                    help="no frame-position and previous-frame embeddings: a plain MistralForCausalLM, or the "
                         "--base-model as it is")
    tr.add_argument("--lora-rank", type=int, default=lo.r, help="LoRA rank")
    tr.add_argument("--lora-alpha", type=float, default=lo.alpha, help="LoRA alpha")
    tr.add_argument("--lora-dropout", type=float, default=lo.dropout, help="LoRA dropout")
    tr.add_argument("--load-in-4bit", action="store_true", help="4-bit base weights (bitsandbytes, GPU)")
    tr.add_argument("--device", choices=("cpu", "cuda"), default=None, help="force a device")
    tr.add_argument("--precision", choices=PRECISIONS, default=t.precision,
                    help="auto: bf16 mixed precision on a GPU with bf16 or a CPU with AMX / AVX-512 BF16, else fp32")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    sa = subparsers.add_parser(
        "sample", help="generate trajectories with a trained model bundle",
        description="Roll out new trajectories from a model bundle, streaming OUT/trajectory.xtc, "
                    "OUT/topology.pdb, OUT/tokens.npz and OUT/params.json; an interrupted run continues "
                    "with --resume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sa.add_argument("bundle", help="model bundle folder (the --out of mdllm train)")
    sa.add_argument("--out", required=True, help="output folder")
    sa.add_argument("--n-frames", type=int, default=s.n_frames, help="frames per walker")
    sa.add_argument("--walkers", type=int, default=s.n_walkers, help="walkers generated together")
    sa.add_argument("--seed", type=int, default=s.seed, help="random seed (same seed, same tokens)")
    sa.add_argument("--temperature", type=float, default=s.temperature, help="softmax temperature (0: greedy)")
    sa.add_argument("--top-k", type=int, default=s.top_k, help="top-k truncation (0: off)")
    sa.add_argument("--top-p", type=float, default=s.top_p, help="nucleus truncation (1: off)")
    sa.add_argument("--context-frames", type=int, default=None, help="context frames (default: training window)")
    sa.add_argument("--entropy-cap", type=entropy_cap_arg, default=s.entropy_cap, help=ENTROPY_CAP_HELP)
    sa.add_argument("--flush-every", type=int, default=s.flush_every, help="frames between writes to OUT")
    sa.add_argument("--seed-structures", default=None,
                    help="starting structures (default: the last window of the training data)")
    sa.add_argument("--seed-top", default=None, help="topology for --seed-structures")
    sa.add_argument("--resume", action="store_true", help="continue the run in OUT")
    sa.add_argument("--device", choices=("cpu", "cuda"), default=None, help="force a device")
    sa.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto: bf16 prefill and KV cache, fp32 logits, where the device has native bf16; else fp32")
    sa.add_argument("--processes", type=processes_arg, default=None, metavar="N|auto", help=PROCESSES_HELP)
    sa.add_argument("--no-progress", action="store_true", help="no progress bar")
    sa.set_defaults(func=_cmd_sample)

    ex = subparsers.add_parser(
        "export", help="write a bundle's model as a plain Hugging Face checkpoint",
        description="Write the model of a bundle to OUT as a Hugging Face checkpoint folder (save_pretrained, "
                    "safetensors) with LoRA merged and the structure-token rows included, plus mdllm_codec.json "
                    "(the token ids) and tokenizer/, for serving the model with other tools.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ex.add_argument("bundle", help="model bundle folder (the --out of mdllm train)")
    ex.add_argument("--merged", action="store_true", help="merge LoRA adapters into the weights (required)")
    ex.add_argument("--out", required=True, help="new output folder")
    ex.set_defaults(func=lambda a: export_command(a.bundle, a.out, merged=a.merged))
