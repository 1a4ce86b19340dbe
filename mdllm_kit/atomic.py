"""Atomic file writes: a reader never sees a half-written file.

Everything mdllm-kit writes (checkpoints, reports, metrics, sampled frames)
goes through these helpers: data are written to a temporary file in the same
folder, flushed to disk, then moved over the destination with
:func:`os.replace`, which is atomic on POSIX and Windows.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "remove_stale_temporaries"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; move it over ``dest`` on success.

    Use it for libraries that insist on writing a file by name (mdtraj,
    safetensors)::

        with atomic_path("out/topology.pdb") as tmp:
            traj.save_pdb(str(tmp))

    Parameters
    ----------
    dest : path-like
        Final destination. Its folder must exist.
    suffix : str, optional
        Suffix of the temporary file (defaults to that of ``dest``, so that
        writers which pick a format from the extension still work).

    Notes
    -----
    If the block raises, the temporary file is removed and ``dest`` is left
    as it was.
    """
    dest = Path(dest)
    suffix = dest.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``dest`` atomically and return the path."""
    return atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``dest`` atomically and return the path.

    NaN and infinity are refused (they are not valid JSON).
    """
    return atomic_write_text(dest, json.dumps(obj, indent=indent, sort_keys=True, allow_nan=False) + "\n")


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``directory`` when its process was killed.

    A killed process cannot clean up: its ``.NAME.XXXX.tmp...`` files stay,
    hidden and never complete. Call this only on a folder no other process is
    writing to (e.g. when resuming the run that owns it).

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    folder = Path(directory)
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp*"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
