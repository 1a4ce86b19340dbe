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


class ModelError(MdllmError):
    """A language-model configuration, bundle or checkpoint cannot be used."""


class BundleMismatchError(ModelError):
    """A model bundle's parts (tokenizer, codec, model weights) do not belong together."""


class SamplingError(ModelError):
    """Sampling settings, seed frames or a sampling output folder cannot be used."""


class TokenizerError(MdllmError):
    """A structure tokenizer cannot encode, decode or load the given input."""


class VisualizationError(MdllmError):
    """A figure, 3D view or notebook widget cannot be built from the given input."""
