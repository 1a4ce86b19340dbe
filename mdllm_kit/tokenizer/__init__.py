"""Structure tokenizer: discrete tokens for MD frames and a deterministic decoder.

See :class:`StructureTokenizer`. Submodules: ``config`` (hyperparameters),
``geometry`` (internal coordinates, chain building), ``quantize`` (bins),
``decode`` (anchor refinement, backbone placement), ``metrics`` (RMSD and
bond checks), ``cli`` (command-line subcommands).
"""
from __future__ import annotations

from .config import TokenizerConfig
from .tokenizer import StructureTokenizer

__all__ = ["StructureTokenizer", "TokenizerConfig"]
