"""Walker-parallel generation on a CPU: shards of the walkers in forked worker processes.

One sampling step of a small model on a CPU is launch- and latency-bound:
a second thread inside the step's tiny matrix products only adds
synchronisation, and Python threads share one interpreter lock. The walkers
of a frame are independent, so :class:`WalkerPool` splits them into
contiguous shards and generates them in parallel: the calling process takes
the first shard, ``processes - 1`` worker processes the others, each on one
torch thread.

The workers are forked from the calling process, so they hold the very
model (and sampler) object of the caller without loading anything -- a
model trained or changed in a notebook a moment ago works -- and are forked
again if the model's parameters have changed since. Forking is used on
Linux only (:func:`fork_available`). CUDA models are never split (a GPU
runs the whole batch at once, and CUDA does not survive a fork). A worker
ignores Ctrl-C (the caller handles it) and stops by itself within
:data:`PARENT_CHECK_SECONDS` when the caller is killed.

Every walker draws its tokens from its own random numbers (see
:func:`~mdllm_kit.lm.sampler.frame_uniforms`), so a walker's shard gives
exactly the frames those walkers get when generated alone. Against one
unsplit batch only the rounding of batched products of another size
differs: in fp32 this rarely changes a draw, in bf16 (the default on CPUs
with AMX) often enough that frames match only for the same number of
processes, which the sampler records.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import torch

from ..errors import SamplingError
from .model import parameters_key

__all__ = ["WalkerPool", "fork_available", "shard_bounds", "usable_cpus"]

logger = logging.getLogger(__name__)

#: Fewest walkers per process worth a process of its own when the split is automatic: a step's fixed cost
#: (operator launches, Python) dominates small batches, so on the project's 2-core machine two processes gained
#: 1.11-1.17x with one walker each, 1.07-1.26x with two, 1.26-1.39x with three and 1.40-1.52x with four to eight
#: (``BENCHMARKS.md``, "Both cores"). Two is the smallest split measured to gain in every run; with one walker
#: each the second core buys as little.
MIN_WALKERS_PER_PROCESS = 2

# The objects a forked worker runs: set in the parent just before the fork, read (inherited) in the child.
_FORK_TARGETS: dict[int, Callable[..., Any]] = {}
_WORKER_TARGET: list[Callable[..., Any]] = []


def fork_available() -> bool:
    """Whether worker processes can be forked here (the ``fork`` start method, i.e. Linux)."""
    # macOS lists fork too, but its system libraries are not fork-safe (and spawn is its default)
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def shard_bounds(n_walkers: int, processes: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` walker ranges, as equal as possible, one per process (none empty)."""
    n = max(1, min(int(processes), int(n_walkers)))
    edges = np.linspace(0, n_walkers, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


#: Seconds between a worker's checks that the process that forked it is still alive.
PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    """Stop this worker when its parent is gone (killed): it would otherwise wait for work forever."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(key: int, parent: int) -> None:
    torch.set_num_threads(1)  # one core per process; also keeps the child out of the parent's OpenMP pool
    # Ctrl-C (a notebook's interrupt reaches the whole process group) is the caller's to handle: a worker
    # finishes its shard and waits for the next one instead of dying and breaking the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_TARGET[:] = [_FORK_TARGETS[key]]
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="mdllm-parent-watch").start()


def _worker_run(*args: Any) -> Any:
    return _WORKER_TARGET[0](*args)


class WalkerPool:
    """Worker processes that generate shards of the walkers with a forked copy of a model.

    Parameters
    ----------
    target : callable
        ``target(*args)`` generates one shard; it runs in the calling
        process for the first shard and in the forked workers for the others
        (whatever it closes over is inherited at the fork).
    model : torch.nn.Module
        The model ``target`` uses; the workers are forked again when its
        parameters change.
    processes : int
        Processes in all, the caller included (>= 2).
    """

    def __init__(self, target: Callable[..., Any], model: Any, processes: int) -> None:
        if processes < 2:
            raise ValueError(f"a WalkerPool needs >= 2 processes, got {processes}")
        if not fork_available():
            raise SamplingError("sampling in several processes needs the 'fork' start method (Linux); "
                                "use processes=1")
        self.target, self.model, self.processes = target, model, int(processes)
        self._executor: ProcessPoolExecutor | None = None
        self._key: tuple | None = None
        self._finalizer: Any = None

    def _ensure(self) -> ProcessPoolExecutor:
        key = parameters_key(self.model)
        if self._executor is not None and key == self._key:
            return self._executor
        if self._executor is not None:
            logger.info("the model changed since the sampling workers started: starting them again")
            self.close()
        slot = id(self)
        _FORK_TARGETS[slot] = self.target
        executor = ProcessPoolExecutor(self.processes - 1, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_worker_init, initargs=(slot, os.getpid()))
        try:
            # fork every worker now, while the target is registered (a pool forks its workers on demand)
            for future in [executor.submit(os.getpid) for _ in range(self.processes - 1)]:
                future.result()
        except BaseException as error:
            executor.shutdown(wait=False, cancel_futures=True)
            if isinstance(error, BrokenProcessPool):
                raise SamplingError(f"could not start the sampling worker processes ({error}); use processes=1 "
                                    "(--processes 1)") from None
            raise
        finally:
            _FORK_TARGETS.pop(slot, None)
        self._executor, self._key = executor, key
        self._finalizer = weakref.finalize(self, executor.shutdown, wait=False, cancel_futures=True)
        logger.info("sampling in %d processes (this one and %d forked workers, one CPU thread each)",
                    self.processes, self.processes - 1)
        return executor

    def map(self, shards: list[tuple[Any, ...]]) -> list[Any]:
        """``[target(*shard) for shard in shards]``: the first here, the others in the workers, in parallel."""
        if len(shards) == 1:
            return [self.target(*shards[0])]
        executor = self._ensure()
        futures: list[Any] = []
        try:
            futures = [executor.submit(_worker_run, *args) for args in shards[1:]]
            first = self.target(*shards[0])
            return [first] + [f.result() for f in futures]
        except BrokenProcessPool as error:
            self.close()
            raise SamplingError(f"a sampling worker process stopped ({error}); sample again, or with processes=1 "
                                "(--processes 1) if it happens again") from None
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        """Stop the worker processes (started again on the next :meth:`map`)."""
        if self._finalizer is not None:
            self._finalizer()
        self._executor, self._key, self._finalizer = None, None, None
