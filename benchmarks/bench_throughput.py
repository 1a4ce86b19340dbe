"""Where the CPU time of training and sampling goes, fp32 against bf16, and the fraction of peak.

::

    taskset -c 1 python benchmarks/bench_throughput.py --threads 1 --out bench_throughput.json

Everything is measured in one run, fp32 and bf16 interleaved (so a change in
the machine's load hits both alike):

* ``peak``: matrix-product rate (GFLOP/s) of ``torch.mm`` in fp32 and bf16 at
  the shapes of the default model's training step (``4 x 1,675`` rows times
  hidden 128 / MLP 384 / vocabulary) and of a decode step (16 and 64 rows),
  and at ``n x n x n`` squares. The largest bf16 rate measured is the
  *peak* every "fraction of peak" divides by.
* ``step``: one optimiser step of the default model (``ModelSettings()``,
  batch 4 windows of W = 2 frames, AdamW as the Trainer uses it) under
  ``torch.profiler``, its self CPU time split by operator kind (matrix
  products, attention, elementwise work (norms, RoPE, SiLU, residuals),
  dtype casts, embeddings and the per-position frame lookups, the loss over
  the vocabulary, the optimiser, everything else), plus the wall time not
  spent inside any operator (Python and dispatch overhead). Then
  ``--step-reps`` steps of each precision, interleaved, for tokens/s.
* ``train``: ``mk.train`` on the bundled ``closed_train`` run (tokenizer
  fitted on it, the last 10 % held out) with ``precision="fp32"`` and
  ``"bf16"``, the same settings and seed otherwise: tokens/s and the
  validation loss and next-frame token accuracy after the same tokens.
* ``sample``: one decode step of :class:`~mdllm_kit.lm.sampler.Sampler`
  (lean cached decoder + constrained sampling) under the profiler, the
  time of one frame's prefill of the context, and
  generation frames/s at 16 and 64 walkers, fp32 against bf16, interleaved
  frame by frame; teacher-forced next-frame token accuracy of the trained
  model with fp32 and bf16 weights; a short rollout in each precision
  (validity of the tokens, mean log-likelihood per frame, Calpha RMSD to the
  closed crystal).

``--processes N`` compares walker-parallel sampling instead (sample part):
generation frames/s of fp32 in one process (the reference: the arithmetic
and layout of the time before issue #14), bf16 in one process and bf16 in
``N`` processes (:class:`~mdllm_kit.lm.walker_pool.WalkerPool`), interleaved
frame by frame, with and without the entropy cap (``--entropy-caps``).
``--threads`` applies to the one-process arms; each process of the split
arm runs one torch thread.

``--heads 4:1,2:1,1:1`` compares head layouts (query heads : key-value heads)
at the default hidden size instead of fp32 against bf16: the training step of
the first layout in fp32 and of every layout in bf16, interleaved; ``mk.train``
of each layout in bf16; generation frames/s of each layout's bundle in bf16,
interleaved.

FLOP counts: a linear layer ``x (M, K) @ W (K, N)`` is ``2 M K N`` forward
and twice that backward; causal attention ``4 T^2 d`` per head forward (half
of the ``T x T`` products) and ``2.5x`` that backward; the loss and the
elementwise work are not counted.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
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

PRECISIONS = ("fp32", "bf16")


# ---------------------------------------------------------------------------------------------- peak
def mm_rate(m: int, k: int, n: int, dtype: torch.dtype, min_seconds: float = 0.3) -> float:
    """GFLOP/s of ``(m, k) @ (k, n)`` in ``dtype`` (best of repeated timings)."""
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    reps, best = 1, float("inf")
    t_total = 0.0
    while t_total < min_seconds:
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        dt = (time.perf_counter() - t0) / reps
        best = min(best, dt)
        t_total += dt * reps
        reps = min(reps * 2, 1 << 14)
    return 2.0 * m * k * n / best / 1e9


def bench_peak(rows: int, hidden: int, mlp: int, vocab: int) -> dict:
    shapes = {
        "train q/o proj": (rows, hidden, hidden), "train gate/up proj": (rows, hidden, mlp),
        "train down proj": (rows, mlp, hidden), "train lm head": (rows, hidden, vocab),
        "decode 16 walkers gate/up": (16, hidden, mlp), "decode 64 walkers gate/up": (64, hidden, mlp),
        "decode 64 walkers lm head": (64, hidden, vocab),
        "square 256": (256, 256, 256), "square 1024": (1024, 1024, 1024), "square 2048": (2048, 2048, 2048),
    }
    out: dict = {}
    for name, (m, k, n) in shapes.items():
        row = {"shape": [m, k, n]}
        for _ in range(2):  # interleaved, best of 2
            for p in PRECISIONS:
                rate = mm_rate(m, k, n, torch.float32 if p == "fp32" else torch.bfloat16)
                row[f"{p}_gflops"] = max(row.get(f"{p}_gflops", 0.0), rate)
        out[name] = row
        print(f"  mm {name:28s} {m}x{k}x{n}: fp32 {row['fp32_gflops']:7.1f}  bf16 {row['bf16_gflops']:7.1f} GFLOP/s",
              flush=True)
    peak = {p: max(r[f"{p}_gflops"] for r in out.values()) for p in PRECISIONS}
    return {"shapes": out, "peak_gflops": peak}


# ---------------------------------------------------------------------------------------------- data / model
def adk_setup(n_frames: int | None = None):
    import mdllm_kit as mk
    from mdllm_kit.tokenizer import StructureTokenizer

    traj = mk.datasets.load_adk_cg("closed_train")
    if n_frames:
        traj = traj[:n_frames]
    tok = StructureTokenizer().fit(traj)
    return traj, tok, tok.encode(traj)


def training_flops_per_step(model, batch: int, seq: int) -> float:
    """Model FLOPs of one training step (forward + backward): linear layers and causal attention."""
    cfg = model.config
    linear = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            linear += mod.in_features * mod.out_features
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    attn = 4 * seq * seq * head_dim * cfg.num_attention_heads / 2 * cfg.num_hidden_layers  # causal half
    return batch * (6 * seq * linear + 3.5 * attn)


#: operator-name substrings -> kind, tried in order (self CPU time of each profiled operator)
OP_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention (SDPA)", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn")),
    ("loss over the vocabulary", ("log_softmax", "nll_loss", "cross_entropy")),
    ("optimizer (AdamW, grad clip)", ("adam", "_foreach", "norm", "clip")),
    ("embeddings / frame lookups", ("embedding", "index_select", "index_add", "scatter", "gather", "index")),
    ("dtype casts", ("aten::_to_copy", "aten::to", "aten::copy_", "aten::_copy_from")),
    ("sampling (top-k, top-p, multinomial)", ("topk", "sort", "multinomial", "cumsum", "softmax", "masked_fill")),
    ("elementwise (norms, RoPE, SiLU, residuals)", ("aten::mul", "aten::add", "aten::pow", "aten::mean", "rsqrt",
                                                     "silu", "aten::neg", "aten::cat", "aten::sub", "aten::div",
                                                     "aten::sum", "aten::where", "aten::fill_", "aten::zero_",
                                                     "aten::remainder", "aten::eq", "aten::clone", "aten::slice",
                                                     "threshold", "aten::sigmoid", "aten::exp")),
)


def op_kind(name: str) -> str:
    lower = name.lower()
    if name.startswith("aten::norm") or "linalg_vector_norm" in lower:
        return "optimizer (AdamW, grad clip)"
    for kind, keys in OP_KINDS:
        if any(key.lower() in lower for key in keys):
            if kind == "optimizer (AdamW, grad clip)" and "norm" in lower and "adam" not in lower and \
                    "foreach" not in lower:
                continue
            return kind
    return "other operators"


def profile_breakdown(fn, reps: int = 2) -> dict:
    """Self CPU time of ``fn()`` by operator kind (ms per call) and the wall time outside operators."""
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        wall = (time.perf_counter() - t0) / reps
    kinds: dict[str, float] = {}
    top: dict[str, float] = {}
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::") and not evt.key.startswith("mkldnn"):
            continue  # autograd nodes, record_function ranges: their operators are counted by name
        ms = evt.self_cpu_time_total / 1e3 / reps
        kinds[op_kind(evt.key)] = kinds.get(op_kind(evt.key), 0.0) + ms
        top[evt.key] = ms
    inside = sum(kinds.values())
    kinds["outside operators (Python, dispatch, autograd engine)"] = max(wall * 1e3 - inside, 0.0)
    # profiler overhead inflates the total: report fractions of the profiled wall time
    total = wall * 1e3
    return {"profiled_wall_ms": total,
            "ms": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
            "fraction": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top_operators_ms": dict(sorted(top.items(), key=lambda kv: -kv[1])[:15])}


# ---------------------------------------------------------------------------------------------- training step
def build_step(tokens: np.ndarray, tok, batch: int = 4, model_settings=None):
    from mdllm_kit.lm.codec import FrameCodec
    from mdllm_kit.lm.config import ModelSettings, TrainSettings
    from mdllm_kit.lm.model import prepare_model

    s = TrainSettings()
    codec = FrameCodec.for_tokenizer(tok)
    seq = codec.sequence_length(s.window_frames + 1)
    torch.manual_seed(0)
    model, codec = prepare_model(tok, model_settings or ModelSettings(), max_positions=seq)
    model.train()
    model.config.use_cache = False
    starts = np.linspace(0, len(tokens) - s.window_frames - 2, batch).astype(int)
    ids = torch.from_numpy(np.stack([codec.encode_frames(tokens[i: i + s.window_frames + 1]) for i in starts]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step(precision: str) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    return model, step, batch * seq, training_flops_per_step(model, batch, seq)


def layout_settings(name: str):
    """``ModelSettings()`` with the head layout ``"H:KV"`` (query heads : key-value heads), same hidden size."""
    from mdllm_kit.lm.config import ModelSettings

    heads, kv = (int(x) for x in name.split(":"))
    return ModelSettings(num_heads=heads, num_kv_heads=kv)


def layout_key(name: str, precision: str) -> str:
    """Result key and bundle folder of one layout's ``mk.train`` run, e.g. ``h4kv1_bf16``."""
    return "h{}kv{}_{}".format(*name.split(":"), precision)


def bench_step_layouts(tokens: np.ndarray, tok, reps: int, peak: dict, layouts: list[str]) -> dict:
    """Training steps of several head layouts (``--heads``), interleaved step by step.

    Arms: the first layout in fp32 (the reference, "today") and every layout
    in bf16; each bf16 arm is also profiled.
    """
    built = {name: build_step(tokens, tok, model_settings=layout_settings(name)) for name in layouts}
    arms = [(layouts[0], "fp32")] + [(name, "bf16") for name in layouts]
    out: dict = {"arms": [f"{n} {p}" for n, p in arms], "layouts": {}}
    for name in layouts:
        model, _, n_tokens, flops = built[name]
        out["layouts"][name] = {"tokens_per_step": n_tokens, "model_gflop_per_step": flops / 1e9,
                                "parameters": sum(p.numel() for p in model.parameters()),
                                "head_dim": model.config.hidden_size // model.config.num_attention_heads}
    for name in layouts:
        prof = profile_breakdown(lambda name=name: built[name][1]("bf16"))
        out["layouts"][name]["profile_bf16"] = prof
        print(f"  step profile {name} bf16: " + json.dumps({k: round(v, 1) for k, v in prof["ms"].items()}),
              flush=True)
    times: dict[tuple, list[float]] = {arm: [] for arm in arms}
    for _ in range(reps):
        for arm in arms:
            t0 = time.perf_counter()
            built[arm[0]][1](arm[1])
            times[arm].append(time.perf_counter() - t0)
    ref = float(np.median(times[arms[0]]))
    ref_bf16 = float(np.median(times[(layouts[0], "bf16")]))
    for name, p in arms:
        _, _, n_tokens, flops = built[name]
        sec = float(np.median(times[(name, p)]))
        out["layouts"][name][p] = {"step_s_median": sec, "step_s_all": times[(name, p)],
                                   "tokens_per_s": n_tokens / sec, "model_gflops": flops / sec / 1e9,
                                   "fraction_of_bf16_peak": flops / sec / 1e9 / peak["bf16"],
                                   "speedup_vs_first_fp32": ref / sec, "speedup_vs_first_bf16": ref_bf16 / sec,
                                   "step_s_min": min(times[(name, p)]),
                                   # ratio within each round of the interleaving, median over rounds (robust
                                   # to load that changes between rounds)
                                   "speedup_vs_first_bf16_round_median": float(np.median(
                                       np.array(times[(layouts[0], "bf16")]) / np.array(times[(name, p)])))}
        print(f"  step {name} {p}: " + json.dumps({k: v for k, v in out['layouts'][name][p].items()
                                                   if k != 'step_s_all'}), flush=True)
    return out


def bench_step(tokens: np.ndarray, tok, reps: int, peak: dict) -> dict:
    model, step, n_tokens, flops = build_step(tokens, tok)
    out: dict = {"tokens_per_step": n_tokens, "model_gflop_per_step": flops / 1e9,
                 "parameters": sum(p.numel() for p in model.parameters())}
    for p in PRECISIONS:
        out[f"profile_{p}"] = profile_breakdown(lambda p=p: step(p))
        print(f"  step profile {p}: " + json.dumps({k: round(v, 1) for k, v in out[f'profile_{p}']['ms'].items()}),
              flush=True)
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(reps):
        for p in PRECISIONS:
            t0 = time.perf_counter()
            step(p)
            times[p].append(time.perf_counter() - t0)
    for p in PRECISIONS:
        sec = float(np.median(times[p]))
        out[p] = {"step_s_median": sec, "tokens_per_s": n_tokens / sec, "model_gflops": flops / sec / 1e9,
                  "fraction_of_bf16_peak": flops / sec / 1e9 / peak["bf16"],
                  "fraction_of_fp32_peak": flops / sec / 1e9 / peak["fp32"]}
    out["bf16_speedup"] = out["fp32"]["step_s_median"] / out["bf16"]["step_s_median"]
    print("  step " + json.dumps({p: out[p] for p in PRECISIONS}), flush=True)
    return out


# ---------------------------------------------------------------------------------------------- training runs
def bench_train(traj, tok, tokens, steps: int, keep: Path | None, peak: dict,
                layouts: list[str] | None = None) -> tuple[dict, dict]:
    """``mk.train`` in bf16 and fp32 (keys and bundle folders ``bf16``, ``fp32``); with ``layouts``
    (``--heads``): each layout in bf16 (keys and folders ``h4kv1_bf16``, ...; the fp32 reference is the
    step part's)."""
    import mdllm_kit as mk
    from mdllm_kit.lm.config import TrainSettings

    out, bundles = {}, {}
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    if layouts:
        runs = [(layout_key(n, "bf16"), layout_settings(n), "bf16") for n in layouts]
    else:
        runs = [(p, None, p) for p in ("bf16", "fp32")]
    for p, model_settings, precision in runs:
        ts = TrainSettings(max_steps=steps, eval_steps=10 ** 6, save_steps=10 ** 6,  # final eval only
                           precision=precision)
        t0 = time.perf_counter()
        bundle = mk.train(tokens, tok, root / p, model_settings, settings=ts, progress=False, device="cpu")
        wall = time.perf_counter() - t0
        m = bundle.metrics
        final = m["final_eval"]
        sec = m["train"]["train_runtime"]
        flops_step = training_flops_per_step(bundle.model, ts.batch_size, m["tokens_per_window"])
        out[p] = {"steps": steps, "tokens": steps * ts.batch_size * m["tokens_per_window"],
                  "tokens_per_s": m["train_tokens_per_s"], "train_runtime_s": sec, "wall_s_incl_eval": wall,
                  "fraction_of_bf16_peak": flops_step * steps / sec / 1e9 / peak["bf16"],
                  "eval_loss": final.get("eval_loss"),
                  "eval_next_frame_token_accuracy": final.get("eval_next_frame_token_accuracy"),
                  "eval_next_frame_rmsd_A": final.get("eval_next_frame_rmsd_A"), "precision": m.get("precision"),
                  "loss_history": [(h["step"], h["loss"]) for h in m["log_history"] if "loss" in h]}
        print(f"  train {p}: " + json.dumps({k: v for k, v in out[p].items() if k != 'loss_history'}), flush=True)
        bundles[p] = mk.load_bundle(root / p, device="cpu")
    return out, bundles


# ---------------------------------------------------------------------------------------------- sampling
def bench_generation_arms(samplers: dict, tokens_val: np.ndarray, walkers: tuple[int, ...], frames: int,
                          peak: dict, entropy_cap: float | None | str = "default") -> dict:
    """Generation frames/s of several samplers (e.g. bundles of different head layouts), interleaved frame
    by frame at each walker count, from the same context; one decode step of each one-process sampler profiled.
    ``entropy_cap``: of the sampling settings ("default": ``SamplingSettings``'s)."""
    from mdllm_kit.lm.config import SamplingSettings

    out: dict = {"walkers": {}}
    for k in walkers:
        row: dict = {}
        hists = {}
        settings = SamplingSettings(n_walkers=k, seed=0)
        if entropy_cap != "default":
            settings = settings.replace(entropy_cap=entropy_cap)
        out["entropy_cap"] = settings.entropy_cap
        for name, smp in samplers.items():
            c, ctx = smp.codec, smp.bundle.window_frames
            hists[name] = np.broadcast_to(tokens_val[:ctx], (k, ctx, c.tokens_per_frame)).copy()
            smp.generate_frame(hists[name], settings, 0)  # warm-up, builds the decoder (and forks the workers)
        for name, smp in samplers.items():
            if smp.processes_for(k) > 1:
                continue
            row[f"profile_{name}"] = profile_decode_step(smp, hists[name], settings)
            print(f"  decode step profile {k} walkers {name}: prefill {row[f'profile_{name}']['prefill_ms']:.1f} "
                  "ms, step " + json.dumps({kk: round(v, 3) for kk, v in row[f'profile_{name}']['ms'].items()}),
                  flush=True)
        times: dict[str, list[float]] = {name: [] for name in samplers}
        for i in range(frames):
            for name, smp in samplers.items():
                t0 = time.perf_counter()
                frame, _ = smp.generate_frame(hists[name], settings, i + 1)
                times[name].append(time.perf_counter() - t0)
                smp.codec.check_tokens(frame)
                hists[name] = np.concatenate([hists[name], frame[:, None]], axis=1)[:, -smp.bundle.window_frames:]
        first = next(iter(samplers))
        for name, smp in samplers.items():
            c = smp.codec
            sec = float(np.sum(times[name]))
            row[name] = {"frames_per_s": k * frames / sec, "tokens_per_s": k * frames * c.tokens_per_frame / sec,
                         "ms_per_decode_step": sec / frames / c.tokens_per_frame * 1e3, "frame_s_all": times[name],
                         "precision": smp.precision, "processes": smp.processes_for(k)}
            # of the peak of the cores used: one core's peak (measured) times the processes (one core each)
            row[name]["fraction_of_bf16_peak"] = decode_flops(smp.bundle.model, k, smp.bundle.window_frames, c) \
                * row[name]["frames_per_s"] / k / 1e9 / (peak["bf16"] * smp.processes_for(k))
        for name in samplers:
            row[name]["speedup_vs_first"] = row[name]["frames_per_s"] / row[first]["frames_per_s"]
        out["walkers"][k] = row
        print(f"  sample {k} walkers: " + json.dumps({n: {kk: v for kk, v in row[n].items() if kk != "frame_s_all"}
                                                      for n in samplers}), flush=True)
    return out


def bench_sample(bundle, tokens_val: np.ndarray, walkers: tuple[int, ...], frames: int, peak: dict,
                 rollout_walkers: int, rollout_frames: int) -> dict:
    import mdllm_kit as mk
    from mdllm_kit.lm.config import SamplingSettings
    from mdllm_kit.lm.evaluate import next_frame_quality

    samplers = {p: mk.Sampler(bundle, precision=p, processes=1) for p in PRECISIONS}
    c = bundle.codec
    ctx = bundle.window_frames
    out: dict = {"walkers": {}}
    # one decode step under the profiler (16 and 64 walkers)
    for k in walkers:
        row: dict = {}
        hist = np.broadcast_to(tokens_val[:ctx], (k, ctx, c.tokens_per_frame)).copy()
        s = SamplingSettings(n_walkers=k, seed=0)
        for p in PRECISIONS:
            samplers[p].generate_frame(hist, s, 0)  # warm-up, builds the decoder
        for p in PRECISIONS:
            row[f"profile_{p}"] = profile_decode_step(samplers[p], hist, s)
            print(f"  decode step profile {k} walkers {p}: prefill {row[f'profile_{p}']['prefill_ms']:.1f} ms, step "
                  + json.dumps({kk: round(v, 3) for kk, v in row[f'profile_{p}']['ms'].items()}), flush=True)
        times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        hists = {p: hist.copy() for p in PRECISIONS}
        for i in range(frames):
            for p in PRECISIONS:
                t0 = time.perf_counter()
                frame, _ = samplers[p].generate_frame(hists[p], s, i + 1)
                times[p].append(time.perf_counter() - t0)
                c.check_tokens(frame)
                hists[p] = np.concatenate([hists[p], frame[:, None]], axis=1)[:, -ctx:]
        for p in PRECISIONS:
            sec = float(np.sum(times[p]))
            row[p] = {"frames_per_s": k * frames / sec, "tokens_per_s": k * frames * c.tokens_per_frame / sec,
                      "ms_per_decode_step": sec / frames / c.tokens_per_frame * 1e3}
            row[p]["fraction_of_bf16_peak"] = decode_flops(bundle.model, k, ctx, c) * row[p]["frames_per_s"] / k \
                / 1e9 / peak["bf16"]
        row["bf16_speedup"] = row["bf16"]["frames_per_s"] / row["fp32"]["frames_per_s"]
        out["walkers"][k] = row
        print(f"  sample {k} walkers: " + json.dumps({p: row[p] for p in PRECISIONS}), flush=True)
    # quality: teacher-forced next-frame token accuracy with fp32 and bf16 weights
    bf16_bundle = dataclasses.replace(bundle, model=copy.deepcopy(bundle.model).to(torch.bfloat16))
    for p, b in (("fp32", bundle), ("bf16", bf16_bundle)):
        q = next_frame_quality(b, tokens_val, max_windows=64)
        out[f"teacher_forced_{p}"] = {k: q[k] for k in ("token_accuracy", "copy_token_accuracy") if k in q} or q
    print("  teacher-forced " + json.dumps({p: out[f'teacher_forced_{p}'] for p in PRECISIONS}, default=str)[:600],
          flush=True)
    # rollouts in each precision, same seed
    refs = mk.datasets.adk_references()
    for p in PRECISIONS:
        ens = samplers[p].sample(n_walkers=rollout_walkers, n_frames=rollout_frames, seed=0)
        c.check_tokens(ens.tokens.reshape(-1, c.tokens_per_frame))
        rmsd = mk.analysis.rmsd_to_references(ens.trajectory, refs)["closed"] * 10.0
        out[f"rollout_{p}"] = {"frames": int(ens.trajectory.n_frames), "tokens_valid": True,
                               "mean_log_likelihood_per_frame": float(ens.log_likelihood.mean()),
                               "rmsd_to_closed_A_median": float(np.median(rmsd)),
                               "within_4A_of_closed": float((rmsd < 4.0).mean())}
        print(f"  rollout {p}: " + json.dumps(out[f'rollout_{p}']), flush=True)
    return out


def decode_flops(model, k: int, ctx: int, codec) -> float:
    """Model FLOPs of generating one frame for ``k`` walkers (prefill + decode steps, forward only)."""
    cfg = model.config
    linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    t_ctx = codec.sequence_length(ctx)
    L = codec.tokens_per_frame
    prefill = 2 * t_ctx * linear + 4 * t_ctx * t_ctx / 2 * head_dim * cfg.num_attention_heads * cfg.num_hidden_layers
    steps = L * 2 * linear + 4 * (t_ctx + L / 2) * head_dim * cfg.num_attention_heads * cfg.num_hidden_layers * L
    return k * (prefill + steps)


def profile_decode_step(sampler, hist: np.ndarray, settings) -> dict:
    """Profile of one cached decode step + constrained sampling of the next token (all walkers)."""
    from mdllm_kit.lm.sampler import sample_from_logits

    c = sampler.codec
    ids = sampler._context_ids(hist)
    decoder = sampler._decoder
    lo, hi = c.structure_offset, c.structure_offset + c.n_structure_tokens
    uniforms = torch.rand((ids.shape[0], c.tokens_per_frame), dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    prev = ids[:, -c.frame_length:-1]
    state = {"logits": decoder.forward(ids, reset=True), "j": 0}
    start_len = decoder.length

    def one() -> None:
        j = state["j"] % (c.tokens_per_frame - 1)
        if j == 0:
            decoder.length = start_len
        tok = sample_from_logits(state["logits"][:, lo:hi], sampler._mask[j], settings.temperature,
                                 settings.top_k, settings.top_p, None, settings.entropy_cap, uniform=uniforms[:, j])
        kwargs = {"previous_frame_ids": prev[:, j + 1: j + 2]} if sampler._previous_frame_input else {}
        state["logits"] = decoder.forward((tok + lo)[:, None], **kwargs)
        state["j"] += 1

    with torch.inference_mode():
        out = profile_breakdown(one, reps=200)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            decoder.forward(ids, reset=True)
            best = min(best, time.perf_counter() - t0)
    out["prefill_ms"] = best * 1e3  # one frame's prefill of the whole context, all walkers
    return out


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", default="peak,step,train,sample", help="comma-separated parts to run")
    parser.add_argument("--step-reps", type=int, default=6, help="interleaved training steps per precision")
    parser.add_argument("--train-steps", type=int, default=200, help="optimiser steps of each mk.train run")
    parser.add_argument("--sample-frames", type=int, default=3, help="timed frames per walker count and precision")
    parser.add_argument("--walkers", default="16,64")
    parser.add_argument("--rollout-walkers", type=int, default=8)
    parser.add_argument("--rollout-frames", type=int, default=10)
    parser.add_argument("--heads", default=None,
                        help="compare head layouts at the default hidden size, e.g. 4:1,2:1,1:1 (query heads : "
                             "key-value heads; the first is the reference): step = the first in fp32 and all in "
                             "bf16, interleaved; train = mk.train of each in bf16; sample "
                             "= generation frames/s of each layout's bf16-trained bundle, bf16 sampling, "
                             "interleaved (no rollouts: see bench_lm_quality.py --heads/--kv-heads)")
    parser.add_argument("--keep", default=None, help="keep the trained bundles here (DIR/fp32, DIR/bf16; with "
                                                     "--heads DIR/h4kv1_bf16, ...)")
    parser.add_argument("--bundles", default=None,
                        help="sample part only: reuse the bundles kept by an earlier --keep DIR run (no training); "
                             "with --processes also one bundle folder")
    parser.add_argument("--processes", type=int, default=None,
                        help="sample part: compare walker-parallel sampling instead: arms fp32 in one process "
                             "(the reference), bf16 in one process and bf16 in this many processes, interleaved, "
                             "for every --entropy-caps value")
    parser.add_argument("--entropy-caps", default="off,2.0", help="with --processes: entropy caps to run ('off': none)")
    parser.add_argument("--out", default=None, help="JSON results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("transformers", "mdllm_kit.tokenizer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    result: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "command": " ".join(sys.argv)}
    traj, tok, tokens = adk_setup()
    from mdllm_kit.lm.codec import FrameCodec
    from mdllm_kit.lm.config import ModelSettings, TrainSettings

    codec = FrameCodec.for_tokenizer(tok)
    ms = ModelSettings()
    rows = 4 * codec.sequence_length(TrainSettings().window_frames + 1)
    result["peak"] = bench_peak(rows, ms.hidden_size, ms.intermediate_size, codec.lm_vocab_size)
    peak = result["peak"]["peak_gflops"]
    print("peak", peak, flush=True)
    layouts = args.heads.split(",") if args.heads else None
    if "step" in parts:
        result["step"] = (bench_step_layouts(tokens, tok, args.step_reps, peak, layouts) if layouts
                          else bench_step(tokens, tok, args.step_reps, peak))
    n_val = int(round(len(tokens) * TrainSettings().val_fraction))
    if args.bundles:
        import mdllm_kit as mk

        names = [layout_key(n, "bf16") for n in layouts] if layouts else PRECISIONS
        if args.processes and (Path(args.bundles) / "bundle.json").is_file():  # one bundle (any precision)
            bundles = {"fp32": mk.load_bundle(args.bundles, device="cpu")}
        else:
            bundles = {p: mk.load_bundle(Path(args.bundles) / p, device="cpu") for p in names}
    elif "train" in parts or "sample" in parts:
        result["train"], bundles = bench_train(traj, tok, tokens, args.train_steps, args.keep, peak, layouts)
    if "sample" in parts and layouts:
        import mdllm_kit as mk

        walkers = tuple(int(w) for w in args.walkers.split(","))
        samplers = {n: mk.Sampler(bundles[layout_key(n, "bf16")], precision="bf16", processes=1) for n in layouts}
        result["sample"] = bench_generation_arms(samplers, tokens[len(tokens) - n_val:], walkers,
                                                 args.sample_frames, peak)
    elif "sample" in parts and args.processes:
        import mdllm_kit as mk

        walkers = tuple(int(w) for w in args.walkers.split(","))
        bundle = bundles["fp32"]
        samplers = {"fp32 x1": mk.Sampler(bundle, precision="fp32", processes=1),
                    "bf16 x1": mk.Sampler(bundle, precision="bf16", processes=1),
                    f"bf16 x{args.processes}": mk.Sampler(bundle, precision="bf16", processes=args.processes)}
        result["sample"] = {}
        for cap in args.entropy_caps.split(","):
            value = None if cap == "off" else float(cap)
            result["sample"][cap] = bench_generation_arms(samplers, tokens[len(tokens) - n_val:], walkers,
                                                          args.sample_frames, peak, entropy_cap=value)
    elif "sample" in parts:
        walkers = tuple(int(w) for w in args.walkers.split(","))
        result["sample"] = bench_sample(bundles["fp32"], tokens[len(tokens) - n_val:], walkers, args.sample_frames,
                                        peak, args.rollout_walkers, args.rollout_frames)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
