"""Train the language model on rolling windows of tokenized frames (HF Trainer).

The same code runs on one CPU, one GPU, or several processes under
``torchrun`` / ``accelerate launch`` (DDP; gloo on CPU, NCCL on GPU): the
Trainer picks the distributed setup up from the environment.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mdtraj as md
import numpy as np
import torch

from ..analysis.rmsd import rmsd_per_frame
from ..atomic import atomic_write_json, remove_stale_temporaries
from ..errors import ModelError
from .bundle import ModelBundle
from .codec import FrameCodec
from .config import ModelSettings, TrainSettings
from .data import ContextNoise, make_datasets
from .evaluate import constrained_frame_argmax, position_kinds
from .losses import OrdinalSoftTargetLoss
from .model import count_parameters, prepare_model
from .precision import resolve_precision

__all__ = ["encode_trajectories", "train"]

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


def encode_trajectories(trajectories: Any, tokenizer: Any) -> list[np.ndarray]:
    """Structure tokens of one or several trajectories.

    Parameters
    ----------
    trajectories : mdtraj.Trajectory, numpy.ndarray or a sequence of them
        Trajectories (encoded with ``tokenizer.encode``) or already
        tokenized frames of shape ``(n_frames, L)``.
    tokenizer : StructureTokenizer

    Returns
    -------
    list of numpy.ndarray of int64, each shape (n_frames_i, L)
    """
    if isinstance(trajectories, (md.Trajectory, np.ndarray)):
        trajectories = [trajectories]
    out = []
    for traj in trajectories:
        tokens = tokenizer.encode(traj) if isinstance(traj, md.Trajectory) else traj
        out.append(np.asarray(tokens, dtype=np.int64))
    if not out:
        raise ModelError("no trajectory given to train on")
    return out


def _training_arguments(out: Path, s: TrainSettings, has_eval: bool, use_gpu: bool, progress: bool,
                        use_cpu: bool) -> Any:
    from transformers import TrainingArguments

    bf16 = resolve_precision(s.requested_precision, "cuda" if use_gpu else "cpu", "training") == "bf16"
    checkpointing = use_gpu if s.gradient_checkpointing is None else s.gradient_checkpointing
    kwargs: dict[str, Any] = dict(
        output_dir=str(out / CHECKPOINT_DIR), max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size, per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum, learning_rate=s.learning_rate, weight_decay=s.weight_decay,
        lr_scheduler_type="cosine", warmup_steps=s.warmup_ratio, max_grad_norm=s.max_grad_norm,
        eval_strategy="steps" if has_eval else "no", eval_steps=s.eval_steps,
        save_strategy="steps", save_steps=s.save_steps, save_total_limit=s.save_total_limit,
        logging_strategy="steps", logging_steps=s.logging_steps, report_to="none", seed=s.seed, data_seed=s.seed,
        bf16=bool(bf16), disable_tqdm=not progress, dataloader_num_workers=s.dataloader_workers,
        remove_unused_columns=False, use_cpu=use_cpu, ddp_find_unused_parameters=False,
        include_num_input_tokens_seen=True,
    )
    fields = TrainingArguments.__dataclass_fields__
    if checkpointing:
        key = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
        kwargs[key] = True
        kwargs[key + "_kwargs"] = {"use_reentrant": False}
    if (use_cpu or not torch.cuda.is_available()) and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        kwargs["ddp_backend"] = "gloo"
    if "warmup_ratio" in fields and "warmup_steps" in fields and fields["warmup_steps"].type in ("int", int):
        kwargs["warmup_ratio"] = kwargs.pop("warmup_steps")  # transformers 4.x
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in fields})


class _MetricFns:
    """``preprocess_logits_for_metrics`` and ``compute_metrics`` for next-frame metrics.

    Only the last frame of each validation window is scored: its tokens are
    predicted by constrained arg-max under teacher forcing (so every
    prediction decodes), compared token by token with the truth, and the
    first ``rmsd_max_frames`` are decoded and compared by RMSD (Angstrom,
    after optimal superposition).
    """

    def __init__(self, codec: FrameCodec, tokenizer: Any, window_frames: int, rmsd_max_frames: int) -> None:
        self.codec = codec
        self.tokenizer = tokenizer
        self.rmsd_max_frames = rmsd_max_frames
        seq_len = codec.sequence_length(window_frames + 1)
        self.first = seq_len - codec.frame_length  # first token of the last frame
        self.mask = torch.from_numpy(codec.position_mask())

    def preprocess(self, logits: Any, labels: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        return constrained_frame_argmax(logits, self.codec, self.first, self.mask)

    def compute(self, prediction: Any) -> dict[str, float]:
        preds = np.asarray(prediction.predictions)
        labels = np.asarray(prediction.label_ids)
        c = self.codec
        truth = labels[:, self.first: self.first + c.tokens_per_frame] - c.structure_offset
        out = {"next_frame_token_accuracy": float((preds == truth).mean())}
        n = min(self.rmsd_max_frames, len(preds))
        if n:
            try:
                pred_traj = self.tokenizer.decode(preds[:n])
                true_traj = self.tokenizer.decode(truth[:n])
                out["next_frame_rmsd_A"] = float(rmsd_per_frame(pred_traj.xyz, true_traj.xyz).mean())
            except Exception as error:  # a metric must never stop training
                logger.warning("could not compute the next-frame RMSD: %s", error)
        return out


def _trainer(*args: Any, train_loss_func: Any = None, **kwargs: Any) -> Any:
    """A Hugging Face ``Trainer`` whose training loss (never its evaluation loss) is ``train_loss_func``.

    ``train_loss_func`` (``None``: the model's own cross-entropy) is the
    Trainer's ``compute_loss_func`` while the model is in training mode, so the
    Trainer's gradient-accumulation and multi-process normalisation apply to
    it; evaluation always reports the model's plain cross-entropy, so
    ``eval_loss`` stays comparable between recipes.
    """
    from transformers import Trainer

    class _RecipeTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            saved, self.compute_loss_func = self.compute_loss_func, None
            try:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            finally:
                self.compute_loss_func = saved

    return _RecipeTrainer(*args, compute_loss_func=train_loss_func, **kwargs)


def _recipe(tokenizer: Any, codec: FrameCodec, s: TrainSettings) -> tuple[ContextNoise | None, Any]:
    """The noisy-context transform and the ordinal soft-target loss that ``s`` asks for (``None``: off)."""
    kinds, periodic = position_kinds(tokenizer, codec.tokens_per_frame)
    noise = (ContextNoise.for_tokenizer(tokenizer, s.context_noise_bins, s.context_noise_fraction, s.seed)
             if s.context_noise_bins > 0 else None)
    loss = OrdinalSoftTargetLoss(codec, kinds, periodic, s.ordinal_label_sigma) if s.ordinal_label_sigma > 0 else None
    return noise, loss


#: Settings and data of a training run, in ``checkpoints/``: ``--resume`` must continue the same run.
RUN_RECORD = "run.json"
#: TrainSettings fields added after run records existed; an older record lacks them and its run used their
#: defaults (the recipe options are off by default), so it resumes with those
_ADDED_FIELDS = ("context_noise_bins", "context_noise_fraction", "ordinal_label_sigma")
#: TrainSettings fields that do not change the weights a run ends with (they may differ on resume).
_RESUMABLE_FIELDS = frozenset({"eval_steps", "save_steps", "logging_steps", "save_total_limit", "eval_max_windows",
                               "rmsd_max_frames", "dataloader_workers"})


def _checkpoint_complete(path: Path) -> bool:
    """Whether a Trainer checkpoint folder was written to the end (its ``trainer_state.json`` is written last)."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    weights = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")
    return any((path / name).is_file() for name in weights) and (path / "optimizer.pt").is_file()


def _checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    if not ckpt_dir.is_dir():
        return []
    found = []
    for path in ckpt_dir.iterdir():
        name, _, step = path.name.partition("-")
        if path.is_dir() and name == "checkpoint" and step.isdigit():
            found.append((int(step), path))
    return sorted(found)


def _last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint written to the end (a run killed while saving leaves a partial newer one)."""
    complete = [path for _, path in _checkpoints(ckpt_dir) if _checkpoint_complete(path)]
    return str(complete[-1]) if complete else None


def _remove_incomplete_checkpoints(ckpt_dir: Path, last: str | None) -> None:
    """Delete checkpoint folders a killed run left half-written (never the one resumed from)."""
    for _, path in _checkpoints(ckpt_dir):
        if str(path) != last and not _checkpoint_complete(path):
            logger.warning("removing %s: an interrupted run left it half-written", path)
            shutil.rmtree(path, ignore_errors=True)


def _run_record(token_trajs: Sequence[np.ndarray], tokenizer: Any, model: ModelSettings,
                s: TrainSettings) -> dict[str, Any]:
    digest = hashlib.sha256()
    for tokens in token_trajs:
        digest.update(np.asarray(tokens.shape, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(tokens, dtype=np.int64).tobytes())
    return {"data_sha256": digest.hexdigest(), "tokenizer_fingerprint": str(tokenizer.fingerprint),
            "model_settings": model.to_dict(),
            "train_settings": {k: v for k, v in s.to_dict().items() if k not in _RESUMABLE_FIELDS}}


def _check_same_run(ckpt_dir: Path, run: dict[str, Any]) -> None:
    """Refuse to resume a run whose data, tokenizer or settings differ from the checkpoints' run."""
    try:
        old = json.loads((ckpt_dir / RUN_RECORD).read_text())
    except FileNotFoundError:
        logger.warning("%s has no %s (made by an older mdllm-kit): cannot check that the settings are the same",
                       ckpt_dir, RUN_RECORD)
        return
    except (OSError, ValueError) as error:
        raise ModelError(f"{ckpt_dir / RUN_RECORD} is damaged ({type(error).__name__}); the run cannot be checked: "
                         "train into a new output folder") from error
    if old.get("data_sha256") != run["data_sha256"]:
        raise ModelError(f"the training trajectories differ from those of the run in {ckpt_dir.parent}; resume with "
                         "the same trajectories (same files, order, selection and stride), or train into a new "
                         "output folder")
    if old.get("tokenizer_fingerprint") != run["tokenizer_fingerprint"]:
        raise ModelError(f"the tokenizer differs from the one of the run in {ckpt_dir.parent}; resume with the same "
                         "tokenizer, or train into a new output folder")
    recorded = {"model_settings": old.get("model_settings", {}),
                "train_settings": {**{k: TrainSettings().to_dict()[k] for k in _ADDED_FIELDS},
                                   **old.get("train_settings", {})}}
    changed = [f"{key}: {recorded[group].get(key)!r} in the run, {run[group].get(key)!r} now"
               for group in ("model_settings", "train_settings")
               for key in sorted(set(recorded[group]) | set(run[group]))
               if recorded[group].get(key) != run[group].get(key)]
    if changed:
        raise ModelError(f"--resume with changed settings ({'; '.join(changed)}) for the run in {ckpt_dir.parent}; "
                         "resume with the same settings, or train into a new output folder")


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train(trajectories: Any, tokenizer: Any, out: str | os.PathLike, model: ModelSettings | None = None,
          settings: TrainSettings | None = None, *, resume: bool = False, progress: bool = True,
          callbacks: Sequence[Any] = (), device: str | None = None) -> ModelBundle:
    """Fine-tune a causal LM to predict frame ``W + 1`` from ``W`` frames and save a model bundle.

    Parameters
    ----------
    trajectories : mdtraj.Trajectory, numpy.ndarray or a sequence of them
        Training trajectories in time order (several are allowed; windows
        never span two of them), or their structure tokens ``(n_frames, L)``.
    tokenizer : StructureTokenizer
        Fitted structure tokenizer (saved into the bundle).
    out : path-like
        Output folder: the bundle (see :mod:`mdllm_kit.lm.bundle`) plus
        ``checkpoints/`` for resuming.
    model : ModelSettings, optional
        Model to train (default: small Mistral from config, trained fully).
    settings : TrainSettings, optional
        Windows, split and optimisation.
    resume : bool
        Continue from the last checkpoint in ``out/checkpoints`` (same
        settings); with ``False`` an ``out`` that already holds checkpoints
        is refused.
    progress : bool
        Show a live progress bar (tqdm in terminals, a widget in notebooks).
    callbacks : sequence of transformers.TrainerCallback
        Extra Trainer callbacks.
    device : {"cpu", "cuda"}, optional
        Force a device (default: CUDA when available).

    Returns
    -------
    ModelBundle
        The trained model (also saved to ``out``; loadable with :func:`mdllm_kit.load_bundle`).

    Notes
    -----
    Evaluation (every ``eval_steps`` and at the end, on at most
    ``eval_max_windows`` validation windows from the held-out end of each
    trajectory) reports ``eval_loss`` (mean cross-entropy per token of frame
    ``W + 1`` given ``W`` frames, nats), ``eval_next_frame_token_accuracy``
    (teacher-forced constrained arg-max vs the true tokens) and
    ``eval_next_frame_rmsd_A`` (RMSD after superposition between the decoded
    predicted and true frames). Everything logged is in ``metrics.json``.
    """
    from transformers import default_data_collator

    model_settings = model or ModelSettings()
    s = settings or TrainSettings()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModelError(f"the output {out} exists and is a file, not a folder; choose a new output folder")
    ckpt_dir = out / CHECKPOINT_DIR
    last = _last_complete_checkpoint(ckpt_dir)
    if last is not None and not resume:
        raise ModelError(f"{out} already holds training checkpoints; pass resume=True (--resume) to continue "
                         "that run, or choose a new output folder")
    if last is None and out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name != CHECKPOINT_DIR and not p.name.startswith("."))
        if other:
            raise ModelError(f"the output folder {out} already exists and holds {', '.join(other[:3])}"
                             f"{', ...' if len(other) > 3 else ''} but no training checkpoint to "
                             f"{'resume from' if resume else 'continue'}; choose a new output folder")
    if resume and last is None:
        logger.warning("resume requested but %s holds no checkpoint: starting from scratch", ckpt_dir)

    token_trajs = encode_trajectories(trajectories, tokenizer)
    run = _run_record(token_trajs, tokenizer, model_settings, s)
    if last is not None:
        _check_same_run(ckpt_dir, run)
    use_cpu = device == "cpu" or not torch.cuda.is_available()
    torch.manual_seed(s.seed)
    span_len = FrameCodec.for_tokenizer(tokenizer).sequence_length(s.window_frames + 1)
    lm, codec = prepare_model(tokenizer, model_settings, max_positions=span_len)
    context_noise, train_loss = _recipe(tokenizer, codec, s)
    train_ds, val_ds, info = make_datasets(token_trajs, codec, s.window_frames, s.stride, s.val_fraction,
                                           s.loss_frames, context_noise)
    eval_ds = val_ds.subset(s.eval_max_windows) if val_ds is not None else None
    logger.info("%d trajectories: %d training windows (%d frames), %d validation windows (%d frames), "
                "%d tokens per window", info.n_trajectories, info.train_windows, info.train_frames,
                info.val_windows, info.val_frames, train_ds.seq_len)
    if hasattr(lm, "config"):
        lm.config.use_cache = False
    fns = _MetricFns(codec, tokenizer, s.window_frames, s.rmsd_max_frames)
    # every input is checked: only now is anything written
    out.mkdir(parents=True, exist_ok=True)
    if _is_main_process():
        ckpt_dir.mkdir(exist_ok=True)
        if last is None or not (ckpt_dir / RUN_RECORD).exists():
            atomic_write_json(ckpt_dir / RUN_RECORD, run)
        _remove_incomplete_checkpoints(ckpt_dir, last)
        remove_stale_temporaries(out)  # of a run killed while saving the bundle
    args = _training_arguments(out, s, eval_ds is not None, not use_cpu, progress, use_cpu)
    trainer = _trainer(model=lm, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                       data_collator=default_data_collator, compute_metrics=fns.compute if eval_ds else None,
                       preprocess_logits_for_metrics=fns.preprocess if eval_ds else None,
                       callbacks=list(callbacks), train_loss_func=train_loss)
    t0 = time.perf_counter()
    if resume and last is not None and int(Path(last).name.split("-")[-1]) >= s.max_steps:
        # the run was stopped after its last checkpoint (e.g. while saving the bundle): nothing is left to train.
        # The Trainer, resumed from its final step, would run one optimiser step more than max_steps.
        from transformers.trainer_callback import TrainerState

        logger.info("%s is the final checkpoint of this run: loading it instead of training", last)
        trainer._load_from_checkpoint(last)
        trainer.state = TrainerState.load_from_json(os.path.join(last, "trainer_state.json"))
        train_metrics: dict[str, Any] = {}
    else:
        train_metrics = dict(trainer.train(resume_from_checkpoint=last if resume else None).metrics)
    seconds = time.perf_counter() - t0
    final_eval = trainer.evaluate() if eval_ds is not None else {}
    trainable, total = count_parameters(trainer.model)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps_run = trainer.state.global_step - (int(Path(last).name.split("-")[-1]) if (resume and last) else 0)
    tokens = steps_run * s.batch_size * s.grad_accum * world * train_ds.seq_len
    metrics = {
        "split": info.__dict__, "tokens_per_window": train_ds.seq_len,
        "parameters": {"trainable": trainable, "total": total},
        "finetune": "lora" if model_settings.use_lora else "full",
        "precision": "bf16" if args.bf16 else "fp32",
        "train": train_metrics,
        "train_tokens_per_s": tokens / seconds if seconds > 0 else None,
        "global_step": trainer.state.global_step, "world_size": world,
        "final_eval": final_eval, "log_history": trainer.state.log_history,
    }
    seed_tokens = token_trajs[-1][: len(token_trajs[-1]) - int(round(len(token_trajs[-1]) * s.val_fraction))]
    # the Trainer's accelerate wraps forward in autocast for bf16: hand back the plain model, as a reload gives it
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    bundle = ModelBundle(model, tokenizer, codec, model_settings, s, metrics,
                         seed_tokens[-s.window_frames:], out)
    if trainer.is_world_process_zero() and _is_main_process():
        bundle.save(out)
    trainer.accelerator.wait_for_everyone()
    bundle.model.eval()
    return bundle
