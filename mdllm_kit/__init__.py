"""mdllm-kit: learn a protein's molecular dynamics with a language model.

The public API is flat, in the style of mdtraj::

    import mdllm_kit as mk
    traj = mk.load_trajectory("run.xtc", top="protein.pdb")
    refs = mk.datasets.adk_references()

Importing the package has no side effects: heavy optional parts (OpenMM,
notebook widgets) are imported only when used.
"""
from __future__ import annotations

from ._version import __version__
from . import datasets
from .errors import DatasetError, MdllmError, TokenizerError, TrajectoryError
from .loading import check_backbone, find_chain_breaks, load_trajectory
from .tokenizer import StructureTokenizer, TokenizerConfig
from .ensemble import GeneratedEnsemble
from .lm import (LoraSettings, ModelBundle, ModelSettings, Sampler, SamplingSettings,
                 TrainSettings, find_bundle, load_bundle, train)
from . import exploration
from .exploration import explore
from .analysis import (analyze, fit_pca, fit_tica, nearest_training_rmsd, reference_coverage, rmsd_to_references,
                       validity_report)

#: Subpackages imported on first attribute access (``mk.viz`` pulls in plotly only when used).
_LAZY_SUBPACKAGES = ("analysis", "viz")


def __getattr__(name: str):
    if name in _LAZY_SUBPACKAGES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DatasetError",
    "MdllmError",
    "TokenizerError",
    "TrajectoryError",
    "__version__",
    "check_backbone",
    "datasets",
    "find_chain_breaks",
    "load_trajectory",
    # structure tokenizer (mdllm_kit.tokenizer)
    "StructureTokenizer",
    "TokenizerConfig",
    # language model (mdllm_kit.lm)
    "GeneratedEnsemble",
    "LoraSettings",
    "ModelBundle",
    "ModelSettings",
    "Sampler",
    "SamplingSettings",
    "TrainSettings",
    "find_bundle",
    "load_bundle",
    "train",
    # exploration strategies (mdllm_kit.exploration)
    "exploration",
    "explore",
    # discovery analysis (mdllm_kit.analysis)
    "analyze",
    "fit_pca",
    "fit_tica",
    "nearest_training_rmsd",
    "reference_coverage",
    "rmsd_to_references",
    "validity_report",
]
