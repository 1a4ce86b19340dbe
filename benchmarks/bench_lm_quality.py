"""Quality of the default language model trained on a CPU budget (AdK, closed basin).

::

    python benchmarks/bench_lm_quality.py --out bench_lm_quality.json

Trains ``mk.train`` with the default ``ModelSettings()`` / ``TrainSettings()``
(options override single fields, e.g. ``--steps 60 --window 2 --no-previous``;
the training recipe: ``--context-noise-bins``, ``--context-noise-fraction``,
``--ordinal-label-sigma``)
on the bundled ``closed_train`` run, tokenized with ``StructureTokenizer()``
fitted on it, then measures

* teacher-forced next-frame quality on held-out frames (the last
  ``val_fraction`` of the run, never in a training window): token accuracy
  and Calpha RMSD of the constrained arg-max prediction, next to the
  copy-previous-frame baseline on the same windows
  (:func:`mdllm_kit.lm.evaluate.next_frame_quality`);
* a rollout (``--walkers`` x ``--frames`` frames at temperature 1.0, top-k
  100, top-p 0.95, from the last training window): Calpha RMSD of every
  generated frame to the closed and open crystals
  (``mk.analysis.rmsd_to_references``), the fraction within 2 / 3 / 4 A of
  the closed crystal, the RMSD to the nearest frame of the training
  ensemble, by rollout step, and the fraction of Calpha-Calpha bonds within
  3.5-4.1 A, the share of frames valid by ``mk.validity_report`` (no
  Calpha break or clash) and the per-residue RMSF correlation with the
  training ensemble. The same numbers for the held-out true frames are the
  reference.

The teacher-forced RMSD is also split into local geometry and anchors
(:func:`decomposition`): frames whose local (angle, dihedral) tokens or whose
anchor (distance) tokens alone come from the model (or from the previous
frame), the rest being the truth. ``--keep DIR`` keeps the trained bundle;
``--bundle DIR --frames 0`` re-evaluates a kept bundle without training or
rollout. ``--no-frame-embeddings --ordinal-init 0 --window 4 --steps 120 --lr
2e-3`` reproduces the earlier default (plain Mistral, W = 4, 120 steps).
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
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from bench_lm import machine  # noqa: E402
from mdllm_kit.lm.cli import entropy_cap_arg  # noqa: E402

#: closed-crystal RMSD thresholds (Angstrom) whose fractions are reported
CLOSED_THRESHOLDS_A = (2.0, 3.0, 4.0)
#: training frames (evenly spaced) searched for each generated frame's nearest neighbour
ENSEMBLE_FRAMES = 480
DECODE_TIMING_FRAMES = 200  # model-sampled frames decoded again, timed, for the decode-time target


def ensemble_rmsd_A(frames, ensemble) -> np.ndarray:
    """Calpha RMSD (Angstrom) of each frame to its nearest frame of ``ensemble`` (after superposition)."""
    import mdtraj as md

    best = np.full(frames.n_frames, np.inf)
    for i in range(ensemble.n_frames):
        best = np.minimum(best, md.rmsd(frames, ensemble, frame=i) * 10.0)
    return best


def structure_stats(traj, refs, ensemble) -> dict:
    """RMSD to the crystals and to the training ensemble, bond validity (Angstrom)."""
    import mdllm_kit as mk
    from mdllm_kit.tokenizer.metrics import bond_ok_fraction

    rmsd = {k: v * 10.0 for k, v in mk.analysis.rmsd_to_references(traj, refs).items()}
    nearest = ensemble_rmsd_A(traj, ensemble)
    out = {"n_frames": int(traj.n_frames), "bonds_physical_fraction": float(bond_ok_fraction(traj.xyz)),
           "rmsd_to_training_ensemble_A": {"median": float(np.median(nearest)), "p90": float(np.percentile(nearest, 90))}}
    for name, values in rmsd.items():
        out[f"rmsd_to_{name}_A"] = {"min": float(values.min()), "median": float(np.median(values)),
                                    "p90": float(np.percentile(values, 90)), "max": float(values.max())}
    out["fraction_within_closed"] = {f"{t:g}A": float((rmsd["closed"] < t).mean()) for t in CLOSED_THRESHOLDS_A}
    valid = mk.validity_report(traj)
    out["validity"] = {k: float(valid[k]) for k in ("frames_without_ca_break", "frames_without_ca_clash",
                                                     "ca_valid_fraction")}
    rmsf = mk.analysis.rmsf_correlation(traj, ensemble)
    out["rmsf_pearson_r_vs_training"] = float(rmsf["pearson_r"])
    out["rmsf_A"] = {"mean_generated": rmsf["mean_rmsf_generated_A"], "mean_training": rmsf["mean_rmsf_reference_A"],
                     "generated": [round(10.0 * v, 3) for v in rmsf["rmsf_generated_nm"]],
                     "training": [round(10.0 * v, 3) for v in rmsf["rmsf_reference_nm"]]}
    return out, rmsd["closed"], nearest


def decomposition(bundle, val_tokens: np.ndarray, max_windows: int) -> dict:
    """Teacher-forced RMSD (A) of frames that mix predicted and true tokens: local geometry vs anchors.

    ``model_local_true_anchors``: the model's local (angle, dihedral) tokens with the true anchor
    (distance) tokens, and so on; ``copy_*`` uses the previous frame's tokens instead of the model's.
    """
    from mdllm_kit.analysis import rmsd_per_frame
    from mdllm_kit.lm.evaluate import predict_next_frames

    W = bundle.window_frames
    n = len(val_tokens) - W
    starts = np.unique(np.linspace(0, n - 1, min(max_windows, n)).round().astype(int))
    windows = np.stack([val_tokens[s: s + W + 1] for s in starts])
    truth, copy = windows[:, -1], windows[:, -2]
    pred = predict_next_frames(bundle, windows)
    anchors = np.asarray(bundle.tokenizer.position_kinds()) == "distance"
    true_xyz = bundle.tokenizer.decode(truth).xyz
    out = {}
    for name, source in (("model", pred), ("copy", copy)):
        for part, mask in (("local", ~anchors), ("anchors", anchors)):
            mixed = truth.copy()
            mixed[:, mask] = source[:, mask]
            key = f"{name}_{part}_true_{'anchors' if part == 'local' else 'local'}"
            out[key] = float(rmsd_per_frame(bundle.tokenizer.decode(mixed).xyz, true_xyz).mean())
    return out


def tiny_base(family: str, folder: Path, seed: int, hidden: int, layers: int, intermediate: int, heads: int) -> str:
    """Save a tiny randomly initialised ``family`` ("llama" or "qwen2") model to ``folder``; return the folder."""
    import transformers

    config_cls, model_cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
                             "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[family]
    torch.manual_seed(seed)
    model_cls(config_cls(vocab_size=256, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2, max_position_embeddings=8192)).save_pretrained(folder)
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="TrainSettings.max_steps")
    parser.add_argument("--window", type=int, default=None, help="TrainSettings.window_frames")
    parser.add_argument("--batch", type=int, default=None, help="TrainSettings.batch_size")
    parser.add_argument("--lr", type=float, default=None, help="TrainSettings.learning_rate")
    parser.add_argument("--loss-frames", default=None, choices=("all", "last"))
    parser.add_argument("--context-noise-bins", type=float, default=None, help="TrainSettings.context_noise_bins")
    parser.add_argument("--context-noise-fraction", type=float, default=None,
                        help="TrainSettings.context_noise_fraction")
    parser.add_argument("--ordinal-label-sigma", type=float, default=None, help="TrainSettings.ordinal_label_sigma")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--kv-heads", type=int, default=None, help="ModelSettings.num_kv_heads")
    parser.add_argument("--no-frame-embeddings", action="store_true", help="plain Mistral (the earlier default)")
    parser.add_argument("--no-previous", action="store_true", help="no previous-frame embedding")
    parser.add_argument("--tie-previous", type=int, choices=(0, 1), default=None,
                        help="ModelSettings.tie_previous_frame_embedding")
    parser.add_argument("--ordinal-init", type=int, choices=(0, 1), default=None,
                        help="ModelSettings.ordinal_embedding_init")
    parser.add_argument("--walkers", type=int, default=8)
    parser.add_argument("--entropy-cap", type=entropy_cap_arg, default=None,
                        help="SamplingSettings.entropy_cap of the rollout (default off, as in the recorded runs)")
    parser.add_argument("--frames", type=int, default=25, help="rollout frames per walker (0: no rollout)")
    parser.add_argument("--eval-windows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON")
    parser.add_argument("--keep", default=None, help="train into this folder and keep the bundle")
    parser.add_argument("--train-frames", type=int, default=None, help="use only the first N frames of the run")
    parser.add_argument("--base-model", default=None,
                        help="a local pretrained model folder (ModelSettings.base_model, LoRA), or tiny-llama / "
                             "tiny-qwen2: a tiny random model of that family written to a scratch folder")
    parser.add_argument("--bundle", default=None,
                        help="evaluate this bundle (trained by an earlier run with --keep) instead of training")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import mdllm_kit as mk
    from mdllm_kit.lm.config import ModelSettings, SamplingSettings, TrainSettings
    from mdllm_kit.lm.evaluate import next_frame_quality

    t_start = time.time()
    traj = mk.datasets.load_adk_cg("closed_train")
    if args.train_frames:
        traj = traj[: args.train_frames]
    refs = mk.datasets.adk_references()
    tok = mk.StructureTokenizer().fit(traj)
    tokens = tok.encode(traj)
    model_changes = {k: v for k, v in {"hidden_size": args.hidden, "num_layers": args.layers,
                                        "intermediate_size": args.intermediate, "num_heads": args.heads,
                                        "num_kv_heads": args.kv_heads}.items()
                     if v is not None}
    if args.tie_previous is not None:
        model_changes["tie_previous_frame_embedding"] = bool(args.tie_previous)
    if args.ordinal_init is not None:
        model_changes["ordinal_embedding_init"] = bool(args.ordinal_init)
    if args.no_frame_embeddings:
        model_changes.update(frame_embeddings=False, previous_frame_embedding=False)
    elif args.no_previous:
        model_changes["previous_frame_embedding"] = False
    scratch_base = None
    if args.base_model in ("tiny-llama", "tiny-qwen2"):
        scratch_base = tempfile.TemporaryDirectory()
        model_changes["base_model"] = tiny_base(args.base_model.split("-")[1], Path(scratch_base.name), args.seed,
                                                args.hidden or 64, args.layers or 2, args.intermediate or 128,
                                                args.heads or 4)
    elif args.base_model is not None:
        model_changes["base_model"] = args.base_model
    if "base_model" in model_changes:  # the shape comes from the base model
        for key in ("hidden_size", "num_layers", "intermediate_size", "num_heads", "num_kv_heads"):
            model_changes.pop(key, None)
    ms = ModelSettings().replace(**model_changes)
    train_changes = {k: v for k, v in {"max_steps": args.steps, "window_frames": args.window,
                                        "batch_size": args.batch, "learning_rate": args.lr,
                                        "loss_frames": args.loss_frames,
                                        "context_noise_bins": args.context_noise_bins,
                                        "context_noise_fraction": args.context_noise_fraction,
                                        "ordinal_label_sigma": args.ordinal_label_sigma}.items() if v is not None}
    ts = TrainSettings(seed=args.seed).replace(**train_changes)
    ts = ts.replace(eval_steps=ts.max_steps, save_steps=ts.max_steps, logging_steps=max(1, ts.max_steps // 10))
    result: dict = {"machine": machine(), "data": "adk_cg/closed_train", "model": ms.to_dict(),
                    "train_settings": ts.to_dict()}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.bundle or args.keep or scratch
        t0 = time.perf_counter()
        if args.bundle is None:
            mk.train(tokens, tok, tmp, ms, ts, progress=False, device="cpu")
        train_s = time.perf_counter() - t0
        bundle = mk.load_bundle(tmp, device="cpu", tokenizer=tok)
        m = bundle.metrics
        result["model"], result["train_settings"] = bundle.model_settings.to_dict(), bundle.train_settings.to_dict()
        result["train"] = {"seconds": train_s if args.bundle is None else m["train"].get("train_runtime"),
                           "tokens_per_s": m["train_tokens_per_s"],
                           "parameters": m["parameters"]["total"], "split": m["split"],
                           "final_eval": m["final_eval"],
                           "train_loss": [e["loss"] for e in m["log_history"] if "loss" in e]}
        print(json.dumps(result["train"]), flush=True)
    n_val = m["split"]["val_frames"]
    val_tokens = tokens[len(tokens) - n_val:]
    t0 = time.perf_counter()
    result["teacher_forced"] = next_frame_quality(bundle, val_tokens, max_windows=args.eval_windows)
    result["teacher_forced"]["seconds"] = time.perf_counter() - t0
    result["teacher_forced"]["decomposition_rmsd_A"] = decomposition(bundle, val_tokens, args.eval_windows)
    print(json.dumps(result["teacher_forced"]), flush=True)
    if args.frames == 0:
        return _finish(result, args, t_start)

    ensemble = traj[: len(tokens) - n_val][:: max(1, (len(tokens) - n_val) // ENSEMBLE_FRAMES)]
    settings = SamplingSettings(n_frames=args.frames, n_walkers=args.walkers, temperature=1.0, top_k=100, top_p=0.95,
                                seed=args.seed, entropy_cap=args.entropy_cap)
    t0 = time.perf_counter()
    ens = mk.Sampler(bundle).sample(settings)
    sample_s = time.perf_counter() - t0
    stats, closed_A, nearest_A = structure_stats(ens.trajectory, refs, ensemble)
    k = ens.n_walkers
    by_step = closed_A.reshape(ens.n_frames, k)  # frame-major
    stats["rmsd_to_closed_A_median_by_frame"] = [float(v) for v in np.median(by_step, axis=1)]
    stats["rmsd_to_training_ensemble_A_median_by_frame"] = [
        float(v) for v in np.median(nearest_A.reshape(ens.n_frames, k), axis=1)]
    stats["seconds"] = sample_s
    sample = ens.tokens.reshape(-1, ens.tokens.shape[-1])[:DECODE_TIMING_FRAMES]
    t0 = time.perf_counter()
    bundle.tokenizer.decode(sample, threads=1)
    stats["decode_ms_per_frame_1_thread"] = 1000.0 * (time.perf_counter() - t0) / len(sample)
    stats["settings"] = settings.to_dict()
    stats["mean_log_likelihood_per_frame"] = float(ens.log_likelihood.mean())
    result["rollout"] = stats
    held_out = traj[len(tokens) - n_val:]
    result["held_out_true_frames"] = structure_stats(held_out, refs, ensemble)[0]
    print(json.dumps(result["rollout"]), flush=True)
    return _finish(result, args, t_start)


def _finish(result: dict, args: argparse.Namespace, t_start: float) -> int:
    result["command"] = "python " + " ".join(sys.argv)
    result["date"] = time.strftime("%Y-%m-%d")
    result["wall_s"] = time.time() - t_start
    result["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=float)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
