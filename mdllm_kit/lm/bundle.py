"""The model bundle: one folder with everything needed to sample.

Layout of a bundle folder::

    bundle.json          format, versions, tokenizer class and fingerprint (written last)
    model/               full weights (safetensors, save_pretrained layout), or
    adapter/             LoRA adapter + trainable token rows, when the base is a local pretrained model
    tokenizer/           the structure tokenizer (save_pretrained)
    codec.json           FrameCodec
    model_settings.json  ModelSettings
    train_settings.json  TrainSettings
    metrics.json         training / evaluation history and final metrics
    seed_tokens.npz      the last context window of the training data (default sampling seed)

:func:`load_bundle` checks that tokenizer, codec and model belong together.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import sys
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_json
from ..contracts import FRAME_EMBEDDING_MODULES, is_frame_model
from ..errors import BundleMismatchError, MdllmError, ModelError
from .codec import FrameCodec
from .config import ModelSettings, TrainSettings

__all__ = ["ModelBundle", "export_merged", "find_bundle", "load_bundle", "load_bundle_tokenizer"]

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "mdllm-kit-lm-bundle"
#: 2: the default model is the frame-aware FrameMistralForCausalLM (model_type "mdllm_frame_mistral").
#: Version-1 bundles hold the earlier default model, trained with other defaults: they are refused.
BUNDLE_VERSION = 2


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class ModelBundle:
    """A trained model with its tokenizer, codec, settings and metrics.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        Causal LM in eval mode (LoRA adapters merged).
    tokenizer : StructureTokenizer
    codec : FrameCodec
    model_settings : ModelSettings
    train_settings : TrainSettings
    metrics : dict
        Training history and final evaluation.
    seed_tokens : numpy.ndarray of int, shape (W, L), optional
        The last context window of the training data.
    path : pathlib.Path, optional
        Folder the bundle was loaded from or saved to.
    bundle_id : str, optional
        Identity of the trained model (a random hex string drawn when the
        bundle is first saved, kept by copies): a sampling run records it, so
        that it is never continued with another model.
    """

    model: Any
    tokenizer: Any
    codec: FrameCodec
    model_settings: ModelSettings
    train_settings: TrainSettings
    metrics: dict[str, Any] = field(default_factory=dict)
    seed_tokens: np.ndarray | None = None
    path: Path | None = None
    bundle_id: str | None = None

    @property
    def window_frames(self) -> int:
        """Context frames ``W`` the model was trained with."""
        return self.train_settings.window_frames

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the bundle into ``directory`` (created if needed; other files there are kept).

        Weights are full safetensors, except for a LoRA model on a local
        pretrained base, whose adapter alone is saved (the base folder is
        recorded and must still exist when loading).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / "bundle.json"
        if marker.exists():
            marker.unlink()  # the bundle is incomplete until bundle.json is written again
        model = self.model
        is_peft = hasattr(model, "peft_config")
        if is_peft and self.model_settings.base_model is not None:
            weights = "adapter"
            _save_dir(directory / "adapter", lambda d: model.save_pretrained(str(d), safe_serialization=True,
                                                                              save_embedding_layers=False))
            shutil.rmtree(directory / "model", ignore_errors=True)
        else:
            weights = "full"
            if is_peft:
                model = model.merge_and_unload()
                self.model = model
            _save_dir(directory / "model", lambda d: model.save_pretrained(str(d), safe_serialization=True))
            shutil.rmtree(directory / "adapter", ignore_errors=True)
        _save_dir(directory / "tokenizer", lambda d: self.tokenizer.save_pretrained(d))
        atomic_write_json(directory / "codec.json", self.codec.to_dict())
        self.model_settings.save(directory / "model_settings.json")
        self.train_settings.save(directory / "train_settings.json")
        atomic_write_json(directory / "metrics.json", _jsonable(self.metrics))
        if self.seed_tokens is not None:
            with atomic_path(directory / "seed_tokens.npz") as tmp:
                np.savez(tmp, tokens=np.asarray(self.seed_tokens, dtype=np.int64))
        from .._version import __version__

        cls = type(self.tokenizer)
        if self.bundle_id is None:
            self.bundle_id = uuid.uuid4().hex
        atomic_write_json(marker, {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "mdllm_kit_version": __version__,
            "weights": weights, "base_model": self.model_settings.base_model, "frame_aware": is_frame_model(model),
            "tokenizer_class": f"{cls.__module__}:{cls.__qualname__}",
            "tokenizer_fingerprint": str(self.tokenizer.fingerprint), "bundle_id": self.bundle_id,
        })
        self.path = directory
        logger.info("saved model bundle to %s (%s weights)", directory, weights)
        return directory


def export_merged(directory: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write a bundle's model as a plain Hugging Face checkpoint folder (LoRA merged, new token rows included).

    ``out`` gets the ``save_pretrained`` files (``config.json``, safetensors
    weights) of the merged model, ``mdllm_codec.json`` (which LM ids are the
    structure tokens, ``<frame>``, ``<bos>``) and ``tokenizer/`` (the
    structure tokenizer). A pretrained family loads with
    ``AutoModelForCausalLM.from_pretrained(out)`` as that family's plain
    class; the frame tables (``frame_position_embeddings``, ...) are in the
    weights and the frame layout in ``config.json`` (``frame_length``), and
    ``mdllm_kit.lm.frame_model.make_frame_aware`` restores them. The default
    model's ``config.json`` names ``model_type`` ``mdllm_frame_mistral``
    (``mdllm_kit.lm.frame_model.register_frame_model()`` registers it).

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ModelError(f"{out} exists and is not empty; pass a new folder to --out")
    bundle = load_bundle(directory, device="cpu", dtype=torch.float32)

    def write(d: Path) -> None:
        bundle.model.save_pretrained(str(d), safe_serialization=True)
        atomic_write_json(d / "mdllm_codec.json", bundle.codec.to_dict())
        bundle.tokenizer.save_pretrained(d / "tokenizer")

    out.parent.mkdir(parents=True, exist_ok=True)
    _save_dir(out, write)
    logger.info("exported the merged model of %s to %s", directory, out)
    return out


def _restore_frame_embeddings(model: torch.nn.Module, weights: Path) -> None:
    """Make a loaded pretrained-family model frame-aware again and read its frame tables from ``weights``."""
    from safetensors import safe_open

    from .frame_model import make_frame_aware

    cfg = model.config
    make_frame_aware(model, int(cfg.frame_length), previous_frame_embedding=bool(cfg.previous_frame_embedding),
                     tie_previous_frame_embedding=bool(cfg.tie_previous_frame_embedding))
    wanted = {f"{name}.weight": getattr(model, name) for name in FRAME_EMBEDDING_MODULES
              if getattr(model, name, None) is not None}
    found: set[str] = set()
    for path in sorted(weights.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in wanted.keys() & set(f.keys()):
                with torch.no_grad():
                    wanted[key].weight.copy_(f.get_tensor(key))
                found.add(key)
    if found != set(wanted):
        raise BundleMismatchError(f"the model weights in {weights} lack {', '.join(sorted(set(wanted) - found))}; "
                                  "the bundle is damaged: copy it again or retrain with `mdllm train`")


def _save_dir(dest: Path, write) -> None:
    """Write a folder next to ``dest`` and move it into place."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if np.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _resolve_tokenizer_class(spec: str) -> type:
    """The tokenizer class recorded in a bundle.

    Classes of mdllm-kit are imported; any other class is looked up only
    among modules that are already imported (a bundle never makes Python
    import a module it names).
    """
    module_name, _, qualname = spec.partition(":")
    if module_name.split(".")[0] == "mdllm_kit":
        module = importlib.import_module(module_name)
    elif module_name in sys.modules:
        module = sys.modules[module_name]
    else:
        raise ModelError(
            f"the bundle's tokenizer class {spec} is not part of mdllm-kit and not imported; "
            "pass tokenizer_cls= (or tokenizer=) to load_bundle"
        )
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _short(error: BaseException) -> str:
    """``Type: message`` of an exception, on one line and at most 160 characters."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= 160 else text[:157] + "..."


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of a bundle; a missing or damaged file is a :class:`ModelError`."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelError(f"{path} is missing: the model bundle {path.parent} is incomplete; copy it again or "
                         "retrain with `mdllm train`") from error
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelError(f"{path} is damaged ({_short(error)}): copy the model bundle again or retrain "
                         "with `mdllm train`") from error
    if not isinstance(data, dict):
        raise ModelError(f"{path} does not hold a JSON object: copy the model bundle again or retrain with `mdllm train`")
    return data


def _read_marker(directory: Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder, checked for format and version."""
    marker = directory / "bundle.json"
    if not marker.is_file():
        raise ModelError(f"{directory} is not a complete model bundle (no bundle.json); "
                         "pass the --out folder of a finished `mdllm train` run")
    meta = _read_json(marker)
    try:
        version = int(meta.get("version", 0))
    except (TypeError, ValueError) as error:
        raise ModelError(f"{marker} is damaged (version {meta.get('version')!r}); copy the model bundle again "
                         "or retrain with `mdllm train`") from error
    if meta.get("format") != BUNDLE_FORMAT or version > BUNDLE_VERSION:
        raise ModelError(f"{marker} is not a model bundle this version of mdllm-kit can read; "
                         "upgrade mdllm-kit or retrain with `mdllm train`")
    if version < BUNDLE_VERSION:
        raise ModelError(f"{directory} is a version-{version} model bundle, made before the frame-aware default "
                         f"model (bundle version {BUNDLE_VERSION}); this mdllm-kit cannot use it: retrain with "
                         "`mdllm train` (or mk.train) to make a current bundle")
    return meta


def load_bundle_tokenizer(directory: str | os.PathLike, *, tokenizer_cls: type | None = None,
                          meta: dict[str, Any] | None = None) -> Any:
    """The structure tokenizer saved in a model bundle, without loading the model.

    Parameters
    ----------
    directory : path-like
        The bundle folder.
    tokenizer_cls : type, optional
        Class whose ``from_pretrained`` reads it (default: the class recorded in ``bundle.json``).
    meta : dict, optional
        ``bundle.json``, if already read.

    Returns
    -------
    StructureTokenizer
    """
    directory = Path(directory)
    meta = _read_marker(directory) if meta is None else meta
    cls = tokenizer_cls or _resolve_tokenizer_class(meta["tokenizer_class"])
    return cls.from_pretrained(directory / "tokenizer")


def find_bundle(candidates: Iterable[str | os.PathLike | None], *, device: str | None = None) -> ModelBundle | None:
    """The first of ``candidates`` that holds a bundle which loads, or ``None``.

    Folders without ``bundle.json`` and ``None`` entries are skipped; a bundle
    that does not load (e.g. one written by an older version) is skipped with
    its reason logged at warning level. Notebooks use it to reuse a trained
    model (``MDLLM_MODEL``, an earlier tutorial's output, ``make demo``'s).

    Parameters
    ----------
    candidates : iterable of path-like or None
        Folders, in order of preference.
    device : str, optional
        As for :func:`load_bundle`.
    """
    for candidate in candidates:
        if candidate is None or not (Path(candidate) / "bundle.json").is_file():
            continue
        try:
            return load_bundle(candidate, device=device)
        except (MdllmError, OSError, ValueError, KeyError) as error:
            logger.warning("not using %s: %s", candidate, error)
    return None


def load_bundle(directory: str | os.PathLike, *, tokenizer: Any = None, tokenizer_cls: type | None = None,
                base_model: str | None = None, device: str | None = None,
                dtype: torch.dtype | None = None) -> ModelBundle:
    """Load a model bundle written by :func:`mdllm_kit.train` or :meth:`ModelBundle.save`.

    Parameters
    ----------
    directory : path-like
        The bundle folder.
    tokenizer : StructureTokenizer, optional
        Use this tokenizer instead of the bundle's copy (it must have the same fingerprint).
    tokenizer_cls : type, optional
        Class whose ``from_pretrained`` reads the bundle's tokenizer (default:
        the class recorded in the bundle, e.g. ``mk.StructureTokenizer``).
    base_model : str, optional
        Local folder of the pretrained base model of an adapter bundle, if it
        moved since training.
    device : str, optional
        ``"cuda"`` when available, else ``"cpu"``.
    dtype : torch.dtype, optional
        Weights dtype (default: bfloat16 on CUDA, float32 on CPU).

    Returns
    -------
    ModelBundle

    Raises
    ------
    BundleMismatchError
        The tokenizer's fingerprint or vocabulary does not match the codec
        and model saved with it.
    """
    directory = Path(directory)
    meta = _read_marker(directory)
    if tokenizer is None:
        tokenizer = load_bundle_tokenizer(directory, tokenizer_cls=tokenizer_cls, meta=meta)
    if str(tokenizer.fingerprint) != meta["tokenizer_fingerprint"]:
        raise BundleMismatchError(
            f"tokenizer fingerprint {tokenizer.fingerprint} does not match the one the model was trained with "
            f"({meta['tokenizer_fingerprint']}); use the tokenizer saved in {directory / 'tokenizer'}"
        )
    codec = FrameCodec.from_dict(_read_json(directory / "codec.json"))
    expected = FrameCodec.for_tokenizer(tokenizer)
    if (codec.tokens_per_frame, codec.n_structure_tokens, codec.valid_ranges) != (
            expected.tokens_per_frame, expected.n_structure_tokens, expected.valid_ranges):
        raise BundleMismatchError(
            "the tokenizer's frame length, vocabulary or valid ranges differ from the codec saved with the model; "
            "the bundle's files do not belong together"
        )
    raw = _read_json(directory / "model_settings.json")
    if base_model is not None:
        raw["base_model"] = base_model
    model_settings = ModelSettings.from_dict(raw)
    train_settings = TrainSettings.from_dict(_read_json(directory / "train_settings.json"))
    device = device or _default_device()
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)

    from transformers import AutoModelForCausalLM

    from .frame_model import register_frame_model

    register_frame_model()  # the default model's config.json names model_type "mdllm_frame_mistral"
    if meta["weights"] == "full":
        weights = directory / "model"
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would be the only output of a failing command
        try:
            model = AutoModelForCausalLM.from_pretrained(weights, local_files_only=True, dtype=dtype,
                                                         trust_remote_code=False)
        except Exception as error:  # transformers and safetensors raise OSError, ValueError, SafetensorError, ...
            raise ModelError(f"the model weights in {weights} cannot be read ({_short(error)}): the bundle is "
                             "damaged or incomplete; copy it again, or retrain with `mdllm train` "
                             "(--resume continues from its checkpoints)") from error
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        if getattr(model.config, "frame_length", None) is not None and not is_frame_model(model):
            _restore_frame_embeddings(model, weights)  # a fully fine-tuned pretrained base made frame-aware
    else:
        from peft import PeftModel

        from .model import load_base_model

        # adapter bundles written before pretrained bases were made frame-aware hold a plain model
        frame_aware = bool(meta.get("frame_aware", False))
        base_settings = model_settings if frame_aware else model_settings.replace(frame_embeddings=False,
                                                                                  previous_frame_embedding=False)
        base, base_codec = load_base_model(tokenizer, base_settings)
        if base_codec.to_dict() != codec.to_dict():
            raise BundleMismatchError("the base model's vocabulary differs from the one the adapter was trained on; "
                                      "pass the same base model folder as in training (base_model=)")
        model = PeftModel.from_pretrained(base, str(directory / "adapter"), is_trainable=False)
        model = model.merge_and_unload().to(dtype)
    rows = int(model.get_input_embeddings().weight.shape[0])
    if rows < codec.lm_vocab_size:
        raise BundleMismatchError(f"the model has {rows} token embeddings but the codec needs {codec.lm_vocab_size}")
    model.to(device).eval()
    seed_tokens = None
    if (directory / "seed_tokens.npz").exists():
        try:
            with np.load(directory / "seed_tokens.npz") as data:
                seed_tokens = codec.check_tokens(data["tokens"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ModelError(f"{directory / 'seed_tokens.npz'} cannot be read ({_short(error)}): the bundle is "
                             "damaged; copy it again or retrain with `mdllm train`") from error
    metrics = _read_json(directory / "metrics.json") if (directory / "metrics.json").exists() else {}
    return ModelBundle(model, tokenizer, codec, model_settings, train_settings, metrics, seed_tokens, directory,
                       meta.get("bundle_id"))
