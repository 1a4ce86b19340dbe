"""Generation rate of the lean decoder (``mdllm_kit/lm/fastdecode.py``) against an earlier version of it.

::

    taskset -c 0 python benchmarks/bench_decode_step.py --bundle BUNDLE --ref main --walkers 16,64 --frames 4

Two :class:`~mdllm_kit.lm.sampler.Sampler` objects on the same bundle and
precision: one with the working tree's ``StaticDecoder``, one with the
``StaticDecoder`` of ``fastdecode.py`` at git revision ``--ref`` (loaded from
``git show``). Frames are generated interleaved (same context, same seed),
timed (generation only), and the sampled tokens of the two must be identical
frame for frame (the run fails otherwise). Also times single decode steps
(``StaticDecoder.forward`` of one token) interleaved.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
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


def reference_decoder_class(ref: str):
    """``StaticDecoder`` of ``mdllm_kit/lm/fastdecode.py`` at git revision ``ref``."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{ref}:mdllm_kit/lm/fastdecode.py"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="fastdecode_ref_")) / "fastdecode_ref.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("mdllm_kit.lm._fastdecode_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StaticDecoder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--ref", default="main", help="git revision of the reference fastdecode.py")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--walkers", default="16,64")
    parser.add_argument("--frames", type=int, default=4, help="timed frames per walker count and arm")
    parser.add_argument("--steps", type=int, default=300, help="timed single decode steps per arm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import mdllm_kit as mk
    from mdllm_kit.lm import sampler as sampler_module
    from mdllm_kit.lm.config import SamplingSettings, TrainSettings

    bundle = mk.load_bundle(args.bundle, device="cpu")
    Ref = reference_decoder_class(args.ref)
    # one process each: the decoders under comparison run the whole batch (no walker split)
    new = mk.Sampler(bundle, precision=args.precision, processes=1)
    old = mk.Sampler(bundle, precision=args.precision, processes=1)
    arms = {"reference": old, "new": new}

    def ref_static_decoder(batch, max_len, self=old):
        saved = sampler_module.StaticDecoder
        sampler_module.StaticDecoder = Ref  # Sampler._static_decoder builds the reference class
        try:
            return mk.Sampler._static_decoder(self, batch, max_len)
        finally:
            sampler_module.StaticDecoder = saved

    old._static_decoder = ref_static_decoder
    traj = mk.datasets.load_adk_cg("closed_train")
    tokens = bundle.tokenizer.encode(traj)
    n_val = int(round(len(tokens) * TrainSettings().val_fraction))
    val = tokens[len(tokens) - n_val:]
    ctx = bundle.window_frames
    c = bundle.codec
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join(sys.argv), "walkers": {}}
    for k in (int(w) for w in args.walkers.split(",")):
        settings = SamplingSettings(n_walkers=k, seed=0)
        hist = {a: np.broadcast_to(val[:ctx], (k, ctx, c.tokens_per_frame)).copy() for a in arms}
        for a, smp in arms.items():
            smp.generate_frame(hist[a], settings, 0)  # warm-up, builds the decoder
        assert type(old._decoder) is Ref and type(new._decoder) is not Ref
        # single decode steps, interleaved in blocks of 10
        ids = old._context_ids(hist["new"])
        step_times = {a: [] for a in arms}
        with torch.inference_mode():
            for a, smp in arms.items():
                smp._decoder.forward(ids, reset=True)
            tok = torch.full((k, 1), c.structure_offset, dtype=torch.long)
            prev = ids[:, -c.frame_length:-1][:, :1]
            for _ in range(args.steps // 10):
                for a, smp in arms.items():
                    dec = smp._decoder
                    if dec.length + 10 > dec.max_len:
                        dec.forward(ids, reset=True)
                    t0 = time.perf_counter()
                    for _ in range(10):
                        dec.forward(tok, previous_frame_ids=prev)
                    step_times[a].append((time.perf_counter() - t0) / 10)
        times = {a: [] for a in arms}
        identical = True
        for i in range(args.frames):
            frames = {}
            for a, smp in arms.items():
                t0 = time.perf_counter()
                frames[a], _ = smp.generate_frame(hist[a], settings, i + 1)
                times[a].append(time.perf_counter() - t0)
                hist[a] = np.concatenate([hist[a], frames[a][:, None]], axis=1)[:, -ctx:]
            identical &= bool(np.array_equal(frames["reference"], frames["new"]))
        row = {"tokens_identical": identical}
        for a in arms:
            row[a] = {"frames_per_s": k * args.frames / sum(times[a]),
                      "decode_step_ms_median": float(np.median(step_times[a])) * 1e3,
                      "frame_s_all": times[a]}
        row["speedup_frames"] = row["new"]["frames_per_s"] / row["reference"]["frames_per_s"]
        row["speedup_step"] = row["reference"]["decode_step_ms_median"] / row["new"]["decode_step_ms_median"]
        result["walkers"][k] = row
        print(f"{k} walkers: " + json.dumps({kk: ({x: y for x, y in v.items() if x != 'frame_s_all'}
                                                  if isinstance(v, dict) else v) for kk, v in row.items()}),
              flush=True)
        if not identical:
            print("TOKENS DIFFER between the reference and the new decoder", flush=True)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0 if all(r["tokens_identical"] for r in result["walkers"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
