"""CPU thread count of torch for a block of code (one owner of the rule)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["DECODE_THREADS", "torch_threads"]

#: torch threads of the structure decoder on a CPU. Its matrices are tiny (one frame's residues), so a second
#: thread only adds synchronisation: measured 25 ms per 214-residue frame on one thread against 510 ms on two,
#: on the project's 2-core machine with the other core busy (BENCHMARKS.md, "Decoder threads").
DECODE_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count (``None``: unchanged)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
