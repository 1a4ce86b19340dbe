"""What the SamplingExplorer adds per generated frame on AdK, apart from sampling itself.

Usage::

    python benchmarks/bench_viz.py [--walkers 4] [--frames 50] [--json out.json]

The explorer's per-frame callback (``SamplingExplorer._on_frame``: decode the
walkers' tokens with the real ``StructureTokenizer``, superpose, project with
the PCA of the training frames, append to the plotly ``FigureWidget`` and to
the nglview frame store, move the view and the progress bar) is fed the real
tokens of consecutive ``closed_train`` frames, ``walkers`` per step, exactly
as ``Sampler.sample`` passes them. No model is run: the numbers are the UI's
own cost, to compare with the sampler's frames per second in BENCHMARKS.md.
The explorer is built on a minimal stand-in for the bundle that holds only
what the callback reads (tokenizer, codec, seed tokens).

Also times the figure builders on the whole ``closed_train`` run.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import types

import numpy as np

import mdllm_kit as mk
from mdllm_kit.lm.codec import FrameCodec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walkers", type=int, default=4)
    parser.add_argument("--frames", type=int, default=50, help="frames per walker fed to the callback")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    train = mk.datasets.load_adk_cg("closed_train")
    refs = mk.datasets.adk_references()
    tok = mk.StructureTokenizer().fit(train)
    n = args.walkers * args.frames
    tokens = tok.encode(train[:n]).reshape(args.frames, args.walkers, -1)
    bundle = types.SimpleNamespace(tokenizer=tok, codec=FrameCodec.for_tokenizer(tok), seed_tokens=tokens[0])

    t0 = time.perf_counter()
    explorer = mk.viz.SamplingExplorer(bundle, training=train, references=refs, sampler=object())
    build_s = time.perf_counter() - t0
    explorer._reset(args.walkers)
    per_frame = []
    for i in range(args.frames):
        t = time.perf_counter()
        explorer._on_frame(i, tokens[i])
        per_frame.append(time.perf_counter() - t)
    per_frame = np.array(per_frame)
    assert sum(len(t.x) for t in explorer._generated_traces()) == n

    xy = explorer.projection.transform(train)
    timings = {}
    for name, build in [
        ("state_map", lambda: mk.viz.state_map(xy, xy[:n], {"closed": (0, 0)}, walker=np.arange(n) % args.walkers,
                                              unit="nm")),
        ("show_ensemble", lambda: mk.viz.show_ensemble(train[:n])),
        ("show_overlay", lambda: mk.viz.show_overlay(train[0], refs["open"])),
    ]:
        t = time.perf_counter()
        build()
        timings[name] = time.perf_counter() - t

    result = {
        "walkers": args.walkers, "frames": args.frames, "n_training_frames": train.n_frames,
        "explorer_build_s": build_s,
        "callback_ms_per_step": {"median": 1e3 * float(np.median(per_frame)),
                                 "p95": 1e3 * float(np.percentile(per_frame, 95)),
                                 "last": 1e3 * float(per_frame[-1])},
        "builders_s": timings, "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        from mdllm_kit.atomic import atomic_write_json

        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
