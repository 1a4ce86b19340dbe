"""Exploration: find conformational states the training data never visited.

:func:`explore` drives the model (or a model-free control) with a strategy
and writes the output folder of ``mdllm sample`` plus ``exploration.json``::

    import mdllm_kit as mk
    ens = mk.explore(bundle, "restart", budget_frames=800, n_walkers=8, training=train, out="explore_out")

Strategies (one small class each, behind :class:`ExplorationStrategy`):

* ``rollout`` -- plain rollouts, the MD-LLM paper's method and the baseline;
  the only strategy whose frames give populations and kinetics;
* ``restart`` -- restarts in rounds from the least visited cells of a map
  (:class:`LeastCountsRestart`);
* ``bias`` -- several candidate next frames per walker, chosen against a
  history-dependent bias (:class:`HistoryBias`).

Every strategy takes the sampling settings' ``entropy_cap`` (entropy
control per token). A new strategy is a subclass registered with
:func:`register_strategy`.
"""
from __future__ import annotations

from .bias import HistoryBias, bias_potential
from .cv import CollectiveVariables
from .engine import EXPLORATION_FILE, ExplorationStep, explore, lineage, read_exploration
from .proposals import ModelProposal, Proposal, TokenNoiseProposal
from .restart import LeastCountsRestart, cell_labels
from .rollout import Rollout
from .strategy import Archive, ExplorationStrategy, Restart, make_strategy, register_strategy, strategy_names

__all__ = [
    "EXPLORATION_FILE",
    "Archive",
    "CollectiveVariables",
    "ExplorationStep",
    "ExplorationStrategy",
    "HistoryBias",
    "LeastCountsRestart",
    "ModelProposal",
    "Proposal",
    "Restart",
    "Rollout",
    "TokenNoiseProposal",
    "bias_potential",
    "cell_labels",
    "explore",
    "lineage",
    "make_strategy",
    "read_exploration",
    "register_strategy",
    "strategy_names",
]
