"""Machine-readable output that stays valid whatever native code prints.

Native libraries write to file descriptor 1 from C, past Python's
``sys.stdout``: mdtraj's molfile plugins, for one, print lines such as
``dcdplugin) Warning: DCD header claims 500 frames, ...`` when they read a
CHARMM/NAMD DCD file. A command whose standard output is parsed (``--json``)
therefore runs inside :func:`stdout_to_stderr`, which points file descriptor
1 at file descriptor 2 for the whole computation, and prints its result with
:func:`print_json`, which writes to the real standard output. The ``mdllm``
entry point (:func:`mdllm_kit.cli.main`) does this for every command that has
a ``--json`` flag.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["print_json", "stdout_to_stderr"]

logger = logging.getLogger(__name__)

#: Duplicate of the real file descriptor 1 while :func:`stdout_to_stderr` is active (innermost block).
_real_stdout: list[int] = []


def _flush_c_stdio() -> None:
    """Flush the C library's ``stdout`` buffer (a pipe makes it fully buffered: it would leak out later)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to talk to (e.g. Windows): nothing buffered
        pass


def _flush_python() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed stream
            pass


def _uses_fd1(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() == 1
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send everything written to file descriptor 1 inside the block to file descriptor 2.

    Python's ``print`` (when ``sys.stdout`` is file descriptor 1), C's
    ``printf`` and ``write(1, ...)`` all end up on standard error; on exit
    every buffer is flushed and file descriptor 1 is restored. Use
    :func:`print_json` inside or after the block for the output that must
    stay on standard output.

    Parameters
    ----------
    enabled : bool
        ``False`` makes the block a no-op (for commands run without ``--json``).
    """
    if not enabled:
        yield
        return
    _flush_python()
    _flush_c_stdio()
    try:
        saved = os.dup(1)
    except OSError:  # file descriptor 1 is closed: nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        yield
        return
    _real_stdout.append(saved)
    try:
        yield
    finally:
        _flush_python()
        _flush_c_stdio()
        os.dup2(saved, 1)
        _real_stdout.remove(saved)
        os.close(saved)


def print_json(obj: Any, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Print ``obj`` as strict JSON (no NaN or infinity) on the real standard output.

    Inside :func:`stdout_to_stderr` the text goes to the saved file
    descriptor 1 (when ``sys.stdout`` writes to file descriptor 1; a
    ``sys.stdout`` replaced by the caller, e.g. pytest's capture, receives it
    directly).

    Raises
    ------
    ValueError
        ``obj`` holds a non-finite float (not valid JSON).
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    if _real_stdout and _uses_fd1(sys.stdout):
        sys.stdout.flush()
        data = text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        fd = _real_stdout[-1]
        while data:
            data = data[os.write(fd, data):]
        return
    sys.stdout.write(text)
    sys.stdout.flush()
