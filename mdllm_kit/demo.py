"""The end-to-end demo on the bundled AdK system (what ``make demo`` runs).

Each pipeline stage is a function that returns its metrics and a report
section; :func:`run_demo` runs the stages this version has, in order, and
writes ``report.html`` and ``metrics.json``. Stages that are not built yet
are listed as such in the report: nothing is faked.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .analysis import NM_TO_A, STATE_REACHED_NM, rmsd_to_references  # STATE_REACHED_NM: the paper's < 3 A
from .atomic import atomic_write_json
from .bonds import CA_BOND_OK_NM
from .contracts import frame_major_labels
from .lm.config import DEFAULT_ENTROPY_CAP
from .subsample import evenly_spaced_indices
from .report import ReportSection, write_report
from .viz import rmsd_pair_map, rmsd_timeline

__all__ = ["PIPELINE_STAGES", "DemoConfig", "StageResult", "analysis_stage", "run_demo"]

logger = logging.getLogger(__name__)

#: Every stage of the pipeline, in order; stages this version lacks are listed
#: in the report as not yet available, never faked.
PIPELINE_STAGES: tuple[str, ...] = ("data", "tokenizer", "training", "sampling", "analysis")

#: Equilibrium frames within this Calpha RMSD (nm) of the open crystal count as
#: open-basin frames when measuring tokenizer fidelity on the unseen state.
OPEN_BASIN_CUTOFF_NM = 0.25

#: The bundled AdK CG runs the demo uses: it trains on closed and looks for open
#: (``open_train``, the other direction, is not part of the demo).
DEMO_RUNS: tuple[str, ...] = ("closed_train", "equilibrium")

#: Validation metrics of the trainer shown in the report.
EVAL_METRICS: tuple[str, ...] = ("eval_loss", "eval_next_frame_token_accuracy", "eval_next_frame_rmsd_A")

@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo run.

    Parameters
    ----------
    quick : bool
        Smaller settings for tests and CI (same stages, less work).
    seed : int
        Random seed of every stochastic stage.
    """

    quick: bool = False
    seed: int = 0
    eval_frames: int = 500
    train_steps: int = 400
    quality_windows: int = 32
    n_walkers: int = 8
    n_frames: int = 25
    temperature: float = 1.0
    top_k: int = 100
    top_p: float = 0.95
    entropy_cap: float | None = DEFAULT_ENTROPY_CAP

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name in ("eval_frames", "train_steps", "quality_windows", "n_walkers", "n_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def n_eval_frames(self) -> int:
        """Frames per evaluation set (fewer in quick mode)."""
        return min(self.eval_frames, 100) if self.quick else self.eval_frames

    @property
    def sampling(self) -> dict[str, Any]:
        """Sampling settings of the demo (fewer frames and walkers in quick mode)."""
        return {
            "n_frames": min(self.n_frames, 3) if self.quick else self.n_frames,
            "n_walkers": min(self.n_walkers, 2) if self.quick else self.n_walkers,
            "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed,
            "entropy_cap": self.entropy_cap,
        }

    @property
    def n_quality_windows(self) -> int:
        """Held-out windows scored against the copy-previous-frame baseline (fewer in quick mode)."""
        return min(self.quality_windows, 2) if self.quick else self.quality_windows

    @property
    def n_train_steps(self) -> int:
        """Optimiser steps of the language model (a handful in quick mode)."""
        return min(self.train_steps, 4) if self.quick else self.train_steps


@dataclass
class StageResult:
    """What one pipeline stage produced: metrics for JSON, a section for HTML."""

    name: str
    metrics: dict[str, Any]
    section: ReportSection
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


def _rmsd_stats_A(values_nm: np.ndarray) -> dict[str, float]:
    values = np.asarray(values_nm) * NM_TO_A
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


def data_stage(config: DemoConfig) -> StageResult:
    """Load the bundled AdK data and describe it against the two crystal states."""
    refs = datasets.adk_references()
    runs = {name: datasets.load_adk_cg(name) for name in DEMO_RUNS}
    metadata = datasets.adk_cg_metadata()
    metrics: dict[str, Any] = {"closed_open_rmsd_A": datasets.closed_open_rmsd()}
    rmsd_nm: dict[str, dict[str, np.ndarray]] = {}
    pair_map: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    timelines = []
    for name, traj in runs.items():
        rmsd = rmsd_nm[name] = rmsd_to_references(traj, refs)
        dt_ps = float(traj.time[1] - traj.time[0]) if traj.n_frames > 1 else float("nan")
        metrics[name] = {
            "n_frames": int(traj.n_frames),
            "n_residues": int(traj.n_residues),
            "time_per_frame_ps": dt_ps,
            "rmsd_to_closed_A": _rmsd_stats_A(rmsd["closed"]),
            "rmsd_to_open_A": _rmsd_stats_A(rmsd["open"]),
        }
        pair_map[name] = (rmsd["closed"], rmsd["open"])
        timelines.append(rmsd_timeline(rmsd, traj.time, title=f"{name}: Calpha RMSD to the crystal states"))
    metrics["ground_truth"] = metadata.get("runs", {})
    crystal_markers = {"closed crystal (1AKE)": (0.0, metrics["closed_open_rmsd_A"] / NM_TO_A),
                       "open crystal (4AKE)": (metrics["closed_open_rmsd_A"] / NM_TO_A, 0.0)}
    train = metrics["closed_train"]
    text = (
        "Adenylate kinase (214 residues) switches between a closed and an open state "
        f"(Calpha RMSD {metrics['closed_open_rmsd_A']:.2f} A). The bundled data come from a "
        "Calpha dual-basin structure-based model simulated with OpenMM.\n\n"
        f"Training run 'closed_train': {train['n_frames']} frames, "
        f"{train['time_per_frame_ps']:.1f} ps apart, never closer than "
        f"{train['rmsd_to_open_A']['min']:.2f} A to the open state: the open state is what a model "
        "trained on it has to discover.\n\n"
        f"Ground-truth run 'equilibrium': {metrics['equilibrium']['n_frames']} frames, switching "
        "between the two states; it gives the reference populations and kinetics."
    )
    section = ReportSection(
        title="Data: the AdK demo system",
        text=text,
        table={
            "closed_train frames": train["n_frames"],
            "equilibrium frames": metrics["equilibrium"]["n_frames"],
            "time per frame (ps)": train["time_per_frame_ps"],
            "closed_train min RMSD to open (A)": train["rmsd_to_open_A"]["min"],
            "equilibrium min RMSD to open (A)": metrics["equilibrium"]["rmsd_to_open_A"]["min"],
        },
        figures=[rmsd_pair_map(pair_map, markers=crystal_markers), *timelines],
    )
    return StageResult("data", metrics, section, extras={"runs": runs, "references": refs, "rmsd_nm": rmsd_nm})


def _evenly(indices: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` entries of ``indices``, evenly spaced."""
    return indices[evenly_spaced_indices(len(indices), n)]


def tokenizer_stage(config: DemoConfig, data: StageResult) -> StageResult:
    """Fit the structure tokenizer on the training run; measure its fidelity on unseen states."""
    from .tokenizer import StructureTokenizer
    from .analysis import rmsd_per_frame
    from .tokenizer.metrics import bond_ok_fraction

    runs, refs = data.extras["runs"], data.extras["references"]
    train = runs["closed_train"]
    start = time.perf_counter()
    tokenizer = StructureTokenizer().fit(train)
    fit_seconds = time.perf_counter() - start
    to_open = data.extras["rmsd_nm"]["equilibrium"]["open"]
    open_idx = _evenly(np.flatnonzero(to_open <= OPEN_BASIN_CUTOFF_NM), config.n_eval_frames)
    sets = {
        "closed_train": train[_evenly(np.arange(train.n_frames), config.n_eval_frames)],
        "open_basin_unseen": runs["equilibrium"][open_idx],
    }
    metrics: dict[str, Any] = {
        "tokens_per_frame": int(tokenizer.tokens_per_frame),
        "vocab_size": int(tokenizer.vocab_size),
        "fit_seconds": round(fit_seconds, 3),
    }
    table: dict[str, Any] = {"tokens per frame": metrics["tokens_per_frame"], "vocabulary": metrics["vocab_size"]}
    for name, frames in sets.items():
        if frames.n_frames == 0:
            metrics[name] = {"n_frames": 0}
            continue
        start = time.perf_counter()
        decoded = tokenizer.decode(tokenizer.encode(frames))
        seconds = time.perf_counter() - start
        ca = frames.topology.select("name CA")
        rmsd_A = rmsd_per_frame(decoded.xyz, frames.xyz[:, ca])
        metrics[name] = {
            "n_frames": int(frames.n_frames),
            "rmsd_mean_A": float(rmsd_A.mean()),
            "rmsd_p95_A": float(np.percentile(rmsd_A, 95)),
            "bonds_physical_fraction": float(bond_ok_fraction(decoded.xyz)),
            "frames_per_second": float(frames.n_frames / seconds),
        }
        table[f"{name}: mean / p95 RMSD (A)"] = f"{rmsd_A.mean():.2f} / {np.percentile(rmsd_A, 95):.2f}"
    crystal = refs["open"]
    decoded_open = tokenizer.decode(tokenizer.encode(crystal))
    metrics["open_crystal_rmsd_A"] = float(
        rmsd_to_references(decoded_open, {"open": crystal})["open"][0] * NM_TO_A
    )
    table["open crystal (never seen) RMSD (A)"] = round(metrics["open_crystal_rmsd_A"], 3)
    text = (
        f"The structure tokenizer was fitted on the {train.n_frames} closed-basin training frames. "
        "Each frame becomes a fixed number of discrete tokens; decoding rebuilds the Calpha trace "
        "deterministically from the tokens alone. Fidelity on open-state frames, which the tokenizer "
        "never saw, shows whether the open state can be represented at all: a state the tokenizer "
        "cannot encode could never be discovered."
    )
    section = ReportSection(title="Structure tokenizer", text=text, table=table)
    return StageResult("tokenizer", metrics, section, extras={"tokenizer": tokenizer})


def _clear_previous(path: Path) -> None:
    """Remove a model or sample folder left by an earlier demo run in the same output folder."""
    if path.exists():
        logger.info("replacing %s from an earlier demo run", path)
        shutil.rmtree(path)


def training_stage(config: DemoConfig, data: StageResult, tok: StageResult, out: Path) -> StageResult:
    """Train the default language model on the closed-basin training run."""
    from .lm import TrainSettings, train
    from .lm.evaluate import next_frame_quality

    quick = {"window_frames": 2, "batch_size": 1, "eval_max_windows": 2, "rmsd_max_frames": 2} if config.quick else {}
    _clear_previous(out / "model")
    settings = TrainSettings(max_steps=config.n_train_steps, seed=config.seed,
                             eval_steps=config.n_train_steps, save_steps=config.n_train_steps, **quick)
    train_traj = data.extras["runs"]["closed_train"]
    bundle = train(train_traj, tok.extras["tokenizer"], out / "model", settings=settings, progress=False)
    final = bundle.metrics.get("final_eval", {})
    # teacher-forced next frames of the held-out end of the run: the model next to copying the previous frame
    n_val = int(bundle.metrics["split"]["val_frames"])
    quality = None
    if n_val > settings.window_frames:
        val_tokens = tok.extras["tokenizer"].encode(train_traj[train_traj.n_frames - n_val:])
        quality = next_frame_quality(bundle, val_tokens, max_windows=config.n_quality_windows)
    metrics = {
        "steps": int(bundle.metrics["global_step"]),
        "window_frames": settings.window_frames,
        "parameters": bundle.metrics["parameters"],
        "finetune": bundle.metrics["finetune"],
        "train_tokens_per_s": bundle.metrics["train_tokens_per_s"],
        "final_eval": {k: float(final[k]) for k in EVAL_METRICS if k in final},
        "next_frame_vs_copy": quality,
        "bundle": str(out / "model"),
    }
    table = {"optimiser steps": metrics["steps"], "context (frames)": settings.window_frames,
             "parameters": metrics["parameters"]["total"], "fine-tuning": metrics["finetune"],
             **{f"validation {k.removeprefix('eval_')}": v for k, v in metrics["final_eval"].items()}}
    if quality is not None:
        for key, label in (("token_accuracy", "next-frame token accuracy"), ("rmsd_A", "next-frame RMSD (A)")):
            table[f"{label}: model / copy previous frame"] = (
                f"{quality['model'][key]:.3g} / {quality['copy_previous'][key]:.3g}")
    text = (
        "A small Mistral-architecture language model, built from a config and trained from scratch on "
        f"windows of {settings.window_frames} consecutive frames, learns to predict the next frame's "
        "tokens; it knows each token's position within its frame and sees the token at the same position "
        "one frame earlier. Validation uses the last part of the training run in time (no frame of it "
        "appears in a training window). The bar to clear is copying the previous frame: a model below it "
        "has not learned the dynamics. The model bundle is saved next to this report."
    )
    section = ReportSection(title="Language model training", text=text, table=table)
    return StageResult("training", metrics, section, extras={"bundle": bundle})


def _frames_text(value: float | None) -> str:
    """A timescale in frames (``None``: undefined, e.g. an infinite one written to JSON)."""
    return "undefined" if value is None else f"{value:.1f} frames"


def _cap_text(entropy_cap: float | None) -> str:
    return "no entropy cap" if entropy_cap is None else f"entropy cap {entropy_cap:g} nats per token"


def sampling_stage(config: DemoConfig, data: StageResult, tok: StageResult, trained: StageResult,
                   out: Path) -> StageResult:
    """Roll out new trajectories from the end of the training data; measure where they go."""
    from .lm import Sampler
    from .tokenizer.metrics import bond_ok_fraction

    params = config.sampling
    _clear_previous(out / "samples")
    ensemble = Sampler(trained.extras["bundle"]).sample(out=out / "samples", **params)
    refs = data.extras["references"]
    rmsd = rmsd_to_references(ensemble.trajectory, refs)
    reached = {name: bool(values.min() < STATE_REACHED_NM) for name, values in rmsd.items()}
    metrics = {
        "settings": params,
        "frames_generated": int(ensemble.trajectory.n_frames),
        "frames_decoded_fraction": float(ensemble.trajectory.n_frames / (ensemble.n_walkers * ensemble.n_frames)),
        "min_rmsd_A": {name: float(values.min() * NM_TO_A) for name, values in rmsd.items()},
        "reached_within_3A": reached,
        "bonds_physical_fraction": float(bond_ok_fraction(ensemble.trajectory.xyz)),
        "mean_log_likelihood": float(ensemble.log_likelihood.mean()),
        "output": str(out / "samples"),
    }
    verdict = (
        f"The open state was {'reached' if reached['open'] else 'not reached'}: the closest generated frame "
        f"is {metrics['min_rmsd_A']['open']:.2f} A from the open crystal (threshold {STATE_REACHED_NM * NM_TO_A:g} A); "
        "the closest to the "
        f"closed crystal is {metrics['min_rmsd_A']['closed']:.2f} A. "
        f"{100 * metrics['bonds_physical_fraction']:.1f}% of generated Calpha-Calpha bonds are within "
        f"{CA_BOND_OK_NM[0] * NM_TO_A:g}-{CA_BOND_OK_NM[1] * NM_TO_A:g} A."
    )
    section = ReportSection(
        title="Sampling",
        text=(f"{params['n_walkers']} walkers generated {params['n_frames']} frames each (temperature "
              f"{params['temperature']}, top-k {params['top_k']}, top-p {params['top_p']}, "
              f"{_cap_text(params.get('entropy_cap'))}), starting from "
              "the last training window.\n\n" + verdict),
        table={"frames generated": metrics["frames_generated"],
               "min RMSD to open (A)": metrics["min_rmsd_A"]["open"],
               "min RMSD to closed (A)": metrics["min_rmsd_A"]["closed"],
               "physical bonds": f"{100 * metrics['bonds_physical_fraction']:.1f}%"},
        figures=[rmsd_timeline(rmsd, title="Generated frames (all walkers, frame-major): RMSD to the crystal states")],
    )
    return StageResult("sampling", metrics, section, extras={"ensemble": ensemble})


def _analysis_figures(details: dict[str, Any], n_walkers: int) -> list[Any]:
    """State map on the training PCA, per-walker RMSD timelines and validity bars (mk.viz)."""
    from .viz import rmsd_timelines, state_map, validity_summary

    pca = details["pca"]
    refs_xy = {f"{name} crystal": (float(xy[0]), float(xy[1])) for name, xy in details["pca_references"].items()}
    gen_xy = details["pca_generated"]
    step, walker = frame_major_labels(len(gen_xy) // n_walkers, n_walkers)
    return [
        state_map(details["pca_training"], gen_xy, refs_xy, walker=walker, time=step, labels=tuple(pca.labels), unit="nm",
                  title="State map: PCA of the training frames (density), generated frames, crystal states"),
        rmsd_timelines(details["rmsd_nm"], n_walkers=n_walkers, threshold_nm=STATE_REACHED_NM,
                       title="Generated frames: Calpha RMSD to the crystal states, per walker"),
        validity_summary({"training": details["validity_training"], "generated": details["validity"]}),
    ]


def analysis_stage(config: DemoConfig, data: StageResult, tok: StageResult, trained: StageResult,
                   sampled: StageResult) -> StageResult:
    """Discovery analysis of the sampled ensemble: crystal states, novelty, validity, ground truth."""
    from .analysis import CA_BREAK_NM, CA_CLASH_NM, analyze, threshold_key

    ensemble = sampled.extras["ensemble"]  # as streamed to out/samples by the sampling stage
    runs, refs = data.extras["runs"], data.extras["references"]
    train, truth = runs["closed_train"], runs["equilibrium"]
    details: dict[str, Any] = {}
    metrics = analyze(
        ensemble, train, refs, reference_ensemble=truth,
        generated_labels=datasets.adk_cg_states(ensemble.trajectory), reference_labels=datasets.adk_cg_states(truth),
        state_names=datasets.ADK_STATE_NAMES, n_states=len(datasets.ADK_STATE_NAMES), seed=config.seed,
        details=details,
    )
    open_, closed = metrics["references"]["open"], metrics["references"]["closed"]
    val, nov, comp = metrics["validity"], metrics["novelty"], metrics["comparison"]
    reached = open_["reached"]
    within, reach_A = threshold_key(STATE_REACHED_NM), f"{STATE_REACHED_NM * NM_TO_A:g} A"
    rmsf_r = comp["rmsf"]["pearson_r"]  # None when an RMSF profile is constant
    verdict = (
        f"Open state {'REACHED' if reached else 'NOT reached'}: the closest generated frame is "
        f"{open_['min_rmsd_A']:.2f} A (Calpha RMSD) from the open crystal (threshold {reach_A}); "
        f"{100 * open_['fraction_within'][within]:.1f}% of the {metrics['n_frames']} generated frames are within "
        f"{reach_A}"
        + (f" (first at generated step {open_['first_step_within']})" if reached else "")
        + f". Closest to the closed crystal: {closed['min_rmsd_A']:.2f} A."
    )
    physical = (
        f"Physical validity: {100 * val['ca_valid_fraction']:.1f}% of generated frames have no Calpha bond break "
        f"(> {CA_BREAK_NM * NM_TO_A:.1f} A) and no Calpha clash (< {CA_CLASH_NM * NM_TO_A:.1f} A), against "
        f"{100 * val['training']['ca_valid_fraction']:.1f}% of "
        f"training frames. {100 * (1 - val['frames_without_ca_break']):.1f}% of generated frames have a broken "
        f"Calpha-Calpha bond and {100 * (1 - val['frames_without_ca_clash']):.1f}% at least one Calpha clash "
        f"({100 * val['ca_clash_rate']:.2f}% of non-bonded pairs); criteria of ProteinBench/ConfDiff."
    )
    novelty = (
        f"Novelty: {100 * nov['novel_fraction']:.1f}% of generated frames lie outside the training ensemble "
        f"(nearest training frame farther than {nov['cutoff_A']:.2f} A, the 99th percentile of the training "
        f"frames' own nearest-neighbour RMSD); median distance to the nearest training frame "
        f"{nov['nearest_training_rmsd_A']['median']:.2f} A."
    )
    pops = comp["populations"]
    truth_text = (
        "Against the ground-truth equilibrium run: state populations (generated / truth) "
        + ", ".join(f"{s} {g:.2f} / {r:.2f}" for s, g, r in zip(pops["states"], pops["generated"], pops["reference"]))
        + f"; Jensen-Shannon distance of the PCA histograms {comp['js_distance']['PC1-PC2']:.2f} (0 = same, "
        f"1 = disjoint); RMSF correlation {'undefined' if rmsf_r is None else f'{rmsf_r:.2f}'}. "
        "The walkers are short "
        f"({ensemble.n_frames} frames), so their Markov model "
        + ("could not be estimated (" + comp["msm"]["generated"]["error"] + ")"
           if "error" in comp["msm"]["generated"] else
           f"has a slowest timescale of {_frames_text(comp['msm']['generated']['timescales_frames'][0])}")
        + (f" against {_frames_text(comp['msm']['reference']['timescales_frames'][0])} for the ground truth."
           if "timescales_frames" in comp["msm"]["reference"] else ".")
    )
    table = {
        "min RMSD to open (A)": open_["min_rmsd_A"],
        "min RMSD to closed (A)": closed["min_rmsd_A"],
        f"open reached (< {reach_A})": "yes" if reached else "no",
        f"frames within {reach_A} of open": f"{100 * open_['fraction_within'][within]:.1f}%",
        f"open covered (BioEmu 0.1%, {reach_A})": "yes" if open_["covered"][within] else "no",
        "Calpha-valid frames (generated / training)":
            f"{100 * val['ca_valid_fraction']:.1f}% / {100 * val['training']['ca_valid_fraction']:.1f}%",
        "frames outside the training ensemble": f"{100 * nov['novel_fraction']:.1f}%",
        "JS distance to ground truth (PC1-PC2)": comp["js_distance"]["PC1-PC2"],
        "RMSF correlation with ground truth": comp["rmsf"]["pearson_r"],
    }
    section = ReportSection(
        title="Discovery analysis",
        text="\n\n".join([verdict, physical, novelty, truth_text]),
        table=table,
        figures=_analysis_figures(details, ensemble.n_walkers),
    )
    return StageResult("analysis", metrics, section)


def run_demo(
    out_dir: str | os.PathLike = "demo_output",
    config: DemoConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every available pipeline stage on the bundled AdK data.

    Parameters
    ----------
    out_dir : path-like
        Output folder; ``report.html`` and ``metrics.json`` are written there
        atomically.
    config : DemoConfig, optional
        Demo settings (default: full demo).
    progress : callable, optional
        Called with a short message as each stage starts; defaults to logging.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.
    """
    config = config or DemoConfig()
    report = progress or logger.info
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages: list[Callable[..., StageResult]] = [data_stage, tokenizer_stage, training_stage, sampling_stage,
                                                analysis_stage]
    writes_files = {training_stage, sampling_stage}
    results: list[StageResult] = []
    for stage in stages:
        report(f"stage {len(results) + 1}/{len(stages)}: {stage.__name__.removesuffix('_stage')}")
        start = time.perf_counter()
        result = stage(config, *results, *((out,) if stage in writes_files else ()))
        result.seconds = time.perf_counter() - start
        results.append(result)
    from ._version import __version__

    metrics: dict[str, Any] = {
        "mdllm_kit_version": __version__,
        "config": asdict(config),
        "stages_run": [r.name for r in results],
        "stages_pending": [name for name in PIPELINE_STAGES if name not in {r.name for r in results}],
        "stage_seconds": {r.name: round(r.seconds, 3) for r in results},
        **{r.name: r.metrics for r in results},
    }
    status = ReportSection(
        title="Pipeline status",
        text=(
            "Stages run: " + ", ".join(metrics["stages_run"]) + ".\n\n"
            "Not yet in this version of mdllm-kit (so not shown here): "
            + (", ".join(metrics["stages_pending"]) or "none") + "."
        ),
        table={f"{r.name} (s)": round(r.seconds, 2) for r in results},
    )
    write_report(out / "report.html", "mdllm-kit demo: adenylate kinase",
                 [status, *(r.section for r in results)], parameters=asdict(config))
    atomic_write_json(out / "metrics.json", metrics)
    report(f"wrote {out / 'report.html'} and {out / 'metrics.json'}")
    return metrics
