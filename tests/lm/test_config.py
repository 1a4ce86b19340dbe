import pytest

from mdllm_kit.errors import ModelError
from mdllm_kit.lm.config import DEFAULT_ENTROPY_CAP, LoraSettings, ModelSettings, SamplingSettings, TrainSettings


@pytest.mark.parametrize("obj", [
    LoraSettings(r=8, target_modules=("q_proj", "v_proj")),
    ModelSettings(hidden_size=64, lora=LoraSettings(r=4), finetune="lora"),
    TrainSettings(window_frames=10, loss_frames="last", bf16=False),
    SamplingSettings(n_frames=5, n_walkers=2, context_frames=3, temperature=0.0),
])
def test_json_round_trip(obj, tmp_path):
    assert type(obj).from_dict(obj.to_dict()) == obj
    obj.save(tmp_path / "s.json")
    assert type(obj).load(tmp_path / "s.json") == obj


def test_paper_defaults():
    lora = LoraSettings()
    assert lora.r == 16
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    s = SamplingSettings()
    assert (s.temperature, s.top_k, s.top_p) == (1.0, 100, 0.95)
    assert ModelSettings().use_lora is False


def test_entropy_cap_is_on_by_default_and_off_round_trips():
    assert SamplingSettings().entropy_cap == DEFAULT_ENTROPY_CAP > 0
    off = SamplingSettings(entropy_cap=None)
    assert SamplingSettings.from_json(off.to_json()).entropy_cap is None


@pytest.mark.parametrize("cls, kwargs", [
    (LoraSettings, {"r": 0}), (LoraSettings, {"dropout": 1.0}), (LoraSettings, {"target_modules": ()}),
    (ModelSettings, {"hidden_size": 30, "num_heads": 4}), (ModelSettings, {"finetune": "half"}),
    (ModelSettings, {"base_model": "mistralai/Mistral-7B-v0.1"}),
    (TrainSettings, {"window_frames": 0}), (TrainSettings, {"val_fraction": 1.0}),
    (TrainSettings, {"loss_frames": "first"}),
    (SamplingSettings, {"top_p": 0.0}), (SamplingSettings, {"temperature": -1}), (SamplingSettings, {"n_walkers": 0}),
])
def test_validation(cls, kwargs):
    with pytest.raises(ModelError):
        cls(**kwargs)


def test_unknown_field():
    with pytest.raises(ModelError, match="unknown"):
        TrainSettings.from_dict({"windows": 3})
