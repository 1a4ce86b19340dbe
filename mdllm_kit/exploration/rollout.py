"""``rollout``: plain rollouts, the MD-LLM paper's method and every benchmark's baseline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .strategy import ExplorationStrategy, register_strategy

__all__ = ["Rollout"]


@register_strategy
@dataclass
class Rollout(ExplorationStrategy):
    """Each walker continues its own trajectory: one candidate per step, no restarts, no bias.

    The only strategy whose frames sample the model's own distribution of
    trajectories, so the only one whose populations and kinetics mean
    anything (:func:`mdllm_kit.analyze`).
    """

    name = "rollout"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}
