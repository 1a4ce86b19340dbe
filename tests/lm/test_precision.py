"""bf16 / fp32 choice: detection, the fp32 fallback, and bf16 training close to fp32."""
import logging

import numpy as np
import pytest

from mdllm_kit.errors import ModelError
from mdllm_kit.lm import precision as precision_module
from mdllm_kit.lm.config import TrainSettings
from mdllm_kit.lm.precision import cpu_bf16_flags, resolve_precision
from mdllm_kit.lm.train import train


def test_explicit_precision_is_kept():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ModelError, match="precision"):
        resolve_precision("fp16", "cpu")


def test_auto_follows_cpu_detection(monkeypatch, caplog):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.INFO, logger="mdllm_kit.lm.precision"):
        assert resolve_precision("auto", "cpu", "sampling") == "fp32"
    assert "sampling in fp32" in caplog.text and "no native bf16" in caplog.text


def test_detected_flags_are_known():
    assert set(cpu_bf16_flags()) <= set(precision_module.BF16_CPU_FLAGS)


def test_train_settings_precision():
    assert TrainSettings().precision == "auto"
    assert TrainSettings(bf16=False).requested_precision == "fp32"
    assert TrainSettings(precision="bf16").requested_precision == "bf16"
    with pytest.raises(ModelError, match="precision"):
        TrainSettings(precision="half")
    with pytest.raises(ModelError, match="contradicts"):
        TrainSettings(bf16=True, precision="fp32")


def _losses(bundle):
    return np.array([e["loss"] for e in bundle.metrics["log_history"] if "loss" in e])


def test_fallback_trains_in_fp32_and_says_so(monkeypatch, caplog, tmp_path, toy_traj, toy_tok, tiny_model_settings,
                                             tiny_train_settings):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)  # a CPU without bf16 units
    with caplog.at_level(logging.INFO, logger="mdllm_kit.lm.precision"):
        bundle = train(toy_traj, toy_tok, tmp_path, tiny_model_settings, tiny_train_settings.replace(max_steps=2),
                       progress=False, device="cpu")
    assert bundle.metrics["precision"] == "fp32"
    assert "training in fp32" in caplog.text


def test_bf16_and_fp32_training_give_close_losses(tmp_path, toy_traj, toy_tok, tiny_model_settings,
                                                  tiny_train_settings):
    settings = tiny_train_settings.replace(max_steps=5, eval_steps=100, save_steps=100)
    runs = {p: train(toy_traj, toy_tok, tmp_path / p, tiny_model_settings, settings.replace(precision=p),
                     progress=False, device="cpu") for p in ("fp32", "bf16")}
    assert runs["bf16"].metrics["precision"] == "bf16" and runs["fp32"].metrics["precision"] == "fp32"
    a, b = _losses(runs["fp32"]), _losses(runs["bf16"])
    assert len(a) == len(b) == 5
    assert a[-1] < a[0] and b[-1] < b[0]  # both learn
    np.testing.assert_allclose(b, a, rtol=5e-3)
    np.testing.assert_allclose(runs["bf16"].metrics["final_eval"]["eval_loss"],
                               runs["fp32"].metrics["final_eval"]["eval_loss"], rtol=5e-3)
