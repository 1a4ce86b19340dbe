"""The exploration engine: walkers, a proposal and a strategy, streamed into a sampling folder.

:func:`explore` runs ``n_walkers`` walkers for ``budget_frames // n_walkers``
steps (see :mod:`mdllm_kit.exploration.strategy` for what happens at a step) and
writes the same output folder as :meth:`mdllm_kit.Sampler.sample`
(``params.json``, ``tokens.npz``, ``trajectory.xtc``, ``topology.pdb``,
through :class:`~mdllm_kit.ensemble.RunWriter`), plus

``exploration.json``
    the strategy, the proposal, the collective variables, every restart
    (``{"step", "walker", "source_step", "source_walker"}``), the candidates
    drawn and how many of them were physically invalid (totals and
    ``counts_by_step``). It is written before the tokens at every flush, so it
    always covers every saved frame; a resume keeps the steps the tokens hold.

Frame ``i`` of walker ``k`` in the folder is the frame chosen for walker
``k`` at step ``i`` (frame-major, as for sampling). A walker's frames form
one trajectory only until it restarts: after a restart at step ``s`` its
frame ``s`` continues from frame ``source_step`` of walker ``source_walker``
(:func:`lineage`). ``mdllm analyze`` and the viewers read the folder as
they read a sampling run.

Reproducibility: the proposal draws step ``i`` from the random stream
``(seed, i)``, a strategy gets ``numpy`` generators seeded with
``(seed, i, purpose)``, and the decoder is deterministic and
batch-independent, so a run continued with ``resume=True`` gives the same
frames as an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np

from ..analysis.validity import frame_validity
from ..atomic import atomic_write_json
from ..contracts import check_frame_tokens
from ..errors import SamplingError
from .cv import CollectiveVariables
from .proposals import ModelProposal, Proposal
from .strategy import Archive, ExplorationStrategy, Restart, make_strategy

__all__ = ["EXPLORATION_FILE", "ExplorationStep", "explore", "lineage", "read_exploration"]

logger = logging.getLogger(__name__)

#: The exploration record in an output folder.
EXPLORATION_FILE = "exploration.json"
#: Purposes of the strategy's random streams (third element of their seed).
_RNG_RESTART, _RNG_SELECT = 1, 2


@dataclass(frozen=True)
class ExplorationStep:
    """What one step produced (handed to ``callback``).

    Attributes
    ----------
    step : int
        0-based step of the run (frame index of every walker).
    tokens : numpy.ndarray of int64, shape (n_walkers, L)
        The chosen frames' tokens.
    frames : mdtraj.Trajectory
        The chosen frames decoded, walker order (nm).
    cv : numpy.ndarray, shape (n_walkers, d)
        Their collective variables (standardised; ``d = 0`` without any).
    valid : numpy.ndarray of bool, shape (n_walkers,)
        Physically valid (no Calpha clash or break, no peptide-bond break).
    restarts : tuple of Restart
        Walkers restarted before this step.
    frames_drawn : int
        Candidates drawn so far in the run, this step included.
    """

    step: int
    tokens: np.ndarray
    frames: md.Trajectory
    cv: np.ndarray
    valid: np.ndarray
    restarts: tuple[Restart, ...]
    frames_drawn: int


def lineage(parents: np.ndarray, step: int, walker: int, length: int) -> list[tuple[int, int]]:
    """The ``length`` frames that end with frame ``step`` of ``walker``, oldest first.

    Parameters
    ----------
    parents : numpy.ndarray of int, shape (n_steps, n_walkers, 2)
        ``(step, walker)`` of each frame's predecessor; a step of ``-1``
        means the walker's seed frames.
    step, walker : int
        The last frame (``step = -1``: the end of ``walker``'s seed).
    length : int

    Returns
    -------
    list of (int, int)
        ``(step, walker)`` pairs; steps ``-j`` (``j >= 1``) stand for the
        ``j``-th seed frame from the end of that walker's seed.
    """
    out: list[tuple[int, int]] = []
    s, w = int(step), int(walker)
    while len(out) < length:
        if s < 0:
            out.append((s, w))
            s -= 1
            continue
        out.append((s, w))
        s, w = (int(v) for v in parents[s, w])
    return out[::-1]


def _context(tokens: list[np.ndarray], seed: np.ndarray, parents: np.ndarray, step: int, walker: int,
             length: int) -> np.ndarray:
    """Tokens (c, L) of the context ending with frame ``step`` of ``walker`` (seed frames where the lineage starts)."""
    rows = []
    for s, w in lineage(parents, step, walker, length):
        if s >= 0:
            rows.append(tokens[s][w])
        elif -s <= seed.shape[1]:
            rows.append(seed[w, seed.shape[1] + s])
    return np.stack(rows)


def read_exploration(directory: str | os.PathLike) -> dict[str, Any]:
    """The exploration record of an output folder of :func:`explore` (``exploration.json``)."""
    path = Path(directory) / EXPLORATION_FILE
    if not path.is_file():
        raise SamplingError(f"{directory} holds no {EXPLORATION_FILE}: it is not the --out folder of mdllm explore")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SamplingError(f"{path} is damaged ({type(error).__name__}); explore again into a new folder") from error
    if not isinstance(record, dict) or "restarts" not in record:
        raise SamplingError(f"{path} is not an exploration record; explore again into a new folder")
    return record


def _parents(n_steps: int, n_walkers: int, restarts: list[Restart]) -> np.ndarray:
    """Predecessor of every frame (see :func:`lineage`)."""
    parents = np.empty((n_steps, n_walkers, 2), dtype=np.int64)
    parents[:, :, 0] = np.arange(n_steps)[:, None] - 1
    parents[:, :, 1] = np.arange(n_walkers)[None, :]
    for r in restarts:
        if r.step < n_steps:
            parents[r.step, r.walker] = (r.source_step, r.source_walker)
    return parents


def _check_restarts(restarts: list[Restart], step: int, n_walkers: int, strategy: ExplorationStrategy) -> None:
    seen = set()
    for r in restarts:
        if not (0 <= r.walker < n_walkers and 0 <= r.source_walker < n_walkers and 0 <= r.source_step < step
                and r.step == step and r.walker not in seen):
            raise SamplingError(f"strategy {strategy.name!r} asked for an impossible restart {r.to_dict()} at step "
                                f"{step} with {n_walkers} walkers; a restart names an earlier frame of an existing "
                                "walker, once per walker and step")
        seen.add(r.walker)


def _tally(counts: dict[str, int], row: list[int]) -> None:
    """Add one step's ``[frames_drawn, invalid_drawn, invalid_chosen]`` to the running totals."""
    for key, value in zip(counts, row):
        counts[key] += value


def explore(bundle: Any = None, strategy: str | ExplorationStrategy = "rollout", *, budget_frames: int,
            n_walkers: int = 8, seed: int = 0, out: str | os.PathLike | None = None, resume: bool = False,
            settings: Any = None, cv: CollectiveVariables | None = None, training: md.Trajectory | None = None,
            proposal: Proposal | None = None, seed_frames: Any = None, precision: str = "auto",
            flush_every: int = 10, progress: bool = False, processes: int | None = None,
            callback: Callable[[ExplorationStep], bool | None] | None = None,
            **strategy_options: Any) -> Any:
    """Explore with a strategy: ``n_walkers`` walkers, ``budget_frames`` frames in all.

    Parameters
    ----------
    bundle : ModelBundle or path-like, optional
        The trained model (``mk.load_bundle``). Needed unless ``proposal``
        is given (a model-free control), and for the default seed frames.
    strategy : str or ExplorationStrategy
        ``"rollout"`` (plain rollouts, the baseline), ``"restart"``
        (:class:`~mdllm_kit.exploration.restart.LeastCountsRestart`), ``"bias"``
        (:class:`~mdllm_kit.exploration.bias.HistoryBias`), any registered name,
        or a strategy object.
    budget_frames : int
        Frames kept in all (``budget_frames // n_walkers`` steps per walker).
        A strategy with several candidates per step draws more
        (``frames_drawn`` in ``exploration.json``).
    n_walkers : int
    seed : int
        Seed of every random stream (same seed, same frames).
    out : path-like, optional
        Output folder (the layout of ``mdllm sample`` plus ``exploration.json``).
    resume : bool
        Continue the run in ``out`` (same settings; ``budget_frames`` may grow).
    settings : SamplingSettings, optional
        Temperature, top-k, top-p, ``entropy_cap``, context length (its
        ``n_frames``, ``n_walkers`` and ``seed`` are replaced by this call's).
    cv : CollectiveVariables, optional
        The map strategies work on. Default: the first two principal
        components of ``training`` (needed by ``restart`` and ``bias``).
    training : mdtraj.Trajectory, optional
        The model's training frames, to fit the default collective variables.
    proposal : Proposal, optional
        Where candidates come from. Default: the model
        (:class:`~mdllm_kit.exploration.proposals.ModelProposal`);
        :class:`~mdllm_kit.exploration.proposals.TokenNoiseProposal` is the
        model-free control.
    seed_frames : mdtraj.Trajectory or numpy.ndarray, optional
        Starting structures or tokens, as for :meth:`mdllm_kit.Sampler.sample`.
    precision : {"auto", "bf16", "fp32"}
        Of the model's forward passes (:class:`mdllm_kit.Sampler`).
    flush_every : int
        Steps between writes to ``out``.
    progress : bool
        Show a progress bar over steps.
    processes : int, optional
        Processes that generate the walkers in parallel (:class:`mdllm_kit.Sampler`;
        default: its automatic choice). Ignored when ``proposal`` brings its own sampler.
    callback : callable, optional
        ``callback(step: ExplorationStep)`` after every step; returning
        ``False`` stops the run after that step (saved; ``resume=True``
        continues it).
    **strategy_options
        Parameters of a named strategy, e.g. ``round_frames=20``.

    Returns
    -------
    GeneratedEnsemble
        The chosen frames, frame-major over walkers; ``params["exploration"]``
        describes the run.

    Raises
    ------
    SamplingError
        Bad settings, an impossible restart, or a resume that does not match.
    """
    from ..lm.bundle import ModelBundle, load_bundle
    from ..lm.config import SamplingSettings
    from ..ensemble import GeneratedEnsemble, RunWriter
    from ..lm.sampler import Sampler, seed_context

    strat = make_strategy(strategy, **strategy_options)
    if n_walkers < 1:
        raise SamplingError(f"n_walkers must be >= 1, got {n_walkers}")
    n_steps = int(budget_frames) // int(n_walkers)
    if n_steps < 1:
        raise SamplingError(f"budget_frames={budget_frames} is less than one frame per walker ({n_walkers} walkers); "
                            "raise the budget or use fewer walkers")
    if budget_frames % n_walkers:
        logger.info("budget of %d frames with %d walkers: %d steps (%d frames)", budget_frames, n_walkers, n_steps,
                    n_steps * n_walkers)
    if bundle is not None and not isinstance(bundle, ModelBundle):
        bundle = load_bundle(bundle)
    if bundle is None and proposal is None:
        raise SamplingError("explore needs a model bundle (or a proposal, e.g. the model-free TokenNoiseProposal)")
    s = (settings or SamplingSettings()).replace(n_frames=n_steps, n_walkers=int(n_walkers), seed=int(seed),
                                                 flush_every=int(flush_every))
    if isinstance(proposal, ModelProposal):
        sampler = proposal.sampler  # e.g. the explorer's, so its hooks see every frame
    else:
        sampler = Sampler(bundle, precision=precision, processes=processes) if bundle is not None else None
    if proposal is None:
        proposal = ModelProposal(sampler, s)
    tokenizer = proposal.tokenizer
    context = int(proposal.context_frames)
    if strat.needs_cv and cv is None:
        if training is None:
            raise SamplingError(f"strategy {strat.name!r} works on collective variables: pass cv= (a "
                                "CollectiveVariables) or training= (the model's training frames, for a PCA)")
        cv = CollectiveVariables.pca(training)
    n_cv = cv.n_components if cv is not None else 0

    if sampler is not None:
        seed_tok = sampler.seed_tokens(seed_frames, s.n_walkers, context)
    else:
        if seed_frames is None:
            raise SamplingError("a proposal without a model bundle needs seed_frames (structures or tokens)")
        seed_tok = seed_context(seed_frames, tokenizer, s.n_walkers, context, check=lambda t: check_frame_tokens(
            t, tokenizer.valid_token_ranges(), kinds=tokenizer.position_kinds(), one_frame_ok=False,
            error=SamplingError))
    k, L = s.n_walkers, int(tokenizer.tokens_per_frame)
    m = int(strat.candidates)
    description = {"strategy": strat.to_dict(), "proposal": proposal.to_dict(), "candidates": m,
                   "unbiased": bool(strat.unbiased),
                   "cv": cv.summary() if cv is not None else None}
    params = {"settings": s.to_dict(), "context_frames": context,
              "bundle": str(Path(bundle.path).resolve()) if bundle is not None and bundle.path else None,
              "bundle_id": bundle.bundle_id if bundle is not None else None,
              "tokenizer_fingerprint": str(tokenizer.fingerprint),
              "precision": sampler.precision if sampler is not None else None,
              "processes": sampler.processes_for(k * m) if sampler is not None else None,
              "frame_order": "frame-major: frame i of walker k is trajectory frame i * n_walkers + k",
              "exploration": {**description, "budget_frames": int(budget_frames)}}

    tokens = np.empty((k, 0, L), dtype=np.int64)
    loglik = np.empty((k, 0))
    restarts: list[Restart] = []
    counts = {"frames_drawn": 0, "invalid_drawn": 0, "invalid_chosen": 0}
    # one [frames_drawn, invalid_drawn, invalid_chosen] per step: exploration.json is written before tokens.npz, so a
    # resume after a crash between the two takes only the steps tokens.npz holds (the totals alone would over-count)
    step_counts: list[list[int]] = []
    decode = sampler.decode_frames if sampler is not None else tokenizer.decode  # (over the sampling processes)
    writer = RunWriter(Path(out), tokenizer, decode=decode) if out is not None else None
    if writer is not None:
        if writer.exists():
            if not resume:
                raise SamplingError(f"{out} already holds a run; pass resume=True (--resume) to continue it, or choose "
                                    "a new folder")
            old_record = read_exploration(out)
            for key in ("strategy", "proposal", "candidates", "cv"):
                if old_record.get(key) != description[key]:
                    raise SamplingError(f"--resume with another {key} ({old_record.get(key)!r} in the run, "
                                        f"{description[key]!r} now) for {out}; continue it with the same settings, "
                                        "or explore into a new folder")
            seed_tok, tokens, loglik = writer.resume(params, seed_tok)
            restarts = [Restart(**r) for r in old_record["restarts"] if r["step"] < tokens.shape[1]]
            if "counts_by_step" in old_record:
                step_counts = [list(map(int, c)) for c in old_record["counts_by_step"][:tokens.shape[1]]]
                for row in step_counts:
                    _tally(counts, row)
            else:  # a record written before per-step counts existed
                counts.update({key: int(old_record.get(key, 0)) for key in counts})
        else:
            writer.start(params, seed_tok)
    elif resume:
        raise SamplingError("resume=True needs the out folder of the run to continue")

    done = tokens.shape[1]
    steps_tokens = [tokens[:, i] for i in range(done)]
    steps_ll = [loglik[:, i] for i in range(done)]
    archive = Archive(k, n_cv)
    strat.reset(k, n_cv)
    if done:
        frames = writer.frames  # the saved frames, decoded once by the resume (it rebuilt trajectory.xtc from them)
        values = cv(frames) if cv is not None else np.empty((frames.n_frames, 0))
        valid = frame_validity(frames)
        for i in range(done):
            archive.add(values[i * k:(i + 1) * k], valid[i * k:(i + 1) * k])
            strat.observe(i, archive)

    def record() -> dict[str, Any]:
        return {**description, "budget_frames": int(budget_frames), "n_walkers": k, "steps_done": len(steps_tokens),
                **counts, "restarts": [r.to_dict() for r in restarts], "counts_by_step": step_counts}

    parents = _parents(n_steps, k, restarts)
    pending: list[md.Trajectory] = []
    kept: list[md.Trajectory] = []  # decoded chosen frames of this call (an in-memory run returns them)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, initial=done, unit="step", desc=f"exploring ({strat.name}, {k} walkers)")
    for i in range(done, n_steps):
        new = strat.restarts(i, archive, np.random.default_rng([s.seed, i, _RNG_RESTART])) if i > 0 else []
        new = list(new)
        _check_restarts(new, i, k, strat)
        restarts.extend(new)
        for r in new:
            parents[r.step, r.walker] = (r.source_step, r.source_walker)
        contexts = [_context(steps_tokens, seed_tok, parents, parents[i, w, 0], parents[i, w, 1], context)
                    for w in range(k)]
        # a lineage that reaches a seed shorter than the context is shorter: the batch takes the common length
        common = min(len(c) for c in contexts)
        ctx = np.stack([c[len(c) - common:] for c in contexts])
        batch = np.repeat(ctx, m, axis=0)  # row w * m + j: candidate j of walker w
        cand, cand_ll = proposal.propose(batch, i)
        cand = np.asarray(cand, dtype=np.int64)
        decoded = decode(cand)
        values = cv(decoded) if cv is not None else np.empty((k * m, 0))
        valid = frame_validity(decoded)
        if m > 1:
            choice = np.asarray(strat.select(i, values.reshape(k, m, n_cv), valid.reshape(k, m), archive,
                                             np.random.default_rng([s.seed, i, _RNG_SELECT])), dtype=np.int64)
            if choice.shape != (k,) or choice.min() < 0 or choice.max() >= m:
                raise SamplingError(f"strategy {strat.name!r} selected {choice!r}; it must return one index in "
                                    f"[0, {m}) per walker")
        else:
            choice = np.zeros(k, dtype=np.int64)
        rows = np.arange(k) * m + choice
        chosen = decoded[rows]
        steps_tokens.append(cand[rows])
        steps_ll.append(np.asarray(cand_ll, dtype=np.float64)[rows])
        step_counts.append([k * m, int((~valid).sum()), int((~valid[rows]).sum())])
        _tally(counts, step_counts[-1])
        archive.add(values[rows], valid[rows])
        strat.observe(i, archive)
        pending.append(chosen)
        if writer is None:
            kept.append(chosen)
        if bar is not None:
            bar.update(1)
        stop = False
        if callback is not None:
            stop = callback(ExplorationStep(i, cand[rows], chosen, values[rows], valid[rows], tuple(new),
                                            counts["frames_drawn"])) is False
        if len(pending) >= s.flush_every or i == n_steps - 1 or stop:
            if writer is not None:
                atomic_write_json(writer.directory / EXPLORATION_FILE, record())
                all_tok = np.stack(steps_tokens, axis=1)
                new_tok = all_tok[:, -len(pending):]
                writer.append(all_tok, np.stack(steps_ll, axis=1), new_tok, decoded=md.join(pending))
            pending = []
        if stop:
            logger.info("exploration stopped by the callback after step %d of %d", i + 1, n_steps)
            break
    if bar is not None:
        bar.close()
    if writer is not None:
        atomic_write_json(writer.directory / EXPLORATION_FILE, record())
        ensemble = GeneratedEnsemble.load(writer.directory, tokenizer=tokenizer)
    else:
        all_tok = np.stack(steps_tokens, axis=1) if steps_tokens else np.empty((k, 0, L), np.int64)
        all_ll = np.stack(steps_ll, axis=1) if steps_ll else np.empty((k, 0))
        if kept:
            frames = md.join(kept)  # step-major = frame-major
            frames.time = np.repeat(np.arange(len(kept), dtype=float), k)
        else:
            frames = decode(all_tok.transpose(1, 0, 2).reshape(-1, L))
        ensemble = GeneratedEnsemble(all_tok, all_ll, frames, params, None)
    ensemble.params["exploration"] = record()
    return ensemble
