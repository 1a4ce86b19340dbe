"""Benchmarks of the language model (training and sampling throughput).

CPU (the tiny default model on AdK)::

    python benchmarks/bench_lm.py cpu --out bench_lm_cpu.json

* training tokens/s of ``mk.train`` (default ModelSettings/TrainSettings,
  no evaluation);
* sampling tokens/s and frames/s of ``mk.Sampler`` at 1 and 16 walkers
  (generation only; decoding to coordinates is the tokenizer's cost and is
  reported separately), against a naive baseline: HF ``generate`` for one
  walker at a time, re-encoding the whole context window for every frame.

GPU (a Mistral-7B-shaped model from config, random weights, bf16, SDPA)::

    python benchmarks/bench_lm.py gpu --out bench_lm_gpu.json

* LoRA (r=16, all projections) training at a 9000-token context with
  gradient checkpointing: tokens/s, peak memory, model FLOP utilisation;
* sampling tokens/s at 32 walkers against the memory-bandwidth limit of
  decoding (weights + KV cache read once per step).

``gpu --tiny`` runs the GPU code path at toy size (on CPU if no GPU) to
check it. Data: the bundled AdK ``closed_train`` run when present, else the
closed crystal structure with 0.03 nm Gaussian noise (throughput does not
depend on the coordinates). Tokenizer: ``mk.StructureTokenizer`` with its
default settings fitted on those frames.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# ---------------------------------------------------------------------------------------------- data
def adk_frames(n_frames: int, seed: int = 0) -> tuple[md.Trajectory, str]:
    import mdllm_kit as mk

    try:
        traj = mk.datasets.load_adk_cg("closed_train")
        return traj[:n_frames], "adk_cg/closed_train"
    except Exception:
        ref = mk.datasets.adk_references()["closed"]
        ca = ref.atom_slice(ref.topology.select("name CA"))
        rng = np.random.default_rng(seed)
        xyz = ca.xyz[0][None] + rng.normal(scale=0.03, size=(n_frames, ca.n_atoms, 3)).astype(np.float32)
        return md.Trajectory(xyz, ca.topology), "adk closed crystal structure (Calpha) + 0.03 nm noise"


def fitted_tokenizer(traj: md.Trajectory):
    from mdllm_kit.tokenizer import StructureTokenizer

    return StructureTokenizer().fit(traj)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "python": platform.python_version(), "torch": torch.__version__,
           "load_average_1_5_15min": os.getloadavg()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


# ---------------------------------------------------------------------------------------------- sampling
def time_sampler(sampler, settings, seed_tokens: np.ndarray, n_frames: int) -> dict:
    """Generation only (no decoding): frames/s and tokens/s of Sampler.generate_frame."""
    k = settings.n_walkers
    context = settings.context_frames or sampler.bundle.window_frames
    history = np.broadcast_to(seed_tokens[-context:], (k, *seed_tokens[-context:].shape)).copy()
    frame, _ = sampler.generate_frame(history, settings, 0)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_frames):
        frame, _ = sampler.generate_frame(history, settings, i + 1)
        history = np.concatenate([history, frame[:, None]], axis=1)[:, -context:]
    return _rates(k, n_frames, sampler.codec.tokens_per_frame, time.perf_counter() - t0, time.process_time() - c0)


def _rates(k: int, n_frames: int, L: int, seconds: float, cpu_seconds: float) -> dict:
    return {"walkers": k, "frames_per_walker": n_frames, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "frames_per_s": k * n_frames / seconds, "tokens_per_s": k * n_frames * L / seconds,
            "tokens_per_cpu_s": k * n_frames * L / cpu_seconds}


@torch.inference_mode()
def time_naive_generate(bundle, seed_tokens: np.ndarray, n_frames: int, n_walkers: int, settings) -> dict:
    """Baseline: HF generate, one walker after the other, the whole window re-encoded for every frame."""
    codec, model = bundle.codec, bundle.model
    context = settings.context_frames or bundle.window_frames
    L = codec.tokens_per_frame
    lo = codec.structure_offset

    def one_frame(history: np.ndarray, gen_seed: int) -> np.ndarray:
        ids = torch.from_numpy(codec.encode_frames(history))[None].to(bundle.device)
        torch.manual_seed(gen_seed)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=L + 1,
                             min_new_tokens=L + 1, do_sample=True, temperature=settings.temperature,
                             top_k=settings.top_k, top_p=settings.top_p, pad_token_id=codec.pad_id,
                             eos_token_id=None)
        new = out[0, ids.shape[1]: ids.shape[1] + L].cpu().numpy() - lo
        # unconstrained: clip invalid ids into range so the next context is encodable
        ranges = codec.ranges_array()
        return np.clip(new, ranges[:, 0], ranges[:, 1] - 1)

    history = seed_tokens[-context:].copy()
    one_frame(history, 0)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for w in range(n_walkers):
        history = seed_tokens[-context:].copy()
        for i in range(n_frames):
            frame = one_frame(history, 1000 * w + i)
            history = np.concatenate([history, frame[None]])[-context:]
    return _rates(n_walkers, n_frames, L, time.perf_counter() - t0, time.process_time() - c0)


# ---------------------------------------------------------------------------------------------- CPU
def bench_cpu(args: argparse.Namespace) -> dict:
    import mdllm_kit as mk
    from mdllm_kit.lm.config import ModelSettings, SamplingSettings, TrainSettings

    traj, source = adk_frames(args.frames)
    tok = fitted_tokenizer(traj)
    tokens = tok.encode(traj)
    ms = ModelSettings()
    ts = TrainSettings(max_steps=args.train_steps, val_fraction=0.0, save_steps=10 ** 6, logging_steps=10 ** 6)
    result: dict = {"machine": machine(), "data": source, "tokens_per_frame": tok.tokens_per_frame,
                    "structure_vocab": tok.vocab_size, "model": ms.to_dict(), "train_settings": ts.to_dict()}
    with tempfile.TemporaryDirectory() as tmp:
        c0 = time.process_time()
        bundle = mk.train(tokens, tok, tmp, ms, ts, progress=False, device="cpu")
        cpu_s = time.process_time() - c0
        m = bundle.metrics
        n_tokens = ts.max_steps * ts.batch_size * m["tokens_per_window"]
        result["train"] = {"steps": ts.max_steps, "tokens_per_window": m["tokens_per_window"],
                           "parameters": m["parameters"], "tokens_per_s": m["train_tokens_per_s"],
                           "train_runtime_s": m["train"].get("train_runtime"),
                           "tokens_per_cpu_s_incl_setup": n_tokens / cpu_s}
        print(json.dumps(result["train"], indent=1), flush=True)
        bundle = mk.load_bundle(tmp, device="cpu")
    sampler = mk.Sampler(bundle, processes=1)  # one process: the CPU seconds below are this process's
    seed_tokens = bundle.seed_tokens
    result["sample"] = {}
    for k in (1, 16):
        s = SamplingSettings(n_walkers=k, seed=0)
        result["sample"][f"walkers_{k}"] = time_sampler(sampler, s, seed_tokens, args.sample_frames)
        print(k, json.dumps(result["sample"][f"walkers_{k}"]), flush=True)
    base = time_naive_generate(bundle, seed_tokens, args.sample_frames, 1, SamplingSettings())
    result["sample"]["naive_generate_1_walker_at_a_time"] = base
    print("naive", json.dumps(base), flush=True)
    for k in (1, 16):
        for unit in ("tokens_per_s", "tokens_per_cpu_s"):
            result["sample"][f"speedup_walkers_{k}_vs_naive_{unit}"] = (
                result["sample"][f"walkers_{k}"][unit] / base[unit])
    t0, c0 = time.perf_counter(), time.process_time()
    tok.decode(tokens[:16])
    result["tokenizer_decode_frames_per_s"] = 16 / (time.perf_counter() - t0)
    result["tokenizer_decode_frames_per_cpu_s"] = 16 / (time.process_time() - c0)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    return result


# ---------------------------------------------------------------------------------------------- GPU
#: dense bf16 peak (FLOP/s) and HBM bandwidth (byte/s) by device-name substring
GPU_PEAKS = {"H200": (989e12, 4.8e12), "H100 PCIe": (756e12, 2.0e12), "H100 NVL": (835e12, 3.9e12),
             "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12)}


def gpu_peaks(name: str) -> tuple[float, float]:
    for key, value in GPU_PEAKS.items():
        if key in name:
            return value
    raise SystemExit(f"unknown GPU {name!r}: add its bf16 peak and memory bandwidth to GPU_PEAKS")


def bench_gpu(args: argparse.Namespace) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    from mdllm_kit.lm.bundle import ModelBundle
    from mdllm_kit.lm.codec import FrameCodec
    from mdllm_kit.lm.config import ModelSettings, SamplingSettings, TrainSettings
    from mdllm_kit.lm.sampler import Sampler

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    traj, source = adk_frames(40)
    tok = fitted_tokenizer(traj)
    tokens = tok.encode(traj)
    if args.tiny:  # check the code path at toy size
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2)
        context, walkers, steps, frames = 1024, 4, 2, 1
    else:  # Mistral-7B: MistralConfig() defaults (4096 hidden, 14336 MLP, 32 layers, 32 heads, 8 KV heads)
        shape = {}
        context, walkers, steps, frames = args.context, args.walkers, args.train_steps, args.sample_frames
    base_vocab = 32000
    codec = FrameCodec.for_tokenizer(tok, base_vocab_size=base_vocab, bos_id=1)
    config = MistralConfig(vocab_size=codec.lm_vocab_size, sliding_window=None, max_position_embeddings=32768,
                           **shape)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = MistralForCausalLM(config).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    result: dict = {"machine": machine(), "data": source, "tiny": args.tiny, "context_tokens": context,
                    "parameters": n_params, "dtype": str(dtype), "config": {k: getattr(config, k) for k in (
                        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "vocab_size")}}

    # ---- LoRA training at a long context
    ids = torch.from_numpy(codec.encode_frames(np.resize(tokens, (context // codec.frame_length + 1,
                                                                   codec.tokens_per_frame))))[:context][None].to(device)
    lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                            "up_proj", "down_proj"],
                                            trainable_token_indices=codec.new_token_ids()))
    lora.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora.config.use_cache = False
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        loss = lora(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    L, d = config.num_hidden_layers, config.hidden_size
    emb = config.vocab_size * d  # the input embedding is a lookup, not a matmul
    # model FLOPs per token: forward 2N, backward activation gradients 2N (frozen base: no weight gradients),
    # causal attention 2*T*d per layer forward, x3 with its backward; recomputation is not counted.
    flops_token = 4 * (n_params - emb) + 6 * L * context * d
    peak_flops, bandwidth = gpu_peaks(torch.cuda.get_device_name(0)) if cuda else (float("nan"), float("nan"))
    result["train_lora"] = {"seconds_per_step": seconds, "tokens_per_s": context / seconds,
                            "peak_memory_GiB": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
                            "model_flops_per_token": flops_token,
                            "mfu": flops_token * context / seconds / peak_flops}
    print(json.dumps(result["train_lora"]), flush=True)
    del opt
    model = lora.merge_and_unload().eval()
    model.config.use_cache = True
    if cuda:
        torch.cuda.empty_cache()

    # ---- sampling with 32 walkers
    window = max(1, min(10, context // codec.frame_length - 1))
    bundle = ModelBundle(model, tok, codec, ModelSettings(), TrainSettings(window_frames=window))
    sampler = Sampler(bundle, processes=1)
    res = time_sampler(sampler, SamplingSettings(n_walkers=walkers), tokens[-window:], frames)
    # bandwidth bound of one decode step: all weights once + the KV cache of every walker (mean length)
    kv_heads, head_dim = config.num_key_value_heads, d // config.num_attention_heads
    mean_ctx = codec.sequence_length(window) + codec.tokens_per_frame / 2
    bytes_step = (n_params - emb) * 2 + 2 * L * kv_heads * head_dim * 2 * mean_ctx * walkers
    bound_tokens_per_s = walkers / (bytes_step / bandwidth)
    res.update({"context_frames": window, "bytes_per_decode_step": bytes_step,
                "bandwidth_bound_tokens_per_s": bound_tokens_per_s,
                "fraction_of_bandwidth_bound": res["tokens_per_s"] / bound_tokens_per_s})
    result["sample"] = res
    print(json.dumps(res), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    cpu = sub.add_parser("cpu", help="tiny default model on CPU")
    cpu.add_argument("--frames", type=int, default=200, help="AdK frames to train on")
    cpu.add_argument("--train-steps", type=int, default=10)
    cpu.add_argument("--sample-frames", type=int, default=3, help="timed frames per walker")
    cpu.add_argument("--threads", type=int, default=None, help="torch threads")
    cpu.add_argument("--out", default=None, help="write the results as JSON")
    gpu = sub.add_parser("gpu", help="Mistral-7B-shaped model on a GPU")
    gpu.add_argument("--context", type=int, default=9000, help="training context (tokens)")
    gpu.add_argument("--walkers", type=int, default=32)
    gpu.add_argument("--train-steps", type=int, default=5)
    gpu.add_argument("--sample-frames", type=int, default=2)
    gpu.add_argument("--tiny", action="store_true", help="toy-sized model: check the code path")
    gpu.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    t0 = time.time()
    result = bench_cpu(args) if args.mode == "cpu" else bench_gpu(args)
    result["command"] = "python " + " ".join(sys.argv)
    result["date"] = time.strftime("%Y-%m-%d")
    result["wall_s"] = time.time() - t0
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
