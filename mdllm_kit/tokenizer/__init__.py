"""Structure tokenizer: discrete tokens for MD frames and a deterministic decoder.

See :class:`StructureTokenizer`. Submodules: ``config`` (hyperparameters),
``geometry`` (internal coordinates, chain building), ``quantize`` (bins),
``decode`` (the decoding pipeline, refinement, backbone placement),
``skeleton`` (landmark skeleton from the anchors, filling the chain onto
it), ``hinges`` (wrong local tokens repaired against the skeleton),
``clashes`` (excluded volume), ``metrics`` (RMSD and bond checks), ``cli``
(command-line subcommands).
"""
from __future__ import annotations

from .config import TokenizerConfig
from .tokenizer import StructureTokenizer

__all__ = ["StructureTokenizer", "TokenizerConfig"]
