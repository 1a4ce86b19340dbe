"""The sampling-strategy seam: what an exploration strategy is and what it sees.

An exploration run (:func:`mdllm_kit.explore`) has ``n_walkers``
walkers that each add one frame per step. At every step the engine

1. asks the strategy whether some walkers restart from earlier frames
   (:meth:`ExplorationStrategy.restarts`, from the second step on);
2. draws :attr:`ExplorationStrategy.candidates` next frames per walker from
   the proposal (the model, or a model-free control);
3. when there is more than one candidate, lets the strategy pick one per
   walker (:meth:`ExplorationStrategy.select`) from their collective
   variables and validity;
4. shows the chosen frames to the strategy (:meth:`ExplorationStrategy.observe`).

A strategy is a small class: it holds its parameters (:meth:`to_dict`, used
to refuse a resume with other settings) and whatever it learns from
:meth:`observe`. Everything random it does uses the ``rng`` it is handed,
which the engine derives from ``(seed, step)``, and it must not keep state
that :meth:`observe` does not rebuild: a resumed run replays
:meth:`observe` over the saved frames and then continues exactly as an
uninterrupted run. A new strategy is one new module with a subclass, made
known to ``mdllm explore --strategy`` with :func:`register_strategy`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import SamplingError

__all__ = ["Archive", "ExplorationStrategy", "Restart", "make_strategy", "register_strategy", "strategy_names"]


@dataclass(frozen=True)
class Restart:
    """Walker ``walker`` continues, from step ``step`` on, from frame ``source_step`` of walker ``source_walker``.

    The walker's next frame is generated from the context that ends with that
    earlier frame (the frame itself and the frames before it in its walker's
    history).
    """

    step: int
    walker: int
    source_step: int
    source_walker: int

    def to_dict(self) -> dict[str, int]:
        return {"step": self.step, "walker": self.walker, "source_step": self.source_step,
                "source_walker": self.source_walker}


class Archive:
    """Everything generated so far, as a strategy sees it (read-only arrays).

    Attributes
    ----------
    cv : numpy.ndarray of float, shape (n_steps, n_walkers, d)
        Collective variables of the chosen frames (see
        :class:`~mdllm_kit.exploration.cv.CollectiveVariables`; standardised on the
        training frames). ``d = 0`` when the run has no collective variables.
    valid : numpy.ndarray of bool, shape (n_steps, n_walkers)
        Whether each chosen frame is physically valid (no Calpha clash or break).
    """

    def __init__(self, n_walkers: int, n_cv: int) -> None:
        self.n_walkers, self.n_cv = int(n_walkers), int(n_cv)
        self._cv: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []

    def add(self, cv: np.ndarray, valid: np.ndarray) -> None:
        """Record one step: ``cv`` (n_walkers, d), ``valid`` (n_walkers,)."""
        self._cv.append(np.asarray(cv, dtype=np.float64).reshape(self.n_walkers, self.n_cv))
        self._valid.append(np.asarray(valid, dtype=bool).reshape(self.n_walkers))

    @property
    def n_steps(self) -> int:
        return len(self._cv)

    @property
    def cv(self) -> np.ndarray:
        out = np.stack(self._cv) if self._cv else np.empty((0, self.n_walkers, self.n_cv))
        out.flags.writeable = False
        return out

    @property
    def valid(self) -> np.ndarray:
        out = np.stack(self._valid) if self._valid else np.empty((0, self.n_walkers), dtype=bool)
        out.flags.writeable = False
        return out


class ExplorationStrategy:
    """Base class of exploration strategies (see the module docstring for the protocol).

    The base class is plain rollouts: one candidate per walker, no restarts.
    """

    #: Name used by ``mdllm explore --strategy`` and recorded in the run.
    name: ClassVar[str] = "base"
    #: Whether the strategy reads collective variables (the engine then needs them).
    needs_cv: ClassVar[bool] = False
    #: Whether its frames sample the model's own trajectory distribution (only then do populations and kinetics
    #: computed from them mean anything; restarts and biased selection do not).
    unbiased: ClassVar[bool] = True

    @property
    def candidates(self) -> int:
        """Next-frame candidates drawn per walker and step (1: no choice)."""
        return 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (recorded in ``params.json``; a resume must match them)."""
        return {"name": self.name}

    def reset(self, n_walkers: int, n_cv: int) -> None:
        """Forget everything: a new run (or a resume about to replay its frames) begins."""

    def observe(self, step: int, archive: Archive) -> None:
        """The frames of ``step`` were chosen; they are the last entry of ``archive``."""

    def select(self, step: int, cv: np.ndarray, valid: np.ndarray, archive: Archive,
               rng: np.random.Generator) -> np.ndarray:
        """Index of the chosen candidate per walker.

        Parameters
        ----------
        step : int
        cv : numpy.ndarray, shape (n_walkers, candidates, d)
        valid : numpy.ndarray of bool, shape (n_walkers, candidates)
        archive : Archive
            The frames of the steps before.
        rng : numpy.random.Generator

        Returns
        -------
        numpy.ndarray of int, shape (n_walkers,)
            Default: the first valid candidate (the first if none is valid).
        """
        return np.where(valid.any(1), valid.argmax(1), 0)

    def restarts(self, step: int, archive: Archive, rng: np.random.Generator) -> list[Restart]:
        """Walkers that continue from earlier frames before ``step`` is generated (default: none)."""
        return []


_STRATEGIES: dict[str, type[ExplorationStrategy]] = {}


def register_strategy(cls: type[ExplorationStrategy]) -> type[ExplorationStrategy]:
    """Make a strategy class known by its ``name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, ExplorationStrategy)):
        raise SamplingError(f"{cls!r} is not an ExplorationStrategy subclass; subclass "
                            "mdllm_kit.exploration.ExplorationStrategy")
    _STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    """Names of the registered strategies."""
    return tuple(sorted(_STRATEGIES))


def make_strategy(strategy: str | ExplorationStrategy, **options: Any) -> ExplorationStrategy:
    """A strategy object from a name and its options, or the object itself."""
    if isinstance(strategy, ExplorationStrategy):
        if options:
            raise SamplingError(f"options {', '.join(sorted(options))} were given with a strategy object; set them "
                                "on the object instead")
        return strategy
    if strategy not in _STRATEGIES:
        raise SamplingError(f"unknown exploration strategy {strategy!r}; choose one of {', '.join(strategy_names())}")
    try:
        return _STRATEGIES[strategy](**options)
    except TypeError as error:
        raise SamplingError(f"strategy {strategy!r} does not take these options ({error}); see "
                            f"help(mdllm_kit.exploration.{_STRATEGIES[strategy].__name__})") from error
