"""Exceptions raised by mdllm-kit.

Every error message names the problem and the fix. All exceptions derive from
:class:`MdllmError`, which is a :class:`ValueError`, so callers that already
catch ``ValueError`` keep working.
"""
from __future__ import annotations


class MdllmError(ValueError):
    """Base class of every error mdllm-kit raises on bad input."""


class TrajectoryError(MdllmError):
    """A trajectory or topology cannot be used (missing atoms, NaN coordinates, ...)."""


class DatasetError(MdllmError):
    """A bundled dataset name is unknown or its files are missing."""
