"""The language model of MD-LLM: codec, settings, training, bundles and sampling.

Importing this package imports torch but not transformers or peft; those are
imported when a model is built, trained or loaded.
"""
from __future__ import annotations

from .bundle import ModelBundle, find_bundle, load_bundle
from .codec import FrameCodec
from .config import LoraSettings, ModelSettings, SamplingSettings, TrainSettings
from .evaluate import next_frame_quality
from ..ensemble import GeneratedEnsemble
from .sampler import Sampler
from .train import train

__all__ = [
    "FrameCodec",
    "GeneratedEnsemble",
    "LoraSettings",
    "ModelBundle",
    "ModelSettings",
    "Sampler",
    "SamplingSettings",
    "TrainSettings",
    "find_bundle",
    "load_bundle",
    "next_frame_quality",
    "train",
]
