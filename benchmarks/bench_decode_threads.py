"""Structure decoding time per frame against torch's thread count (the reason for ``threads.DECODE_THREADS``).

::

    python benchmarks/bench_decode_threads.py --out bench_decode_threads.json

Fits ``mk.StructureTokenizer()`` on the bundled ``closed_train`` run, takes
``--frames`` evenly spaced frames of ``equilibrium`` (both states), moves
every angle and dihedral token as a sampler would
(``StructureTokenizer.jitter``, ``--bins`` codes) and decodes them with
``decode(threads=n)`` for each ``n`` in ``--threads`` (``0``: torch's own
setting, here ``torch.set_num_threads(2)``), best of ``--repeats``. The
machine's load average is recorded: the point of the default is what a
second thread costs when the other core is busy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_lm import machine  # noqa: E402

import mdllm_kit as mk  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--bins", type=float, default=4.0)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts for decode")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="bench_decode_threads.json")
    args = ap.parse_args(argv)
    tok = mk.StructureTokenizer().fit(mk.datasets.load_adk_cg("closed_train"))
    truth = mk.datasets.load_adk_cg("equilibrium")
    frames = truth[np.linspace(0, truth.n_frames - 1, args.frames).astype(int)]
    tokens = tok.jitter(tok.encode(frames), args.bins, seed=0)
    results = {}
    for n in (int(v) for v in args.threads.split(",")):
        torch.set_num_threads(max(n, 1))
        best = np.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            tok.decode(tokens, threads=n)
            best = min(best, time.perf_counter() - t0)
        results[str(n)] = round(1000 * best / len(tokens), 2)
        print(f"{n} torch thread(s): {results[str(n)]} ms per frame", flush=True)
    out = {"benchmark": "decode_threads", "command": "python benchmarks/bench_decode_threads.py "
           + " ".join(sys.argv[1:] if argv is None else argv), "date": time.strftime("%Y-%m-%d %H:%M"),
           "machine": machine(), "frames": len(tokens), "bins": args.bins, "ms_per_frame_by_threads": results,
           "load_average_after": os.getloadavg()}
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
